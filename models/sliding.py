"""Sliding-window and hybrid (windowed + full) attention on the Llama layout.

A windowed layer lets query i see keys j with i - window < j <= i (HF `sliding_window`
semantics: `window` keys including itself). Its decode cache is bounded: it holds the last
`window` tokens, written as a shift buffer (present = concat(past, new)[1:]), which is the
dataflow of a ring buffer without a scatter. Slots older than position 0 (the cache of a
sequence shorter than the window is zero-padded in front) are masked using position_ids, so
positions must count tokens from 0. Prefill emits a windowed layer's last `window` tokens
(present.{i}.* [batch, kv_heads, window, head_dim]), ready for decode. Full-attention layers
keep the usual `past_len` cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from . import _blocks as nn
from ._config import require
from .llama import LLAMA31_8B, TINY_LLAMA, LlamaConfig, LlamaGraph, derive


@dataclass(frozen=True, kw_only=True)
class SlidingConfig(LlamaConfig):
    """Llama layout where every layer not in `full_attention_layers` uses a sliding window."""

    sliding_window: int
    full_attention_layers: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        require(
            isinstance(self.sliding_window, int) and self.sliding_window > 0, self, "sliding_window", "must be > 0"
        )
        require(
            all(0 <= i < self.num_layers for i in self.full_attention_layers),
            self, "full_attention_layers", f"layer indices must lie in [0, {self.num_layers})",
        )
        require(
            len(set(self.full_attention_layers)) == len(self.full_attention_layers),
            self, "full_attention_layers", "has repeated layers",
        )

    def layer_window(self, layer: int) -> int | None:
        """The layer's window in tokens, or None for full attention."""
        return None if layer in self.full_attention_layers else self.sliding_window

    def kv_bytes_per_token(self) -> int:
        return len(self.full_attention_layers) * self.kv_bytes_per_layer_token()

    def state_bytes(self) -> int:
        windowed = self.num_layers - len(self.full_attention_layers)
        return windowed * self.sliding_window * self.kv_bytes_per_layer_token()


class SlidingGraph(LlamaGraph):
    config: SlidingConfig

    def attention(self, i: int, x: str) -> str:
        window = self.config.layer_window(i)
        if window is None:
            return super().attention(i, x)
        q, k, v = self.qkv(i, x)
        if self.decode:
            keys, values = self.window_cache(i, k, v, window)
            mask = self.shared(("window-slots", window), lambda: self.slot_mask(window))
        else:
            self.window_present(i, k, v, window)
            keys, values = k, v
            mask = self.shared(("window", window), lambda: self.window_mask(window))
        return self.out_proj(i, self.attend(q, keys, values, mask))

    def window_cache(self, i: int, k: str, v: str, window: int) -> tuple[str, str]:
        """Decode: past holds the last `window` tokens; present drops the oldest, adds the new."""
        g, c = self.g, self.config
        shape = ["batch", c.num_kv_heads, window, c.head_dim]
        present = []
        for kind, new in (("key", k), ("value", v)):
            past = g.input(f"past_key_values.{i}.{kind}", g.float_type, shape)
            joined = g.op("Concat", past, new, axis=2)
            name = f"present.{i}.{kind}"
            g.op("Slice", joined, g.const([1]), g.const([nn.INT64_MAX]), g.const([2]), out=name)
            g.output(name, g.float_type, shape)
            present.append(name)
        return present[0], present[1]

    def window_present(self, i: int, k: str, v: str, window: int) -> None:
        """Prefill: emit the last `window` tokens' K/V, zero-padded in front for short prompts."""
        g, c = self.g, self.config
        pads = g.const([0, 0, window, 0, 0, 0, 0, 0])
        for kind, new in (("key", k), ("value", v)):
            name = f"present.{i}.{kind}"
            padded = g.op("Pad", new, pads)
            g.op("Slice", padded, g.const([-window]), g.const([nn.INT64_MAX]), g.const([2]), out=name)
            g.output(name, g.float_type, ["batch", c.num_kv_heads, window, c.head_dim])

    def window_mask(self, window: int) -> str:
        """Prefill [s, s]: masked where j > i or i - j >= window."""
        g = self.g
        idx = nn.index_range(g, self.seq_len())
        rows = g.op("Unsqueeze", idx, g.const([1]))
        cols = g.op("Unsqueeze", idx, g.const([0]))
        too_old = g.op("GreaterOrEqual", g.op("Sub", rows, cols), g.const(window))
        return nn.additive_mask(g, g.op("Or", g.op("Greater", cols, rows), too_old))

    def slot_mask(self, window: int) -> str:
        """Decode [b, 1, 1, window]: slot j holds position p - (window-1) + j; mask it if < 0."""
        g = self.g
        offsets = g.const([j - (window - 1) for j in range(window)])
        slot_positions = g.op("Add", self.position_ids, offsets)  # [b, window]
        masked = g.op("Less", slot_positions, g.const(0))
        return nn.additive_mask(g, g.op("Unsqueeze", masked, g.const([1, 2])))


def build(config: SlidingConfig, form: str) -> onnx.ModelProto:
    return SlidingGraph(config, form).build()


TINY_SWA = derive(
    TINY_LLAMA,
    SlidingConfig,
    name="tiny-swa",
    source="tiny test config: all layers windowed",
    sliding_window=4,
)

TINY_HYBRID = derive(
    TINY_LLAMA,
    SlidingConfig,
    name="tiny-hybrid",
    source="tiny test config: layers 0 and 2 windowed, layer 1 full",
    num_layers=3,
    sliding_window=4,
    full_attention_layers=(1,),
)

# Assumption (no published model): Llama 3.1 8B with 3 of every 4 layers on a 4096-token
# window and every 4th layer (3, 7, ..., 31) global, between Gemma 2 (1:1, window 4096) and
# Gemma 3 (5:1, window 1024). Same weights as llama3.1-8b.
LLAMA31_8B_HYBRID = derive(
    LLAMA31_8B,
    SlidingConfig,
    name="llama3.1-8b-hybrid",
    source="llama3.1-8b weights; layer pattern assumed: window 4096, full attention every 4th layer",
    sliding_window=4096,
    full_attention_layers=tuple(range(3, 32, 4)),
)

PRESETS: tuple[SlidingConfig, ...] = (TINY_SWA, TINY_HYBRID, LLAMA31_8B_HYBRID)
