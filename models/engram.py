"""Hashed n-gram memory (DeepSeek Engram style) on the Llama layout.

Before attention in each layer of `engram_layers`, every token's trailing n-grams (n in
`ngram_orders`) are hashed, `hash_heads` ways per order, into embedding tables of prime size;
the gathered rows are concatenated into e, projected to a key and a value, and the value is
added to the hidden state through a scalar gate alpha = sigmoid(<rmsnorm(h), rmsnorm(key)> /
sqrt(hidden)). The hash is computed in-graph from token ids with int64 Mul/Add and a modulo
written as x - (x / p) * p (integer Div on non-negative values), so no Mod op is needed; the
row addresses depend only on token ids, which is what makes the gathers prefetchable.
Tokens before the start of the sequence hash as id 0. Decode carries the last
max(ngram_orders) - 1 token ids as state (`past_token_ids` -> `present_token_ids`).
Not modelled: Engram's tokenizer compression and the short depthwise conv after the gate.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import onnx
from onnx import TensorProto

from . import _blocks as nn
from ._config import require, require_positive
from ._graph import init_unit_normal
from .llama import LLAMA31_8B, TINY_LLAMA, LlamaConfig, LlamaGraph, derive

_MULTIPLIER_BITS = 20  # keeps vocab_id * multiplier * order far inside int64


@dataclass(frozen=True, kw_only=True)
class EngramConfig(LlamaConfig):
    engram_layers: tuple[int, ...]
    ngram_orders: tuple[int, ...] = (2, 3)
    hash_heads: int
    engram_head_dim: int
    table_rows: int

    def __post_init__(self) -> None:
        super().__post_init__()
        require(
            len(self.engram_layers) > 0 and all(0 <= i < self.num_layers for i in self.engram_layers),
            self, "engram_layers", f"must name layers in [0, {self.num_layers})",
        )
        require(
            len(self.ngram_orders) > 0 and all(isinstance(n, int) and n >= 2 for n in self.ngram_orders),
            self, "ngram_orders", "must be ints >= 2",
        )
        require_positive(self, "hash_heads", "engram_head_dim")
        require(isinstance(self.table_rows, int) and self.table_rows > 1, self, "table_rows", "must be > 1")

    @property
    def context_tokens(self) -> int:
        """Token ids a decode step needs from before itself."""
        return max(self.ngram_orders) - 1

    @property
    def engram_width(self) -> int:
        return len(self.ngram_orders) * self.hash_heads * self.engram_head_dim

    def tables(self) -> tuple[tuple[int, int, int], ...]:
        """(order, head, rows) per table; rows are distinct primes >= table_rows."""
        count = len(self.ngram_orders) * self.hash_heads
        primes = iter(_primes_from(self.table_rows, count))
        return tuple((n, h, next(primes)) for n in self.ngram_orders for h in range(self.hash_heads))

    def engram_parameters(self) -> int:
        tables = sum(rows for _, _, rows in self.tables()) * self.engram_head_dim
        return tables + 2 * self.engram_width * self.hidden_size + 2 * self.hidden_size

    def parameter_count(self) -> int:
        return super().parameter_count() + len(self.engram_layers) * self.engram_parameters()

    def state_bytes(self) -> int:
        return self.context_tokens * 8  # int64 token ids


@functools.cache
def _primes_from(start: int, count: int) -> tuple[int, ...]:
    def is_prime(n: int) -> bool:
        return n >= 2 and all(n % d for d in range(2, int(n**0.5) + 1))

    found: list[int] = []
    n = start
    while len(found) < count:
        if is_prime(n):
            found.append(n)
        n += 1
    return tuple(found)


def hash_multipliers(layer: int, order: int, head: int) -> tuple[int, ...]:
    """Odd multipliers a_j for tokens t, t-1, ..., t-order+1 (a fixed splitmix-style mix)."""
    values = []
    for j in range(order):
        x = (layer * 1_000_003 + order * 10_007 + head * 101 + j + 1) * 0x9E3779B97F4A7C15
        x = (x ^ (x >> 29)) & 0xFFFFFFFFFFFFFFFF
        values.append((x % (1 << _MULTIPLIER_BITS)) | 1)
    return tuple(values)


class EngramGraph(LlamaGraph):
    config: EngramConfig

    def add_inputs(self) -> None:
        g, c = self.g, self.config
        n_ctx = c.context_tokens
        with g.scope("model.engram_hash", absolute=True):
            if self.decode:
                past = g.input("past_token_ids", TensorProto.INT64, ["batch", n_ctx])
                window = g.op("Concat", past, self.input_ids, axis=1)  # [b, n_ctx + 1]
                self.lags = [
                    g.op("Slice", window, g.const([n_ctx - j]), g.const([n_ctx - j + 1]), g.const([1]))
                    for j in range(n_ctx + 1)
                ]
                recent = g.op("Slice", window, g.const([1]), g.const([nn.INT64_MAX]), g.const([1]))
            else:
                window = g.op("Pad", self.input_ids, g.const([0, n_ctx, 0, 0]))  # id 0 before the start
                self.lags = [
                    g.op("Slice", window, g.const([n_ctx - j]), g.const([-j if j else nn.INT64_MAX]), g.const([1]))
                    for j in range(n_ctx + 1)
                ]
                recent = g.op("Slice", window, g.const([-n_ctx]), g.const([nn.INT64_MAX]), g.const([1]))
            g.op("Identity", recent, out="present_token_ids")
            g.output("present_token_ids", TensorProto.INT64, ["batch", n_ctx])

    def layer(self, i: int, hidden: str) -> str:
        if i in self.config.engram_layers:
            with self.g.scope("engram"):
                hidden = self.engram(i, hidden)
        return super().layer(i, hidden)

    def engram(self, i: int, hidden: str) -> str:
        g, c = self.g, self.config
        p = f"model.layers.{i}.engram"
        rows = []
        for order, head, size in c.tables():
            index = self.ngram_hash(hash_multipliers(i, order, head), size)
            table = g.param(f"{p}.tables.{order}gram.{head}.weight", [size, c.engram_head_dim], init_unit_normal)
            rows.append(g.op("Gather", table, index, axis=0))
        memory = g.op("Concat", *rows, axis=-1)  # [b, s, engram_width]
        key = nn.linear(g, memory, f"{p}.key_proj.weight", c.engram_width, c.hidden_size)
        value = nn.linear(g, memory, f"{p}.value_proj.weight", c.engram_width, c.hidden_size)
        h_normed = nn.rms_norm(g, hidden, f"{p}.hidden_norm.weight", c.hidden_size, c.rms_norm_eps)
        k_normed = nn.rms_norm(g, key, f"{p}.key_norm.weight", c.hidden_size, c.rms_norm_eps)
        similarity = g.op("ReduceSum", g.op("Mul", h_normed, k_normed), g.const([-1]), keepdims=1)
        gate = g.op("Sigmoid", g.op("Mul", similarity, g.const(c.hidden_size**-0.5)))
        return g.op("Add", hidden, g.op("Mul", gate, value))

    def ngram_hash(self, multipliers: tuple[int, ...], table_size: int) -> str:
        """(sum_j token[t-j] * a_j) mod table_size as int64 [b, s]."""
        g = self.g
        acc = g.op("Mul", self.lags[0], g.const(multipliers[0]))
        for j, a in enumerate(multipliers[1:], start=1):
            acc = g.op("Add", acc, g.op("Mul", self.lags[j], g.const(a)))
        size = g.const(table_size)
        return g.op("Sub", acc, g.op("Mul", g.op("Div", acc, size), size))


def build(config: EngramConfig, form: str) -> onnx.ModelProto:
    return EngramGraph(config, form).build()


TINY_ENGRAM = derive(
    TINY_LLAMA,
    EngramConfig,
    name="tiny-engram",
    source="tiny test config: engram in both layers, 2/3-grams, 2 hash heads, ~100-row tables",
    engram_layers=(0, 1),
    hash_heads=2,
    engram_head_dim=8,
    table_rows=97,
)

# Assumption: Engram's early + middle placement (the paper's 27B model uses layers 2 and 15),
# 2/3-grams with 4 hash heads each, 64-wide rows, tables of ~1M rows: ~0.5B table
# parameters per Engram layer on top of Llama 3.1 8B.
LLAMA31_8B_ENGRAM = derive(
    LLAMA31_8B,
    EngramConfig,
    name="llama3.1-8b-engram",
    source="llama3.1-8b + Engram memory (DeepSeek, 'Conditional Memory via Scalable Lookup'); sizes assumed",
    engram_layers=(2, 15),
    hash_heads=4,
    engram_head_dim=64,
    table_rows=1_000_000,
)

PRESETS: tuple[EngramConfig, ...] = (TINY_ENGRAM, LLAMA31_8B_ENGRAM)
