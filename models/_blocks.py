"""Common transformer blocks written as the plain ONNX ops torch's dynamo exporter emits.

Activations are [batch, seq, hidden]; per-head tensors are [batch, heads, seq, head_dim].
Weights are stored [in, out] so a projection is one MatMul (torch keeps [out, in]; the
exporter folds the transpose into the initializer).
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from ._graph import GraphBuilder, init_near_one

NEG_INF = float("-inf")
INT64_MAX = np.iinfo(np.int64).max


# ---- elementwise and norms ------------------------------------------------------------------
def to_fp32(g: GraphBuilder, x: str) -> str:
    """HF upcasts norms and softmax to fp32; for an fp32 model there is nothing to cast."""
    return x if g.float_type == TensorProto.FLOAT else g.op("Cast", x, to=TensorProto.FLOAT)


def from_fp32(g: GraphBuilder, x: str) -> str:
    return x if g.float_type == TensorProto.FLOAT else g.op("Cast", x, to=g.float_type)


def silu(g: GraphBuilder, x: str) -> str:
    return g.op("Mul", x, g.op("Sigmoid", x))


def rms_norm_no_gain(g: GraphBuilder, x: str, eps: float) -> str:
    """x / sqrt(mean(x^2) + eps) over the last axis, computed in fp32 like LlamaRMSNorm."""
    x32 = to_fp32(g, x)
    two = g.const(2.0, TensorProto.FLOAT)
    variance = g.op("ReduceMean", g.op("Pow", x32, two), g.const([-1]), keepdims=1)
    denom = g.op("Sqrt", g.op("Add", variance, g.const(eps, TensorProto.FLOAT)))
    return from_fp32(g, g.op("Mul", x32, g.op("Reciprocal", denom)))


def rms_norm(g: GraphBuilder, x: str, weight: str, dim: int, eps: float) -> str:
    gain = g.param(weight, [dim], init_near_one)
    return g.op("Mul", gain, rms_norm_no_gain(g, x, eps))


def linear(g: GraphBuilder, x: str, weight: str, d_in: int, d_out: int) -> str:
    return g.op("MatMul", x, g.param(weight, [d_in, d_out]))


def swiglu_mlp(g: GraphBuilder, x: str, prefix: str, hidden: int, intermediate: int) -> str:
    """down(silu(gate(x)) * up(x)), the Llama MLP."""
    gate = linear(g, x, f"{prefix}.gate_proj.weight", hidden, intermediate)
    up = linear(g, x, f"{prefix}.up_proj.weight", hidden, intermediate)
    return linear(g, g.op("Mul", silu(g, gate), up), f"{prefix}.down_proj.weight", intermediate, hidden)


# ---- heads ----------------------------------------------------------------------------------
def split_heads(g: GraphBuilder, x: str, heads: int, head_dim: int) -> str:
    """[b, s, heads*head_dim] -> [b, heads, s, head_dim]."""
    x = g.op("Reshape", x, g.const([0, 0, heads, head_dim]))
    return g.op("Transpose", x, perm=[0, 2, 1, 3])


def merge_heads(g: GraphBuilder, x: str, width: int) -> str:
    """[b, heads, s, head_dim] -> [b, s, heads*head_dim]."""
    x = g.op("Transpose", x, perm=[0, 2, 1, 3])
    return g.op("Reshape", x, g.const([0, 0, width]))


def repeat_kv(g: GraphBuilder, x: str, kv_heads: int, n_rep: int, head_dim: int) -> str:
    """GQA: [b, kv, t, d] -> [b, kv*n_rep, t, d] by Unsqueeze/Expand/Reshape (HF repeat_kv)."""
    if n_rep == 1:
        return x
    x = g.op("Unsqueeze", x, g.const([2]))
    x = g.op("Expand", x, g.const([1, 1, n_rep, 1, 1]))
    return g.op("Reshape", x, g.const([0, kv_heads * n_rep, -1, head_dim]))


# ---- rotary embedding -----------------------------------------------------------------------
def rope_cos_sin(g: GraphBuilder, position_ids: str, inv_freq: np.ndarray) -> tuple[str, str]:
    """cos/sin of position * inv_freq, duplicated to head_dim: each [b, 1, s, head_dim]."""
    pos = g.op("Cast", g.op("Unsqueeze", position_ids, g.const([-1])), to=TensorProto.FLOAT)
    freqs = g.op("Mul", pos, g.const(inv_freq.astype(np.float32), TensorProto.FLOAT))  # [b, s, d/2]
    emb = g.op("Concat", freqs, freqs, axis=-1)
    emb = g.op("Unsqueeze", emb, g.const([1]))
    return from_fp32(g, g.op("Cos", emb)), from_fp32(g, g.op("Sin", emb))


def apply_rope(g: GraphBuilder, x: str, cos: str, sin: str, head_dim: int) -> str:
    """x*cos + rotate_half(x)*sin, rotate_half(x) = concat(-x[d/2:], x[:d/2])."""
    half = head_dim // 2
    x1 = g.op("Slice", x, g.const([0]), g.const([half]), g.const([-1]))
    x2 = g.op("Slice", x, g.const([half]), g.const([head_dim]), g.const([-1]))
    rotated = g.op("Concat", g.op("Neg", x2), x1, axis=-1)
    return g.op("Add", g.op("Mul", x, cos), g.op("Mul", rotated, sin))


# ---- attention ------------------------------------------------------------------------------
def attention_scores(g: GraphBuilder, q: str, k: str, head_dim: int) -> str:
    """q @ k^T / sqrt(head_dim): [b, h, s, t]."""
    scores = g.op("MatMul", q, g.op("Transpose", k, perm=[0, 1, 3, 2]))
    return g.op("Mul", scores, g.const(1.0 / np.sqrt(head_dim)))


def softmax(g: GraphBuilder, scores: str) -> str:
    """Softmax over keys in fp32, cast back (HF eager attention)."""
    return from_fp32(g, g.op("Softmax", to_fp32(g, scores), axis=-1))


def additive_mask(g: GraphBuilder, masked: str, elem_type: int | None = None) -> str:
    """bool 'masked' -> 0 where visible, -inf where masked (model float type unless given)."""
    return g.op("Where", masked, g.const(NEG_INF, elem_type), g.const(0.0, elem_type))


def dim_of(g: GraphBuilder, x: str, axis: int) -> str:
    """A scalar int64 holding x.shape[axis] (dynamic)."""
    return g.op("Gather", g.op("Shape", x), g.const(axis))


def index_range(g: GraphBuilder, length: str) -> str:
    """Range(0, length): [length] int64 indices."""
    return g.op("Range", g.const(0), length, g.const(1))


def causal_masked(g: GraphBuilder, seq_len: str) -> str:
    """bool [s, s]: True where key j is after query i."""
    idx = index_range(g, seq_len)
    rows = g.op("Unsqueeze", idx, g.const([1]))
    cols = g.op("Unsqueeze", idx, g.const([0]))
    return g.op("Greater", cols, rows)
