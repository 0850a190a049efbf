"""Operand layouts of elementwise kernels: which element of an operand each output element reads,
as element strides per output axis (numpy broadcasting: stride 0 on an axis the operand repeats).

An operand is either a dense tensor or an Expand view (`Value.broadcast`: more elements than
bytes behind it). A view's strides are traced back through the graph to the bytes it reads:
Expand (stride 0 on the repeated axes), Reshape / Flatten / Squeeze / Unsqueeze / Identity /
Dropout (the strides regrouped, when the view can be expressed by strides), a Transpose that
keeps the order of its non-unit axes (an alias: the strides permuted) and a float Cast its
consumers convert on load (an alias). Anything else produced a dense tensor of its own.

`collapse` merges adjacent axes that every operand walks contiguously, so most broadcasts end
up as one VECTOR_2D grid, [rows, cols] with a row stride and a column step of 0 or 1 per operand.
"""

from __future__ import annotations

import math

from compiler.ir.ops import Op
from compiler.targets.programmable.context import Lowerer, Value

Strides = tuple[int, ...]
Layout = tuple[tuple[int, ...], Strides]  # (shape, element strides)

_VIEWS = frozenset({Op.RESHAPE, Op.FLATTEN, Op.SQUEEZE, Op.UNSQUEEZE, Op.IDENTITY, Op.DROPOUT})
_TRACE_DEPTH = 32


def contiguous(shape: tuple[int, ...]) -> Strides:
    strides, running = [0] * len(shape), 1
    for axis in reversed(range(len(shape))):
        strides[axis] = running
        running *= shape[axis]
    return tuple(strides)


def is_dense(shape: tuple[int, ...], strides: Strides) -> bool:
    """Every element once, in row-major order (strides of size-1 axes do not matter)."""
    return all(s == c for d, s, c in zip(shape, strides, contiguous(shape)) if d != 1)


def extent(shape: tuple[int, ...], strides: Strides) -> int:
    """Elements from the first one read to the last (0 for an empty tensor)."""
    if math.prod(shape) == 0:
        return 0
    return 1 + sum((d - 1) * s for d, s in zip(shape, strides))


def operand_strides(lw: Lowerer, value: Value, shape: tuple[int, ...]) -> Strides | None:
    """Element strides of `value` read as a tensor of `shape`, or None when it does not broadcast
    to it (a shape mismatch, or a view whose strides cannot be traced)."""
    layout = view_layout(lw, value)
    if layout is None:
        return None
    return broadcast_to(*layout, shape)


def view_layout(lw: Lowerer, value: Value) -> Layout | None:
    """(shape, strides) of the bytes behind `value` (module docstring); None when untraceable."""
    if not value.broadcast:
        return value.shape, contiguous(value.shape)
    try:
        traced = _trace(lw, value.name, 0)
    except KeyError:  # a value the lowering made up (no graph shape to trace)
        return None
    if traced is None or tuple(traced[0]) != tuple(value.shape):
        return None
    return traced


def broadcast_to(shape: tuple[int, ...], strides: Strides, target: tuple[int, ...]) -> Strides | None:
    """Numpy's rule, right-aligned: a size-1 (or missing) axis repeats with stride 0."""
    if len(shape) > len(target):
        extra = len(shape) - len(target)
        if any(d != 1 for d in shape[:extra]):
            return None
        shape, strides = shape[extra:], strides[extra:]
    lead = len(target) - len(shape)
    out = [0] * len(target)
    for axis, size in enumerate(target):
        i = axis - lead
        if i < 0 or shape[i] == 1:
            continue
        if shape[i] != size:
            return None
        out[axis] = strides[i]
    return tuple(out)


def collapse(shape: tuple[int, ...], layouts: list[Strides]) -> tuple[tuple[int, ...], list[Strides]]:
    """Drop size-1 axes and merge neighbours that every layout walks as one (stride of the outer
    = stride of the inner x its size): the fewest axes that still say where each element is."""
    keep = [axis for axis, size in enumerate(shape) if size != 1]
    dims = [shape[axis] for axis in keep]
    cols = [[strides[axis] for axis in keep] for strides in layouts]
    axis = len(dims) - 2
    while axis >= 0:
        if all(c[axis] == c[axis + 1] * dims[axis + 1] for c in cols):
            dims[axis:axis + 2] = [dims[axis] * dims[axis + 1]]
            for c in cols:
                c[axis:axis + 2] = [c[axis + 1]]
        axis -= 1
    return tuple(dims), [tuple(c) for c in cols]


def _trace(lw: Lowerer, name: str, depth: int) -> Layout | None:
    shape = tuple(lw.local_shape(name))
    node = lw.graph.producer(name)
    if node is None or depth > _TRACE_DEPTH:
        return shape, contiguous(shape)
    source = node.inputs[0] if node.inputs else ""
    if node.op == Op.EXPAND:
        inner = _trace(lw, source, depth + 1)
        strides = None if inner is None else broadcast_to(*inner, shape)
        return None if strides is None else (shape, strides)
    if node.op in _VIEWS or node.op == Op.TRANSPOSE or (node.op == Op.CAST and _cast_is_alias(lw, node)):
        inner = _trace(lw, source, depth + 1)
        if inner is None or is_dense(*inner):
            return shape, contiguous(shape)  # a view of dense bytes, or a copy: dense either way
        if node.op == Op.TRANSPOSE:
            perm = list(node.attr("perm") or reversed(range(len(inner[0]))))
            moved = [axis for axis in perm if inner[0][axis] != 1]
            if moved != sorted(moved):  # the transpose copied the view into dense bytes
                return shape, contiguous(shape)
            return shape, tuple(inner[1][axis] for axis in perm)
        if node.op == Op.CAST:
            return inner
        strides = _regrouped(*inner, shape)
        return None if strides is None else (shape, strides)
    if node.op in (Op.SLICE, Op.SPLIT):  # an alias of a slice of a view is not traced
        inner = _trace(lw, source, depth + 1)
        return (shape, contiguous(shape)) if inner is not None and is_dense(*inner) else None
    return shape, contiguous(shape)


def _cast_is_alias(lw: Lowerer, node) -> bool:
    from compiler.targets.programmable.lower import _converts_on_load  # lower imports this module

    return _converts_on_load(lw, node)


def _regrouped(shape: tuple[int, ...], strides: Strides, target: tuple[int, ...]) -> Strides | None:
    """Strides of the same elements viewed as `target` (a reshape without a copy), or None when a
    group of axes that merges is not walked as one."""
    old = [(d, s) for d, s in zip(shape, strides) if d != 1]
    new = [0] * len(target)
    wanted = [axis for axis, size in enumerate(target) if size != 1]
    i = j = 0
    while j < len(wanted):
        if i >= len(old):
            return None
        group_old, group_new = [i], [wanted[j]]
        size_old, size_new = old[i][0], target[wanted[j]]
        while size_old != size_new:
            if size_old < size_new:
                i += 1
                if i >= len(old):
                    return None
                group_old.append(i)
                size_old *= old[i][0]
            else:
                j += 1
                if j >= len(wanted):
                    return None
                group_new.append(wanted[j])
                size_new *= target[wanted[j]]
        if any(old[k][1] != old[k + 1][1] * old[k + 1][0] for k in group_old[:-1]):
            return None
        running = old[group_old[-1]][1]
        for axis in reversed(group_new):
            new[axis] = running
            running *= target[axis]
        i, j = i + 1, j + 1
    return tuple(new) if i == len(old) else None


def einsum_strides(lw: Lowerer, value: Value, term: str, output: str, shape: tuple[int, ...]) -> Strides | None:
    """Element strides over the einsum output (letters `output`, `shape`) of an operand with
    letters `term`: its stride for each output letter it has, 0 for the others (or where its
    axis has size 1). None for a repeated letter (a diagonal) or an untraceable view."""
    layout = view_layout(lw, value)
    if layout is None or len(set(term)) != len(term) or len(term) != len(layout[0]):
        return None
    by_letter = dict(zip(term, zip(*layout)))
    strides = []
    for letter, size in zip(output, shape):
        dim, stride = by_letter.get(letter, (1, 0))
        if dim not in (1, size):
            return None
        strides.append(stride if dim == size and size != 1 else 0)
    return tuple(strides)
