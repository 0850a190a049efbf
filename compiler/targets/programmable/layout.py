"""Layout and data-movement ops: views that move nothing, copies that do, lookups, collectives.

A reshape-like op, a transpose that keeps the order of non-unit axes, a contiguous slice and
an Expand (read as a broadcast) are views of their input's bytes: no instruction. A transpose
of a weight is folded into its packed layout. Anything that does move data is a VECTOR COPY
of the moved elements (or DMA for a cache append and for embedding rows), never free.
"""

from __future__ import annotations

import math

import numpy as np

from compiler.ir.graph import Node
from compiler.ir.ops import Op
from compiler.targets.programmable.context import Lowerer, Value
from compiler.targets.programmable.isa import Collective, CollectiveKind, DmaLoad, DmaStore, VectorOp
from compiler.targets.programmable.sharding import weight_source
from compiler.targets.programmable.vector import run_steps

VIEW_OPS = {Op.RESHAPE, Op.FLATTEN, Op.SQUEEZE, Op.UNSQUEEZE, Op.IDENTITY, Op.DROPOUT}
MOVE_OPS = {Op.TRANSPOSE, Op.EXPAND, Op.SLICE, Op.SPLIT, Op.CONCAT, Op.GATHER, Op.PAD, Op.TILE,
            Op.GATHER_ELEMENTS, Op.GATHER_ND, Op.SCATTER_ND, Op.SCATTER_ELEMENTS, Op.TRILU}
_COPY = [(VectorOp.COPY, "elem", "in0", "in0", "out")]
_CHUNK_BYTES = 1 << 23  # one DMA row is at most 24 bits of bytes


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
            copy(lw, source, out)
    elif op == Op.EXPAND:
        lw.alias(out, source, broadcast=math.prod(lw.local_shape(out)) > source.numel)
    elif op in (Op.SLICE, Op.SPLIT):
        _slice(lw, node, source)
    elif op == Op.CONCAT:
        _concat(lw, node)
    elif op == Op.GATHER:
        _gather(lw, node, source)
    else:  # Pad, Tile, scatters, element gathers, Trilu: a copy of every output element
        if op in (Op.GATHER_ELEMENTS, Op.GATHER_ND, Op.SCATTER_ND, Op.SCATTER_ELEMENTS):
            lw.gap("indexed load/store")
        copy(lw, source, out)


def copy(lw: Lowerer, source: Value, out_name: str) -> Value:
    """out = a copy of the elements `out_name` holds, read from `source` (transposes, pads, ...)."""
    out = lw.new_value(out_name)
    shape = out.shape or (1,)
    run_steps(lw, _COPY, [source], out, max(1, out.numel // shape[-1]), shape[-1])
    return out


def _keeps_order(shape: tuple[int, ...], perm: list[int]) -> bool:
    """A transpose moves no data when the non-unit axes keep their relative order."""
    moved = [axis for axis in perm if shape[axis] != 1]
    return moved == sorted(moved)


def _slice(lw: Lowerer, node: Node, source: Value) -> None:
    starts = _slice_starts(lw, node, source)
    for index, out in enumerate(node.outputs):
        if not out:
            continue
        shape = lw.local_shape(out)
        axis, start = starts[index] if starts is not None else (None, 0)
        contiguous = axis is None or math.prod(source.shape[:axis]) == 1
        if starts is not None and contiguous:
            inner = math.prod(source.shape[axis + 1:]) if axis is not None else 0
            lw.alias(out, source, addr=source.addr + math.ceil(start * inner * source.bits / 8), shape=shape)
        else:
            copy(lw, source, out)


def _slice_starts(lw: Lowerer, node: Node, source: Value) -> list[tuple[int | None, int]] | None:
    """(sliced axis, first index) per output, or None when it is not a unit-step slice of one axis."""
    shape = source.shape
    outs = [lw.local_shape(o) for o in node.outputs if o]
    axes = [a for a in range(len(shape)) if any(o[a] != shape[a] for o in outs)]
    if not axes:
        return [(None, 0)] * len(node.outputs)
    if len(axes) != 1:
        return None
    axis = axes[0]
    if node.op == Op.SPLIT:
        firsts, offset = [], 0
        for out in node.outputs:
            firsts.append((axis, offset))
            offset += lw.local_shape(out)[axis] if out else 0
        return firsts
    values = [lw.graph.constants.get(v) for v in node.inputs[1:]]
    if any(v is None for v in values[:2]) or (len(values) > 3 and values[3] is not None
                                               and np.any(np.asarray(values[3].value()) != 1)):
        return None
    start = int(np.asarray(values[0].value()).reshape(-1)[0])
    if lw.shard.split_axis(node.inputs[0]) == axis:
        return None
    full = lw.shapes[node.inputs[0]][axis]
    start = min(max(start + full if start < 0 else start, 0), full)
    return [(axis, start)]


def _concat(lw: Lowerer, node: Node) -> None:
    """A cache append (the first input is a graph input) stores only the new part in place."""
    first = node.inputs[0]
    out = node.outputs[0]
    axis = node.attr("axis") % len(lw.shapes[out])
    cache = lw.values.get(first) if first in lw.graph.inputs else None
    if cache is not None and cache.space == "hbm" and len(node.inputs) == 2 and first in lw.capacity:
        new = lw.value(node.inputs[1])
        present = lw.alias(out, cache, shape=lw.local_shape(out))
        outer = math.prod(present.shape[:axis])
        inner_bytes = math.ceil(math.prod(present.shape[axis + 1:]) * cache.bits / 8)
        past = cache.shape[axis]
        if new.space == "sram":
            lw.emit(DmaStore(hbm_addr=cache.addr + past * inner_bytes, sram_addr=new.addr, rows=outer,
                             row_bytes=new.shape[axis] * inner_bytes, hbm_row_stride=present.shape[axis] * inner_bytes),
                    reads=[new.buf], writes=[lw.fresh_part(cache.buf)])
        else:
            run_steps(lw, _COPY, [new], Value(out, cache.buf, cache.addr, new.shape, cache.bits, cache.precision),
                      outer, math.prod(new.shape[axis:]))
        return
    result = lw.new_value(out)
    row = result.shape[-1] if result.shape else 1
    for value in node.inputs:
        part = lw.value(value)
        target = Value(out, result.buf, result.addr, part.shape, result.bits, result.precision)
        run_steps(lw, _COPY, [part], target, max(1, part.numel // max(row, 1)), row)


def _gather(lw: Lowerer, node: Node, table: Value) -> None:
    """Embedding rows (a parameter table in HBM) arrive by DMA; other gathers are vector copies."""
    out_name = node.outputs[0]
    const = lw.graph.constants.get(node.inputs[0])
    if const is None or not const.is_parameter or node.attr("axis", 0) != 0 or table.space != "hbm":
        lw.gap("indexed load")
        copy(lw, table, out_name)
        return
    lw.gap("indexed DMA (row gather by token id)")
    rows = math.prod(lw.local_shape(node.inputs[1]))
    row_bytes = math.ceil(math.prod(table.shape[1:]) * table.bits / 8)
    out = lw.new_value(out_name)
    if out.space == "sram":
        lw.emit(DmaLoad(hbm_addr=table.addr, sram_addr=out.addr, rows=rows, row_bytes=row_bytes,
                        hbm_row_stride=row_bytes), reads=[table.buf], writes=[out.buf])
        return
    # rows for an HBM output pass through SRAM a slot at a time
    per_slot = max(1, min(rows, lw.staging_budget() // 2 // row_bytes))
    slots = [lw.staging(per_slot * row_bytes, f"gather{i}") for i in range(2)]

    def chunk(index: int, slot: int, count: int) -> None:
        lw.emit(DmaLoad(hbm_addr=table.addr, sram_addr=slots[slot].addr, rows=count, row_bytes=row_bytes,
                        hbm_row_stride=row_bytes), reads=[table.buf], writes=[slots[slot]])
        lw.emit(DmaStore(hbm_addr=out.addr + index * per_slot * row_bytes, sram_addr=slots[slot].addr, rows=count,
                         row_bytes=row_bytes, hbm_row_stride=row_bytes), reads=[slots[slot]], writes=[out.buf])

    full, rest = divmod(rows, per_slot)
    lw.loop(full // 2, lambda i: (chunk(2 * i, 0, per_slot), chunk(2 * i + 1, 1, per_slot)))
    if full % 2:
        chunk(full - 1, 0, per_slot)
    if rest:
        chunk(full, full % 2, rest)
    lw.unstage(*slots)


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
