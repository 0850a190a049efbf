"""Gated recurrent memory (GRU-Mem style, arXiv 2602.10560) on the Llama layout.

The context is read in chunks of at most `chunk_size` tokens. Each layer keeps `memory_slots`
memory vectors [batch, slots, hidden]; tokens attend to the memory (all slots, no RoPE) plus
their own chunk (causal), never to earlier chunks, so the per-step context is bounded.

prefill is one chunk step: inputs `past_memory.{i}` (the memory before the chunk); outputs
the logits, the chunk's K/V (`present.{i}.key|value`), the K/V of the memory it attended to
(`present_memory.{i}.key|value`, what decode reads) and the updated memory `present_memory.{i}`.
The update reads the chunk with the memory slots as queries (the layer's own q/k/v/o
projections, over memory + chunk), then mixes old and read memory through per-slot, per-head
sigmoid update and forget gates: m' = f * m + u * read.
decode generates inside the open chunk: `past_memory.{i}.key|value` [batch, kv_heads, slots,
head_dim] plus `past_key_values.{i}` of the chunk so far (past_len < chunk_size). When a chunk
is full the caller runs the chunk step over it to advance the memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from . import _blocks as nn
from ._config import require
from ._graph import init_near_one
from .llama import LLAMA31_8B, TINY_LLAMA, LlamaConfig, LlamaGraph, derive


@dataclass(frozen=True, kw_only=True)
class GruMemConfig(LlamaConfig):
    memory_slots: int
    chunk_size: int

    def __post_init__(self) -> None:
        super().__post_init__()
        require(isinstance(self.memory_slots, int) and self.memory_slots > 0, self, "memory_slots", "must be > 0")
        require(
            isinstance(self.chunk_size, int) and 0 < self.chunk_size <= self.max_context,
            self, "chunk_size", f"must lie in [1, max_context {self.max_context}]",
        )

    def memory_parameters(self) -> int:
        """Per layer: memory norm gain, gate projection [2*hidden, 2*heads] and its bias."""
        gates = 2 * self.num_heads
        return self.hidden_size + 2 * self.hidden_size * gates + gates

    def parameter_count(self) -> int:
        return super().parameter_count() + self.num_layers * self.memory_parameters()

    def state_bytes(self) -> int:
        """Slot memory (kept between chunks) plus its K/V (what decode reads), all layers."""
        memory = self.memory_slots * self.hidden_size * self.dtype_bytes
        memory_kv = self.memory_slots * self.kv_bytes_per_layer_token()
        return self.num_layers * (memory + memory_kv)


class GruMemGraph(LlamaGraph):
    config: GruMemConfig

    def attention(self, i: int, x: str) -> str:
        g, c = self.g, self.config
        slots, d = c.memory_slots, c.head_dim
        mem_kv_shape = ["batch", c.num_kv_heads, slots, d]
        if self.decode:
            mem_k = g.input(f"past_memory.{i}.key", g.float_type, mem_kv_shape)
            mem_v = g.input(f"past_memory.{i}.value", g.float_type, mem_kv_shape)
            self.declare_memory_parameters(i)
        else:
            memory = g.input(f"past_memory.{i}", g.float_type, ["batch", slots, c.hidden_size])
            norm_gain = f"model.layers.{i}.memory.norm.weight"
            memory_normed = nn.rms_norm(g, memory, norm_gain, c.hidden_size, c.rms_norm_eps)
            mem_q, mem_k, mem_v = self.qkv(i, memory_normed, rotate=False)  # slots have no position
            for kind, value in (("key", mem_k), ("value", mem_v)):
                g.output(g.op("Identity", value, out=f"present_memory.{i}.{kind}"), g.float_type, mem_kv_shape)

        q, k, v = self.qkv(i, x)
        chunk_k, chunk_v = self.kv_cache(i, k, v)
        keys = g.op("Concat", mem_k, chunk_k, axis=2)
        values = g.op("Concat", mem_v, chunk_v, axis=2)
        mask = None if self.decode else self.shared("memory-causal", self.memory_causal_mask)
        out = self.out_proj(i, self.attend(q, keys, values, mask))
        if not self.decode:
            read = self.out_proj(i, self.attend(mem_q, keys, values, None))
            self.update_memory(i, memory, memory_normed, read)
        return out

    def declare_memory_parameters(self, i: int) -> None:
        """Decode does not update memory, but its initializers stay the model's parameters."""
        g, c = self.g, self.config
        g.param(f"model.layers.{i}.memory.norm.weight", [c.hidden_size], init_near_one)
        g.param(f"model.layers.{i}.memory.gate_proj.weight", [2 * c.hidden_size, 2 * c.num_heads])
        g.param(f"model.layers.{i}.memory.gate_proj.bias", [2 * c.num_heads])

    def update_memory(self, i: int, memory: str, memory_normed: str, read: str) -> None:
        """m' = f * m + u * read with [u, f] = sigmoid([norm(m), read] @ W + b), one gate per slot and head."""
        g, c = self.g, self.config
        p = f"model.layers.{i}.memory.gate_proj"
        gates = 2 * c.num_heads
        both = g.op("Concat", memory_normed, read, axis=-1)
        logits = g.op("Add", nn.linear(g, both, f"{p}.weight", 2 * c.hidden_size, gates), g.param(f"{p}.bias", [gates]))
        update, forget = g.op_multi("Split", g.op("Sigmoid", logits), n_out=2, axis=-1, num_outputs=2)
        per_head = g.const([0, 0, c.num_heads, c.head_dim])
        update = g.op("Unsqueeze", update, g.const([-1]))  # [b, slots, heads, 1]
        forget = g.op("Unsqueeze", forget, g.const([-1]))
        kept = g.op("Mul", forget, g.op("Reshape", memory, per_head))
        written = g.op("Mul", update, g.op("Reshape", read, per_head))
        name = f"present_memory.{i}"
        g.op("Reshape", g.op("Add", kept, written), g.const([0, 0, c.hidden_size]), out=name)
        g.output(name, g.float_type, ["batch", c.memory_slots, c.hidden_size])

    def memory_causal_mask(self) -> str:
        """Prefill [s, slots + s]: every memory slot visible, the chunk causal."""
        slots = self.config.memory_slots
        return self.g.op("Pad", self.shared("causal", self.causal_mask), self.g.const([0, slots, 0, 0]))


def build(config: GruMemConfig, form: str) -> onnx.ModelProto:
    return GruMemGraph(config, form).build()


TINY_GRUMEM = derive(
    TINY_LLAMA,
    GruMemConfig,
    name="tiny-grumem",
    source="tiny test config: 4 memory slots, 8-token chunks",
    memory_slots=4,
    chunk_size=8,
)

# Assumption: sizes after MemAgent-style readers (memory of ~1k tokens, chunks of ~4-5k).
LLAMA31_8B_GRUMEM = derive(
    LLAMA31_8B,
    GruMemConfig,
    name="llama3.1-8b-grumem",
    source="llama3.1-8b weights + gated memory; 1024 slots and 4096-token chunks assumed (arXiv 2602.10560)",
    memory_slots=1024,
    chunk_size=4096,
)

PRESETS: tuple[GruMemConfig, ...] = (TINY_GRUMEM, LLAMA31_8B_GRUMEM)
