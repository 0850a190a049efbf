"""Ops that read or build shapes: Shape, Size, Range, ConstantOfShape.

These carry the shape arithmetic torch exporters emit. `shape_value` and `size_value` give the
folder the value of Shape / Size on a tensor whose dims may be symbolic.
"""

from __future__ import annotations

import numpy as np
import sympy

from compiler.ir.dtypes import DType
from compiler.ir.graph import Node
from compiler.ir.ops import Op
from compiler.ir.shapes import Dim, normalize
from compiler.ir.tensor import TensorType
from compiler.ops.dims import ceil_div, dims_of, ints_of, max0, product, shape_array, to_dim
from compiler.ops.registry import InferContext, register


# ---- Shape and Size --------------------------------------------------------------------------
def _shape_range(rank: int, node: Node | None) -> tuple[int, int]:
    """Shape's start/end attributes, negative from the back, clamped to [0, rank]."""
    start = node.attr("start", 0) if node is not None else 0
    end = node.attr("end", rank) if node is not None else rank
    start = min(max(start + rank if start < 0 else start, 0), rank)
    end = min(max(end + rank if end < 0 else end, 0), rank)
    return start, max(end, start)


def shape_value(ttype: TensorType, node: Node | None = None) -> np.ndarray:
    """The value of Shape(node) on a tensor of type `ttype`: int64, or object when symbolic."""
    start, end = _shape_range(ttype.rank, node)
    return shape_array(ttype.shape[start:end])


def size_value(ttype: TensorType) -> np.ndarray:
    """The value of Size on a tensor of type `ttype`: an int64 scalar, or an object scalar."""
    count = product(ttype.shape)
    return np.array(count, dtype=np.int64 if isinstance(count, int) else object)


def _infer_shape(ctx: InferContext) -> list[TensorType]:
    start, end = _shape_range(ctx.type(0).rank, ctx.node)
    return [TensorType(DType.INT64, (end - start,))]


@register(Op.SHAPE, infer=_infer_shape, symbolic=True)
def run_shape(node: Node, inputs: list) -> list[np.ndarray]:
    x = inputs[0]
    start, end = _shape_range(x.ndim, node)
    return [np.array(x.shape[start:end], dtype=np.int64)]


def _infer_size(ctx: InferContext) -> list[TensorType]:
    ctx.type(0)
    return [TensorType(DType.INT64, ())]


@register(Op.SIZE, infer=_infer_size, symbolic=True)
def run_size(node: Node, inputs: list) -> list[np.ndarray]:
    return [np.array(inputs[0].size, dtype=np.int64)]


# ---- Range -----------------------------------------------------------------------------------
def _scalar(ctx: InferContext, index: int, what: str) -> Dim | float | None:
    value = ctx.value(index)
    if value is None:
        return None
    if np.asarray(value).size != 1:
        raise ctx.fail(f"{what} must be a scalar, got shape {np.asarray(value).shape}")
    value = np.asarray(value)
    item = value.reshape(-1)[0]
    if value.dtype != object and value.dtype.kind not in "iu":  # float16/bf16/... limits
        return float(item)
    return to_dim(item)


def range_length(start: Dim | float, limit: Dim | float, delta: Dim | float) -> Dim:
    """ONNX Range's element count, max(ceil((limit - start) / delta), 0), kept exact for dims."""
    if any(isinstance(v, float) for v in (start, limit, delta)):
        return max(int(np.ceil((limit - start) / delta)), 0)
    if isinstance(delta, int) and delta < 0:
        return max0(ceil_div(normalize(sympy.sympify(start) - limit), -delta))
    count = ceil_div(normalize(sympy.sympify(limit) - start), delta)
    return max0(sympy.simplify(count) if isinstance(count, sympy.Basic) else count)


def _infer_range(ctx: InferContext) -> list[TensorType]:
    dtype = ctx.type(0).dtype
    for i in (1, 2):
        if ctx.type(i).dtype != dtype:
            raise ctx.fail(f"start, limit and delta must share a type: {dtype} vs {ctx.type(i).dtype}")
    if any(ctx.type(i).rank != 0 for i in range(3)):
        raise ctx.fail(f"start, limit and delta must be scalars, got {[str(ctx.type(i)) for i in range(3)]}")
    values = [_scalar(ctx, i, name) for i, name in enumerate(("start", "limit", "delta"))]
    if values[2] == 0:
        raise ctx.fail("delta is 0")
    if any(v is None for v in values):
        return [TensorType(dtype, (ctx.fresh_dim(0, 0),))]
    return [TensorType(dtype, (normalize(range_length(*values)),))]


@register(Op.RANGE, infer=_infer_range, symbolic=True)
def run_range(node: Node, inputs: list) -> list[np.ndarray]:
    start, limit, delta = inputs
    dtype = start.dtype if start.dtype != object else np.dtype(np.int64)
    if dtype.kind in "iu" or start.dtype == object:
        first, stop, step = (ints_of(v, "Range input")[0] for v in (start, limit, delta))
        return [np.arange(first, stop, step, dtype=dtype)]
    # ONNX defines element i as start + i * delta; compute it in float64 so fp16/bf16 round once.
    count = max(int(np.ceil((float(limit) - float(start)) / float(delta))), 0)
    values = float(start) + np.arange(count, dtype=np.float64) * float(delta)
    return [values.astype(dtype)]


# ---- ConstantOfShape -------------------------------------------------------------------------
def _fill_value(node: Node) -> np.ndarray:
    value = node.attr("value")
    if value is None:
        return np.zeros((), dtype=np.float32)
    value = np.asarray(value)
    if value.size != 1:
        raise ValueError(f"{node.describe()}: value must hold one element, got shape {value.shape}")
    return value.reshape(())


def _infer_constant_of_shape(ctx: InferContext) -> list[TensorType]:
    try:
        dtype = DType.from_numpy(_fill_value(ctx.node).dtype)
    except ValueError as e:
        raise ctx.fail(str(e)) from None
    shape_type = ctx.type(0)
    if shape_type.rank != 1:
        raise ctx.fail(f"shape input must be 1-D, got {shape_type}")
    value = ctx.value(0)
    if value is not None:
        dims = dims_of(value)
        if any(isinstance(d, int) and d < 0 for d in dims):
            raise ctx.fail(f"negative dim in shape {dims}")
        return [TensorType(dtype, tuple(dims))]
    (length,) = shape_type.shape
    if not isinstance(length, int):
        raise ctx.fail("shape input has a symbolic length, so the output rank is unknown")
    return [TensorType(dtype, tuple(ctx.fresh_dim(0, axis) for axis in range(length)))]


@register(Op.CONSTANT_OF_SHAPE, infer=_infer_constant_of_shape, symbolic=True)
def run_constant_of_shape(node: Node, inputs: list) -> list[np.ndarray]:
    fill = _fill_value(node)
    return [np.full(ints_of(inputs[0], "shape"), fill, dtype=fill.dtype)]
