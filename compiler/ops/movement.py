"""Data movement that keeps every element: Reshape, Flatten, Unsqueeze, Squeeze, Transpose,
Concat, Split, Expand, Tile, and the triangle mask Trilu.

Type rules take shape operands (Reshape's shape, Expand's shape, axes inputs) as folded values
that may hold sympy dims, so `[batch, seq, 4096] -> [0, 0, -1, 128]` types as
`[batch, seq, 32, 128]` without binding anything.
"""

from __future__ import annotations

import numpy as np
import sympy

from compiler.ir.graph import Node
from compiler.ir.ops import Op
from compiler.ir.shapes import Dim, normalize, shape_str
from compiler.ir.tensor import TensorType
from compiler.ops.dims import ceil_div, compile_time_ints, dims_of, exact_quotient, ints_of, product
from compiler.ops.registry import (
    InferContext,
    OpError,
    broadcast_shapes,
    normalize_axis,
    register,
    same_as_input,
)


def _fresh_shape(ctx: InferContext, length: Dim, what: str) -> tuple[Dim, ...]:
    """Output dims for a shape operand computed at run time: one new symbol per axis."""
    if not isinstance(length, int):
        raise ctx.fail(f"{what} has a symbolic length, so the output rank is unknown")
    return tuple(ctx.fresh_dim(0, axis) for axis in range(length))


# ---- Reshape and Flatten ---------------------------------------------------------------------
def reshape_dims(ctx: InferContext, shape: tuple[Dim, ...], target: list[Dim], allowzero: bool) -> list[Dim]:
    """Resolve Reshape's 0 (copy the input dim) and -1 (whatever is left) in `target`."""
    dims: list[Dim] = []
    unknown = None
    for i, d in enumerate(target):
        if isinstance(d, int) and d == 0 and not allowzero:
            if i >= len(shape):
                raise ctx.fail(f"shape {target} copies dim {i} (0) but the input has rank {len(shape)}")
            d = shape[i]
        elif isinstance(d, int) and d == -1:
            if unknown is not None:
                raise ctx.fail(f"shape {target} has more than one -1")
            unknown = i
        elif isinstance(d, int) and d < -1:
            raise ctx.fail(f"shape {target} has a negative dim {d}")
        dims.append(d)
    total = product(shape)
    if unknown is None:
        if isinstance(total, int) and isinstance(product(dims), int) and total != product(dims):
            raise ctx.fail(f"cannot reshape {shape_str(shape)} ({total} elements) to {target}")
        return dims
    known = product(d for i, d in enumerate(dims) if i != unknown)
    quotient = exact_quotient(total, known)
    if quotient is None:
        if isinstance(total, int) and isinstance(known, int):
            raise ctx.fail(f"cannot reshape {shape_str(shape)} ({total} elements) to {target}")
        # A valid reshape divides exactly even where sympy cannot prove it (a length padded up to
        # a multiple of the chunk size, `seq + Mod(3*seq, 4)`); floor keeps the dim tied to the
        # model's symbols, which a fresh symbol would not.
        quotient = normalize(sympy.floor(sympy.sympify(total) / known))
    dims[unknown] = quotient
    return dims


def _infer_reshape(ctx: InferContext) -> list[TensorType]:
    x, shape_type = ctx.type(0), ctx.type(1)
    if shape_type.rank != 1:
        raise ctx.fail(f"shape input must be 1-D, got {shape_type}")
    value = ctx.value(1)
    if value is None:
        return [TensorType(x.dtype, _fresh_shape(ctx, shape_type.shape[0], "shape input"))]
    allowzero = bool(ctx.attr("allowzero", 0))
    target = dims_of(value)
    if allowzero and 0 in target and -1 in target:
        raise ctx.fail(f"shape {target} has both 0 and -1 with allowzero=1")
    return [TensorType(x.dtype, tuple(reshape_dims(ctx, x.shape, target, allowzero)))]


@register(Op.RESHAPE, infer=_infer_reshape, symbolic=True)
def run_reshape(node: Node, inputs: list) -> list[np.ndarray]:
    x, shape = inputs
    target = ints_of(shape, "shape")
    if not node.attr("allowzero", 0):
        target = [x.shape[i] if d == 0 else d for i, d in enumerate(target)]
    return [np.reshape(x, target)]


def _flatten_axis(node: Node, rank: int) -> int:
    axis = node.attr("axis", 1)
    if not -rank <= axis <= rank:
        raise OpError(node, f"axis {axis} out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def _infer_flatten(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    axis = _flatten_axis(ctx.node, x.rank)
    return [TensorType(x.dtype, (product(x.shape[:axis]), product(x.shape[axis:])))]


@register(Op.FLATTEN, infer=_infer_flatten, symbolic=True)
def run_flatten(node: Node, inputs: list) -> list[np.ndarray]:
    x = inputs[0]
    axis = _flatten_axis(node, x.ndim)
    return [x.reshape(int(np.prod(x.shape[:axis])), -1 if x.size else int(np.prod(x.shape[axis:])))]


# ---- Unsqueeze and Squeeze -------------------------------------------------------------------
def _axes(ctx: InferContext) -> list[int] | None:
    """Axes from input 1 (opset >= 13) or the `axes` attribute (older opsets); None if neither."""
    if ctx.has_input(1):
        return compile_time_ints(ctx, 1, "axes")
    axes = ctx.attr("axes")
    return None if axes is None else list(axes)


def _run_axes(node: Node, inputs: list) -> list[int] | None:
    if len(inputs) > 1 and inputs[1] is not None:
        return ints_of(inputs[1], "axes")
    axes = node.attr("axes")
    return None if axes is None else list(axes)


def _unique_axes(node: Node, axes: list[int], rank: int) -> list[int]:
    normalized = sorted(normalize_axis(node, a, rank) for a in axes)
    if len(set(normalized)) != len(normalized):
        raise OpError(node, f"repeated axes {axes}")
    return normalized


def _axes_at_run_time(ctx: InferContext) -> int | None:
    """How many axes input 1 holds when its values are only known at run time, else None."""
    if not ctx.has_input(1) or ctx.value(1) is not None:
        return None
    axes_type = ctx.type(1)
    count = axes_type.shape[0] if axes_type.rank == 1 else 1
    if not isinstance(count, int):
        raise ctx.fail(f"axes {axes_type} has a symbolic length, so the output rank is unknown")
    return count


def _infer_unsqueeze(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    count = _axes_at_run_time(ctx)
    if count is not None:
        # Where the new axes go is decided at run time.
        return [TensorType(x.dtype, _fresh_shape(ctx, x.rank + count, "axes"))]
    axes = _axes(ctx)
    if axes is None:
        raise ctx.fail("needs axes (input 1 or attribute)")
    out_rank = x.rank + len(axes)
    inserted = _unique_axes(ctx.node, axes, out_rank)
    rest = iter(x.shape)
    return [TensorType(x.dtype, tuple(1 if i in inserted else next(rest) for i in range(out_rank)))]


@register(Op.UNSQUEEZE, infer=_infer_unsqueeze, symbolic=True)
def run_unsqueeze(node: Node, inputs: list) -> list[np.ndarray]:
    x = inputs[0]
    axes = _run_axes(node, inputs) or []
    return [np.expand_dims(x, tuple(_unique_axes(node, axes, x.ndim + len(axes))))]


def _infer_squeeze(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    count = _axes_at_run_time(ctx)
    if count is not None:
        return [TensorType(x.dtype, _fresh_shape(ctx, x.rank - count, "axes"))]
    axes = _axes(ctx)
    if axes is None:
        # Without axes only dims known to be 1 go; a symbolic dim is assumed not to be 1.
        return [TensorType(x.dtype, tuple(d for d in x.shape if not (isinstance(d, int) and d == 1)))]
    removed = _unique_axes(ctx.node, axes, x.rank)
    for a in removed:
        if isinstance(x.shape[a], int) and x.shape[a] != 1:
            raise ctx.fail(f"cannot squeeze axis {a} of size {x.shape[a]}")
    return [TensorType(x.dtype, tuple(d for i, d in enumerate(x.shape) if i not in removed))]


@register(Op.SQUEEZE, infer=_infer_squeeze, symbolic=True)
def run_squeeze(node: Node, inputs: list) -> list[np.ndarray]:
    x = inputs[0]
    axes = _run_axes(node, inputs)
    if axes is None:
        return [np.squeeze(x)]
    return [np.squeeze(x, axis=tuple(_unique_axes(node, axes, x.ndim)))]


# ---- Transpose -------------------------------------------------------------------------------
def _perm(node: Node, rank: int) -> list[int]:
    perm = node.attr("perm")
    if perm is None:
        return list(range(rank))[::-1]
    perm = [p + rank if p < 0 else p for p in perm]
    if sorted(perm) != list(range(rank)):
        raise OpError(node, f"perm {list(node.attr('perm'))} is not a permutation of {rank} axes")
    return perm


def _infer_transpose(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    return [TensorType(x.dtype, tuple(x.shape[p] for p in _perm(ctx.node, x.rank)))]


@register(Op.TRANSPOSE, infer=_infer_transpose, symbolic=True)
def run_transpose(node: Node, inputs: list) -> list[np.ndarray]:
    x = inputs[0]
    return [np.transpose(x, _perm(node, x.ndim))]


# ---- Concat and Split ------------------------------------------------------------------------
def _same_dim(ctx: InferContext, dims: list[Dim], what: str) -> Dim:
    """The one dim several inputs share on a non-concat axis (a number beats a symbol)."""
    static = {d for d in dims if isinstance(d, int)}
    if len(static) > 1:
        raise ctx.fail(f"{what}: sizes {sorted(static)} differ")
    return static.pop() if static else dims[0]


def _infer_concat(ctx: InferContext) -> list[TensorType]:
    types = [ctx.type(i) for i in range(len(ctx.node.inputs)) if ctx.has_input(i)]
    if not types:
        raise ctx.fail("needs at least one input")
    first = types[0]
    if ctx.attr("axis") is None:
        raise ctx.fail("missing attribute 'axis'")
    axis = normalize_axis(ctx.node, ctx.attr("axis"), first.rank)
    for t in types[1:]:
        if t.dtype != first.dtype or t.rank != first.rank:
            raise ctx.fail(f"inputs differ: {first} vs {t}")
    shape: list[Dim] = []
    for a in range(first.rank):
        along = [t.shape[a] for t in types]
        shape.append(normalize(sum(along)) if a == axis else _same_dim(ctx, along, f"axis {a}"))
    return [TensorType(first.dtype, tuple(shape))]


@register(Op.CONCAT, infer=_infer_concat, symbolic=True)
def run_concat(node: Node, inputs: list) -> list[np.ndarray]:
    parts = [x for x in inputs if x is not None]
    return [np.concatenate(parts, axis=node.attr("axis"))]


def split_sizes(node: Node, dim: Dim, split: list[Dim] | None, outputs: int) -> list[Dim]:
    """Sizes of Split's pieces along its axis."""
    if split is not None:
        if len(split) != outputs:
            raise OpError(node, f"split {split} gives {len(split)} pieces for {outputs} outputs")
        if isinstance(dim, int) and all(isinstance(s, int) for s in split) and sum(split) != dim:
            raise OpError(node, f"split {split} does not add up to the axis size {dim}")
        return split
    pieces = node.attr("num_outputs", outputs)
    if pieces != outputs:
        raise OpError(node, f"num_outputs={pieces} but the node has {outputs} outputs")
    if isinstance(dim, int):
        if node.attr("num_outputs") is None and dim % pieces:
            raise OpError(node, f"axis size {dim} does not split into {pieces} equal pieces")
        # opset 18: pieces of ceil(dim / n), the last one smaller
        chunk = -(-dim // pieces)
        return [chunk] * (pieces - 1) + [dim - chunk * (pieces - 1)]
    if node.attr("num_outputs") is None:
        # equal pieces are required, so the division is exact even where sympy cannot prove it
        chunk = exact_quotient(dim, pieces)
        return [chunk if chunk is not None else normalize(sympy.floor(dim / pieces))] * pieces
    chunk = ceil_div(dim, pieces)
    return [chunk] * (pieces - 1) + [normalize(dim - chunk * (pieces - 1))]


def _infer_split(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    axis = normalize_axis(ctx.node, ctx.attr("axis", 0), x.rank)
    outputs = len(ctx.node.outputs)
    if ctx.has_input(1):
        split = dims_of(ctx.value(1)) if ctx.value(1) is not None else None
        sizes = split_sizes(ctx.node, x.shape[axis], split, outputs) if split is not None else None
    else:
        split = list(ctx.attr("split")) if ctx.attr("split") is not None else None
        sizes = split_sizes(ctx.node, x.shape[axis], split, outputs)
    types = []
    for i in range(outputs):
        shape = list(x.shape)
        shape[axis] = sizes[i] if sizes is not None else ctx.fresh_dim(i, axis)
        types.append(TensorType(x.dtype, tuple(shape)))
    return types


@register(Op.SPLIT, infer=_infer_split, symbolic=True)
def run_split(node: Node, inputs: list) -> list[np.ndarray]:
    x = inputs[0]
    axis = normalize_axis(node, node.attr("axis", 0), x.ndim)
    if len(inputs) > 1 and inputs[1] is not None:
        split = ints_of(inputs[1], "split")
    else:
        split = list(node.attr("split")) if node.attr("split") is not None else None
    sizes = split_sizes(node, x.shape[axis], split, len(node.outputs))
    return np.split(x, np.cumsum(sizes)[:-1], axis=axis)


# ---- Expand and Tile -------------------------------------------------------------------------
def _infer_expand(ctx: InferContext) -> list[TensorType]:
    x, shape_type = ctx.type(0), ctx.type(1)
    if shape_type.rank != 1:
        raise ctx.fail(f"shape input must be 1-D, got {shape_type}")
    value = ctx.value(1)
    if value is None:
        (length,) = shape_type.shape
        if not isinstance(length, int):
            raise ctx.fail("shape input has a symbolic length, so the output rank is unknown")
        # An input dim other than 1 survives any valid target; the rest depend on the data.
        rank = max(length, x.rank)
        padded = (1,) * (rank - x.rank) + tuple(x.shape)
        dims = tuple(ctx.fresh_dim(0, a) if d == 1 else d for a, d in enumerate(padded))
        return [TensorType(x.dtype, dims)]
    return [TensorType(x.dtype, broadcast_shapes(ctx.node, tuple(x.shape), tuple(dims_of(value))))]


@register(Op.EXPAND, infer=_infer_expand, symbolic=True)
def run_expand(node: Node, inputs: list) -> list[np.ndarray]:
    x, shape = inputs
    out_shape = np.broadcast_shapes(x.shape, tuple(ints_of(shape, "shape")))
    return [np.broadcast_to(x, out_shape).copy()]


def _infer_tile(ctx: InferContext) -> list[TensorType]:
    x, repeats_type = ctx.type(0), ctx.type(1)
    if repeats_type.rank != 1 or repeats_type.shape[0] != x.rank and isinstance(repeats_type.shape[0], int):
        raise ctx.fail(f"repeats must be 1-D with one entry per input axis, got {repeats_type} for {x}")
    value = ctx.value(1)
    if value is None:
        return [TensorType(x.dtype, tuple(ctx.fresh_dim(0, a) for a in range(x.rank)))]
    repeats = dims_of(value)
    if len(repeats) != x.rank or any(isinstance(r, int) and r < 0 for r in repeats):
        raise ctx.fail(f"repeats {repeats} do not fit rank {x.rank}")
    return [TensorType(x.dtype, tuple(product([d, r]) for d, r in zip(x.shape, repeats, strict=True)))]


@register(Op.TILE, infer=_infer_tile, symbolic=True)
def run_tile(node: Node, inputs: list) -> list[np.ndarray]:
    x, repeats = inputs
    return [np.tile(x, ints_of(repeats, "repeats"))]


# ---- Trilu -----------------------------------------------------------------------------------
def _infer_trilu(ctx: InferContext) -> list[TensorType]:
    if ctx.type(0).rank < 2:
        raise ctx.fail(f"needs rank >= 2, got {ctx.type(0)}")
    return same_as_input(0)(ctx)


@register(Op.TRILU, infer=_infer_trilu)
def run_trilu(node: Node, inputs: list) -> list[np.ndarray]:
    x = inputs[0]
    k = int(np.asarray(inputs[1]).reshape(-1)[0]) if len(inputs) > 1 and inputs[1] is not None else 0
    return [np.triu(x, k) if node.attr("upper", 1) else np.tril(x, k)]
