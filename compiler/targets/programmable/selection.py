"""Selection and indexed loads: TopK, CumSum, ReduceProd and ArgMax on the vector unit's
selection ops, and Gather by an index vector computed at run time.

A selection op works along one axis of its input, seen as [outer, n, inner] (the axis in the
middle): one VECTOR instruction per chunk of outer rows (the 24-bit `length` field), the axis's
stride in `imm` so that a non-trailing axis needs no transpose (TOPK: the last axis only, k in
`imm`). Index outputs are ONNX's int64, written as int64 (INDEX_INT64) so that Gather, Cast and
integer ops read them as they read any int64 tensor. Operands in HBM stream through SRAM slots,
a chunk of outer rows at a time.

Gather along axis a of a table [outer, axis_len, row_len] by `count` indices:
  * a table in HBM with one outer row (embedding rows by token id): DMA_GATHER, `table_rows`
    set so that negative indices count from the end;
  * a table in SRAM (tiny-sparse's block mask by block id): VECTOR_GATHER, the row stride of
    the gathered axis is `row_len`, the outer stride `axis_len * row_len`;
  * a table in HBM with several outer rows: chunks of outer rows are loaded into SRAM, then
    VECTOR_GATHER.
Index vectors in HBM are loaded into SRAM first (both gathers read their indices from SRAM).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from compiler.ir.dtypes import DType
from compiler.ir.graph import Node
from compiler.ir.ops import Op
from compiler.targets.programmable.context import Lowerer, StagingFull, Value
from compiler.targets.programmable.emitter import Buf
from compiler.targets.programmable.isa import (
    ARG_LAST,
    INDEX_INT64,
    SCAN_EXCLUSIVE,
    SCAN_REVERSE,
    TOPK_INDICES,
    TOPK_LARGEST,
    TOPK_VALUES,
    DmaGather,
    DmaLoad,
    DmaStore,
    Precision,
    Vector,
    VectorGather,
    VectorOp,
)
from compiler.targets.programmable.options import LoweringError
from compiler.targets.programmable.sharding import weight_source
from compiler.targets.programmable.vector import DMA_CHUNK_BYTES, LENGTH_LIMIT, reduce_axes, run_steps

FIELD_LIMIT = (1 << 24) - 1  # rows, counts and lengths are 24-bit fields
_FLOATS = {Precision.FP32, Precision.FP16, Precision.BF16}


def lower_selection(lw: Lowerer, node: Node) -> None:
    """TopK, CumSum, ReduceProd or ArgMax as selection ops of the vector unit."""
    {Op.TOPK: _topk, Op.CUMSUM: _cumsum, Op.REDUCE_PROD: _reduce_prod, Op.ARGMAX: _argmax}[node.op](lw, node)


@dataclass(frozen=True)
class _Operand:
    """An operand of a selection op, [outer, lines, inner] elements: the input (lines = n), a
    scan's output (n), a reduction's (1), TopK's (k, with inner = 1); `field` addresses it."""

    field: str
    value: Value
    lines: int


def _topk(lw: Lowerer, node: Node) -> None:
    source = lw.value(node.inputs[0])
    shape = source.shape
    axis = node.attr("axis", -1) % max(len(shape), 1)
    outer, n, inner = _view(shape, axis)
    if inner != 1:
        raise LoweringError(f"{node.describe()}: TopK along axis {axis} of {list(shape)}: the TOPK instruction "
                            "selects along the last axis; only a last-axis TopK is supported")
    k = lw.shapes[node.outputs[0]][axis]  # bound by now, even when k was computed
    shift = TOPK_LARGEST if node.attr("largest", 1) else 0  # always sorted: one valid answer for sorted=0
    values, indices = node.outputs[0], node.outputs[1] if len(node.outputs) > 1 else ""
    outs, x = [], source
    if _used(lw, values):
        out = lw.new_value(values)
        x = _in_type_of(lw, source, out)
        outs.append(_Operand("dst", out, k))
        shift |= TOPK_VALUES
    if _used(lw, indices):
        out = lw.new_value(indices)
        outs.append(_Operand("src_b", out, k))
        shift |= TOPK_INDICES | _index_flag(lw, out)
    if outs and k > 0:
        _run_lines(lw, VectorOp.TOPK, x, outs, outer, n, 1, imm=k, shift=shift)
    _drop(lw, x, source)


def _cumsum(lw: Lowerer, node: Node) -> None:
    source = lw.value(node.inputs[0])
    axis = _constant_int(lw, node, 1) % max(len(source.shape), 1)
    outer, n, inner = _view(source.shape, axis)
    shift = (SCAN_EXCLUSIVE if node.attr("exclusive", 0) else 0) | (SCAN_REVERSE if node.attr("reverse", 0) else 0)
    out = lw.new_value(node.outputs[0])
    x = _in_type_of(lw, source, out)
    _run_lines(lw, VectorOp.SCAN_SUM, x, [_Operand("dst", out, n)], outer, n, inner, imm=inner, shift=shift)
    _drop(lw, x, source)


def _argmax(lw: Lowerer, node: Node) -> None:
    x = lw.value(node.inputs[0])
    axis = node.attr("axis", 0) % max(len(x.shape), 1)
    outer, n, inner = _view(x.shape, axis)
    out = lw.new_value(node.outputs[0])
    shift = (ARG_LAST if node.attr("select_last_index", 0) else 0) | _index_flag(lw, out)
    _run_lines(lw, VectorOp.ARGMAX, x, [_Operand("dst", out, 1)], outer, n, inner, imm=inner, shift=shift)


def _reduce_prod(lw: Lowerer, node: Node) -> None:
    """One REDUCE_PROD per run of adjacent reduced axes, the last run first (a product does not
    depend on the order); runs but the last write a scratch value."""
    source = lw.value(node.inputs[0])
    axes = sorted(reduce_axes(lw, node))
    out = lw.new_value(node.outputs[0])
    x = _in_type_of(lw, source, out)
    if not axes:  # noop_with_empty_axes: the input as it is
        row_len = x.shape[-1] if x.shape else 1
        run_steps(lw, [(VectorOp.COPY, "elem", "in0", "in0", "out")], [x], out, max(1, x.numel // max(row_len, 1)),
                  row_len)
        _drop(lw, x, source)
        return
    runs: list[list[int]] = []
    for axis in axes:
        if runs and runs[-1][-1] == axis - 1:
            runs[-1].append(axis)
        else:
            runs.append([axis])
    shape, value, scratch = list(x.shape), x, []
    for index, run in enumerate(reversed(runs)):
        first, last = run[0], run[-1]
        outer, inner = math.prod(shape[:first]), math.prod(shape[last + 1:])
        n = math.prod(shape[first:last + 1])
        shape[first:last + 1] = [1] * len(run)
        if index == len(runs) - 1:
            target = out
        else:
            name = f"{node.name}:partial{index}"
            buf = lw.alloc(max(1, math.ceil(outer * inner * x.bits / 8)), name)
            target = Value(name, buf, buf.addr, tuple(shape), x.bits, x.precision)
            scratch.append(buf)
        _run_lines(lw, VectorOp.REDUCE_PROD, value, [_Operand("dst", target, 1)], outer, n, inner, imm=inner)
        value = target
    for buf in scratch:
        _free(lw, buf)
    _drop(lw, x, source)


# ---- one selection op over [outer, n, inner], in place or streamed ------------------------------

def _run_lines(lw: Lowerer, op: VectorOp, x: Value, outs: list[_Operand], outer: int, n: int, inner: int,
               imm: int, shift: int = 0) -> None:
    """Emit `op` over x's [outer, n, inner] lines, a chunk of outer rows per instruction. Operands
    in SRAM are addressed in place; one in HBM moves through two SRAM slots (loading the next
    chunk overlaps the current one), chunk by chunk in straight-line code. When not even one
    outer row fits the free SRAM, the rows go a chunk of columns (of the inner axis) at a time,
    moved by strided DMA."""
    precision = _element_precision(lw, x)
    operands = [_Operand("src_a", x, n), *outs]
    streamed = [p for p in operands if p.value.space != "sram"]
    plan = _whole_rows(lw, streamed, outer, n, inner)
    if plan is not None:
        chunk, slots = plan
        pieces = [(o0, min(chunk, outer - o0), 0, inner) for o0 in range(0, outer, chunk)]
    else:
        cols, slots = _columns(lw, op, operands, streamed, n, inner)
        pieces = [(o0, 1, i0, min(cols, inner - i0)) for o0 in range(outer) for i0 in range(0, inner, cols)]
    for number, (o0, rows, i0, cols) in enumerate(pieces):
        slot = slots[number % len(slots)] if slots else {}
        where: dict[str, tuple[Buf, int]] = {}
        for p in operands:
            addr = p.value.addr + math.ceil((o0 * p.lines * inner + i0) * p.value.bits / 8)
            where[p.field] = (slot[p.field], slot[p.field].addr) if p.field in slot else (p.value.buf, addr)
            if p.field == "src_a" and p.field in slot:
                _move(lw, DmaLoad, p, addr, slot[p.field], rows, cols, inner)
        lw.emit(Vector(op=op, precision=precision, src_a=where["src_a"][1], src_b=where.get("src_b", (None, 0))[1],
                       dst=where.get("dst", (None, 0))[1], length=rows * n * cols, row_len=n,
                       imm=imm if op is VectorOp.TOPK else cols, shift=shift),
                reads=[where["src_a"][0]], writes=[where[o.field][0] for o in outs])
        for p in operands[1:]:
            if p.field in slot:
                addr = p.value.addr + math.ceil((o0 * p.lines * inner + i0) * p.value.bits / 8)
                _move(lw, DmaStore, p, addr, slot[p.field], rows, cols, inner)
    lw.unstage(*[buf for slot in slots for buf in slot.values()])


def _whole_rows(lw: Lowerer, streamed: list[_Operand], outer: int, n: int,
                inner: int) -> tuple[int, list[dict[str, Buf]]] | None:
    """(rows per chunk, slots) for chunks of whole outer rows, or None when one row does not fit."""
    line = n * inner
    if line > LENGTH_LIMIT:
        return None
    chunk = max(1, min(outer, LENGTH_LIMIT // line, FIELD_LIMIT))
    if not streamed:
        return chunk, []
    row_bytes = {p.field: _bytes(p, p.lines * inner) for p in streamed}
    chunk = min(chunk, lw.staging_budget() // (2 * sum(row_bytes.values())))
    if chunk < 1:
        return None
    try:
        return _stage_slots(lw, row_bytes, chunk, outer)
    except StagingFull:
        return None


def _columns(lw: Lowerer, op: VectorOp, operands: list[_Operand], streamed: list[_Operand], n: int,
             inner: int) -> tuple[int, list[dict[str, Buf]]]:
    """(inner columns per chunk, slots) for one outer row a chunk of columns at a time."""
    in_place = [p for p in operands if p not in streamed and p.lines > 1]
    if op is VectorOp.TOPK or inner == 1 or in_place:
        what = f"{in_place[0].value.name!r} in SRAM" if in_place else "its operands"
        raise LoweringError(f"{lw.where()}: one line of {op.name} ({n} x {inner} elements) does not fit the free SRAM "
                            f"and {what} cannot be cut into columns")
    per_col = {p.field: _bytes(p, p.lines) for p in streamed}
    cols = min(inner, LENGTH_LIMIT // n, FIELD_LIMIT // max(per_col.values()),
               lw.staging_budget() // (2 * sum(per_col.values())))
    try:
        if cols < 1:
            raise StagingFull(f"{lw.where()}: one column of {op.name} ({sum(per_col.values())} bytes) does not fit")
        return _stage_slots(lw, per_col, cols, inner)
    except StagingFull as error:
        raise LoweringError(f"{lw.where()}: {op.name} over {n} x {inner} elements does not fit the free SRAM even "
                            f"a column at a time ({error})") from None


def _bytes(p: _Operand, count: int) -> int:
    return math.ceil(count * p.value.bits / 8)


def _stage_slots(lw: Lowerer, unit_bytes: dict[str, int], chunk: int, total: int) -> tuple[int, list[dict]]:
    """(units per slot, slots): two SRAM slots per streamed operand (one when a chunk covers all
    `total` units) of `chunk` units, fewer units when the free SRAM is cut up."""
    while True:
        count = 2 if total > chunk else 1
        try:
            staged = lw.stage_all({f"{name}:{i}": chunk * nbytes for name, nbytes in unit_bytes.items()
                                   for i in range(count)})
        except StagingFull:
            if chunk == 1:
                raise
            chunk = max(1, chunk // 2)
            continue
        return chunk, [{name: staged[f"{name}:{i}"] for name in unit_bytes} for i in range(count)]


def _move(lw: Lowerer, kind: type[DmaLoad], p: _Operand, hbm_addr: int, slot: Buf, rows: int, cols: int,
          inner: int) -> None:
    """Rows [o0, o0 + rows) of an operand (whole rows: contiguous) or a chunk of its columns (one
    outer row: `lines` runs of `cols` elements, `inner` apart) between HBM and an SRAM slot."""
    if cols == inner or p.lines == 1:
        _dma(lw, kind, p.value, hbm_addr, slot, _bytes(p, rows * p.lines * cols))
        return
    reads, writes = ([p.value.buf], [slot]) if kind is DmaLoad else ([slot], [p.value.buf])
    lw.emit(kind(hbm_addr=hbm_addr, sram_addr=slot.addr, rows=p.lines, row_bytes=_bytes(p, cols),
                 hbm_row_stride=_bytes(p, inner)), reads=reads, writes=writes)


def _dma(lw: Lowerer, kind: type[DmaLoad], value: Value, hbm_addr: int, slot: Buf, nbytes: int) -> None:
    """A contiguous DMA between HBM and an SRAM slot, as rows of at most DMA_CHUNK_BYTES."""
    rows, rest = divmod(nbytes, DMA_CHUNK_BYTES)
    reads, writes = ([value.buf], [slot]) if kind is DmaLoad else ([slot], [value.buf])
    for count, size, offset in ((rows, DMA_CHUNK_BYTES, 0), (1 if rest else 0, rest, rows * DMA_CHUNK_BYTES)):
        if count:
            lw.emit(kind(hbm_addr=hbm_addr + offset, sram_addr=slot.addr + offset, rows=count, row_bytes=size,
                         hbm_row_stride=size), reads=reads, writes=writes)


# ---- Gather -------------------------------------------------------------------------------------

def lower_gather(lw: Lowerer, node: Node, table: Value) -> None:
    """Gather along any axis by an int32 or int64 index tensor (see the module docstring)."""
    index_name = node.inputs[1]
    index_type = lw.graph.type_of(index_name).dtype
    if index_type not in (DType.INT64, DType.INT32):
        raise LoweringError(f"{node.describe()}: indices of type {index_type.name.lower()}; Gather reads int32 "
                            "or int64 indices")
    axis = node.attr("axis", 0) % max(len(table.shape), 1)
    outer, axis_len, row_len = _view(table.shape, axis)
    if table.broadcast or (row_len * table.bits) % 8:
        raise LoweringError(f"{node.describe()}: the table {table.name!r} is "
                            + ("a broadcast view (Expand)" if table.broadcast else
                               f"gathered in rows of {row_len} {table.bits}-bit elements")
                            + "; Gather moves whole-byte rows of a materialized table")
    ids = lw.value(index_name)
    if ids.broadcast:
        raise LoweringError(f"{node.describe()}: the indices {ids.name!r} are a broadcast view (Expand); "
                            "Gather reads a materialized index vector")
    count, wide = ids.numel, ids.bits == 64
    staged_ids = None
    if ids.space != "sram" and count:  # the indices first (the output may take the SRAM after them)
        staged_ids = lw.staging(ids.nbytes, "gather:ids")
        lw.emit(DmaLoad(hbm_addr=ids.addr, sram_addr=staged_ids.addr, rows=1, row_bytes=ids.nbytes,
                        hbm_row_stride=ids.nbytes), reads=[ids.buf], writes=[staged_ids])
        ids = Value(ids.name, staged_ids, staged_ids.addr, ids.shape, ids.bits, ids.precision)
    out = lw.new_value(node.outputs[0])
    if count == 0 or out.numel == 0:
        if staged_ids is not None:
            lw.unstage(staged_ids)
        return
    if table.space != "sram" and outer == 1:
        _note_packed_table(lw, node)
        _dma_gather(lw, table, ids, out, count, axis_len, row_len, wide)
    else:
        _vector_gather(lw, table, ids, out, (outer, count, row_len, axis_len), wide)
    if staged_ids is not None:
        lw.unstage(staged_ids)


def _note_packed_table(lw: Lowerer, node: Node) -> None:
    """A table that is also a GEMM weight (a tied embedding read by the LM head) is stored the
    GEMM's way, packed in [K, piece] blocks (transposed for the head), which the later GEMM
    decides: rows gathered as row-major ones would be wrong values. Say so."""
    table = node.inputs[0]
    for other in lw.graph.nodes():
        if other.op in (Op.MATMUL, Op.GEMM) and len(other.inputs) > 1:
            source = weight_source(lw.graph, other.inputs[1])
            if source is not None and source[0] == table:
                lw.inexact(f"{node.name}: table {table!r} is also the weight of {other.name}, stored packed for "
                           "its GEMM; DMA_GATHER reads row-major rows")
                return


def _dma_gather(lw: Lowerer, table: Value, ids: Value, out: Value, count: int, axis_len: int, row_len: int,
                wide: bool) -> None:
    """Rows of an HBM table: one DMA_GATHER into SRAM, or into slots stored to an HBM output."""
    row_bytes = math.ceil(row_len * table.bits / 8)
    step = 8 if wide else 4
    if out.space == "sram":
        per, slots = FIELD_LIMIT, []
    else:
        per = max(1, min(FIELD_LIMIT, lw.staging_budget() // 2 // max(row_bytes, 1)))
        slots = [lw.staging(min(per, count) * row_bytes, f"gather{i}") for i in range(2)]
    for number, r0 in enumerate(range(0, count, per)):
        rows = min(per, count - r0)
        target = slots[number % 2] if slots else out.buf
        addr = target.addr if slots else out.addr + r0 * row_bytes
        lw.emit(DmaGather(hbm_addr=table.addr, sram_addr=addr, index_addr=ids.addr + r0 * step, rows=rows,
                          row_bytes=row_bytes, hbm_row_stride=row_bytes, index_int64=wide, table_rows=axis_len),
                reads=[table.buf, ids.buf], writes=[target])
        if slots:
            lw.emit(DmaStore(hbm_addr=out.addr + r0 * row_bytes, sram_addr=addr, rows=rows, row_bytes=row_bytes,
                             hbm_row_stride=row_bytes), reads=[target], writes=[out.buf])
    lw.unstage(*slots)


def _vector_gather(lw: Lowerer, table: Value, ids: Value, out: Value, dims: tuple[int, int, int, int],
                   wide: bool) -> None:
    """VECTOR_GATHER from an SRAM table, a chunk of outer rows (and of indices, when one outer
    row's output does not fit a slot) at a time; HBM tables and outputs pass through slots."""
    outer, count, row_len, axis_len = dims
    if row_len > FIELD_LIMIT or axis_len > FIELD_LIMIT:
        raise LoweringError(f"{lw.where()}: Gather rows of {row_len} elements along an axis of {axis_len} exceed "
                            f"the {FIELD_LIMIT} of VECTOR_GATHER's 24-bit fields")
    precision = _gather_precision(table)
    if table.bits < 8:  # sub-byte elements (int4) move as the bytes of whole rows
        row_len = row_len * table.bits // 8
    per_index = row_len * precision.bits // 8
    table_row, out_row = axis_len * per_index, count * per_index  # bytes per outer row
    streamed = {name: value for name, value in (("table", table), ("out", out)) if value.space != "sram"}
    outer_chunk, index_chunk = min(outer, FIELD_LIMIT), min(count, FIELD_LIMIT)
    slots: list[dict] = []
    if streamed:
        budget = lw.staging_budget() // 2
        held = table_row if "table" in streamed else 0
        if held > budget:
            raise LoweringError(f"{lw.where()}: one outer row of the HBM table {table.name!r} ({table_row} bytes) "
                                f"does not fit the {budget} bytes of an SRAM slot")
        if "out" in streamed and out_row > min(budget - held, FIELD_LIMIT):
            # one outer row's output is too large: gather it a run of indices at a time
            outer_chunk = 1
            index_chunk = max(1, min(index_chunk, min(budget - held, FIELD_LIMIT) // per_index))
        else:
            outer_chunk = max(1, min(outer_chunk, budget // (held + (out_row if "out" in streamed else 0))))
        sizes = {"table": table_row, "out": index_chunk * per_index}
        outer_chunk, slots = _stage_slots(lw, {name: sizes[name] for name in streamed}, outer_chunk,
                                          outer if index_chunk == count else 2)
    for number, o0 in enumerate(range(0, outer, outer_chunk)):
        rows = min(outer_chunk, outer - o0)
        slot = slots[number % len(slots)] if slots else {}
        if "table" in slot:
            _dma(lw, DmaLoad, table, table.addr + o0 * table_row, slot["table"], rows * table_row)
        src = (slot["table"], slot["table"].addr) if "table" in slot else (table.buf, table.addr + o0 * table_row)
        for j0 in range(0, count, index_chunk):
            indices = min(index_chunk, count - j0)
            dst = (slot["out"], slot["out"].addr) if "out" in slot else (out.buf, out.addr + o0 * out_row
                                                                         + j0 * per_index)
            lw.emit(VectorGather(precision=precision, src=src[1], index_addr=ids.addr + j0 * (8 if wide else 4),
                                 dst=dst[1], outer=rows, count=indices, row_len=row_len, axis_len=axis_len,
                                 index_int64=wide), reads=[src[0], ids.buf], writes=[dst[0]])
            if "out" not in slot:
                continue
            if indices == count:   # whole output rows: contiguous in HBM
                _dma(lw, DmaStore, out, out.addr + o0 * out_row, slot["out"], rows * out_row)
            else:                  # one outer row (outer_chunk = 1), a run of its indices
                lw.emit(DmaStore(hbm_addr=out.addr + o0 * out_row + j0 * per_index, sram_addr=slot["out"].addr,
                                 rows=1, row_bytes=indices * per_index, hbm_row_stride=indices * per_index),
                        reads=[slot["out"]], writes=[out.buf])
    lw.unstage(*[buf for slot in slots for buf in slot.values()])


# ---- helpers ------------------------------------------------------------------------------------

def _view(shape: tuple[int, ...], axis: int) -> tuple[int, int, int]:
    """(outer, n, inner): the [outer, n, inner] view of `shape` along `axis`."""
    if not shape:
        return 1, 1, 1
    return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])


def _used(lw: Lowerer, name: str) -> bool:
    return bool(name) and lw.uses.get(name, 0) > 0


def _in_type_of(lw: Lowerer, x: Value, out: Value) -> Value:
    """x in the element type of `out` (the op writes its input's type): x itself, or a CONVERTed
    copy when a Cast was folded into its consumers (a bf16 value read as the fp32 it was cast to)."""
    if (x.bits, x.precision) == (out.bits, out.precision):
        return x
    if out.precision not in _FLOATS or out.bits != out.precision.bits:
        raise LoweringError(f"{lw.where()}: input {x.name!r} is {x.bits}-bit {x.precision.label}, the output "
                            f"{out.name!r} {out.bits}-bit {out.precision.label}; the op writes its input's type")
    name = f"{x.name}@{out.precision.label}"
    buf = lw.alloc(max(1, math.ceil(x.numel * out.bits / 8)), name)
    converted = Value(name, buf, buf.addr, x.shape, out.bits, out.precision)
    source = Precision.INT64 if x.bits == 64 else x.precision
    row_len = x.shape[-1] if x.shape else 1
    run_steps(lw, [(VectorOp.CONVERT, "elem", "in0", "in0", "out", int(source))], [x], converted,
              max(1, x.numel // max(row_len, 1)), row_len)
    return converted


def _drop(lw: Lowerer, x: Value, source: Value) -> None:
    """Free a converted copy (`_in_type_of`) once the op has read it."""
    if x is not source:
        _free(lw, x.buf)


def _free(lw: Lowerer, buf: Buf) -> None:
    (lw.sram if buf.space == "sram" else lw.hbm).release(buf)


def _element_precision(lw: Lowerer, value: Value) -> Precision:
    """The ISA element type of `value` for a selection op (int64 tensors as INT64)."""
    if value.bits == 64:
        return Precision.INT64
    if value.bits in (16, 32) and (value.precision in _FLOATS or value.precision == Precision.INT32):
        return value.precision
    raise LoweringError(f"{lw.where()}: {value.bits}-bit {value.precision.label} input {value.name!r}; selection "
                        "ops run on fp32, fp16, bf16, int32 or int64")


def _gather_precision(table: Value) -> Precision:
    """A VECTOR_GATHER element type as wide as the table's elements (a copy moves bits, whatever they mean)."""
    if table.bits == 64:
        return Precision.INT64
    if table.bits <= 8:
        return Precision.INT8
    if table.precision.bits == table.bits:
        return table.precision
    return {16: Precision.FP16, 32: Precision.INT32}[table.bits]


def _index_flag(lw: Lowerer, out: Value) -> int:
    if out.bits not in (32, 64):
        raise LoweringError(f"{lw.where()}: index output {out.name!r} has {out.bits}-bit elements; indices are "
                            "written as int32 or int64")
    return INDEX_INT64 if out.bits == 64 else 0


def _constant_int(lw: Lowerer, node: Node, position: int) -> int:
    name = node.inputs[position]
    const = lw.graph.constants.get(name)
    if const is None:
        raise LoweringError(f"{node.describe()}: input {name!r} must be a compile-time constant")
    return int(np.asarray(const.value()).reshape(-1)[0])
