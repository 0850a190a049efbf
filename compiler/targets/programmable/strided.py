"""Strided copies between views of tensors: the data movement of Transpose, Slice, Concat, Pad
and Tile, in SRAM or HBM, with the instructions the ISA has for it.

A `View` names elements by a multi-index: element i lies at byte `addr + sum(i[k] * strides[k])
* elem_bytes` of its buffer (strides in elements; 0 repeats an element, as an Expand does;
negative walks backwards). A move copies every element of one view to the same index of
another. Unit axes are dropped and neighbouring axes contiguous in both views merged; then:

  SRAM -> SRAM  VECTOR_2D COPY over a grid: columns contiguous in the destination (contiguous or
                repeated in the source), rows at any stride in both; one more axis is a LOOP when
                it advances both views by the same bytes (a LOOP has one stride for all operands);
                other axes are written out, one instruction per index. One contiguous run is a
                plain VECTOR COPY.
  HBM <-> SRAM  DMA rows of the innermost run contiguous in both views (HBM rows at any pitch, SRAM
                rows dense), one more axis as a LOOP (HBM and SRAM strides apart), the rest written
                out. Runs shorter than a 64-byte line are not moved row by row (each row would still
                occupy a line of the transfer, which DMA costs do not charge): the HBM span covering
                them moves densely through an SRAM tile and VECTOR_2D picks the rows out of it; a
                store into a span it does not cover whole loads that span first, so the bytes
                between its rows keep their values. Short rows go by DMA only while their lines
                come to at most SHORT_ROW_BYTES (a span more than SPAN_WASTE times the bytes used
                is not moved); beyond that the move is refused. The dense span is also taken when
                it needs fewer instructions than the rows (more than FEW_TRANSFERS transfers).
  HBM -> HBM    through SRAM, loaded then stored, in chunks of the outermost axis (two tiles in turn).

COPY in fp32 moves 32-bit words whatever they hold (int32, either half of an int64); 16-bit
elements move as bf16 (or their own float type). `plan_fill` writes one value into every element
of a view: FILL of one element, then a VECTOR_2D COPY whose source strides are all 0 (in HBM: an
SRAM tile filled so, then DMA-stored as often as the view repeats it).

Every cost is the instructions' own (costs/dma.py, costs/vector.py). A move needing more than
MOVE_INSTRUCTION_LIMIT written-out instructions, or a stride wider than its field, raises
Unmovable before anything is emitted: the caller times it as a copy and records it as not
value-exact.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from compiler.targets.programmable.arena import ALIGN_BYTES
from compiler.targets.programmable.context import Lowerer, StagingFull, Value
from compiler.targets.programmable.emitter import Buf
from compiler.targets.programmable.isa import (
    DmaLoad,
    DmaStore,
    Precision,
    Vector,
    Vector2D,
    VectorOp,
    bits_f32,
    f32_bits,
)

MOVE_INSTRUCTION_LIMIT = 64  # written-out instructions one move may take before it is timed as a copy
LINE_BYTES = ALIGN_BYTES  # a DMA row shorter than this still occupies a whole line
SPAN_WASTE = 4  # a covering span may move at most this many times the bytes it is used for
FEW_TRANSFERS = 8  # DMA transfers a move takes before a dense span through SRAM is considered
SHORT_ROW_BYTES = 1 << 16  # lines that DMA rows shorter than a line may occupy in one move (bytes)
_GRID_LIMIT = (1 << 20) - 1  # VECTOR_2D rows, cols and strides
_VECTOR_LENGTH_LIMIT = (1 << 24) - 1
_VECTOR_LOOP_LIMIT = 1 << 24
_DMA_ROW_LIMIT = 1 << 24  # rows and row_bytes fields
_DMA_CHUNK_BYTES = 1 << 23
_HBM_STRIDE_LIMIT = 1 << 32  # hbm_row_stride
_HBM_LOOP_LIMIT = 1 << 40
_SRAM_LOOP_LIMIT = 1 << 32
_FLOATS = (Precision.FP32, Precision.BF16, Precision.FP16)
_FILL_TYPES = {np.dtype("float32"): Precision.FP32, np.dtype("float16"): Precision.FP16}


class Unmovable(Exception):
    """A move the instructions cannot express within their fields and the instruction limit."""


@dataclass(frozen=True)
class View:
    """Elements of `shape` in `buf`: index i at byte addr + sum(i[k] * strides[k]) * elem_bytes."""

    buf: Buf
    addr: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]  # elements
    elem_bytes: int

    @property
    def space(self) -> str:
        return self.buf.space

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def part(self, axis: int, start: int, count: int, step: int = 1) -> View:
        """Indices start, start + step, ... (count of them) along `axis`."""
        shape = self.shape[:axis] + (count,) + self.shape[axis + 1:]
        strides = self.strides[:axis] + (self.strides[axis] * step,) + self.strides[axis + 1:]
        return replace(self, addr=self.addr + start * self.strides[axis] * self.elem_bytes, shape=shape,
                       strides=strides)

    def permuted(self, perm: list[int]) -> View:
        return replace(self, shape=tuple(self.shape[a] for a in perm), strides=tuple(self.strides[a] for a in perm))

    def span(self) -> tuple[int, int]:
        """[first byte, last byte + 1) the view touches."""
        low = sum(min(0, (n - 1) * s) for n, s in zip(self.shape, self.strides))
        high = sum(max(0, (n - 1) * s) for n, s in zip(self.shape, self.strides))
        return self.addr + low * self.elem_bytes, self.addr + (high + 1) * self.elem_bytes


def dense_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, running = [0] * len(shape), 1
    for axis in reversed(range(len(shape))):
        strides[axis] = running
        running *= shape[axis]
    return tuple(strides)


def dense(value: Value, shape: tuple[int, ...] | None = None) -> View:
    """`value`'s bytes read row-major (as `shape`, by default its own)."""
    if value.bits % 8:
        raise Unmovable(f"{value.bits}-bit elements are not byte-addressable")
    shape = tuple(value.shape if shape is None else shape) or (1,)
    return View(value.buf, value.addr, shape, dense_strides(shape), value.bits // 8)


def buffer_view(buf: Buf, shape: tuple[int, ...], elem_bytes: int) -> View:
    shape = tuple(shape) or (1,)
    return View(buf, buf.addr, shape, dense_strides(shape), elem_bytes)


def reshaped_strides(shape: tuple[int, ...], strides: tuple[int, ...],
                     new_shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """Strides that read `new_shape` (same element count, row-major order) from a strided view,
    or None when a new axis would span old axes that are not contiguous with each other."""
    old = [(n, s) for n, s in zip(shape, strides) if n != 1]
    new_axes = [a for a, n in enumerate(new_shape) if n != 1]
    result = [0] * len(new_shape)
    oi = ni = 0
    while ni < len(new_axes) and oi < len(old):
        nj, oj = ni + 1, oi + 1
        n_size, o_size = new_shape[new_axes[ni]], old[oi][0]
        while n_size != o_size:
            if n_size < o_size:
                n_size *= new_shape[new_axes[nj]]
                nj += 1
            else:
                o_size *= old[oj][0]
                oj += 1
        if any(old[k][1] != old[k + 1][1] * old[k + 1][0] for k in range(oi, oj - 1)):
            return None
        running = old[oj - 1][1]
        for k in reversed(range(ni, nj)):
            result[new_axes[k]] = running
            running *= new_shape[new_axes[k]]
        ni, oi = nj, oj
    return tuple(result)


def broadcast_strides(shape: tuple[int, ...], strides: tuple[int, ...],
                      out_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Strides of a view broadcast (numpy rules: right-aligned) to `out_shape`: 0 where repeated."""
    offset = len(out_shape) - len(shape)
    result = []
    for axis, n in enumerate(out_shape):
        source = axis - offset
        result.append(0 if source < 0 or (shape[source] == 1 and n != 1) else strides[source])
    return tuple(result)


@dataclass
class Plan:
    """Instructions to emit (closures) and the SRAM tiles they use: planned first, so that a move
    the ISA cannot express is refused before anything is emitted."""

    steps: list[Callable[[], None]] = field(default_factory=list)
    staged: list[Buf] = field(default_factory=list)

    def run(self, lw: Lowerer) -> None:
        for step in self.steps:
            step()
        self.cancel(lw)

    def cancel(self, lw: Lowerer) -> None:
        lw.unstage(*self.staged)
        self.staged = []

    def unstage(self, lw: Lowerer, buf: Buf) -> None:
        self.staged.remove(buf)
        lw.unstage(buf)

    def stage(self, lw: Lowerer, nbytes: int, name: str) -> Buf:
        try:
            buf = lw.staging(nbytes, name)
        except StagingFull as error:
            raise Unmovable(f"its {nbytes}-byte SRAM tile does not fit") from error
        self.staged.append(buf)
        return buf


def move(lw: Lowerer, src: View, dst: View, precision: Precision) -> None:
    """Copy every element of `src` to the same index of `dst` (raises Unmovable, emitting nothing)."""
    plan = Plan()
    plan_move(lw, plan, src, dst, precision)
    plan.run(lw)


def plan_move(lw: Lowerer, plan: Plan, src: View, dst: View, precision: Precision) -> None:
    """Add the instructions of a move to `plan` (on Unmovable, `plan` is cancelled)."""
    try:
        _plan_move(lw, plan, src, dst, precision)
    except Unmovable:
        plan.cancel(lw)
        raise


def _plan_move(lw: Lowerer, plan: Plan, src: View, dst: View, precision: Precision) -> None:
    if src.shape != dst.shape or src.elem_bytes != dst.elem_bytes:
        raise Unmovable(f"moving {src.shape} x {src.elem_bytes} B into {dst.shape} x {dst.elem_bytes} B: local shapes "
                        "or element sizes differ (tensor parallel, mixed precisions)")
    if src.numel == 0:
        return
    src, dst = simplified(src, dst)
    if src.space == "sram" and dst.space == "sram":
        plan.steps += _grid_steps(lw, src, dst, precision)[0]
    elif src.space == "hbm" and dst.space == "sram":
        _plan_load(lw, plan, src, dst, precision)
    elif src.space == "sram":
        _plan_store(lw, plan, src, dst, precision)
    else:
        _plan_through_sram(lw, plan, src, dst, precision)


def simplified(*views: View) -> tuple[View, ...]:
    """The same views with unit axes dropped and neighbours contiguous in every view merged."""
    shape = views[0].shape
    keep = [a for a, n in enumerate(shape) if n != 1] or [len(shape) - 1]
    sizes = [shape[a] for a in keep]
    strides = [[v.strides[a] for a in keep] for v in views]
    merged_sizes, merged = [sizes[0]], [[s[0]] for s in strides]
    for k in range(1, len(sizes)):
        if all(m[-1] == s[k] * sizes[k] for m, s in zip(merged, strides)):
            merged_sizes[-1] *= sizes[k]
            for m, s in zip(merged, strides):
                m[-1] = s[k]
        else:
            merged_sizes.append(sizes[k])
            for m, s in zip(merged, strides):
                m.append(s[k])
    return tuple(replace(v, shape=tuple(merged_sizes), strides=tuple(m)) for v, m in zip(views, merged))


def _as_words(view: View) -> View:
    """An 8-byte element as two 32-bit words (a trailing axis)."""
    if view.elem_bytes != 8:
        return view
    return replace(view, shape=view.shape + (2,), strides=tuple(2 * s for s in view.strides) + (1,), elem_bytes=4)


def _grid_precision(lw: Lowerer, precision: Precision, elem_bytes: int) -> Precision:
    if elem_bytes == 4:
        return Precision.FP32
    if elem_bytes == 2:
        return precision if precision in (Precision.BF16, Precision.FP16) else Precision.BF16
    lw.inexact(f"{lw.where()}: {elem_bytes}-byte elements are moved by vector ops that have no such type "
               "(timed only)")
    return precision


def _largest(axes: list[int], sizes: tuple[int, ...], fits: Callable[[int], bool]) -> int | None:
    best = None
    for axis in axes:
        if fits(axis) and (best is None or sizes[axis] > sizes[best]):
            best = axis
    return best


Steps = tuple[list[Callable[[], None]], int]  # closures to run, and the instructions they execute


def _attempt(make: Callable[..., Steps], *args) -> Steps | None:
    try:
        return make(*args)
    except Unmovable:
        return None


def _grid_steps(lw: Lowerer, src: View, dst: View, precision: Precision) -> Steps:
    """SRAM -> SRAM: VECTOR_2D COPY grids (a VECTOR COPY for one contiguous run)."""
    src, dst = simplified(_as_words(src), _as_words(dst))
    e = src.elem_bytes
    shape, a, d = src.shape, src.strides, dst.strides
    if len(shape) == 1 and a[0] == 1 and d[0] == 1:  # one contiguous run

        def run() -> None:
            kind = _grid_precision(lw, precision, e)
            for first in range(0, shape[0], _VECTOR_LENGTH_LIMIT):
                length = min(_VECTOR_LENGTH_LIMIT, shape[0] - first)
                lw.emit(Vector(op=VectorOp.COPY, precision=kind, src_a=src.addr + first * e, src_b=src.addr + first * e,
                               dst=dst.addr + first * e, length=length), reads=[src.buf], writes=[dst.buf])

        return [run], -(-shape[0] // _VECTOR_LENGTH_LIMIT)
    axes = list(range(len(shape)))
    last = axes[-1]
    cols, col_step = 1, 1
    if d[last] == 1 and a[last] in (0, 1) and shape[last] <= _GRID_LIMIT:
        cols, col_step = shape[last], a[last]
        axes.remove(last)
    rows_axis = _largest(axes, shape, lambda k: 0 <= a[k] <= _GRID_LIMIT and 0 <= d[k] <= _GRID_LIMIT
                         and shape[k] <= _GRID_LIMIT)
    rest = [k for k in axes if k != rows_axis]
    loop_axis = _largest(rest, shape, lambda k: a[k] == d[k] and 0 <= a[k] * e < _VECTOR_LOOP_LIMIT)
    written = [k for k in rest if k != loop_axis]
    count = math.prod(shape[k] for k in written)
    if count > MOVE_INSTRUCTION_LIMIT:
        raise Unmovable(f"needing {count} strided copies")
    rows = shape[rows_axis] if rows_axis is not None else 1
    a_rows, d_rows = (a[rows_axis], d[rows_axis]) if rows_axis is not None else (0, 0)
    loop = shape[loop_axis] if loop_axis is not None else 1
    step = a[loop_axis] * e if loop_axis is not None else 0

    def run() -> None:
        kind = _grid_precision(lw, precision, e)
        for index in itertools.product(*(range(shape[k]) for k in written)):
            a0 = src.addr + sum(i * a[k] for i, k in zip(index, written)) * e
            d0 = dst.addr + sum(i * d[k] for i, k in zip(index, written)) * e

            def one(i: int, a0: int = a0, d0: int = d0) -> None:
                lw.emit(Vector2D(op=VectorOp.COPY, precision=kind, src_a=a0 + i * step, src_b=a0 + i * step,
                                 dst=d0 + i * step, rows=rows, cols=cols, a_row_stride=a_rows, dst_row_stride=d_rows,
                                 a_col_step=col_step), reads=[src.buf], writes=[dst.buf])

            lw.loop(loop, one)

    return [run], count * loop


def _run_elems(hbm: View, sram: View) -> int:
    """Elements of the innermost run contiguous in both views (1 when there is none)."""
    return hbm.shape[-1] if hbm.strides[-1] == 1 and sram.strides[-1] == 1 else 1


def _dma_steps(lw: Lowerer, hbm: View, sram: View, load: bool) -> Steps:
    """HBM <-> SRAM as DMA rows: the contiguous run, a rows axis dense in SRAM, one LOOP axis."""
    e = hbm.elem_bytes
    shape, h, s = list(hbm.shape), list(hbm.strides), list(sram.strides)
    axes = list(range(len(shape)))
    run = _run_elems(hbm, sram)
    if run > 1:
        axes.remove(len(shape) - 1)
    if run * e > _DMA_CHUNK_BYTES:  # a row is at most 2**24 - 1 bytes: cut the run into rows
        piece = 1 << (_DMA_CHUNK_BYTES // e).bit_length() - 1
        if run % piece:  # whole rows of `piece` elements, then the rest of the run
            last, whole = len(shape) - 1, run - run % piece
            first_part = _dma_steps(lw, hbm.part(last, 0, whole), sram.part(last, 0, whole), load)
            rest_part = _dma_steps(lw, hbm.part(last, whole, run - whole), sram.part(last, whole, run - whole), load)
            return first_part[0] + rest_part[0], first_part[1] + rest_part[1]
        shape.append(run // piece)
        h.append(piece)
        s.append(piece)
        axes.append(len(shape) - 1)
        run = piece
    row_bytes = run * e
    rows_axis = _largest(axes, tuple(shape), lambda k: s[k] == run and 0 <= h[k] * e < _HBM_STRIDE_LIMIT
                         and shape[k] < _DMA_ROW_LIMIT)
    rest = [k for k in axes if k != rows_axis]
    loop_axis = _largest(rest, tuple(shape),
                         lambda k: 0 <= h[k] * e < _HBM_LOOP_LIMIT and 0 <= s[k] * e < _SRAM_LOOP_LIMIT)
    written = [k for k in rest if k != loop_axis]
    count = math.prod(shape[k] for k in written)
    if count > MOVE_INSTRUCTION_LIMIT:
        raise Unmovable(f"needing {count} DMA transfers")
    rows = shape[rows_axis] if rows_axis is not None else 1
    transfers = count * math.prod(shape[k] for k in rest if k == loop_axis) * rows
    if row_bytes < LINE_BYTES and transfers * LINE_BYTES > SHORT_ROW_BYTES:
        # each short row still occupies a line of the transfer, which DMA costs do not charge
        raise Unmovable(f"moving {transfers} rows of {row_bytes} bytes by DMA")
    row_stride = h[rows_axis] * e if rows_axis is not None else row_bytes
    loop = shape[loop_axis] if loop_axis is not None else 1
    h_step, s_step = (h[loop_axis] * e, s[loop_axis] * e) if loop_axis is not None else (0, 0)
    kind = DmaLoad if load else DmaStore

    def run_dma() -> None:
        for index in itertools.product(*(range(shape[k]) for k in written)):
            h0 = hbm.addr + sum(i * h[k] for i, k in zip(index, written)) * e
            s0 = sram.addr + sum(i * s[k] for i, k in zip(index, written)) * e

            def one(i: int, h0: int = h0, s0: int = s0) -> None:
                instruction = kind(hbm_addr=h0 + i * h_step, sram_addr=s0 + i * s_step, rows=rows, row_bytes=row_bytes,
                                   hbm_row_stride=row_stride)
                reads, writes = ([hbm.buf], [sram.buf]) if load else ([sram.buf], [hbm.buf])
                lw.emit(instruction, reads=reads, writes=writes)

            lw.loop(loop, one)

    return [run_dma], count * loop


def _dense_dma(lw: Lowerer, hbm: Buf, hbm_addr: int, tile: Buf, nbytes: int, load: bool) -> Callable[[], None]:
    """`nbytes` between HBM and the start of an SRAM tile, in rows of at most 8 MiB."""

    def run() -> None:
        row = min(nbytes, _DMA_CHUNK_BYTES)
        rows, rest = divmod(nbytes, row)
        kind = DmaLoad if load else DmaStore
        reads, writes = ([hbm], [tile]) if load else ([tile], [hbm])
        for count, offset, size in ((rows, 0, row), (1 if rest else 0, rows * row, rest)):
            if count:
                lw.emit(kind(hbm_addr=hbm_addr + offset, sram_addr=tile.addr + offset, rows=count, row_bytes=size,
                             hbm_row_stride=size), reads=reads, writes=writes)

    return run


def _short_runs(hbm: View, sram: View) -> bool:
    run_bytes = _run_elems(hbm, sram) * hbm.elem_bytes
    return run_bytes < LINE_BYTES and len(hbm.shape) > 1


def _plan_load(lw: Lowerer, plan: Plan, src: View, dst: View, precision: Precision) -> None:
    """HBM -> SRAM: DMA rows straight into place, or the covering span loaded densely and picked
    apart by VECTOR_2D when its rows are short or that takes fewer instructions."""
    direct = _attempt(_dma_steps, lw, src, dst, True)
    if direct is None or direct[1] > FEW_TRANSFERS or _short_runs(src, dst):
        low, high = src.span()
        tile = _span_tile(lw, plan, src, low, high)
        if tile is not None:
            grid = _attempt(_grid_steps, lw, replace(src, buf=tile, addr=tile.addr + src.addr - low), dst, precision)
            loads = -(-(high - low) // _DMA_CHUNK_BYTES)
            if grid is not None and (direct is None or _short_runs(src, dst) or grid[1] + loads < direct[1]):
                plan.steps.append(_dense_dma(lw, src.buf, low, tile, high - low, load=True))
                plan.steps += grid[0]
                return
            plan.unstage(lw, tile)
    if direct is None:
        _dma_steps(lw, src, dst, True)  # raises why
    plan.steps += direct[0]


def _plan_store(lw: Lowerer, plan: Plan, src: View, dst: View, precision: Precision) -> None:
    """SRAM -> HBM: DMA rows straight into place, or laid out by VECTOR_2D in a tile of the
    covering span and stored densely (that span loaded first unless the move covers it whole)."""
    direct = _attempt(_dma_steps, lw, dst, src, False)
    if direct is None or direct[1] > FEW_TRANSFERS or _short_runs(dst, src):
        low, high = dst.span()
        tile = _span_tile(lw, plan, dst, low, high)
        if tile is not None:
            grid = _attempt(_grid_steps, lw, src, replace(dst, buf=tile, addr=tile.addr + dst.addr - low), precision)
            whole = high - low == dst.numel * dst.elem_bytes
            transfers = -(-(high - low) // _DMA_CHUNK_BYTES) * (1 if whole else 2)
            if grid is not None and (direct is None or _short_runs(dst, src) or grid[1] + transfers < direct[1]):
                if not whole:  # the bytes between its rows keep their values
                    plan.steps.append(_dense_dma(lw, dst.buf, low, tile, high - low, load=True))
                plan.steps += grid[0]
                plan.steps.append(_dense_dma(lw, dst.buf, low, tile, high - low, load=False))
                return
            plan.unstage(lw, tile)
    if direct is None:
        _dma_steps(lw, dst, src, False)  # raises why
    plan.steps += direct[0]


def _span_tile(lw: Lowerer, plan: Plan, view: View, low: int, high: int) -> Buf | None:
    """An SRAM tile for the HBM span [low, high) of `view`, when it is not much larger than the
    bytes the move uses and fits the staging budget."""
    if high - low > SPAN_WASTE * view.numel * view.elem_bytes or high - low > lw.staging_budget():
        return None
    try:
        return plan.stage(lw, high - low, "move:span")
    except Unmovable:
        return None


def _ordered(buf: Buf, shape: tuple[int, ...], order: list[int], elem_bytes: int) -> View:
    """A dense tile holding `shape` with its axes laid out outermost-first in `order`."""
    strides, running = [0] * len(shape), 1
    for axis in reversed(order):
        strides[axis] = running
        running *= shape[axis]
    return View(buf, buf.addr, shape, tuple(strides), elem_bytes)


def _plan_through_sram(lw: Lowerer, plan: Plan, src: View, dst: View, precision: Precision) -> None:
    """HBM -> HBM: chunks of the outermost axis loaded into SRAM and stored, two tiles in turn so
    that one chunk's load overlaps the previous chunk's store. A tile is laid out in the order of
    the destination or of the source, whichever takes fewer DMA transfers."""
    e = src.elem_bytes
    per_index = math.prod(src.shape[1:]) * e
    budget = lw.staging_budget()
    if per_index > budget:
        raise Unmovable(f"{per_index} bytes per index of its outer axis exceed the SRAM staging budget")
    chunk = min(src.shape[0], max(1, budget // per_index))
    if chunk < src.shape[0]:  # two tiles: each half the budget
        chunk = max(1, budget // 2 // per_index)
    chunks = -(-src.shape[0] // chunk)
    if chunks > MOVE_INSTRUCTION_LIMIT:
        raise Unmovable(f"needing {chunks} chunks through SRAM")
    tiles = [plan.stage(lw, chunk * per_index, f"move:through{i}") for i in range(min(chunks, 2))]
    rank = len(src.shape)
    orders = [list(range(rank)), sorted(range(rank), key=lambda axis: -abs(src.strides[axis]))]

    def transfers(order: list[int]) -> float:
        staged = _ordered(tiles[0], (chunk,) + src.shape[1:], order, e)
        counts = [_attempt(_dma_steps, lw, *simplified(a, b), load) for a, b, load in (
            (src.part(0, 0, chunk), staged, True), (dst.part(0, 0, chunk), staged, False))]
        return sum(c[1] if c is not None else math.inf for c in counts)

    order = min(orders, key=transfers)
    for index, first in enumerate(range(0, src.shape[0], chunk)):
        count = min(chunk, src.shape[0] - first)
        staged = _ordered(tiles[index % len(tiles)], (count,) + src.shape[1:], order, e)
        _plan_load(lw, plan, *simplified(src.part(0, first, count), staged), precision)
        _plan_store(lw, plan, *simplified(staged, dst.part(0, first, count)), precision)


def fill_word(value: float | int, dtype: np.dtype) -> tuple[Precision, int, int]:
    """(precision, imm, word bytes) of a FILL writing `value` as `dtype` elements, whose bytes it
    repeats; raises Unmovable for a value FILL cannot write exactly."""
    dtype = np.dtype(dtype)
    pattern = np.asarray(value).astype(dtype).tobytes()
    if dtype.itemsize in (4, 8):
        words = {pattern[i:i + 4] for i in range(0, len(pattern), 4)}
        word = int.from_bytes(words.pop(), "little")
        if words or (math.isnan(bits_f32(word)) and dtype != np.dtype("float32")):
            raise Unmovable(f"fill value {value!r} as {dtype} repeats no single 32-bit word")
        return Precision.FP32, word, 4
    if dtype.itemsize == 2 and dtype.kind == "f" or dtype.name == "bfloat16":
        return (Precision.FP16 if dtype == np.dtype("float16") else Precision.BF16), f32_bits(float(value)), 2
    raise Unmovable(f"fill of {dtype} elements (FILL writes 16- or 32-bit floats)")


def plan_fill(lw: Lowerer, plan: Plan, dst: View, value: float | int, dtype: np.dtype) -> None:
    """Write `value` into every element of `dst`: in SRAM, FILL one element, then a VECTOR_2D COPY
    that reads it with all strides 0; in HBM, an SRAM tile filled so and DMA-stored over the view
    as often as it repeats (on Unmovable, `plan` is cancelled)."""
    try:
        _plan_fill(lw, plan, dst, value, dtype)
    except Unmovable:
        plan.cancel(lw)
        raise


def _plan_fill(lw: Lowerer, plan: Plan, dst: View, value: float | int, dtype: np.dtype) -> None:
    if dst.numel == 0:
        return
    precision, imm, word = fill_word(value, dtype)
    if word != dst.elem_bytes:  # an int64 pattern of equal words: fill the words
        dst = replace(_as_words(dst), elem_bytes=word)
    if dst.space != "sram":
        (dst,) = simplified(dst)
        trailing = len(dst.shape)  # the tile holds the trailing axes that fit half the staging budget
        while trailing > 0 and math.prod(dst.shape[trailing - 1:]) * word <= lw.staging_budget() // 2:
            trailing -= 1
        if trailing == len(dst.shape):
            raise Unmovable("a fill whose innermost axis exceeds the SRAM staging budget")
        tile_shape = dst.shape[trailing:]
        tile = plan.stage(lw, math.prod(tile_shape) * word, "fill:tile")
        _plan_fill(lw, plan, buffer_view(tile, tile_shape, word), value, dtype)
        repeated = View(tile, tile.addr, dst.shape, (0,) * trailing + dense_strides(tile_shape), word)
        plan.steps += _dma_steps(lw, dst, repeated, False)[0]
        return
    scratch = plan.stage(lw, word, "fill")
    source = View(scratch, scratch.addr, dst.shape, (0,) * len(dst.shape), word)
    grid, _ = _grid_steps(lw, *simplified(source, dst), precision)
    plan.steps.append(lambda: lw.emit(Vector(op=VectorOp.FILL, precision=precision, src_a=scratch.addr,
                                             dst=scratch.addr, length=1, imm=imm), writes=[scratch]))
    plan.steps += grid
