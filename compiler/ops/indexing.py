"""Ops that pick or place elements by index: Slice, Gather, GatherElements, GatherND, ScatterND,
ScatterElements.

Slice and Gather also run on folded shape values (Shape -> Gather -> ..., Shape -> Slice), so
their type rules take symbolic dims and symbolic slice bounds.
"""

from __future__ import annotations

import numpy as np

from compiler.ir.dtypes import DType
from compiler.ir.graph import Node
from compiler.ir.ops import Op
from compiler.ir.shapes import Dim
from compiler.ir.tensor import TensorType
from compiler.ops.dims import compile_time_ints, dims_of, ints_of, slice_bounds, slice_length
from compiler.ops.registry import InferContext, OpError, normalize_axis, register, same_as_input

_INDEX_TYPES = (DType.INT64, DType.INT32)


def _check_indices(ctx: InferContext, index: int) -> TensorType:
    t = ctx.type(index)
    if t.dtype not in _INDEX_TYPES:
        raise ctx.fail(f"indices must be int32 or int64, got {t.dtype}")
    return t


def _as_index_array(indices: np.ndarray) -> np.ndarray:
    return indices.astype(np.int64) if indices.dtype != object else np.array(ints_of(indices)).reshape(indices.shape)


# ---- Slice -----------------------------------------------------------------------------------
def _infer_slice(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    starts: list[Dim] | None
    ends: list[Dim] | None
    if ctx.attr("starts") is not None:  # opset < 10: bounds are attributes
        starts, ends = list(ctx.attr("starts")), list(ctx.attr("ends"))
        count = len(starts)
        axes = list(ctx.attr("axes", range(count)))
        steps = [1] * count
    else:
        count = ctx.type(1).shape[0] if ctx.type(1).rank == 1 else None
        if not isinstance(count, int):
            raise ctx.fail(f"starts must be 1-D with a known length, got {ctx.type(1)}")
        if any(ctx.has_input(i) and ctx.value(i) is None for i in (3, 4)):
            # Which axes are sliced, or by what step, is known only at run time.
            return [TensorType(x.dtype, tuple(ctx.fresh_dim(0, a) for a in range(x.rank)))]
        starts = dims_of(ctx.value(1)) if ctx.value(1) is not None else None
        ends = dims_of(ctx.value(2)) if ctx.value(2) is not None else None
        axes = compile_time_ints(ctx, 3, "axes") if ctx.has_input(3) else list(range(count))
        steps = compile_time_ints(ctx, 4, "steps") if ctx.has_input(4) else [1] * count
    if len({len(axes), len(steps), count} | ({len(ends)} if ends is not None else set())) != 1:
        raise ctx.fail(f"starts, ends, axes and steps differ in length ({count}, {len(axes)}, {len(steps)})")
    axes = [normalize_axis(ctx.node, a, x.rank) for a in axes]
    if len(set(axes)) != len(axes):
        raise ctx.fail(f"repeated axes {axes}")
    shape = list(x.shape)
    for i, axis in enumerate(axes):
        if steps[i] == 0:
            raise ctx.fail("slice step 0")
        if starts is None or ends is None:
            shape[axis] = ctx.fresh_dim(0, axis)  # bounds known only at run time
        else:
            shape[axis] = slice_length(x.shape[axis], starts[i], ends[i], steps[i])
    return [TensorType(x.dtype, tuple(shape))]


@register(Op.SLICE, infer=_infer_slice, symbolic=True)
def run_slice(node: Node, inputs: list) -> list[np.ndarray]:
    x = inputs[0]
    if node.attr("starts") is not None:
        starts, ends = list(node.attr("starts")), list(node.attr("ends"))
        axes = list(node.attr("axes", range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts, ends = ints_of(inputs[1], "starts"), ints_of(inputs[2], "ends")
        given = [inputs[i] if len(inputs) > i else None for i in (3, 4)]
        axes = ints_of(given[0], "axes") if given[0] is not None else list(range(len(starts)))
        steps = ints_of(given[1], "steps") if given[1] is not None else [1] * len(starts)
    index = [slice(None)] * x.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        axis = normalize_axis(node, axis, x.ndim)
        first, last = slice_bounds(x.shape[axis], start, end, step)
        # ONNX's clamped end -1 (stepping down) means "past index 0"; Python reads -1 as the last.
        index[axis] = slice(first, None if last < 0 else last, step)
    return [x[tuple(index)]]


# ---- Gather family ---------------------------------------------------------------------------
def _infer_gather(ctx: InferContext) -> list[TensorType]:
    data, indices = ctx.type(0), _check_indices(ctx, 1)
    axis = normalize_axis(ctx.node, ctx.attr("axis", 0), data.rank)
    shape = data.shape[:axis] + indices.shape + data.shape[axis + 1 :]
    return [TensorType(data.dtype, tuple(shape))]


@register(Op.GATHER, infer=_infer_gather, symbolic=True)
def run_gather(node: Node, inputs: list) -> list[np.ndarray]:
    data, indices = inputs
    axis = normalize_axis(node, node.attr("axis", 0), data.ndim)
    # np.take gives a bare element (e.g. a sympy symbol) for a scalar index into an object array
    return [np.asarray(np.take(data, _as_index_array(indices), axis=axis))]


def _infer_gather_elements(ctx: InferContext) -> list[TensorType]:
    data, indices = ctx.type(0), _check_indices(ctx, 1)
    if data.rank != indices.rank:
        raise ctx.fail(f"data {data} and indices {indices} differ in rank")
    normalize_axis(ctx.node, ctx.attr("axis", 0), data.rank)
    return [TensorType(data.dtype, indices.shape)]


def _wrap_negative(indices: np.ndarray, size: int | np.ndarray) -> np.ndarray:
    indices = _as_index_array(indices)
    return np.where(indices < 0, indices + size, indices)


@register(Op.GATHER_ELEMENTS, infer=_infer_gather_elements)
def run_gather_elements(node: Node, inputs: list) -> list[np.ndarray]:
    data, indices = inputs
    axis = normalize_axis(node, node.attr("axis", 0), data.ndim)
    return [np.take_along_axis(data, _wrap_negative(indices, data.shape[axis]), axis=axis)]


def _infer_gather_nd(ctx: InferContext) -> list[TensorType]:
    data, indices = ctx.type(0), _check_indices(ctx, 1)
    batch = ctx.attr("batch_dims", 0)
    depth = indices.shape[-1] if indices.rank else None
    if not isinstance(depth, int) or batch + depth > data.rank or batch >= indices.rank:
        raise ctx.fail(f"indices {indices} with batch_dims={batch} do not index data {data}")
    return [TensorType(data.dtype, tuple(indices.shape[:-1]) + tuple(data.shape[batch + depth :]))]


@register(Op.GATHER_ND, infer=_infer_gather_nd)
def run_gather_nd(node: Node, inputs: list) -> list[np.ndarray]:
    data, indices = inputs
    batch = node.attr("batch_dims", 0)
    depth = indices.shape[-1]
    batch_count = int(np.prod(data.shape[:batch]))
    flat_data = data.reshape((batch_count,) + data.shape[batch:])
    tuples = int(np.prod(indices.shape[batch:-1]))
    flat_idx = _wrap_negative(indices.reshape(batch_count, tuples, depth), np.array(data.shape[batch : batch + depth]))
    # Leading batch index pairs batch i of the indices with batch i of the data.
    batch_index = np.arange(batch_count)[:, None]
    picked = flat_data[(batch_index, *np.moveaxis(flat_idx, -1, 0))]
    return [picked.reshape(indices.shape[:-1] + data.shape[batch + depth :])]


# ---- Scatter family --------------------------------------------------------------------------
_REDUCE = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _infer_scatter(ctx: InferContext) -> list[TensorType]:
    data, _, updates = ctx.type(0), _check_indices(ctx, 1), ctx.type(2)
    if updates.dtype != data.dtype:
        raise ctx.fail(f"updates type {updates.dtype} differs from data type {data.dtype}")
    reduction = ctx.attr("reduction", "none")
    if reduction != "none" and reduction not in _REDUCE:
        raise ctx.fail(f"unknown reduction {reduction!r}; supported: none, {', '.join(_REDUCE)}")
    return same_as_input(0)(ctx)


def _scatter(node: Node, data: np.ndarray, where: tuple[np.ndarray, ...], updates: np.ndarray) -> np.ndarray:
    out = data.copy()
    reduction = node.attr("reduction", "none")
    if reduction == "none":
        out[where] = updates  # ONNX leaves repeated indices undefined here
    elif reduction in _REDUCE:
        _REDUCE[reduction].at(out, where, updates)  # unbuffered: repeated indices all apply
    else:
        raise OpError(node, f"unknown reduction {reduction!r}")
    return out


@register(Op.SCATTER_ND, infer=_infer_scatter)
def run_scatter_nd(node: Node, inputs: list) -> list[np.ndarray]:
    data, indices, updates = inputs
    depth = indices.shape[-1]
    flat_idx = _wrap_negative(indices.reshape(-1, depth), np.array(data.shape[:depth]))
    flat_updates = updates.reshape((flat_idx.shape[0],) + data.shape[depth:])
    return [_scatter(node, data, tuple(flat_idx.T), flat_updates)]


@register(Op.SCATTER_ELEMENTS, infer=_infer_scatter)
def run_scatter_elements(node: Node, inputs: list) -> list[np.ndarray]:
    data, indices, updates = inputs
    axis = normalize_axis(node, node.attr("axis", 0), data.ndim)
    where = list(np.indices(indices.shape, sparse=True))
    where[axis] = _wrap_negative(indices, data.shape[axis])
    return [_scatter(node, data, tuple(where), updates)]
