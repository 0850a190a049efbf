"""Fused transformer blocks of ONNX opset 23+: Attention (with KV cache and GQA) and RotaryEmbedding.

Attention also accepts the opset 24 `nonpad_kv_seqlen` input and the opset 25 sliding-window
attributes; an opset 23 model simply never sets them. Attention computes in the input type,
rounding after each step as the ONNX function body does (so fp16/bf16 results match the
reference exactly); RotaryEmbedding, a few multiply-adds, computes in float32 and rounds once.
"""

from __future__ import annotations

import math

import numpy as np

from compiler.ir.dtypes import DType
from compiler.ir.graph import Node
from compiler.ir.ops import Op
from compiler.ir.shapes import Dim, normalize
from compiler.ir.tensor import TensorType
from compiler.ops.registry import InferContext, OpError, register

_SOFTMAX_PRECISIONS = (DType.FLOAT32, DType.FLOAT16, DType.FLOAT64, DType.BFLOAT16)


def _per_head(node: Node, hidden: Dim, heads: int | None, attr: str) -> Dim:
    """The head size of a 3-D (batch, seq, heads * head) input."""
    if heads is None or heads < 1:
        raise OpError(node, f"3-D inputs need the {attr} attribute (a positive int)")
    if isinstance(hidden, int) and hidden % heads:
        raise OpError(node, f"hidden size {hidden} is not a multiple of {attr}={heads}")
    return normalize(hidden // heads)


def _attention_infer(ctx: InferContext) -> list[TensorType]:
    node = ctx.node
    q, k, v = ctx.type(0), ctx.type(1), ctx.type(2)
    if not q.rank == k.rank == v.rank or q.rank not in (3, 4):
        raise ctx.fail(f"Q, K, V must all be 3-D or all 4-D, got {q}, {k}, {v}")
    if not q.dtype.is_float or k.dtype != q.dtype:
        raise ctx.fail(f"Q and K must share one float type, got {q.dtype} and {k.dtype}")
    if q.rank == 3:
        q_heads, kv_heads = ctx.attr("q_num_heads"), ctx.attr("kv_num_heads")
        batch, q_len, kv_len = q.shape[0], q.shape[1], k.shape[1]
        head = _per_head(node, q.shape[2], q_heads, "q_num_heads")
        v_head = _per_head(node, v.shape[2], kv_heads, "kv_num_heads")
    else:
        batch, q_heads, q_len, head = q.shape
        kv_heads, kv_len, v_head = k.shape[1], k.shape[2], v.shape[3]
    if isinstance(q_heads, int) and isinstance(kv_heads, int) and q_heads % kv_heads:
        raise ctx.fail(f"q_num_heads={q_heads} is not a multiple of kv_num_heads={kv_heads}")
    if ctx.attr("qk_matmul_output_mode", 0) not in (0, 1, 2, 3):
        raise ctx.fail(f"qk_matmul_output_mode {ctx.attr('qk_matmul_output_mode')} is not one of 0, 1, 2, 3")
    if ctx.attr("softmax_precision") is not None:
        _softmax_dtype(node, ctx.attr("softmax_precision"))
    if ctx.has_input(4) != ctx.has_input(5):
        raise ctx.fail("past_key and past_value must be given together")
    past = ctx.type(4).shape[2] if ctx.has_input(4) else 0
    total = normalize(past + kv_len)
    if q.rank == 3:
        y_shape: tuple[Dim, ...] = (batch, q_len, normalize(q_heads * v_head))
    else:
        y_shape = (batch, q_heads, q_len, v_head)
    types = [
        TensorType(q.dtype, y_shape),
        TensorType(k.dtype, (batch, kv_heads, total, head)),
        TensorType(v.dtype, (batch, kv_heads, total, v_head)),
        TensorType(q.dtype, (batch, q_heads, q_len, total)),
    ]
    return types[: len(node.outputs)]


def _softmax_dtype(node: Node, code: int) -> DType:
    try:
        dtype = DType.from_onnx(code)
    except ValueError:
        dtype = None
    if dtype not in _SOFTMAX_PRECISIONS:
        raise OpError(node, f"softmax_precision {code} is not one of {[str(d) for d in _SOFTMAX_PRECISIONS]}")
    return dtype


def _split_heads(x: np.ndarray, heads: int) -> np.ndarray:
    """(batch, seq, heads * size) -> (batch, heads, seq, size)."""
    batch, seq, hidden = x.shape
    return x.reshape(batch, seq, heads, hidden // heads).transpose(0, 2, 1, 3)


def _softmax_rows(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis in x's own type; an all -inf row (nothing attendable) gives zeros."""
    dtype = x.dtype
    peak = np.max(x, axis=-1, keepdims=True)
    peak = np.where(np.isneginf(peak), dtype.type(0), peak)
    e = np.exp((x - peak).astype(dtype)).astype(dtype)
    total = np.sum(e, axis=-1, keepdims=True).astype(dtype)
    return (e / np.where(total == 0, dtype.type(1), total)).astype(dtype)


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b in a's type (numpy widens some mixed or ml_dtypes products)."""
    return np.matmul(a, b).astype(a.dtype)


def _attention_bias(node: Node, mask, q_len: int, total: int, offset, nonpad) -> np.ndarray:
    """The additive bias (0 or -inf, or float mask values) broadcastable to (B, H, q, total).

    `offset` is how many valid keys precede the query block (past length, or per batch
    nonpad_kv_seqlen - q_len for an external cache): query i may see key j iff j <= i + offset.
    """
    acc = np.float64  # holds 0, -inf and every mask value of any float type exactly
    bias = np.zeros((q_len, total), acc)
    if mask is not None:
        if mask.shape[-1] < total:  # a short mask is padded with "not attendable"
            fill = False if mask.dtype == np.bool_ else -np.inf
            mask = np.pad(mask, [(0, 0)] * (mask.ndim - 1) + [(0, total - mask.shape[-1])], constant_values=fill)
        bias = bias + (np.where(mask, 0, -np.inf).astype(acc) if mask.dtype == np.bool_ else mask.astype(acc))
    position = np.arange(q_len)[:, None] + np.reshape(offset, (-1, 1, 1, 1) if np.ndim(offset) else ())
    key = np.arange(total)[None, :]
    allowed = np.ones(np.broadcast_shapes(position.shape, key.shape), np.bool_)
    if node.attr("is_causal", 0):
        allowed &= key <= position
    left, right = node.attr("left_window_size", -1), node.attr("right_window_size", -1)
    if left >= 0:
        allowed &= position - key <= left
    if right >= 0:
        allowed &= key - position <= right
    bias = bias + np.where(allowed, 0, -np.inf).astype(acc)
    if nonpad is not None:
        padding = np.arange(total)[None, :] < np.reshape(nonpad, (-1, 1))
        bias = bias + np.where(padding, 0, -np.inf).astype(acc).reshape(-1, 1, 1, total)
    return bias


@register(Op.ATTENTION, infer=_attention_infer)
def run_attention(node: Node, inputs: list) -> list[np.ndarray]:
    q, k, v, mask, past_key, past_value, nonpad = (list(inputs) + [None] * 7)[:7]
    t1 = q.dtype
    if q.ndim == 3:
        q = _split_heads(q, node.attr("q_num_heads"))
        k = _split_heads(k, node.attr("kv_num_heads"))
        v = _split_heads(v, node.attr("kv_num_heads"))
    present_key = k if past_key is None else np.concatenate([past_key, k], axis=2)
    present_value = v if past_value is None else np.concatenate([past_value, v], axis=2)
    q_heads, kv_heads, q_len, total = q.shape[1], present_key.shape[1], q.shape[2], present_key.shape[2]
    if q_heads % kv_heads:
        raise OpError(node, f"{q_heads} query heads are not a multiple of {kv_heads} key/value heads")
    # GQA: query head h reads key/value head h // (q_heads / kv_heads).
    keys = np.repeat(present_key, q_heads // kv_heads, axis=1)
    values = np.repeat(present_value, q_heads // kv_heads, axis=1)

    # Every step below is rounded to T1 as in the ONNX function body, so fp16/bf16 results
    # match the reference bit for bit rather than to within a few ulps.
    scale = node.attr("scale")
    scale = 1 / math.sqrt(q.shape[3]) if scale is None else scale
    root_scale = t1.type(math.sqrt(scale))  # Q and K are each scaled by sqrt(scale): overflow guard
    logits = _matmul((q * root_scale).astype(t1), (keys.swapaxes(-1, -2) * root_scale).astype(t1))
    qk_output = logits  # mode 0: the raw scores (the spec and onnxruntime; no node test sets softcap here)
    softcap = node.attr("softcap", 0.0)
    mode = node.attr("qk_matmul_output_mode", 0)
    if softcap > 0:
        capped = np.tanh((logits / t1.type(softcap)).astype(t1)).astype(t1)
        logits = (capped * t1.type(softcap)).astype(t1)
    if mode == 1:
        qk_output = logits
    if past_key is not None:
        offset = past_key.shape[2]
    elif nonpad is not None:
        offset = np.asarray(nonpad).reshape(-1) - q_len
    else:
        offset = 0
    bias = _attention_bias(node, mask, q_len, total, offset, nonpad).astype(t1)  # 0/-inf/mask: exact
    scores = (logits + bias).astype(t1)
    if mode == 2:
        qk_output = scores
    if node.attr("softmax_precision") is not None:
        scores = scores.astype(_softmax_dtype(node, node.attr("softmax_precision")).numpy)
    with np.errstate(invalid="ignore", over="ignore"):
        probs = _softmax_rows(scores)
    # A row whose bias is all -inf has no attendable key: its output is 0, not NaN.
    nothing_visible = np.isneginf(np.max(bias, axis=-1, keepdims=True))
    probs = np.where(nothing_visible, probs.dtype.type(0), probs).astype(t1)
    if mode == 3:
        qk_output = probs
    y = _matmul(probs, values)
    if inputs[0].ndim == 3:
        y = y.transpose(0, 2, 1, 3).reshape(y.shape[0], q_len, -1)
    outputs = [y, present_key, present_value, np.broadcast_to(qk_output, probs.shape).astype(t1)]
    return outputs[: len(node.outputs)]


# ---- RotaryEmbedding -----------------------------------------------------------------------


def _rotary_infer(ctx: InferContext) -> list[TensorType]:
    x, cos, sin = ctx.type(0), ctx.type(1), ctx.type(2)
    if x.rank not in (3, 4):
        raise ctx.fail(f"X must be 3-D (batch, seq, hidden) or 4-D (batch, heads, seq, head), got {x}")
    if not x.dtype.is_float or cos.dtype != x.dtype or sin.dtype != x.dtype:
        raise ctx.fail(f"X, cos_cache and sin_cache must share one float type, got {x.dtype}, {cos.dtype}, {sin.dtype}")
    if x.rank == 3:
        head = _per_head(ctx.node, x.shape[2], ctx.attr("num_heads"), "num_heads")
    else:
        head = x.shape[3]
    rotary = ctx.attr("rotary_embedding_dim", 0) or head
    if isinstance(rotary, int) and isinstance(cos.shape[-1], int) and cos.shape[-1] * 2 != rotary:
        raise ctx.fail(f"cos_cache last dim {cos.shape[-1]} is not rotary_embedding_dim/2 = {rotary}/2")
    # With position_ids the caches are (max_position, rotary/2) tables, else (batch, seq, rotary/2).
    expected_rank = 2 if ctx.has_input(3) else 3
    if cos.rank != expected_rank or sin.rank != expected_rank:
        given = "with" if ctx.has_input(3) else "without"
        raise ctx.fail(f"cos/sin caches must be {expected_rank}-D {given} position_ids, got {cos} and {sin}")
    return [x]


@register(Op.ROTARY_EMBEDDING, infer=_rotary_infer)
def run_rotary(node: Node, inputs: list) -> list[np.ndarray]:
    x, cos, sin = inputs[0], inputs[1], inputs[2]
    position_ids = inputs[3] if len(inputs) > 3 else None
    # Work in (batch, seq, heads, head) layout.
    if x.ndim == 4:
        xs = x.transpose(0, 2, 1, 3)
    else:
        heads = node.attr("num_heads")
        xs = x.reshape(x.shape[0], x.shape[1], heads, x.shape[2] // heads)
    acc = np.float64 if x.dtype == np.float64 else np.float32
    xs = xs.astype(acc)
    rotary = node.attr("rotary_embedding_dim", 0) or xs.shape[3]
    if position_ids is not None:  # caches are tables indexed by position
        cos, sin = cos[position_ids], sin[position_ids]
    cos = cos.astype(acc)[:, :, None, :]  # (batch, seq, 1, rotary / 2): shared by all heads
    sin = sin.astype(acc)[:, :, None, :]
    rotated, passed = xs[..., :rotary], xs[..., rotary:]
    if node.attr("interleaved", 0):
        x1, x2 = rotated[..., 0::2], rotated[..., 1::2]
    else:
        x1, x2 = rotated[..., : rotary // 2], rotated[..., rotary // 2 :]
    real = cos * x1 - sin * x2
    imag = sin * x1 + cos * x2
    if node.attr("interleaved", 0):
        rotated = np.stack([real, imag], axis=-1).reshape(rotated.shape)
    else:
        rotated = np.concatenate([real, imag], axis=-1)
    y = np.concatenate([rotated, passed], axis=-1).astype(x.dtype)
    return [y.transpose(0, 2, 1, 3) if x.ndim == 4 else y.reshape(x.shape)]
