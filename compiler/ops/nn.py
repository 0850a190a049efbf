"""Normalization layers (LayerNormalization, RMSNormalization) and Pad.

Conv lives in `conv.py`, Attention and RotaryEmbedding in `attention.py`.
"""

from __future__ import annotations

import numpy as np

from compiler.ir.dtypes import DType
from compiler.ir.graph import Node
from compiler.ir.ops import Op
from compiler.ir.shapes import Dim, normalize
from compiler.ir.tensor import TensorType
from compiler.ops.registry import InferContext, OpError, normalize_axis, register

_FLOAT32_STASH = DType.FLOAT32.onnx_code


# ---- LayerNormalization, RMSNormalization ---------------------------------------------------


def _stash_dtype(node: Node, stash_code: int) -> DType:
    """The type statistics are computed (and Mean/InvStdDev returned) in."""
    try:
        dtype = DType.from_onnx(stash_code)
    except ValueError as e:
        raise OpError(node, f"stash_type: {e}") from None
    if not dtype.is_float:
        raise OpError(node, f"stash_type {dtype} is not a float type")
    return dtype


def _norm_axis(ctx: InferContext) -> int:
    x = ctx.type(0)
    if not x.dtype.is_float:
        raise ctx.fail(f"expects a floating-point input, got {x.dtype}")
    return normalize_axis(ctx.node, ctx.attr("axis", -1), x.rank)


def _layer_norm_infer(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    axis = _norm_axis(ctx)
    stash = _stash_dtype(ctx.node, ctx.attr("stash_type", _FLOAT32_STASH))
    stats_shape = x.shape[:axis] + (1,) * (x.rank - axis)
    types = [x, TensorType(stash, stats_shape), TensorType(stash, stats_shape)]
    return types[: len(ctx.node.outputs)]


@register(Op.LAYER_NORMALIZATION, infer=_layer_norm_infer)
def run_layer_norm(node: Node, inputs: list) -> list[np.ndarray]:
    x, scale = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    axis = normalize_axis(node, node.attr("axis", -1), x.ndim)
    stash = _stash_dtype(node, node.attr("stash_type", _FLOAT32_STASH)).numpy
    axes = tuple(range(axis, x.ndim))
    xs = x.astype(stash)
    mean = np.mean(xs, axis=axes, keepdims=True)
    variance = np.mean(np.square(xs - mean), axis=axes, keepdims=True)
    inv_std = (1 / np.sqrt(variance + stash.type(node.attr("epsilon", 1e-5)))).astype(stash)
    # As in the ONNX function body: normalize in the stash type, round to X's type, then
    # scale and shift in X's type (numpy would widen bf16/fp16 arithmetic, so round each step).
    normalized = ((xs - mean) * inv_std).astype(x.dtype)
    y = (normalized.astype(np.float32) * scale.astype(np.float32)).astype(x.dtype)
    if bias is not None:
        y = (y.astype(np.float32) + bias.astype(np.float32)).astype(x.dtype)
    return [y, mean, inv_std][: len(node.outputs)]


def _rms_norm_infer(ctx: InferContext) -> list[TensorType]:
    x, scale = ctx.type(0), ctx.type(1)
    _norm_axis(ctx)
    _stash_dtype(ctx.node, ctx.attr("stash_type", _FLOAT32_STASH))
    return [TensorType(scale.dtype, x.shape)]


@register(Op.RMS_NORMALIZATION, infer=_rms_norm_infer)
def run_rms_norm(node: Node, inputs: list) -> list[np.ndarray]:
    x, scale = inputs
    axis = normalize_axis(node, node.attr("axis", -1), x.ndim)
    stash = _stash_dtype(node, node.attr("stash_type", _FLOAT32_STASH)).numpy
    xs = x.astype(stash)
    mean_square = np.mean(np.square(xs), axis=tuple(range(axis, x.ndim)), keepdims=True)
    rms = np.sqrt(mean_square + stash.type(node.attr("epsilon", 1e-5)))
    normalized = (xs / rms).astype(x.dtype)  # the function body rounds to X's type before scaling
    y = normalized.astype(np.float32) * scale.astype(np.float32)
    return [y.astype(scale.dtype)]


# ---- Pad ------------------------------------------------------------------------------------

_PAD_MODES = ("constant", "reflect", "edge", "wrap")  # numpy's np.pad names them alike


def _pad_widths(node: Node, rank: int, pads_value, axes_value) -> list[tuple[Dim, Dim]]:
    """(before, after) per axis of X; a negative width crops.

    Opset < 11 gives `pads` as an attribute; later versions as input 1, with optional `axes`
    (opset 18) naming which axes the pads refer to.
    """
    pads = node.attr("pads")
    if pads is None:
        pads = list(np.asarray(pads_value).reshape(-1))
    pads = [normalize(p) for p in pads]
    if axes_value is None:
        axes = list(range(rank))
    else:
        axes = [normalize_axis(node, int(a), rank) for a in np.asarray(axes_value).reshape(-1)]
    if len(pads) != 2 * len(axes):
        raise OpError(node, f"{len(pads)} pads for {len(axes)} axes (need two per axis)")
    widths: list[tuple[Dim, Dim]] = [(0, 0)] * rank
    for i, axis in enumerate(axes):
        widths[axis] = (pads[i], pads[i + len(axes)])
    return widths


def _pad_infer(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    mode = ctx.attr("mode", "constant")
    if mode not in _PAD_MODES:
        raise ctx.fail(f"mode {mode!r} is not one of {list(_PAD_MODES)}")
    axes = ctx.value(3) if ctx.has_input(3) else None
    axes_unknown = ctx.has_input(3) and axes is None
    if axes_unknown or (ctx.attr("pads") is None and ctx.value(1) is None):
        # Pads or axes computed at run time: padded axes get new sizes, the others keep theirs.
        if axes is None:
            padded = set(range(x.rank))
        else:
            padded = {normalize_axis(ctx.node, int(a), x.rank) for a in np.asarray(axes).reshape(-1)}
        shape = tuple(ctx.fresh_dim(0, i) if i in padded else d for i, d in enumerate(x.shape))
        return [TensorType(x.dtype, shape)]
    widths = _pad_widths(ctx.node, x.rank, ctx.value(1), axes)
    shape = tuple(normalize(d + before + after) for d, (before, after) in zip(x.shape, widths, strict=True))
    return [TensorType(x.dtype, shape)]


@register(Op.PAD, infer=_pad_infer, symbolic=True)
def run_pad(node: Node, inputs: list) -> list[np.ndarray]:
    x = np.asarray(inputs[0])
    pads = inputs[1] if len(inputs) > 1 else None
    axes = inputs[3] if len(inputs) > 3 else None
    widths = [(int(b), int(a)) for b, a in _pad_widths(node, x.ndim, pads, axes)]
    mode = node.attr("mode", "constant")
    # Crop first for negative widths, then pad by the positive ones.
    crop = tuple(slice(max(-b, 0), x.shape[i] - max(-a, 0)) for i, (b, a) in enumerate(widths))
    x_cropped = x[crop]
    grow = [(max(b, 0), max(a, 0)) for b, a in widths]
    if mode == "constant":
        value = inputs[2] if len(inputs) > 2 and inputs[2] is not None else node.attr("value", 0)
        value = np.asarray(value).reshape(-1)[0] if np.size(value) else 0
        fill = value if x.dtype == object else np.asarray(value).astype(x.dtype)
        return [np.pad(x_cropped, grow, mode="constant", constant_values=fill)]
    return [np.pad(x_cropped, grow, mode=mode)]
