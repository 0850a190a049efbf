"""Layout and data-movement ops: views that move nothing, copies that do, lookups, collectives.

A reshape-like op, a transpose that keeps the order of non-unit axes, a contiguous slice and
an Expand (read as a broadcast) are views of their input's bytes: no instruction. A transpose
of a weight is folded into its packed layout. Anything that does move data is a copy of the
moved elements, never free: strided VECTOR_2D COPYs for transposes, slices and concatenation
in SRAM, DMA for a cache append, DMA_GATHER for embedding rows by token id.
"""

from __future__ import annotations

import math

import numpy as np

from compiler.ir.dtypes import DType
from compiler.ir.graph import Node
from compiler.ir.ops import Op
from compiler.targets.programmable.context import Lowerer, Value
from compiler.targets.programmable.isa import Collective, CollectiveKind, DmaGather, DmaLoad, DmaStore, VectorOp
from compiler.targets.programmable.rotary import emit_2d
from compiler.targets.programmable.sharding import weight_source
from compiler.targets.programmable.vector import GRID_LIMIT, run_steps

VIEW_OPS = {Op.RESHAPE, Op.FLATTEN, Op.SQUEEZE, Op.UNSQUEEZE, Op.IDENTITY, Op.DROPOUT}
MOVE_OPS = {Op.TRANSPOSE, Op.EXPAND, Op.SLICE, Op.SPLIT, Op.CONCAT, Op.GATHER, Op.PAD, Op.TILE,
            Op.GATHER_ELEMENTS, Op.GATHER_ND, Op.SCATTER_ND, Op.SCATTER_ELEMENTS, Op.TRILU}
_COPY = [(VectorOp.COPY, "elem", "in0", "in0", "out")]
_CHUNK_BYTES = 1 << 23  # one DMA row is at most 24 bits of bytes
TRANSPOSE_INSTRUCTION_LIMIT = 64  # strided copies one transpose may emit before it is timed as a copy


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
            _transpose(lw, source, out, perm)
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
        else:
            lw.inexact(f"{node.name}: {op.value} is timed as a copy of its output elements")
        copy(lw, source, out)


def copy(lw: Lowerer, source: Value, out_name: str) -> Value:
    """out = a copy of the elements `out_name` holds, read from `source` (transposes, pads, ...)."""
    out = lw.new_value(out_name)
    shape = out.shape or (1,)
    run_steps(lw, _COPY, [source], out, max(1, out.numel // shape[-1]), shape[-1])
    return out


def _transpose(lw: Lowerer, source: Value, out_name: str, perm: list[int]) -> None:
    """A transpose that moves data: strided VECTOR_2D COPYs, each over the output's largest axis
    (rows, at that axis's source and output strides) by its last axis (columns, when contiguous
    in the source; else one element per row), one per index of the remaining axes."""
    out = lw.new_value(out_name)
    shape = out.shape
    src = [_strides(source.shape)[axis] for axis in perm]
    dst = _strides(shape)
    if source.space != "sram" or out.space != "sram" or len(shape) < 2:
        lw.inexact(f"{lw.where()}: a transpose outside SRAM is timed as a copy")
        copy_into(lw, source, out)
        return
    last = len(shape) - 1
    cols = shape[last] if src[last] == 1 else 1
    candidates = [a for a in range(len(shape)) if (a != last or cols == 1)
                  and max(src[a], dst[a], shape[a]) <= GRID_LIMIT]
    if not candidates or cols > GRID_LIMIT:
        lw.inexact(f"{lw.where()}: a transpose with strides beyond VECTOR_2D's fields is timed as a copy")
        copy_into(lw, source, out)
        return
    rows_axis = max(candidates, key=lambda a: shape[a])
    outer = [a for a in range(len(shape)) if a != rows_axis and (a != last or cols == 1)]
    e = source.bits // 8
    inner = shape[outer[-1]] if outer else 1
    a_step, d_step = (src[outer[-1]], dst[outer[-1]]) if outer else (0, 0)
    count = math.prod(shape[a] for a in outer[:-1]) * (1 if a_step == d_step else inner) if outer else 1
    if count > TRANSPOSE_INSTRUCTION_LIMIT:  # keep programs compact: timed as one copy instead
        lw.inexact(f"{lw.where()}: a transpose needing {count} strided copies is timed as one copy")
        copy_into(lw, source, out)
        return
    for index in range(math.prod(shape[a] for a in outer[:-1]) if outer else 1):
        coords = _coords(index, tuple(shape[a] for a in outer[:-1]))
        a0 = sum(c * src[a] for c, a in zip(coords, outer))
        d0 = sum(c * dst[a] for c, a in zip(coords, outer))

        def one(i: int, a0=a0, d0=d0) -> None:
            emit_2d(lw, VectorOp.COPY, (source.buf, source.addr + (a0 + i * a_step) * e, src[rows_axis]),
                    (source.buf, source.addr, 0), (out.buf, out.addr + (d0 + i * d_step) * e, dst[rows_axis]),
                    shape[rows_axis], cols, out.precision, b_fixed=True)

        if a_step == d_step:  # one LOOP stride moves both operands
            lw.loop(inner, one)
        else:
            for i in range(inner):
                one(i)


def _strides(shape: tuple[int, ...]) -> list[int]:
    strides, running = [0] * len(shape), 1
    for axis in reversed(range(len(shape))):
        strides[axis] = running
        running *= shape[axis]
    return strides


def _coords(index: int, shape: tuple[int, ...]) -> list[int]:
    coords = [0] * len(shape)
    for axis in reversed(range(len(shape))):
        index, coords[axis] = divmod(index, shape[axis])
    return coords


def copy_into(lw: Lowerer, source: Value, out: Value) -> None:
    shape = out.shape or (1,)
    run_steps(lw, _COPY, [source], out, max(1, out.numel // shape[-1]), shape[-1])


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
        elif starts is not None and source.space == "sram":
            # rows of the axes before the sliced one; each keeps a contiguous run of elements
            inner = math.prod(source.shape[axis + 1:])
            rows, cols = math.prod(source.shape[:axis]), shape[axis] * inner
            result = lw.new_value(out)
            if result.space != "sram" or max(rows, cols, source.shape[axis] * inner) > GRID_LIMIT:
                lw.inexact(f"{node.name}: a strided slice outside SRAM is timed as a copy")
                copy_into(lw, source, result)
                continue
            e = source.bits // 8
            emit_2d(lw, VectorOp.COPY, (source.buf, source.addr + start * inner * e, source.shape[axis] * inner),
                    (source.buf, source.addr, 0), (result.buf, result.addr, cols), rows, cols, result.precision)
        else:
            lw.inexact(f"{node.name}: a slice of more than one axis (or with steps) is timed as a copy")
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
        if outer > 1:
            lw.inexact(f"{node.name}: a row-major cache append reads the past at the present's row pitch "
                       "(memory images lay the past out densely)")
        if new.space == "sram":
            lw.emit(DmaStore(hbm_addr=cache.addr + past * inner_bytes, sram_addr=new.addr, rows=outer,
                             row_bytes=new.shape[axis] * inner_bytes, hbm_row_stride=present.shape[axis] * inner_bytes),
                    reads=[new.buf], writes=[lw.fresh_part(cache.buf)])
        else:
            run_steps(lw, _COPY, [new], Value(out, cache.buf, cache.addr, new.shape, cache.bits, cache.precision),
                      outer, math.prod(new.shape[axis:]))
        return
    result = lw.new_value(out)
    outer = math.prod(result.shape[:axis])
    inner_out = math.prod(result.shape[axis:])
    offset = 0  # elements along the concatenated axes, times the inner size
    e = result.bits / 8
    for value in node.inputs:
        part = lw.value(value)
        width = math.prod(part.shape[axis:])
        if outer == 1 or (part.space == "sram" and result.space == "sram"
                          and max(outer, width, inner_out) <= GRID_LIMIT):
            if outer == 1:
                target = Value(out, result.buf, result.addr + math.ceil(offset * e), part.shape, result.bits,
                               result.precision)
                copy_into(lw, part, target)
            else:  # each outer row of the part lands at its offset in the output's row
                emit_2d(lw, VectorOp.COPY, (part.buf, part.addr, width), (part.buf, part.addr, 0),
                        (result.buf, result.addr + math.ceil(offset * e), inner_out), outer, width, result.precision)
        else:
            lw.inexact(f"{node.name}: a concatenation outside SRAM is timed as a copy")
            row = result.shape[-1] if result.shape else 1
            target = Value(out, result.buf, result.addr, part.shape, result.bits, result.precision)
            run_steps(lw, _COPY, [part], target, max(1, part.numel // max(row, 1)), row)
        offset += width


def _gather(lw: Lowerer, node: Node, table: Value) -> None:
    """Embedding rows (a parameter table in HBM) by token id: one DMA_GATHER per chunk of rows,
    the ids first loaded into SRAM; other gathers are timed as vector copies (an ISA gap)."""
    out_name = node.outputs[0]
    const = lw.graph.constants.get(node.inputs[0])
    index_dtype = lw.graph.type_of(node.inputs[1]).dtype
    if (const is None or not const.is_parameter or node.attr("axis", 0) != 0 or table.space != "hbm"
            or index_dtype not in (DType.INT64, DType.INT32)):
        lw.gap("indexed load")
        copy(lw, table, out_name)
        return
    ids = lw.value(node.inputs[1])
    rows = math.prod(lw.local_shape(node.inputs[1]))
    row_bytes = math.ceil(math.prod(table.shape[1:]) * table.bits / 8)
    wide = index_dtype == DType.INT64
    index_bytes = rows * (8 if wide else 4)
    staged_ids = None
    if ids.space != "sram":
        staged_ids = lw.staging(index_bytes, "gather:ids")
        lw.emit(DmaLoad(hbm_addr=ids.addr, sram_addr=staged_ids.addr, rows=1, row_bytes=index_bytes,
                        hbm_row_stride=index_bytes), reads=[ids.buf], writes=[staged_ids])
    id_buf, id_addr = (staged_ids, staged_ids.addr) if staged_ids else (ids.buf, ids.addr)
    out = lw.new_value(out_name)
    if out.space == "sram":
        lw.emit(DmaGather(hbm_addr=table.addr, sram_addr=out.addr, index_addr=id_addr, rows=rows, row_bytes=row_bytes,
                          hbm_row_stride=row_bytes, index_int64=wide), reads=[table.buf, id_buf], writes=[out.buf])
    else:  # rows for an HBM output pass through SRAM a slot at a time (straight-line: a gather does not loop)
        per_slot = max(1, min(rows, lw.staging_budget() // 2 // row_bytes))
        slots = [lw.staging(per_slot * row_bytes, f"gather{i}") for i in range(2)]
        for index, r0 in enumerate(range(0, rows, per_slot)):
            count, slot = min(per_slot, rows - r0), slots[index % 2]
            lw.emit(DmaGather(hbm_addr=table.addr, sram_addr=slot.addr, index_addr=id_addr + r0 * (8 if wide else 4),
                              rows=count, row_bytes=row_bytes, hbm_row_stride=row_bytes, index_int64=wide),
                    reads=[table.buf, id_buf], writes=[slot])
            lw.emit(DmaStore(hbm_addr=out.addr + r0 * row_bytes, sram_addr=slot.addr, rows=count,
                             row_bytes=row_bytes, hbm_row_stride=row_bytes), reads=[slot], writes=[out.buf])
        lw.unstage(*slots)
    if staged_ids is not None:
        lw.unstage(staged_ids)


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
