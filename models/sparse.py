"""Block-sparse attention in the SpargeAttention style (arXiv 2502.18137) on the Llama layout.

Queries and keys are cut into blocks of `block_size` tokens (by index from 0; a last partial
block is pooled over the tokens it has). The mean-pooled query block scores the mean-pooled
key blocks; each query block keeps its `top_k` best causal key blocks plus its own (diagonal)
block, and attention is dense attention with every other block masked. The graph therefore
still computes all of QK^T; the block mask is what tells a compiler which tiles it may skip.
Decode has one query (its own block is the last key block) and pools the whole cache, so a
decode step equals the prefill row only when top_k covers every block (then both are dense).

Top-k selection uses the ONNX `TopK` op: the k-th largest pooled score is the keep threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import onnx
from onnx import TensorProto

from . import _blocks as nn
from ._config import require
from .llama import LLAMA31_8B, TINY_LLAMA, LlamaConfig, LlamaGraph, derive


@dataclass(frozen=True, kw_only=True)
class SparseConfig(LlamaConfig):
    block_size: int
    top_k: int

    def __post_init__(self) -> None:
        super().__post_init__()
        require(isinstance(self.block_size, int) and self.block_size > 0, self, "block_size", "must be > 0")
        require(isinstance(self.top_k, int) and self.top_k > 0, self, "top_k", "must be > 0")
        require(
            self.top_k <= self.max_blocks,
            self, "top_k", f"exceeds the {self.max_blocks} key blocks of max_context {self.max_context}",
        )

    @property
    def max_blocks(self) -> int:
        return math.ceil(self.max_context / self.block_size)


class SparseGraph(LlamaGraph):
    config: SparseConfig

    def attention(self, i: int, x: str) -> str:
        q, k, v = self.qkv(i, x)
        keys, values = self.kv_cache(i, k, v)
        return self.out_proj(i, self.attend(q, keys, values, self.block_sparse_mask(q, keys)))

    def block_sparse_mask(self, q: str, keys: str) -> str:
        """Additive [b, heads, s, t] mask keeping the selected key blocks (and causality)."""
        g, c = self.g, self.config
        n_rep = c.num_heads // c.num_kv_heads
        key_len = self.key_len()
        key_blocks = self.shared("key-blocks", lambda: self.block_count(key_len))
        pooled_k = self.block_mean(keys, key_len, key_blocks)
        pooled_k = nn.repeat_kv(g, pooled_k, c.num_kv_heads, n_rep, c.head_dim)
        pooled_q = q if self.decode else self.block_mean(q, self.seq_len(), key_blocks)
        # Block scores in fp32: TopK has no bf16 kernel in opset 18, and selection wants precision.
        pooled_q, pooled_k = nn.to_fp32(g, pooled_q), nn.to_fp32(g, pooled_k)
        scores = g.op("MatMul", pooled_q, g.op("Transpose", pooled_k, perm=[0, 1, 3, 2]))
        if not self.decode:
            scores = g.op("Add", scores, self.shared("block-causal", lambda: self.block_causal(key_blocks)))
        k_kept = g.op("Min", g.const([c.top_k]), g.op("Unsqueeze", key_blocks, g.const([0])))
        top_values = g.op_multi("TopK", scores, k_kept, n_out=2, axis=-1, largest=1, sorted=1)[0]
        threshold = g.op("Slice", top_values, g.const([-1]), g.const([nn.INT64_MAX]), g.const([-1]))
        keep = g.op("GreaterOrEqual", scores, threshold)
        keep = g.op("Or", keep, self.shared("own-block", lambda: self.own_block(key_blocks)))
        # Block mask -> token mask: look each token's block up along both axes.
        token_block = self.shared("key-token-block", lambda: self.token_blocks(key_len))
        if not self.decode:
            query_block = self.shared("query-token-block", lambda: self.token_blocks(self.seq_len()))
            keep = g.op("Gather", keep, query_block, axis=2)
        keep = g.op("Gather", keep, token_block, axis=3)
        masked = g.op("Not", keep)
        if not self.decode:
            masked = g.op("Or", masked, self.shared("causal-bool", lambda: nn.causal_masked(g, self.seq_len())))
        return nn.additive_mask(g, masked)

    def key_len(self) -> str:
        """Keys per query row (scalar), from graph inputs only, so no layer's mask waits on another."""
        return self.shared("key-len", self.decode_key_len) if self.decode else self.seq_len()

    def decode_key_len(self) -> str:
        past_len = nn.dim_of(self.g, "past_key_values.0.key", 2)
        return self.g.op("Add", past_len, self.g.const(1))

    def token_blocks(self, length: str) -> str:
        """[t] int64: the block each token index falls in."""
        return self.g.op("Div", nn.index_range(self.g, length), self.g.const(self.config.block_size))

    def block_count(self, length: str) -> str:
        block = self.g.const(self.config.block_size)
        return self.g.op("Div", self.g.op("Add", length, self.g.const(self.config.block_size - 1)), block)

    def block_mean(self, x: str, length: str, blocks: str) -> str:
        """[b, h, t, d] -> [b, h, ceil(t / block), d]: zero-pad to whole blocks, sum, divide by count."""
        g, c = self.g, self.config
        block = c.block_size
        pad = g.op("Sub", g.op("Mul", blocks, g.const(block)), length)
        pads = g.op("Concat", g.const([0, 0, 0, 0, 0, 0]), g.op("Unsqueeze", pad, g.const([0])), g.const([0]), axis=0)
        grouped = g.op("Reshape", g.op("Pad", x, pads), g.const([0, 0, -1, block, c.head_dim]))
        sums = g.op("ReduceSum", grouped, g.const([3]), keepdims=0)
        counts = self.shared(("block-counts", length), lambda: self.block_sizes(length, blocks))
        return g.op("Div", sums, counts)

    def block_sizes(self, length: str, blocks: str) -> str:
        """[nb, 1] tokens per block in the model's float type (the last block may be partial)."""
        g, block = self.g, self.config.block_size
        starts = g.op("Mul", nn.index_range(g, blocks), g.const(block))
        counts = g.op("Min", g.const([block]), g.op("Sub", length, starts))
        return g.op("Unsqueeze", g.op("Cast", counts, to=g.float_type), g.const([1]))

    def block_causal(self, blocks: str) -> str:
        """Prefill [nb, nb] additive mask: key blocks after the query block score -inf."""
        return nn.additive_mask(self.g, nn.causal_masked(self.g, blocks), TensorProto.FLOAT)

    def own_block(self, blocks: str) -> str:
        """bool mask of each query block's own key block: [nb, nb] diagonal, or decode's last block."""
        g = self.g
        idx = nn.index_range(g, blocks)
        if self.decode:
            return g.op("Equal", idx, g.op("Sub", blocks, g.const(1)))
        return g.op("Equal", g.op("Unsqueeze", idx, g.const([1])), g.op("Unsqueeze", idx, g.const([0])))


def build(config: SparseConfig, form: str) -> onnx.ModelProto:
    return SparseGraph(config, form).build()


TINY_SPARSE = derive(
    TINY_LLAMA,
    SparseConfig,
    name="tiny-sparse",
    source="tiny test config: 4-token blocks, top-2 key blocks",
    block_size=4,
    top_k=2,
)

# SpargeAttention uses 64/128-token blocks; top-k of 64 blocks keeps 8192 keys (1/16 of 128k).
LLAMA31_8B_SPARSE = derive(
    LLAMA31_8B,
    SparseConfig,
    name="llama3.1-8b-sparse",
    source="llama3.1-8b weights; block 128 and top-64 assumed (SpargeAttention, arXiv 2502.18137)",
    block_size=128,
    top_k=64,
)

PRESETS: tuple[SparseConfig, ...] = (TINY_SPARSE, LLAMA31_8B_SPARSE)
