"""KV compaction in the Attention Matching style (arXiv 2602.16284) on the Llama layout.

The first `compacted_len` tokens of a context have been replaced, per layer and KV head, by
t = ceil(compacted_len / compaction_ratio) fitted keys, values and a per-key score bias. The
graph takes them as read-only inputs `compacted_key_values.{i}.key|value` [batch, kv_heads, t,
head_dim] and `.bias` [batch, kv_heads, t]; queries see every compacted key with its bias added
to the logit, then the recent cache (decode: past_key_values, prefill: the new tokens, causal).
Compacted keys are stored post-RoPE like any cached key; position_ids of new tokens continue
from the original (uncompacted) positions. Ratio 1 with zero bias is the identity compaction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import onnx

from . import _blocks as nn
from ._config import require
from .llama import LLAMA31_8B, TINY_LLAMA, LlamaConfig, LlamaGraph, derive


@dataclass(frozen=True, kw_only=True)
class CompactionConfig(LlamaConfig):
    compacted_len: int
    compaction_ratio: float

    def __post_init__(self) -> None:
        super().__post_init__()
        require(
            isinstance(self.compacted_len, int) and 0 < self.compacted_len <= self.max_context,
            self, "compacted_len", f"must lie in [1, max_context {self.max_context}]",
        )
        require(self.compaction_ratio >= 1, self, "compaction_ratio", "must be >= 1 (t <= compacted_len)")

    @property
    def compacted_slots(self) -> int:
        """t: the number of fitted keys that stand in for the compacted_len original tokens."""
        return math.ceil(self.compacted_len / self.compaction_ratio)

    def state_bytes(self) -> int:
        per_slot = self.num_kv_heads * (2 * self.head_dim + 1) * self.dtype_bytes
        return self.num_layers * self.compacted_slots * per_slot


class CompactionGraph(LlamaGraph):
    config: CompactionConfig

    def attention(self, i: int, x: str) -> str:
        g, c = self.g, self.config
        t = c.compacted_slots
        n_rep = c.num_heads // c.num_kv_heads
        prefix = f"compacted_key_values.{i}"
        kv_shape = ["batch", c.num_kv_heads, t, c.head_dim]
        compact_k = g.input(f"{prefix}.key", g.float_type, kv_shape)
        compact_v = g.input(f"{prefix}.value", g.float_type, kv_shape)
        bias = g.input(f"{prefix}.bias", g.float_type, ["batch", c.num_kv_heads, t])

        q, k, v = self.qkv(i, x)
        keys, values = self.kv_cache(i, k, v)
        # Scores against the compacted keys carry the per-key bias, scores against the recent
        # keys the causal mask (prefill); one softmax spans both.
        bias = g.op("Unsqueeze", bias, g.const([2, 3]))  # [b, kv, 1, 1, t]
        bias = g.op("Expand", bias, g.const([1, 1, n_rep, 1, 1]))
        bias = g.op("Reshape", bias, g.const([0, c.num_heads, 1, t]))
        compact_k = nn.repeat_kv(g, compact_k, c.num_kv_heads, n_rep, c.head_dim)
        compact_scores = g.op("Add", nn.attention_scores(g, q, compact_k, c.head_dim), bias)
        keys = nn.repeat_kv(g, keys, c.num_kv_heads, n_rep, c.head_dim)
        recent_scores = nn.attention_scores(g, q, keys, c.head_dim)
        if not self.decode:
            recent_scores = g.op("Add", recent_scores, self.shared("causal", self.causal_mask))
        probs = nn.softmax(g, g.op("Concat", compact_scores, recent_scores, axis=-1))
        compact_v = nn.repeat_kv(g, compact_v, c.num_kv_heads, n_rep, c.head_dim)
        values = g.op("Concat", compact_v, nn.repeat_kv(g, values, c.num_kv_heads, n_rep, c.head_dim), axis=2)
        return self.out_proj(i, g.op("MatMul", probs, values))


def build(config: CompactionConfig, form: str) -> onnx.ModelProto:
    return CompactionGraph(config, form).build()


TINY_COMPACT = derive(
    TINY_LLAMA,
    CompactionConfig,
    name="tiny-compact",
    source="tiny test config: 8 tokens compacted 2x",
    compacted_len=8,
    compaction_ratio=2.0,
)

# A whole 128k context compacted 32x (the paper reports up to 50x) into 4096 slots per head.
LLAMA31_8B_COMPACT = derive(
    LLAMA31_8B,
    CompactionConfig,
    name="llama3.1-8b-compact",
    source="llama3.1-8b weights; 131072 tokens compacted 32x assumed (Attention Matching, arXiv 2602.16284)",
    compacted_len=131072,
    compaction_ratio=32.0,
)

PRESETS: tuple[CompactionConfig, ...] = (TINY_COMPACT, LLAMA31_8B_COMPACT)
