"""Run a recipe of vector steps over an op's elements: in place in SRAM, or streamed through SRAM
slots when an operand or the output lives in HBM (see vector.py for the recipes).

A step is (op, kind, a, b, dst[, imm]): kind "elem" covers every element, "row" one value per
row, "reduce" reduces rows of `row_len`. Operands name the inputs ("in0".."in2"), the output
("out"), an elementwise scratch ("tmp") and a per-row scratch ("row").

Layouts. When every input is whole, one value per row, one row repeated or a scalar on the
caller's rows x row_len grid, that grid is used as it is. Otherwise (elementwise steps only)
each input is read through its numpy broadcast to the output (broadcast.py, Expand views
included); the axes every operand walks as one are merged, and each step is emitted over its
own merged axes: one VECTOR when all its operands are dense, else VECTOR_2D grids [rows, cols]
(cols: the output's last axis; rows: its largest other axis; a row stride and a column step of
0 or 1 per operand), one per index of the axes beyond two: a LOOP over one of them when every
operand moves by the same bytes per index (src_b may stay put), the others written out. An
*_IMM op on a repeated operand copies it into place first.

Element types. A node computes in one precision (`precision`, else its output's type). An
input of another kind (an integer of another width, integer vs float, bool) is CONVERTed into a
scratch of the compute type first, at its own size (a broadcast condition once, not once per
output element), chunk by chunk when it streams; an output of another kind is computed in a
scratch ("res") and CONVERTed into place. Float precisions mix without a pass (a bf16 operand
of an fp32 op converts as it loads). Bools are one byte holding 0 or 1 (int8), int64 values
8-byte integers: what memory images hold for graph inputs and outputs.

Streaming. The merged output is cut into chunks along one axis (the first, or the first after
which at most CHUNK_ELEMENTS elements remain); a chunk covers every index of the axes before
it. An HBM operand that moves along the chunk axis streams through two SRAM slots, fetched with
one DMA per chunk (a row per index of the outer axes it moves along, once for those it does not:
a mask shared by every head is read once per chunk, not once per head); one that does not move
along it is loaded once ("held", its own bytes, not the broadcast). Operands the grid cannot
express at all (shapes that are not broadcasts: a caller's stand-in for a slice, a pad or a
sharded operand) are timed as a pass over the output, and recorded.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from compiler.targets.programmable.broadcast import (
    Strides,
    collapse,
    contiguous,
    extent,
    is_dense,
    operand_strides,
)
from compiler.targets.programmable.context import Lowerer, StagingFull, Value
from compiler.targets.programmable.emitter import Buf
from compiler.targets.programmable.isa import (
    DmaLoad,
    DmaStore,
    Precision,
    Vector,
    Vector2D,
    VectorOp,
    f32_bits,
)
from compiler.targets.programmable.options import LoweringError
from simulator.programmable.costs.vector import BINARY_OPS

V = VectorOp
E, R, D = "elem", "row", "reduce"
LENGTH_LIMIT = (1 << 24) - 1
DMA_CHUNK_BYTES = 1 << 23  # a streamed chunk is one DMA row (row_bytes is a 24-bit field)
GRID_LIMIT = (1 << 20) - 1  # VECTOR_2D rows, cols and strides are 20-bit fields
OUTER_LIMIT = 4096  # grids one step may write out before it is timed as one pass instead
CHUNK_ELEMENTS = 1 << 20  # at most this many elements per index of the chunked axis (DMA rows, lengths)
Step = tuple  # (VectorOp, kind, a, b, dst) or (VectorOp, kind, a, b, dst, imm)

FLOATS = frozenset({Precision.FP32, Precision.BF16, Precision.FP16})
_ANY_FLOAT = FLOATS | {Precision.FP8}
_INTEGER_BY_BITS = {8: Precision.INT8, 32: Precision.INT32, 64: Precision.INT64}
IMMEDIATE_OPS = frozenset({V.ADD_IMM, V.MUL_IMM, V.MAX_IMM, V.MIN_IMM, V.FILL})
_COMMUTATIVE = frozenset({V.ADD, V.MUL, V.MAX, V.MIN, V.CMP_EQ})
_MODE_STRIDES = {"row": (1, 0), "col": (0, 1), "scalar": (0, 0)}


def storage(value: Value) -> Precision:
    """The element type `value` is stored in: its float precision, else the integer of its width
    (bool: int8 bytes of 0 / 1; int64: 8-byte integers)."""
    if value.precision in _ANY_FLOAT:
        return value.precision
    return _INTEGER_BY_BITS.get(value.bits, value.precision)


def same_kind(a: Precision, b: Precision) -> bool:
    """Values of `a` are read as `b` without a CONVERT pass (float precisions convert on load)."""
    return a == b or (a in _ANY_FLOAT and b in _ANY_FLOAT)


@dataclass(frozen=True)
class _Grid:
    dims: tuple[int, ...]            # (..., the axis chunks cut, ..., rows, cols)
    layouts: dict[str, Strides | None]  # per input; None: not a broadcast of the output (a stand-in)
    legacy: bool                     # the caller's rows x row_len grid, steps emitted on it as they are
    chunk_axis: int = 0              # chunks cut this axis; the ones before it go an index at a time


def run_steps(lw: Lowerer, steps: Sequence[Step], inputs: list[Value], out: Value, rows: int, row_len: int,
              precision: Precision | None = None, layouts: dict[int, Strides] | None = None) -> None:
    """Emit `steps` over rows x row_len elements computed in `precision` (default: the output's
    type); `layouts` gives an input's element strides over out.shape where it is not a plain
    broadcast (an einsum operand read in another axis order)."""
    refs = {f"in{i}": v for i, v in enumerate(inputs)}
    compute = storage(out) if precision is None else precision
    grid = _grid(lw, steps, refs, out, rows, row_len, layouts or {})
    steps, converts = _typed(lw, list(steps), refs, out, compute, grid)
    prec = {name: compute if name in converts else storage(v) for name, v in refs.items()}
    prec.update({"out": storage(out), "tmp": compute, "row": compute, "res": compute})
    lays: dict[str, Strides | None] = dict(grid.layouts)
    dense = contiguous(grid.dims)
    lays.update({"out": dense, "tmp": dense, "res": dense, "row": (1, 0)})
    run = _Run(lw, steps, refs, out, grid, compute, prec, lays, converts)
    if any(v.space == "hbm" for v in refs.values()) or out.space == "hbm":
        run.streamed()
    else:
        run.in_place()


def operand_mode(value: Value, rows: int, row_len: int) -> str | None:
    """How an operand covers a rows x row_len grid: "full" (every element), "row" (one value per
    row), "col" (one row repeated), "scalar", or None (not one of these)."""
    count = rows * row_len
    if value.broadcast:
        return None
    n = value.numel
    if n == count:
        return "full"
    if n == 1:
        return "scalar"
    shape = value.shape
    if n == row_len and shape and shape[-1] == row_len:
        return "col"
    if n == rows and (not shape or shape[-1] == 1):
        return "row"
    return None


def _grid(lw: Lowerer, steps: Sequence[Step], refs: dict[str, Value], out: Value, rows: int, row_len: int,
          given: dict[int, Strides]) -> _Grid:
    modes = {name: operand_mode(v, rows, row_len) for name, v in refs.items()}
    if not given and all(mode is not None for mode in modes.values()):
        if row_len > GRID_LIMIT and any(mode in ("row", "col") for mode in modes.values()):
            lw.gap("VECTOR broadcast operand")
        return _Grid((rows, row_len), {name: _MODE_STRIDES.get(mode, (row_len, 1)) for name, mode in modes.items()},
                     legacy=True)
    if all(step[1] == E for step in steps) and out.numel == rows * row_len:
        shape = tuple(out.shape)
        layouts = {name: given[int(name[2:])] if int(name[2:]) in given else operand_strides(lw, v, shape)
                   for name, v in refs.items()}
        bad = [name for name, strides in layouts.items() if strides is None]
        if not bad:
            names = list(layouts)
            dims, merged = collapse(shape, [contiguous(shape)] + [layouts[name] for name in names])
            pad = max(0, 2 - len(dims))
            dims = (1,) * pad + dims
            cap = max(1, min(CHUNK_ELEMENTS, lw.staging_budget() // 64))
            axis = next(j for j in range(len(dims)) if math.prod(dims[j + 1:]) <= cap)
            return _Grid(dims, {name: (0,) * pad + s for name, s in zip(names, merged[1:])}, legacy=False,
                         chunk_axis=axis)
        for name in bad:
            value = refs[name]
            if value.broadcast:
                lw.gap("VECTOR broadcast operand")  # an Expand view whose strides could not be traced
            else:
                lw.inexact(f"{lw.where()}: operand {value.name!r} {tuple(value.shape)} is not a broadcast of the "
                           f"output {tuple(out.shape)}: timed as a pass over the output")
    else:
        lw.gap("VECTOR broadcast operand")
    return _Grid((rows, row_len), {name: None if mode is None else _MODE_STRIDES.get(mode, (row_len, 1))
                                   for name, mode in modes.items()}, legacy=True)


def _typed(lw: Lowerer, steps: list[Step], refs: dict[str, Value], out: Value, compute: Precision,
           grid: _Grid) -> tuple[list[Step], dict[str, Precision]]:
    """The steps with the output CONVERTed from the compute type when it is of another kind, and
    the inputs to CONVERT into the compute type first (name -> the type they are stored in)."""
    converts: dict[str, Precision] = {}
    for i, step in enumerate(steps):
        op, a = step[0], step[2]
        if op is V.CONVERT:
            layout = grid.layouts.get(a)
            if a in refs and layout is not None and not is_dense(grid.dims, layout):
                # CONVERT takes no strides: convert the operand at its own size, then copy it out
                converts[a] = Precision(step[5]) if len(step) > 5 else storage(refs[a])
                steps[i] = (V.COPY, step[1], a, a, step[4])
            continue
        reads = (a, step[3]) if op in BINARY_OPS else (a,)
        for name in reads:
            if name in refs and not same_kind(storage(refs[name]), compute) and grid.layouts.get(name) is not None:
                converts.setdefault(name, storage(refs[name]))
    if not same_kind(storage(out), compute):
        steps = [step[:2] + tuple("res" if ref == "out" else ref for ref in step[2:5]) + step[5:] for step in steps]
        steps.append((V.CONVERT, E, "res", "res", "out"))
    return steps, converts


class _Run:
    """One run_steps call: its staging, chunks and emission.

    A chunk is rows [r0, r0 + n) of the chunk axis c for every index of the axes before it
    ("outer"): an operand that moves along the outer axes is fetched with one multi-row DMA per
    chunk (a row per outer index), one that does not with a single row."""

    def __init__(self, lw: Lowerer, steps: list[Step], refs: dict[str, Value], out: Value, grid: _Grid,
                 compute: Precision, prec: dict[str, Precision], lays: dict[str, Strides | None],
                 converts: dict[str, Precision]) -> None:
        self.lw, self.steps, self.refs, self.out, self.grid = lw, steps, refs, out, grid
        self.compute, self.prec, self.lays, self.converts = compute, prec, lays, converts
        self.needs = {ref for step in steps for ref in step[2:5]}
        c = self.c = grid.chunk_axis
        self.outer, self.first, self.inner = grid.dims[:c], grid.dims[c], math.prod(grid.dims[c + 1:])
        self.count = math.prod(self.outer)  # outer indices in every chunk
        self.elem = max(4, compute.bits // 8)  # scratch bytes per element (4, as float scratch always was)

    def _dims(self, n: int) -> tuple[int, ...]:
        return (*self.outer, n, *self.grid.dims[self.c + 1:])

    def _scratch_lays(self, n: int) -> dict[str, Strides | None]:
        dense = contiguous(self._dims(n))
        return {"out": dense, "tmp": dense, "res": dense, "row": self.lays["row"]}

    # ---- in place ---------------------------------------------------------------------------
    def in_place(self) -> None:
        """Every operand in SRAM: rows are cut into pieces when the scratch for all of them does
        not fit; converted inputs are converted once, whole."""
        lw, first, inner, c = self.lw, self.first, self.inner, self.c
        converted = lw.stage_all({f"cvt:{n}": self._extent_bytes(n) for n in self.converts})
        for name, buf in converted.items():
            self._convert(self.refs[name[4:]], buf, name[4:])
        per_row = self.count * inner
        scratch_per_row = self.elem * per_row * ("tmp" in self.needs) + self.elem * ("row" in self.needs) \
            + self.elem * per_row * ("res" in self.needs)
        chunk_rows = max(1, min(first, LENGTH_LIMIT // max(per_row, 1), GRID_LIMIT,
                                lw.staging_budget() // max(scratch_per_row, 1)))
        while True:
            try:
                scratch = self._scratch(chunk_rows)
                break
            except StagingFull:
                if chunk_rows == 1:
                    raise
                chunk_rows = max(1, chunk_rows // 2)
        out_c = contiguous(self.grid.dims)[c]
        for r0 in range(0, first, chunk_rows):
            n = min(chunk_rows, first - r0)
            where = {}
            for name, v in self.refs.items():
                if name in self.converts:
                    buf = converted[f"cvt:{name}"]
                    where[name] = (buf, buf.addr + self._offset(name, r0, self.compute.bits, n))
                else:
                    where[name] = (v.buf, v.addr + self._offset(name, r0, v.bits, n))
            where["out"] = (self.out.buf, self.out.addr + math.ceil(r0 * out_c * self.out.bits / 8))
            where.update({k: (b, b.addr) for k, b in scratch.items()})
            lays = {name: self.lays[name] for name in self.refs} | self._scratch_lays(n)
            lays["out"] = contiguous(self.grid.dims)
            self._emit(where, self._dims(n), lays, loop_ok=True)
        lw.unstage(*scratch.values(), *converted.values())

    # ---- streamed ---------------------------------------------------------------------------
    def streamed(self) -> None:
        """HBM operands stream through SRAM slots in pairs, chunked along the chunk axis."""
        lw, refs, out, first, inner, c = self.lw, self.refs, self.out, self.first, self.inner, self.c
        dims = self.grid.dims
        full, partial, held = [], [], []
        rows: dict[str, tuple[int, int, Strides]] = {}  # streamed name -> _outer_walk
        for name, v in refs.items():
            if v.space != "hbm":
                continue
            lay = self.lays[name]
            walk = None if lay is None else _outer_walk(self.outer, lay[:c])
            if walk is not None and is_dense(dims[c:], lay[c:]) and (lay[c] > 0 or first == 1):
                full.append(name)
            elif walk is not None and lay[c] > 0 and first > 1 and extent(dims[c + 1:], lay[c + 1:]) <= lay[c]:
                partial.append(name)
            else:
                held.append(name)
                continue
            rows[name] = walk
        streams = full + partial
        stream_out = out.space == "hbm"
        out_rows = self.count, first * inner  # the output is dense: one DMA row per outer index
        budget = lw.staging_budget()
        bytes_per_row = sum(2 * rows[n][0] * _row_bytes(refs[n], inner) for n in full) + sum(
            (2 * rows[n][0] * self.lays[n][c] * refs[n].bits) // 8 + 1 for n in partial)
        bytes_per_row += (2 * self.count * _row_bytes(out, inner) if stream_out else 0) \
            + 4 * self.count * inner * ("tmp" in self.needs) + 8
        bytes_per_row += sum(self.elem * rows[n][0] * max(self.lays[n][c], 1) for n in streams if n in self.converts)
        bytes_per_row += self.elem * self.count * inner * ("res" in self.needs)
        widest = max([_row_bytes(refs[n], inner) for n in full] + ([_row_bytes(out, inner)] if stream_out else [1]))
        chunk_rows = max(1, min(first, budget // max(bytes_per_row, 1), LENGTH_LIMIT // max(self.count * inner, 1),
                                GRID_LIMIT, DMA_CHUNK_BYTES // widest))
        if chunk_rows * bytes_per_row > max(budget, 1) * 2:
            raise LoweringError(f"{lw.where()}: one row of {inner} elements needs {bytes_per_row} bytes of "
                                f"SRAM staging; {budget} bytes are free")
        while True:  # the largest chunk whose tiles all fit the free SRAM
            sizes = {f"{name}{i}": rows[name][0] * self._chunk_bytes(name, chunk_rows)
                     for name in streams for i in range(2)}
            sizes.update({f"held:{name}": min(self._held_bytes(name), max(budget // 4, 64), DMA_CHUNK_BYTES)
                          for name in held})
            if stream_out:
                sizes.update({f"out{i}": max(1, math.ceil(self.count * chunk_rows * inner * out.bits / 8))
                              for i in range(2)})
            if "tmp" in self.needs:
                sizes["tmp"] = self.elem * self.count * chunk_rows * inner
            if "row" in self.needs:
                sizes["row"] = self.elem * chunk_rows
            for name in self.converts:
                count = (rows[name][0] * chunk_rows * max(self.lays[name][c], 1) if name in streams
                         else extent(dims, self.lays[name]))
                sizes[f"cvt:{name}"] = self.elem * max(count, 1)
            if "res" in self.needs:
                sizes["res"] = self.elem * self.count * chunk_rows * inner
            try:
                staged = lw.stage_all(sizes)
                break
            except StagingFull:
                if chunk_rows == 1:
                    raise
                chunk_rows = max(1, chunk_rows // 2)
        slots = {name: [staged[f"{name}{i}"] for i in range(2)] for name in streams}
        held_bufs = {name: staged[f"held:{name}"] for name in held}
        out_slots = [staged[f"out{i}"] for i in range(2)] if stream_out else []
        scratch = {k: staged[k] for k in ("tmp", "row", "res") if k in staged}
        converted = {name: staged[f"cvt:{name}"] for name in self.converts}
        for name, buf in held_bufs.items():  # operands the chunks share: fetched once (their first bytes if large)
            if buf.nbytes < self._held_bytes(name):
                lw.inexact(f"{lw.where()}: broadcast operand {refs[name].name!r} is larger than its SRAM slot "
                           "(only its first bytes are fetched)")
            lw.emit(DmaLoad(hbm_addr=refs[name].addr, sram_addr=buf.addr, rows=1, row_bytes=buf.nbytes,
                            hbm_row_stride=buf.nbytes), reads=[refs[name].buf], writes=[buf])
        for name, buf in converted.items():  # held and SRAM operands converted once, before the chunks
            if name not in streams:
                self._convert(refs[name], buf, name, held_bufs.get(name))

        if first > chunk_rows and (not stream_out or any(
                name not in streams and self.lays[name] is not None and self.lays[name][c] > 0 for name in refs)):
            lw.inexact(f"{lw.where()}: an SRAM operand of an op streamed in chunks is read at its first chunk's "
                       "address in every chunk")

        def chunk(number: int, slot: int, n: int) -> None:
            r0 = number * chunk_rows
            where: dict[str, tuple[Buf, int]] = {k: (b, b.addr) for k, b in scratch.items()}
            lays = self._scratch_lays(n)
            for name, value in refs.items():
                lay = self.lays[name]
                if name in slots:
                    buf = slots[name][slot]
                    count, stride, units = rows[name]
                    nbytes = self._chunk_bytes(name, n)
                    lw.emit(DmaLoad(hbm_addr=value.addr + self._offset(name, r0, value.bits, n), sram_addr=buf.addr,
                                    rows=count, row_bytes=nbytes,
                                    hbm_row_stride=math.ceil(stride * value.bits / 8) if count > 1 else nbytes),
                            reads=[value.buf], writes=[buf])
                    where[name] = (buf, buf.addr)
                    run = n * max(lay[c], 1)  # elements of one outer index in the slot
                    lays[name] = tuple(run * u for u in units) + lay[c:]
                    if name in converted:
                        self._convert_span(buf, buf.addr, self.converts[name], converted[name],
                                           converted[name].addr, count * run)
                        where[name] = (converted[name], converted[name].addr)
                    continue
                lays[name] = lay
                if name in converted:
                    where[name] = (converted[name], converted[name].addr)
                elif name in held_bufs:
                    where[name] = (held_bufs[name], held_bufs[name].addr)
                else:  # SRAM operand of a streamed op: a fixed address (one VECTOR stride per loop)
                    where[name] = (value.buf, value.addr)
            if stream_out:
                where["out"] = (out_slots[slot], out_slots[slot].addr)
            else:  # an SRAM output keeps its own strides (a fixed address, as SRAM operands)
                where["out"], lays["out"] = (out.buf, out.addr), contiguous(dims)
            self._emit(where, self._dims(n), lays, loop_ok=False)
            if stream_out:
                nbytes = max(1, math.ceil(n * inner * out.bits / 8))
                count, stride = out_rows
                lw.emit(DmaStore(hbm_addr=out.addr + math.ceil(r0 * inner * out.bits / 8),
                                 sram_addr=out_slots[slot].addr, rows=count, row_bytes=nbytes,
                                 hbm_row_stride=math.ceil(stride * out.bits / 8) if count > 1 else nbytes),
                        reads=[out_slots[slot]], writes=[out.buf])

        full_chunks, rest = divmod(first, chunk_rows)

        def body(i: int) -> None:
            chunk(2 * i, 0, chunk_rows)
            chunk(2 * i + 1, 1, chunk_rows)

        lw.loop(full_chunks // 2, body)
        if full_chunks % 2:
            chunk(full_chunks - 1, 0, chunk_rows)
        if rest:
            chunk(full_chunks, full_chunks % 2, rest)
        lw.unstage(*[b for pair in slots.values() for b in pair], *held_bufs.values(), *out_slots,
                   *scratch.values(), *converted.values())

    # ---- sizes and offsets --------------------------------------------------------------------
    def _offset(self, name: str, r0: int, bits: int, n: int) -> int:
        """Byte offset of chunk row r0 (of n rows) in input `name` (elements of `bits`)."""
        lay = self.lays[name]
        if lay is None:
            return _stand_in_offset(self.refs[name], r0, n, self.grid.dims)
        return math.ceil(r0 * lay[self.c] * bits / 8)

    def _chunk_bytes(self, name: str, n: int) -> int:
        """Bytes of one outer index of a chunk of n rows (one DMA row)."""
        return max(1, math.ceil(n * max(self.lays[name][self.c], 1) * self.refs[name].bits / 8))

    def _held_bytes(self, name: str) -> int:
        lay, value = self.lays[name], self.refs[name]
        if lay is None:
            return value.nbytes
        return max(1, math.ceil(extent(self.grid.dims, lay) * value.bits / 8))

    def _extent_bytes(self, name: str) -> int:
        return self.elem * max(1, extent(self.grid.dims, self.lays[name]))

    def _scratch(self, rows: int) -> dict[str, Buf]:
        per_row = self.count * self.inner
        sizes = {name: nbytes for name, nbytes in (("tmp", self.elem * rows * per_row), ("row", self.elem * rows),
                                                    ("res", self.elem * rows * per_row)) if name in self.needs}
        return self.lw.stage_all(sizes)

    # ---- conversions ----------------------------------------------------------------------------
    def _convert(self, value: Value, dst: Buf, name: str, source: Buf | None = None) -> None:
        """Input `name` (in SRAM, or its held copy `source`) CONVERTed whole into `dst`."""
        count = extent(self.grid.dims, self.lays[name])
        src_buf, src_addr = (source, source.addr) if source is not None else (value.buf, value.addr)
        self._convert_span(src_buf, src_addr, self.converts[name], dst, dst.addr, count)

    def _convert_span(self, src: Buf, src_addr: int, src_prec: Precision, dst: Buf, dst_addr: int,
                      count: int) -> None:
        done = 0
        while done < count:
            length = min(LENGTH_LIMIT, count - done)
            self.lw.emit(Vector(op=V.CONVERT, precision=self.compute, src_a=src_addr + done * src_prec.bits // 8,
                                src_b=src_addr, dst=dst_addr + done * self.compute.bits // 8, length=length,
                                imm=int(src_prec)), reads=[src], writes=[dst])
            done += length

    # ---- emission -------------------------------------------------------------------------------
    def _emit(self, where: dict[str, tuple[Buf, int]], dims: tuple[int, ...], lays: dict[str, Strides | None],
              loop_ok: bool) -> None:
        """Every step over `dims`, each operand at `where` read through its strides in `lays`."""
        self.sub = lays
        for step in self.steps:
            op, kind, a, b, dst = step[:5]
            a = a if a in where else "in0"  # an optional input left out (Clip without a bound) reads in0
            b = b if b in where else "in0"
            precision = self.prec[dst] if op is V.CONVERT else self.compute
            if op is V.CONVERT:
                imm_bits = int(step[5]) if len(step) > 5 else int(self.prec[a])
            elif len(step) > 5:
                imm_bits = f32_bits(step[5]) if precision in _ANY_FLOAT else int(step[5]) & 0xFFFFFFFF
            else:
                imm_bits = 0
            if kind != E:
                length = dims[0] if kind == R else dims[0] * dims[1]
                self._vector(op, precision, where[a], where[b], where[dst], length, dims[1] if kind == D else 1,
                             imm_bits)
            elif self.grid.legacy:
                self._legacy(op, precision, a, b, dst, where, dims, imm_bits)
            else:
                self._grids(op, precision, a, b, dst, where, dims, imm_bits, loop_ok)

    def _vector(self, op: VectorOp, precision: Precision, a: tuple, b: tuple, d: tuple, length: int,
                row_len: int, imm: int) -> None:
        self.lw.emit(Vector(op=op, precision=precision, src_a=a[1], src_b=b[1], dst=d[1], length=length,
                            row_len=row_len, imm=imm), reads=[a[0], b[0]], writes=[d[0]])

    def _legacy(self, op: VectorOp, precision: Precision, a: str, b: str, dst: str, where: dict,
                dims: tuple[int, ...], imm: int) -> None:
        """A step on the caller's rows x row_len grid: one VECTOR, or one VECTOR_2D."""
        rows, row_len = dims
        full = (row_len, 1)
        la, lb = self.sub.get(a, full), self.sub.get(b, full) if op in BINARY_OPS else full
        if (la == full and lb == full) or None in (la, lb) or row_len > GRID_LIMIT or precision is Precision.FP8:
            self._vector(op, precision, where[a], where[b], where[dst], rows * row_len, 1, imm)
            return
        if op in IMMEDIATE_OPS or op is V.CONVERT:  # no immediate on VECTOR_2D: copy into place first
            self._copy_then(op, precision, a, dst, where, dims, imm, loop_ok=False)
            return
        (a_buf, a_addr), (b_buf, b_addr), (d_buf, d_addr) = where[a], where[b], where[dst]
        self.lw.emit(Vector2D(op=op, precision=precision, src_a=a_addr, src_b=b_addr, dst=d_addr, rows=rows,
                              cols=row_len, a_row_stride=la[0], a_col_step=la[1], b_row_stride=lb[0],
                              b_col_step=lb[1], dst_row_stride=row_len),
                     reads=[a_buf, b_buf], writes=[d_buf])

    def _copy_then(self, op: VectorOp, precision: Precision, a: str, dst: str, where: dict, dims: tuple[int, ...],
                   imm: int, loop_ok: bool) -> None:
        if op is V.FILL:  # reads nothing
            self._vector(op, precision, where[dst], where[dst], where[dst], math.prod(dims), 1, imm)
            return
        if op is V.CONVERT:
            raise LoweringError(f"internal: {self.lw.where()}: CONVERT of a repeated operand reached emission")
        if self.grid.legacy:
            self._legacy(V.COPY, precision, a, a, dst, where, dims, 0)
        else:
            self._grids(V.COPY, precision, a, a, dst, where, dims, 0, loop_ok)
        self._vector(op, precision, where[dst], where[dst], where[dst], math.prod(dims), 1, imm)

    def _grids(self, op: VectorOp, precision: Precision, a: str, b: str, dst: str, where: dict,
               dims: tuple[int, ...], imm: int, loop_ok: bool) -> None:
        """A step over merged axes: one VECTOR when dense, else VECTOR_2D grids (module docstring)."""
        binary = op in BINARY_OPS
        b = b if binary else a
        la, lb, ld = self.sub[a], self.sub[b], self.sub[dst]
        merged, (ca, cb, cd) = collapse(dims, [la, lb, ld])
        total = math.prod(dims)
        if is_dense(merged, cd) and (is_dense(merged, ca) and is_dense(merged, cb) or op is V.FILL):
            self._vector(op, precision, where[a], where[b], where[dst], total, 1, imm)
            return
        if op in IMMEDIATE_OPS or op is V.CONVERT:
            self._copy_then(op, precision, a, dst, where, dims, imm, loop_ok)
            return
        pad = max(0, 2 - len(merged))
        merged, ca, cb, cd = (1,) * pad + merged, (0,) * pad + ca, (0,) * pad + cb, (0,) * pad + cd
        # the grid's rows: the largest axis the row-stride fields reach (fewest grids); cols: the last
        candidates = [k for k in range(len(merged) - 1) if max(merged[k], ca[k], cb[k], cd[k]) <= GRID_LIMIT]
        r = max(candidates, key=lambda k: merged[k], default=len(merged) - 2)
        order = [k for k in range(len(merged) - 1) if k != r] + [r, len(merged) - 1]
        merged, ca, cb, cd = (tuple(t[k] for k in order) for t in (merged, ca, cb, cd))
        rows, cols = merged[-2:]
        outer = merged[:-2]
        fits = (max(rows, cols, ca[-2], cb[-2], cd[-2]) <= GRID_LIMIT and ca[-1] in (0, 1) and cb[-1] in (0, 1)
                and cd[-1] == 1 and math.prod(outer) <= OUTER_LIMIT)
        if not fits:
            self.lw.gap("VECTOR broadcast operand")
            self._vector(op, precision, where[a], where[b], where[dst], total, 1, imm)
            return
        eb = {ref: self.prec[ref].bits // 8 if ref not in self.refs or ref in self.converts
              else self.refs[ref].bits // 8 for ref in (a, b, dst)}
        if binary and op in _COMMUTATIVE and outer:
            # the operand that stays put along the loop axis goes to src_b (b_fixed)
            j = max(range(len(outer)), key=lambda k: outer[k])
            if ca[j] == 0 and cb[j] * eb[b] == cd[j] * eb[dst] and cd[j]:
                a, b, ca, cb = b, a, cb, ca
        loop_axis = None
        if loop_ok and outer:
            feasible = [k for k in range(len(outer)) if outer[k] > 1 and ca[k] * eb[a] == cd[k] * eb[dst]
                        and (cb[k] * eb[b] == cd[k] * eb[dst] or (binary and cb[k] == 0))]
            loop_axis = max(feasible, key=lambda k: outer[k], default=None)
        (a_buf, a_addr), (b_buf, b_addr), (d_buf, d_addr) = where[a], where[b], where[dst]
        fixed = binary and loop_axis is not None and cb[loop_axis] == 0

        def one(index: tuple[int, ...]) -> None:
            off = {ref: sum(i * s for i, s in zip(index, strides)) * eb[ref]
                   for ref, strides in ((a, ca), (b, cb), (dst, cd))}
            self.lw.emit(Vector2D(op=op, precision=precision, src_a=a_addr + off[a], src_b=b_addr + off[b],
                                  dst=d_addr + off[dst], rows=rows, cols=cols, a_row_stride=ca[-2],
                                  a_col_step=ca[-1], b_row_stride=cb[-2], b_col_step=cb[-1],
                                  dst_row_stride=cd[-2], b_fixed=fixed),
                         reads=[a_buf, b_buf], writes=[d_buf])

        others = [range(size) if k != loop_axis else range(1) for k, size in enumerate(outer)]
        for index in itertools.product(*others):
            if loop_axis is None:
                one(index)
            else:
                self.lw.loop(outer[loop_axis], lambda i, index=index: one(
                    index[:loop_axis] + (i,) + index[loop_axis + 1:]))


def _outer_walk(outer: tuple[int, ...], strides: Strides) -> tuple[int, int, Strides] | None:
    """How a chunk fetches an operand's runs for every outer index with one DMA: (rows, element
    stride between them in HBM, the runs' strides over the outer axes in the slot). The axes it
    does not move along are fetched once (slot stride 0); the others must merge into one stride
    (None otherwise: an operand the chunks cannot fetch with one DMA)."""
    moving = [axis for axis, (size, stride) in enumerate(zip(outer, strides)) if stride and size != 1]
    if not moving:
        return 1, 0, (0,) * len(outer)
    dims, (merged,) = collapse(tuple(outer[axis] for axis in moving), [tuple(strides[axis] for axis in moving)])
    if len(dims) != 1:
        return None
    units = [0] * len(outer)
    running = 1
    for axis in reversed(moving):
        units[axis] = running
        running *= outer[axis]
    return dims[0], merged[0], tuple(units)


def _row_bytes(value: Value, row_len: int) -> int:
    return math.ceil(row_len * value.bits / 8)


def _stand_in_offset(value: Value, r0: int, n: int, dims: tuple[int, ...]) -> int:
    """Where a stand-in operand (not a broadcast of the output) is read for chunk row r0: whole
    rows when it has them, else its start, never past its end."""
    rows, row_len = dims[0], math.prod(dims[1:])
    if value.broadcast or value.numel < rows:
        return 0
    per = row_len if value.numel >= rows * row_len else 1
    chunk = max(1, math.ceil(n * row_len * value.bits / 8))
    return min(math.ceil(r0 * per * value.bits / 8), max(value.nbytes - chunk, 0))
