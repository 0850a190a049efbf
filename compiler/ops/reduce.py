"""Reductions and scans along axes: Reduce*, ArgMax, TopK, CumSum, Softmax and LogSoftmax.

Reductions, ArgMax, TopK and CumSum of half-precision floats (fp16, bf16) accumulate in float32
and are cast back, as onnxruntime's kernels do. Softmax and LogSoftmax instead round after each
step in the input type, as the ONNX reference does (see `_shifted`). The output dtype is always
the one ONNX specifies.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from compiler.ir.dtypes import DType
from compiler.ir.graph import Node
from compiler.ir.ops import Op
from compiler.ir.shapes import Dim, normalize
from compiler.ir.tensor import TensorType
from compiler.ops.registry import InferContext, normalize_axis, register, same_as_input


def _accumulator(x: np.ndarray) -> np.ndarray:
    """x widened to float32 when it is a float narrower than 32 bits (numpy lacks or rounds them)."""
    if x.dtype != object and (x.dtype.kind == "V" or (x.dtype.kind == "f" and x.dtype.itemsize < 4)):
        return x.astype(np.float32)
    return x


def _cast_like(result, like: np.ndarray) -> np.ndarray:
    result = np.asarray(result)
    if like.dtype == object:
        # Folded shape arithmetic: sympy results that became numbers go back to plain ints.
        return np.asarray(np.frompyfunc(normalize, 1, 1)(result), dtype=object) if result.size else result
    return result.astype(like.dtype, copy=False)


# ---- Reduce* --------------------------------------------------------------------------------


def _reduce_axes_attr_or_input(node: Node, axes_value) -> tuple[int, ...] | None:
    """Axes as ints; None means "all axes" or "no-op", decided by noop_with_empty_axes.

    Before opset 13 (ReduceSum) / 18 (others) axes were an attribute; later an optional input.
    """
    axes = node.attr("axes")
    if axes is None and axes_value is not None:
        axes = [int(a) for a in np.asarray(axes_value).reshape(-1)]
    if axes is None or len(axes) == 0:
        return None
    return tuple(int(a) for a in axes)


def _reduce_infer(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    keepdims = bool(ctx.attr("keepdims", 1))
    if ctx.attr("axes") is None and ctx.has_input(1) and ctx.value(1) is None:
        return [_reduce_runtime_axes_type(ctx, keepdims)]
    axes = _reduce_axes_attr_or_input(ctx.node, ctx.value(1))
    if axes is None:
        if ctx.attr("noop_with_empty_axes", 0):
            return [x]
        axes = tuple(range(x.rank))
    reduced = {normalize_axis(ctx.node, a, x.rank) for a in axes}
    shape: list[Dim] = []
    for i, d in enumerate(x.shape):
        if i not in reduced:
            shape.append(d)
        elif keepdims:
            shape.append(1)
    return [TensorType(x.dtype, tuple(shape))]


def _reduce_runtime_axes_type(ctx: InferContext, keepdims: bool) -> TensorType:
    """Axes computed at run time: the rank follows from how many there are, every size is new."""
    x = ctx.type(0)
    count = ctx.type(1).shape[0] if ctx.type(1).rank == 1 else None
    if keepdims:
        rank = x.rank
    elif not isinstance(count, int):
        raise ctx.fail("axes computed at run time, of unknown length, with keepdims=0: the output rank is unknown")
    elif count == 0:
        rank = x.rank if ctx.attr("noop_with_empty_axes", 0) else 0
    else:
        rank = x.rank - count
    return TensorType(x.dtype, tuple(ctx.fresh_dim(0, i) for i in range(rank)))


def _empty_max_identity(x: np.ndarray, largest: bool):
    """The value a max (min) reduction over nothing yields: ONNX says -inf (+inf) or the type's bound."""
    if x.dtype == np.bool_:
        return not largest
    if x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        return info.min if largest else info.max
    return -np.inf if largest else np.inf


def _reducer(reduce: Callable[[np.ndarray, tuple[int, ...], bool], np.ndarray]):
    def run(node: Node, inputs: list) -> list[np.ndarray]:
        x = np.asarray(inputs[0])
        axes = _reduce_axes_attr_or_input(node, inputs[1] if len(inputs) > 1 else None)
        if axes is None:
            if node.attr("noop_with_empty_axes", 0):
                return [x]
            axes = tuple(range(x.ndim))
        axes = tuple(sorted({a % x.ndim for a in axes})) if x.ndim else ()
        keepdims = bool(node.attr("keepdims", 1))
        return [_cast_like(reduce(x, axes, keepdims), x)]

    return run


def _sum(x: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    return np.sum(_accumulator(x), axis=axes, keepdims=keepdims)


def _prod(x: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    return np.prod(_accumulator(x), axis=axes, keepdims=keepdims)


def _mean(x: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    # Integer means truncate toward zero when cast back, as onnxruntime's do.
    with np.errstate(invalid="ignore", divide="ignore"):  # an empty set's mean is NaN, as in ONNX
        return np.mean(_accumulator(x), axis=axes, keepdims=keepdims)


def _max(x: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    # `initial` makes an empty reduction well defined instead of a numpy error.
    return np.max(x, axis=axes, keepdims=keepdims, initial=_empty_max_identity(x, largest=True))


def _min(x: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    return np.min(x, axis=axes, keepdims=keepdims, initial=_empty_max_identity(x, largest=False))


# Sum and Prod fold shape arithmetic (e.g. the element count of a shape slice); Max and Min
# would need ordering of symbolic dims, so they stay numeric.
register(Op.REDUCE_SUM, infer=_reduce_infer, symbolic=True)(_reducer(_sum))
register(Op.REDUCE_PROD, infer=_reduce_infer, symbolic=True)(_reducer(_prod))
register(Op.REDUCE_MEAN, infer=_reduce_infer)(_reducer(_mean))
register(Op.REDUCE_MAX, infer=_reduce_infer)(_reducer(_max))
register(Op.REDUCE_MIN, infer=_reduce_infer)(_reducer(_min))


# ---- ArgMax ---------------------------------------------------------------------------------


def _argmax_infer(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    axis = normalize_axis(ctx.node, ctx.attr("axis", 0), x.rank)
    if ctx.attr("keepdims", 1):
        shape = x.shape[:axis] + (1,) + x.shape[axis + 1 :]
    else:
        shape = x.shape[:axis] + x.shape[axis + 1 :]
    return [TensorType(DType.INT64, shape)]


@register(Op.ARGMAX, infer=_argmax_infer)
def run_argmax(node: Node, inputs: list) -> list[np.ndarray]:
    x = _accumulator(inputs[0])  # float32 holds every bf16/fp16 value, so the order is unchanged
    axis = normalize_axis(node, node.attr("axis", 0), x.ndim)
    if node.attr("select_last_index", 0):
        # numpy returns the first maximum; on the reversed axis that is the last one.
        index = x.shape[axis] - 1 - np.argmax(np.flip(x, axis), axis=axis)
    else:
        index = np.argmax(x, axis=axis)
    if node.attr("keepdims", 1):
        index = np.expand_dims(index, axis)
    return [index.astype(np.int64)]


# ---- TopK -----------------------------------------------------------------------------------


def _topk_k(node: Node, k_value) -> Dim | None:
    """k from the opset-1 attribute or the 1-element K input; None when not known."""
    if node.attr("k") is not None:
        return int(node.attr("k"))
    if k_value is None:
        return None
    k = np.asarray(k_value).reshape(-1)
    if k.size != 1:
        raise ValueError(f"{node.describe()}: K must hold one element, got shape {np.shape(k_value)}")
    return normalize(k[0])


def _topk_infer(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    axis = normalize_axis(ctx.node, ctx.attr("axis", -1), x.rank)
    k = _topk_k(ctx.node, ctx.value(1))
    if k is None:
        k = ctx.fresh_dim(0, axis)  # a runtime k: both outputs share the one new symbol
    elif isinstance(k, int) and isinstance(x.shape[axis], int) and not 0 <= k <= x.shape[axis]:
        raise ctx.fail(f"k={k} is outside [0, {x.shape[axis]}] along axis {axis}")
    shape = x.shape[:axis] + (k,) + x.shape[axis + 1 :]
    return [TensorType(x.dtype, shape), TensorType(DType.INT64, shape)]


@register(Op.TOPK, infer=_topk_infer)
def run_topk(node: Node, inputs: list) -> list[np.ndarray]:
    x = np.asarray(inputs[0])
    axis = normalize_axis(node, node.attr("axis", -1), x.ndim)
    k = int(_topk_k(node, inputs[1] if len(inputs) > 1 else None))
    keys = _accumulator(x)
    if node.attr("largest", 1):
        # Descending with ties in ascending index order (as onnxruntime): a stable ascending sort
        # of the reversed axis, read backwards. Negating would break unsigned ints.
        n = x.shape[axis]
        order = n - 1 - np.argsort(np.flip(keys, axis), axis=axis, kind="stable")
        order = np.flip(order, axis)
    else:
        order = np.argsort(keys, axis=axis, kind="stable")
    # `sorted=0` leaves the order unspecified; sorted is one valid answer.
    indices = np.take(order, np.arange(k), axis=axis)
    return [np.take_along_axis(x, indices, axis=axis), indices.astype(np.int64)]


# ---- CumSum ---------------------------------------------------------------------------------


@register(Op.CUMSUM, infer=same_as_input(0), symbolic=True)
def run_cumsum(node: Node, inputs: list) -> list[np.ndarray]:
    x = np.asarray(inputs[0])
    axis_value = np.asarray(inputs[1]).reshape(-1)
    if axis_value.size != 1:
        raise ValueError(f"{node.describe()}: axis must hold one element, got {axis_value.size}")
    axis = normalize_axis(node, int(axis_value[0]), x.ndim)
    values = _accumulator(x)
    if node.attr("reverse", 0):
        values = np.flip(values, axis)
    # dtype= keeps int32 from widening; object arrays (folded dims) keep python arithmetic.
    total = np.cumsum(values, axis=axis, dtype=values.dtype)
    if node.attr("exclusive", 0) and x.shape[axis]:
        # Shift by one along the axis: element i holds the sum of the elements before i.
        head = np.zeros_like(np.take(total, [0], axis=axis))
        total = np.concatenate([head, np.delete(total, -1, axis=axis)], axis=axis)
    if node.attr("reverse", 0):
        total = np.flip(total, axis)
    return [_cast_like(total, x)]


# ---- Softmax, LogSoftmax --------------------------------------------------------------------


def _softmax_infer(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    if not x.dtype.is_float:
        raise ctx.fail(f"expects a floating-point input, got {x.dtype}")
    normalize_axis(ctx.node, ctx.attr("axis", -1), x.rank)
    return [x]


def _shifted(node: Node, x: np.ndarray) -> tuple[np.ndarray, int]:
    """x minus its max along the axis (so exp cannot overflow).

    Softmax and LogSoftmax compute in x's own type, rounding after every step, as the ONNX
    reference does; onnxruntime widens fp16 to float32 and can differ by a few ulps. The ONNX node
    tests (e.g. the fp16/bf16 Attention `_expanded` graphs) are generated by the reference.

    Only the opset >= 13 meaning is implemented (normalize along one axis). Before 13 the
    input was coerced to 2-D at `axis`; a node does not carry its opset, so the importer
    must rewrite old Softmax nodes if it ever meets one.
    """
    axis = normalize_axis(node, node.attr("axis", -1), x.ndim)
    with np.errstate(invalid="ignore"):  # a row of -inf (or holding +inf) gives NaN, as in ONNX
        return (x - np.max(x, axis=axis, keepdims=True)).astype(x.dtype), axis


@register(Op.SOFTMAX, infer=_softmax_infer)
def run_softmax(node: Node, inputs: list) -> list[np.ndarray]:
    x = inputs[0]
    shifted, axis = _shifted(node, x)
    e = np.exp(shifted).astype(x.dtype)
    with np.errstate(invalid="ignore"):  # a row of -inf has no distribution: NaN, as in ONNX
        return [(e / np.sum(e, axis=axis, keepdims=True).astype(x.dtype)).astype(x.dtype)]


@register(Op.LOG_SOFTMAX, infer=_softmax_infer)
def run_log_softmax(node: Node, inputs: list) -> list[np.ndarray]:
    x = inputs[0]
    shifted, axis = _shifted(node, x)
    total = np.sum(np.exp(shifted).astype(x.dtype), axis=axis, keepdims=True).astype(x.dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        return [(shifted - np.log(total).astype(x.dtype)).astype(x.dtype)]
