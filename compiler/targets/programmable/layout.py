"""Layout and data-movement ops: views that move nothing, copies that do, lookups, collectives.

A reshape-like op, a transpose that keeps the order of non-unit axes, a slice that is one run
of its source's bytes and an Expand (read as a broadcast) are views of their input's bytes: no
instruction. A transpose of a weight is folded into its packed layout. Anything that does move
data is a strided move of the moved elements, never free (strided.py: VECTOR_2D COPY grids in
SRAM, DMA rows to and from HBM): Transpose, Slice (any axes and steps), Split, Concat, constant
Pad (negative widths crop; borders FILLed), Tile. A broadcast source is read with stride 0 on its
repeated axes. Bounds, pads and repeats may be constants or values folded once shapes are bound.
A cache append writes only the new positions (memory images lay the past out at the present's
row pitch). What the instructions cannot express is timed as a copy and recorded as not
value-exact. DMA_GATHER / VECTOR_GATHER for gathers by index (selection.py).
"""

from __future__ import annotations

import math
from dataclasses import replace

import ml_dtypes
import numpy as np

from compiler.ir.graph import Node
from compiler.ir.ops import Op
from compiler.ops.dims import slice_bounds
from compiler.ops.registry import opdef
from compiler.targets.programmable.context import Lowerer, Value
from compiler.targets.programmable.emitter import Buf
from compiler.targets.programmable.isa import Collective, CollectiveKind, DmaLoad, DmaStore, Precision, VectorOp
from compiler.targets.programmable.sharding import weight_source
from compiler.targets.programmable.strided import (
    Plan,
    Unmovable,
    View,
    broadcast_strides,
    buffer_view,
    dense,
    dense_strides,
    move,
    plan_fill,
    plan_move,
    reshaped_strides,
    simplified,
)
from compiler.targets.programmable.vector import run_steps

VIEW_OPS = {Op.RESHAPE, Op.FLATTEN, Op.SQUEEZE, Op.UNSQUEEZE, Op.IDENTITY, Op.DROPOUT}
MOVE_OPS = {Op.TRANSPOSE, Op.EXPAND, Op.SLICE, Op.SPLIT, Op.CONCAT, Op.GATHER, Op.PAD, Op.TILE,
            Op.GATHER_ELEMENTS, Op.GATHER_ND, Op.SCATTER_ND, Op.SCATTER_ELEMENTS, Op.TRILU}
_COPY = [(VectorOp.COPY, "elem", "in0", "in0", "out")]
_CHUNK_BYTES = 1 << 23  # one DMA row is at most 24 bits of bytes
_STORAGE = {Precision.FP32: np.dtype("float32"), Precision.FP16: np.dtype("float16"),
            Precision.BF16: np.dtype(ml_dtypes.bfloat16)}


def lower_layout(lw: Lowerer, node: Node) -> None:
    op = node.op
    source = lw.value(node.inputs[0])
    out = node.outputs[0]
    if op in VIEW_OPS:
        lw.alias(out, source)
    elif op == Op.TRANSPOSE:
        perm = list(node.attr("perm") or reversed(range(len(source.shape))))
        if weight_source(lw.graph, node.inputs[0]) is not None or _keeps_order(source.shape, perm):
            lw.alias(out, source)
        else:
            result = lw.new_value(out)
            _move_into(lw, source, lambda view: view.permuted(perm), result, "a transpose")
    elif op == Op.EXPAND:
        lw.alias(out, source, broadcast=math.prod(lw.local_shape(out)) > source.numel)
    elif op in (Op.SLICE, Op.SPLIT):
        _slice(lw, node, source)
    elif op == Op.CONCAT:
        _concat(lw, node)
    elif op == Op.GATHER:
        _gather(lw, node, source)
    elif op == Op.PAD:
        _pad(lw, node, source)
    elif op == Op.TILE:
        _tile(lw, node, source)
    else:  # scatters, element gathers, Trilu: a copy of every output element
        if op in (Op.GATHER_ELEMENTS, Op.GATHER_ND, Op.SCATTER_ND, Op.SCATTER_ELEMENTS):
            lw.gap("indexed load/store")
        else:
            lw.inexact(f"{node.name}: {op.value} is timed as a copy of its output elements")
        copy(lw, source, out)


def copy(lw: Lowerer, source: Value, out_name: str) -> Value:
    """out = a copy of the elements `out_name` holds, read from `source` (timing stand-in)."""
    out = lw.new_value(out_name)
    copy_into(lw, source, out)
    return out


def copy_into(lw: Lowerer, source: Value, out: Value) -> None:
    shape = out.shape or (1,)
    run_steps(lw, _COPY, [source], out, max(1, out.numel // shape[-1]), shape[-1])


def _keeps_order(shape: tuple[int, ...], perm: list[int]) -> bool:
    """A transpose moves no data when the non-unit axes keep their relative order."""
    moved = [axis for axis in perm if shape[axis] != 1]
    return moved == sorted(moved)


def _where(lw: Lowerer) -> str:
    return lw.node.name if lw.node is not None else "lowering"


def _timed_as_copy(lw: Lowerer, what: str, reason: Unmovable) -> None:
    lw.inexact(f"{_where(lw)}: {what} is timed as a copy ({reason})")


def _release(lw: Lowerer, *bufs: Buf | None) -> None:
    for buf in bufs:
        if buf is not None:
            (lw.sram if buf.space == "sram" else lw.hbm).release(buf)


def _move_into(lw: Lowerer, source: Value, select, out: Value, what: str) -> None:
    """out = the elements `select` picks from `source`'s view, by a strided move (strided.py);
    a move the ISA cannot express is timed as a copy and recorded as not value-exact."""
    temps: list[Buf] = []
    try:
        view, temps = source_view(lw, source)
        move(lw, select(view), dense(out), out.precision)
    except Unmovable as reason:
        _timed_as_copy(lw, what, reason)
        copy_into(lw, source, out)
    finally:
        _release(lw, *temps)


# ---- views of values ------------------------------------------------------------------------
def source_view(lw: Lowerer, value: Value) -> tuple[View, list[Buf]]:
    """`value`'s elements as a strided view, and temporaries to release after use. A broadcast (an
    Expand read through reshapes) reads its source with stride 0 on the repeated axes; where a
    reshape merges a repeated axis with another, the broadcast before it is first made dense."""
    if not value.broadcast:
        return dense(value), []
    temps: list[Buf] = []
    try:
        buf, addr, strides = _resolved(lw, value.name, value, temps)
    except Unmovable:
        _release(lw, *temps)
        raise
    return View(buf, addr, value.shape or (1,), strides or (0,), value.bits // 8), temps


def _resolved(lw: Lowerer, name: str, root: Value, temps: list[Buf]) -> tuple[Buf, int, tuple[int, ...]]:
    """(buffer, address, element strides) that read `name`, a view of `root`'s bytes: dense, unless
    it is an Expand (stride 0 on repeated axes) seen through reshapes and order-keeping transposes."""
    shape = lw.local_shape(name)
    known = lw.values.get(name)
    node = lw.graph.producer(name)
    if (known is not None and not known.broadcast) or node is None or not (
            node.op == Op.EXPAND or node.op in VIEW_OPS or node.op == Op.TRANSPOSE):
        return root.buf, root.addr, dense_strides(shape)
    inner_shape = lw.local_shape(node.inputs[0])
    perm = list(node.attr("perm") or reversed(range(len(inner_shape)))) if node.op == Op.TRANSPOSE else []
    if perm and not _keeps_order(inner_shape, perm):  # a transpose that moved data wrote a dense output
        return root.buf, root.addr, dense_strides(shape)
    if not _same_elements(inner_shape, shape, broadcast=node.op == Op.EXPAND):
        raise Unmovable(f"reading {name!r}, a view whose local shape differs from its source's (tensor parallel)")
    buf, addr, inner = _resolved(lw, node.inputs[0], root, temps)
    if node.op == Op.EXPAND:
        return buf, addr, broadcast_strides(inner_shape, inner, shape)
    if perm:
        return buf, addr, tuple(inner[axis] for axis in perm)
    strides = reshaped_strides(inner_shape, inner, shape)
    if strides is None:  # the reshape merges a repeated axis with another: make its input dense first
        e = root.bits // 8
        temp = lw.alloc(math.prod(inner_shape) * e, f"{node.inputs[0]}:expanded")
        temps.append(temp)
        move(lw, View(buf, addr, inner_shape, inner, e), buffer_view(temp, inner_shape, e), root.precision)
        buf, addr, strides = temp, temp.addr, dense_strides(shape)
    return buf, addr, strides


def _same_elements(shape: tuple[int, ...], out_shape: tuple[int, ...], broadcast: bool) -> bool:
    """Whether `out_shape` views the same elements (or, for an Expand, repeats them)."""
    if not broadcast:
        return math.prod(shape) == math.prod(out_shape)
    offset = len(out_shape) - len(shape)
    return offset >= 0 and all(n in (1, out_shape[a + offset]) for a, n in enumerate(shape))


def compile_time_value(lw: Lowerer, name: str) -> np.ndarray | None:
    """The value of a constant, or of a value folded once shapes are bound (masks from Range,
    shape arithmetic), by the IR's own op semantics; None when it is known only at run time."""
    const = lw.graph.constants.get(name)
    if const is not None:
        return np.asarray(const.value())
    if name not in lw.program.meta.get("static_values", ()):
        return None
    node = lw.graph.producer(name)
    if node.op in (Op.SHAPE, Op.SIZE):  # reads only the shape of its input
        dtype = lw.graph.type_of(node.inputs[0]).dtype.numpy
        args = [np.broadcast_to(np.zeros((), dtype=dtype), lw.shapes[node.inputs[0]])]
    else:
        args = [compile_time_value(lw, v) if v else None for v in node.inputs]
        if any(arg is None for arg, v in zip(args, node.inputs) if v):
            return None
    return np.asarray(opdef(node.op, node).run(node, args)[node.outputs.index(name)])


def _ints(lw: Lowerer, name: str | None) -> list[int] | None:
    value = compile_time_value(lw, name) if name else None
    return None if value is None else [int(x) for x in value.reshape(-1)]


def _fill_dtype(lw: Lowerer, value: Value) -> np.dtype:
    """The element type `value`'s bytes hold (its graph type, or its float storage precision)."""
    dtype = lw.graph.type_of(value.name).dtype
    if dtype.bits == value.bits:
        return np.dtype(dtype.numpy)
    if value.precision in _STORAGE:
        return _STORAGE[value.precision]
    raise Unmovable(f"filling {value.bits}-bit {value.precision.label} elements")


# ---- slices, concatenation, pads, tiles -------------------------------------------------------
def _slice(lw: Lowerer, node: Node, source: Value) -> None:
    """Slice (any axes, steps of either sign) and Split: the picked elements as a view of the
    source; one contiguous run of its bytes is an alias, anything else a strided move."""
    picks = _slice_picks(lw, node, source)
    for index, out in enumerate(node.outputs):
        if not out:
            continue
        if picks is None:
            lw.inexact(f"{node.name}: a slice with bounds known only at run time (or along the axis split "
                       "across chips) is timed as a copy")
            copy(lw, source, out)
            continue
        shape = lw.local_shape(out)

        def select(view: View, pick=picks[index], shape=shape) -> View:
            for axis, (start, step) in enumerate(pick):
                view = view.part(axis, start, shape[axis], step)
            return view

        if not source.broadcast and source.bits % 8 == 0:
            picked = simplified(select(dense(source)))[0]
            if picked.strides == (1,) or picked.numel == 1:  # one run of the source's bytes
                lw.alias(out, source, addr=picked.addr, shape=shape)
                continue
        _move_into(lw, source, select, lw.new_value(out), "a slice")


def _slice_picks(lw: Lowerer, node: Node, source: Value) -> list[list[tuple[int, int]]] | None:
    """(first index, step) per axis of the source, for each output; None when the bounds are not
    known at compile time or a bound axis is split across chips."""
    rank = len(source.shape)
    if node.op == Op.SPLIT:
        axis = node.attr("axis", 0) % rank
        picks, offset = [], 0
        for out in node.outputs:
            pick = [(0, 1)] * rank
            pick[axis] = (offset, 1)
            picks.append(pick)
            offset += lw.local_shape(out)[axis] if out else 0
        return picks
    out_shape = lw.local_shape(node.outputs[0])
    if node.attr("starts") is not None:  # opset < 10: bounds are attributes
        starts, ends = list(node.attr("starts")), list(node.attr("ends"))
        axes, steps = list(node.attr("axes", range(len(starts)))), [1] * len(starts)
    else:
        starts, ends = _ints(lw, node.input(1)), _ints(lw, node.input(2))
        axes = _ints(lw, node.input(3)) if node.input(3) else list(range(len(starts or ())))
        steps = _ints(lw, node.input(4)) if node.input(4) else [1] * len(starts or ())
        if starts is None or ends is None or axes is None or steps is None:
            if out_shape == source.shape and not node.input(4):  # every index kept: the identity
                return [[(0, 1)] * rank]
            return None
    full = lw.shapes[node.inputs[0]]
    pick = [(0, 1)] * rank
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis %= rank
        first, last = slice_bounds(full[axis], start, end, step)
        if len(range(first, last, step)) != out_shape[axis] or (
                lw.shard.split_axis(node.inputs[0]) == axis and full[axis] != source.shape[axis]):
            return None
        pick[axis] = (first, step)
    return [pick]


def _composed(lw: Lowerer, plan: Plan, result: Value) -> tuple[View, Buf | None]:
    """Where to build an output element by element: itself in SRAM; an SRAM tile stored whole
    afterwards when it lives in HBM and fits; else itself in HBM."""
    if result.space == "sram" or result.nbytes > lw.staging_budget():
        return dense(result), None
    tile = plan.stage(lw, result.nbytes, f"{result.name}:composed")
    return buffer_view(tile, result.shape, result.bits // 8), tile


def _store_composed(lw: Lowerer, plan: Plan, result: Value, tile: Buf | None) -> None:
    if tile is not None:
        plan.steps.append(lambda: store(lw, Value(result.name, tile, tile.addr, result.shape, result.bits,
                                                  result.precision), result.addr, result.buf))


def _concat(lw: Lowerer, node: Node) -> None:
    """Every part moved into its place in the output (strided.py). A cache append (the past is a
    graph input whose region has room for the present) writes only the new part, in place; memory
    images lay such a past out at the present's row pitch (meta `appended_caches`)."""
    first = node.inputs[0]
    out = node.outputs[0]
    axis = node.attr("axis") % len(lw.shapes[out])
    cache = lw.values.get(first) if first in lw.graph.inputs else None
    if cache is not None and cache.space == "hbm" and len(node.inputs) == 2 and first in lw.capacity:
        _append(lw, node, cache, axis)
        return
    result = lw.new_value(out)
    parts = [lw.value(name) for name in node.inputs]
    plan, temps = Plan(), []
    try:
        target, tile = _composed(lw, plan, result)
        offset = 0
        for part in parts:
            view, temp = source_view(lw, part)
            temps += temp
            width = part.shape[axis] if part.shape else 1
            plan_move(lw, plan, view, target.part(axis, offset, width), result.precision)
            offset += width
        _store_composed(lw, plan, result, tile)
        plan.run(lw)
    except Unmovable as reason:
        plan.cancel(lw)
        _timed_as_copy(lw, "a concatenation", reason)
        row = result.shape[-1] if result.shape else 1
        for part in parts:
            target = Value(out, result.buf, result.addr, part.shape, result.bits, result.precision)
            run_steps(lw, _COPY, [part], target, max(1, part.numel // max(row, 1)), row)
    finally:
        _release(lw, *temps)


def _append(lw: Lowerer, node: Node, cache: Value, axis: int) -> None:
    """present = past ++ new in the past's region: only the new positions move."""
    first, out = node.inputs[0], node.outputs[0]
    new = lw.value(node.inputs[1])
    present = lw.alias(out, cache, shape=lw.local_shape(out))
    outer = math.prod(present.shape[:axis])
    past = cache.shape[axis]
    if outer > 1:  # the past sits at the present's row pitch, with room for the new rows
        readers = [c.name for c in lw.graph.consumers(first) if c.op not in (Op.SHAPE, Op.SIZE)]
        if readers == [node.name]:
            lw.program.meta.setdefault("appended_caches", {})[first] = {"axis": axis, "shape": list(present.shape)}
        else:
            lw.inexact(f"{node.name}: a row-major cache append reads the past at the present's row pitch "
                       "while other nodes read it densely")
    fresh = lw.fresh_part(cache.buf)  # reading the past never waits on the appended positions
    if new.bits == cache.bits:
        try:
            view, temps = source_view(lw, new)
            target = replace(dense(present).part(axis, past, new.shape[axis]), buf=fresh)
            try:
                move(lw, view, target, cache.precision)
            finally:
                _release(lw, *temps)
            return
        except Unmovable as reason:
            _timed_as_copy(lw, "a cache append", reason)
    inner_bytes = math.ceil(math.prod(present.shape[axis + 1:]) * cache.bits / 8)  # a conversion: timed
    if new.space == "sram":
        lw.emit(DmaStore(hbm_addr=cache.addr + past * inner_bytes, sram_addr=new.addr, rows=outer,
                         row_bytes=new.shape[axis] * inner_bytes, hbm_row_stride=present.shape[axis] * inner_bytes),
                reads=[new.buf], writes=[fresh])
    else:
        run_steps(lw, _COPY, [new], Value(out, cache.buf, cache.addr, new.shape, cache.bits, cache.precision),
                  outer, math.prod(new.shape[axis:]))


def _pad_widths(lw: Lowerer, node: Node, rank: int) -> list[tuple[int, int]] | None:
    """(before, after) per axis (a negative width crops), or None when not known at compile time."""
    pads = node.attr("pads")
    pads = list(pads) if pads is not None else _ints(lw, node.input(1))
    axes = _ints(lw, node.input(3)) if node.input(3) else list(range(rank))
    if pads is None or axes is None or len(pads) != 2 * len(axes):
        return None
    widths = [(0, 0)] * rank
    for i, axis in enumerate(axes):
        widths[axis % rank] = (int(pads[i]), int(pads[i + len(axes)]))
    return widths


def _pad(lw: Lowerer, node: Node, source: Value) -> None:
    """Constant Pad: the kept source elements moved into place (negative widths crop), the
    borders filled with the pad value, one slab per padded side (strided.py)."""
    out = node.outputs[0]
    mode = node.attr("mode", "constant")
    widths = _pad_widths(lw, node, len(source.shape))
    fill = compile_time_value(lw, node.input(2)) if node.input(2) else np.asarray(node.attr("value", 0))
    split = lw.shard.split_axis(node.inputs[0]) if source.shape != lw.shapes[node.inputs[0]] else None
    if mode != "constant" or widths is None or fill is None or (split is not None and widths[split] != (0, 0)):
        lw.inexact(f"{node.name}: Pad ({mode} mode, pads known only at run time or along the axis split across "
                   "chips) is timed as a copy of its output elements")
        copy(lw, source, out)
        return
    fill_value = fill.reshape(-1)[0] if fill.size else 0
    result = lw.new_value(out)
    shape = result.shape
    kept = [(max(0, -b), max(0, b), n + min(0, b) + min(0, a)) for n, (b, a) in zip(source.shape, widths)]
    plan, temps = Plan(), []
    try:
        target, tile = _composed(lw, plan, result)
        dtype = _fill_dtype(lw, result)
        if any(count <= 0 for _, _, count in kept):
            plan_fill(lw, plan, target, fill_value, dtype)
        else:
            view, temps = source_view(lw, source)
            inner = target
            for axis, (first, offset, count) in enumerate(kept):
                view, inner = view.part(axis, first, count), inner.part(axis, offset, count)
            plan_move(lw, plan, view, inner, result.precision)
            outer = target  # the slabs of axis k span the kept range of the axes before it
            for axis, (_, offset, count) in enumerate(kept):
                for start, size in ((0, offset), (offset + count, shape[axis] - offset - count)):
                    if size > 0:
                        plan_fill(lw, plan, outer.part(axis, start, size), fill_value, dtype)
                outer = outer.part(axis, offset, count)
        _store_composed(lw, plan, result, tile)
        plan.run(lw)
    except Unmovable as reason:
        plan.cancel(lw)
        _timed_as_copy(lw, "a pad", reason)
        copy_into(lw, source, result)
    finally:
        _release(lw, *temps)


def _tile(lw: Lowerer, node: Node, source: Value) -> None:
    """Tile: output axis k read as (repeat, index) with the source at stride 0 along the repeats."""
    out = node.outputs[0]
    repeats = _ints(lw, node.input(1))
    shape = lw.local_shape(out)
    if repeats is None or tuple(n * r for n, r in zip(source.shape, repeats)) != tuple(shape):
        lw.inexact(f"{node.name}: Tile with repeats known only at run time (or along the axis split across chips) "
                   "is timed as a copy of its output elements")
        copy(lw, source, out)
        return
    result = lw.new_value(out)

    def select(view: View) -> View:
        strides = dense_strides(tuple(shape))
        split_shape = tuple(x for n, r in zip(view.shape, repeats) for x in (r, n))
        src = tuple(x for s in view.strides for x in (0, s))
        dst = tuple(x for n, t in zip(view.shape, strides) for x in (n * t, t))
        return replace(view, shape=split_shape, strides=src), replace(dense(result), shape=split_shape, strides=dst)

    temps: list[Buf] = []
    try:
        view, temps = source_view(lw, source)
        move(lw, *select(view), result.precision)
    except Unmovable as reason:
        _timed_as_copy(lw, "a tile", reason)
        copy_into(lw, source, result)
    finally:
        _release(lw, *temps)


def _gather(lw: Lowerer, node: Node, table: Value) -> None:
    """Gather by an index tensor computed at run time: DMA_GATHER from an HBM table (embedding rows
    by token id), VECTOR_GATHER from an SRAM one, along any axis (see selection.py)."""
    from compiler.targets.programmable.selection import lower_gather

    lower_gather(lw, node, table)


def collective(lw: Lowerer, kind: CollectiveKind, value: Value, nbytes: int | None = None) -> None:
    """An in-place collective over the chips on `value` (staged through SRAM if it lives in HBM).

    ALL_REDUCE sums `nbytes` of partial results; ALL_GATHER reads this chip's slice from the
    first nbytes / chips bytes and leaves all chips' slices, in rank order, in `nbytes`.
    """
    chips = lw.shard.chips
    nbytes = value.nbytes if nbytes is None else nbytes
    if value.space == "sram":
        lw.emit(Collective(kind=kind, precision=value.precision, sram_addr=value.addr, nbytes=nbytes, chips=chips),
                reads=[value.buf], writes=[value.buf], tag="collective")
        return
    step = max(64, min(nbytes, lw.staging_budget() // 2, _CHUNK_BYTES))
    slot = lw.staging(step, "collective")
    for offset in range(0, nbytes, step):
        size = min(step, nbytes - offset)
        lw.emit(DmaLoad(hbm_addr=value.addr + offset, sram_addr=slot.addr, rows=1, row_bytes=size, hbm_row_stride=size),
                reads=[value.buf], writes=[slot], tag="collective")
        lw.emit(Collective(kind=kind, precision=value.precision, sram_addr=slot.addr, nbytes=size, chips=chips),
                reads=[slot], writes=[slot], tag="collective")
        lw.emit(DmaStore(hbm_addr=value.addr + offset, sram_addr=slot.addr, rows=1, row_bytes=size,
                         hbm_row_stride=size), reads=[slot], writes=[value.buf], tag="collective")
    lw.unstage(slot)


def all_gather(lw: Lowerer, value: Value, name: str) -> Value:
    """A replicated copy of a split value: this chip's slice first, then ALL_GATHER in place."""
    full_shape = lw.shapes[value.name] if value.name in lw.shapes else value.shape
    full_bytes = math.ceil(math.prod(full_shape) * value.bits / 8)
    buf = lw.alloc(full_bytes, name)
    gathered = Value(name, buf, buf.addr, full_shape, value.bits, value.precision)
    local = Value(name, buf, buf.addr, value.shape, value.bits, value.precision)
    row = value.shape[-1] if value.shape else 1
    run_steps(lw, _COPY, [value], local, max(1, value.numel // max(row, 1)), row)
    collective(lw, CollectiveKind.ALL_GATHER, gathered, full_bytes)
    return gathered


def store(lw: Lowerer, value: Value, region_addr: int, region_buf) -> None:
    """DMA a value from SRAM into its HBM output region (rows of at most 8 MiB)."""
    nbytes = value.nbytes
    row = min(nbytes, _CHUNK_BYTES)
    rows, rest = divmod(nbytes, row)
    if rows:
        lw.emit(DmaStore(hbm_addr=region_addr, sram_addr=value.addr, rows=rows, row_bytes=row, hbm_row_stride=row),
                reads=[value.buf], writes=[region_buf])
    if rest:
        lw.emit(DmaStore(hbm_addr=region_addr + rows * row, sram_addr=value.addr + rows * row, rows=1, row_bytes=rest,
                         hbm_row_stride=rest), reads=[value.buf], writes=[region_buf])
