"""GEMM kernels: C = A @ B with operands in SRAM or HBM, weights resident or streamed.

Weights are stored pre-packed (a compile-time layout choice): the columns of each DMA chunk
are split into one contiguous [K, cols] block per sub-array, so every weight DMA is one
burst run and every GEMM operand is dense. Operands in HBM are staged through SRAM slots in
pairs, so DMA of the next tile overlaps the GEMM of this one; the emitter turns the slot
hazards into semaphores.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from compiler.targets.programmable.context import Lowerer, StagingFull
from compiler.targets.programmable.emitter import Buf
from compiler.targets.programmable.isa import DmaLoad, DmaStore, Gemm, GemmStrided, Precision
from compiler.targets.programmable.options import LoweringError
from compiler.targets.programmable.tiling import GEMM_DIM_LIMIT, choose_split, pieces, plan_gemm_tiles


@dataclass(frozen=True)
class MatrixRef:
    """A [rows, cols] matrix at `addr` in `buf`: row-major, or (`packed`) in weight-chunk order."""

    buf: Buf
    addr: int
    rows: int
    cols: int
    bits: int
    packed: bool = False

    @property
    def space(self) -> str:
        return self.buf.space

    def nbytes(self, count: int) -> int:
        return math.ceil(count * self.bits / 8)


def emit_gemm(lw: Lowerer, a: MatrixRef, b: MatrixRef, c: MatrixRef, precision: Precision,
              acc_precision: Precision) -> None:
    """C[m, n] = A[m, k] @ B[k, n] (every MAC exactly once), tiled to fit SRAM."""
    m, k, n = a.rows, a.cols, b.cols
    ways = choose_split(lw.chip, m, n, k, precision.label).ways
    stream_a, stream_b, stream_c = a.space == "hbm", b.space == "hbm", c.space == "hbm"
    budget = lw.staging_budget()
    while True:  # the largest tiles whose staging all fits the free SRAM
        tiles = plan_gemm_tiles(m, n, k, a.bits, b.bits, c.bits, stream_a=stream_a, stream_b=stream_b,
                                stream_c=stream_c, ways=ways, budget_bytes=budget)
        kernel = _GemmKernel(lw, a, b, c, precision, acc_precision, ways, tiles.m_block, tiles.n_chunk,
                             tiles.k_chunk)
        try:
            kernel.stage(stream_a, stream_b, stream_c)
            break
        except StagingFull:
            if budget < 1 << 10:
                raise
            budget //= 2
    _note_layouts(lw, kernel, a, b, c)
    kernel.run()


def _note_layouts(lw: Lowerer, kernel: _GemmKernel, a: MatrixRef, b: MatrixRef, c: MatrixRef) -> None:
    """Record a packed weight's piece widths (memory images lay it out that way), and check that
    the row pitches of row-major operands fit GEMM_STRIDED (tiles of several rows that are
    column or K slices of a wider matrix are read and written at their pitch)."""
    n_full, n_rest = divmod(kernel.n, kernel.n_chunk)
    widths = []
    for width in [kernel.n_chunk] * n_full + ([n_rest] if n_rest else []):
        widths += pieces(width, max(kernel.ways, math.ceil(width / GEMM_DIM_LIMIT)))
    if b.packed:
        lw.weight_layout(b.buf.name, widths)
    pitch = max(kernel.k, kernel.n)
    strided = min(kernel.m_block, kernel.m) > 1 or not b.packed
    if strided and pitch >= 1 << dict(GemmStrided.FIELDS)["lda"]:
        raise LoweringError(f"{lw.where()}: GEMM row pitch {pitch} elements does not fit GEMM_STRIDED's "
                            f"{dict(GemmStrided.FIELDS)['lda']}-bit lda/ldb/ldc")


class _GemmKernel:
    def __init__(self, lw: Lowerer, a: MatrixRef, b: MatrixRef, c: MatrixRef, precision: Precision,
                 acc: Precision, ways: int, m_block: int, n_chunk: int, k_chunk: int) -> None:
        self.lw, self.a, self.b, self.c = lw, a, b, c
        self.precision, self.acc, self.ways = precision, acc, ways
        self.m, self.k, self.n = a.rows, a.cols, b.cols
        self.m_block, self.n_chunk, self.k_chunk = m_block, n_chunk, k_chunk
        self.split = ways.bit_length() - 1

    def stage(self, stream_a: bool, stream_b: bool, stream_c: bool) -> None:
        sizes = {}
        if stream_a:
            sizes["a"] = self.a.nbytes(self.m_block * self.k)
        for i in range(2 if stream_b else 0):
            sizes[f"b{i}"] = self.b.nbytes(self.k_chunk * self.n_chunk)
        for i in range(2 if stream_c else 0):
            sizes[f"c{i}"] = self.c.nbytes(self.m_block * self.n_chunk)
        staged = self.lw.stage_all({f"gemm:{name}": nbytes for name, nbytes in sizes.items()})
        self.a_tile = staged.get("gemm:a")
        self.b_slots = [staged[f"gemm:b{i}"] for i in range(2)] if stream_b else []
        self.c_slots = [staged[f"gemm:c{i}"] for i in range(2)] if stream_c else []

    def run(self) -> None:
        lw, a_tile = self.lw, self.a_tile
        for m0 in range(0, self.m, self.m_block):
            rows = min(self.m_block, self.m - m0)
            if a_tile is not None:
                source = self.a.addr + self.a.nbytes(m0 * self.k)
                lw.emit(DmaLoad(hbm_addr=source, sram_addr=a_tile.addr, rows=rows,
                                row_bytes=self.a.nbytes(self.k), hbm_row_stride=self.a.nbytes(self.k)),
                        reads=[self.a.buf], writes=[a_tile])
                a_buf, a_addr = a_tile, a_tile.addr
            else:
                a_buf, a_addr = self.a.buf, self.a.addr + self.a.nbytes(m0 * self.k)
            self.row_block(m0, rows, a_buf, a_addr)
        lw.unstage(*([a_tile] if a_tile else []), *self.b_slots, *self.c_slots)

    def row_block(self, m0: int, rows: int, a_buf: Buf, a_addr: int) -> None:
        n_full, n_rest = divmod(self.n, self.n_chunk)
        k_steps = math.ceil(self.k / self.k_chunk)
        staged = bool(self.b_slots or self.c_slots)
        unroll = 2 if staged else 1
        if k_steps > n_full + (1 if n_rest else 0):
            # long reductions (e.g. P @ V over a long context): loop over K, accumulate
            for j, width in enumerate([self.n_chunk] * n_full + ([n_rest] if n_rest else [])):
                self.reduction_loop(m0, rows, a_buf, a_addr, j, width, k_steps)
            return

        def chunk(j: int, slot: int, width: int) -> None:
            for kk in range(k_steps):
                self.step(m0, rows, a_buf, a_addr, j, slot, width, kk)
            self.store(m0, rows, j, slot, width)

        self.lw.loop(n_full // unroll, _unrolled(chunk, unroll, self.n_chunk))
        for j in range(n_full // unroll * unroll, n_full):
            chunk(j, j % unroll, self.n_chunk)
        if n_rest:
            chunk(n_full, n_full % unroll, n_rest)

    def reduction_loop(self, m0: int, rows: int, a_buf: Buf, a_addr: int, j: int, width: int,
                       k_steps: int) -> None:
        full, rest = divmod(self.k, self.k_chunk)
        unroll = 2 if self.b_slots else 1

        def body(i: int) -> None:
            for u in range(unroll):
                self.step(m0, rows, a_buf, a_addr, j, u, width, i * unroll + u, c_slot=0)

        self.lw.loop(full // unroll, body)
        for kk in range(full // unroll * unroll, k_steps):
            self.step(m0, rows, a_buf, a_addr, j, kk % unroll, width, kk, c_slot=0)
        self.store(m0, rows, j, 0, width)

    def step(self, m0: int, rows: int, a_buf: Buf, a_addr: int, j: int, slot: int, width: int,
             kk: int, c_slot: int | None = None) -> None:
        """One K-chunk of one N-chunk: fetch B if it streams, then one GEMM per sub-array."""
        lw, b = self.lw, self.b
        k0 = kk * self.k_chunk
        depth = min(self.k_chunk, self.k - k0)
        widths = pieces(width, max(self.ways, math.ceil(width / GEMM_DIM_LIMIT)))
        col0 = j * self.n_chunk
        if self.b_slots:
            slot_buf = self.b_slots[slot]
            if b.packed:
                # chunk j holds one [k, w] block per piece; K-chunk kk is `depth` rows of each
                base = b.addr + b.nbytes(col0 * self.k)
                piece_bytes = b.nbytes(self.k * widths[0])
                uniform = len(set(widths)) == 1
                if uniform:
                    lw.emit(DmaLoad(hbm_addr=base + b.nbytes(k0 * widths[0]), sram_addr=slot_buf.addr,
                                    rows=len(widths), row_bytes=b.nbytes(depth * widths[0]),
                                    hbm_row_stride=piece_bytes), reads=[b.buf], writes=[slot_buf])
                else:
                    offset = 0
                    for w in widths:
                        lw.emit(DmaLoad(hbm_addr=base + b.nbytes(offset * self.k + k0 * w),
                                        sram_addr=slot_buf.addr + b.nbytes(offset * depth), rows=1,
                                        row_bytes=b.nbytes(depth * w), hbm_row_stride=b.nbytes(depth * w)),
                                reads=[b.buf], writes=[slot_buf])
                        offset += w
            else:
                lw.emit(DmaLoad(hbm_addr=b.addr + b.nbytes(k0 * self.n + col0), sram_addr=slot_buf.addr,
                                rows=depth, row_bytes=b.nbytes(width), hbm_row_stride=b.nbytes(self.n)),
                        reads=[b.buf], writes=[slot_buf])
            b_buf, b_base = slot_buf, slot_buf.addr
        else:
            b_buf = b.buf
            b_base = b.addr + (b.nbytes(col0 * self.k + k0 * width) if b.packed else b.nbytes(k0 * self.n + col0))
        if self.c_slots:
            c_buf = self.c_slots[slot if c_slot is None else c_slot]
            c_base, ldc = c_buf.addr, width                      # the slot holds [rows, width] row-major
        else:
            c_buf = self.c.buf
            c_base, ldc = self.c.addr + self.c.nbytes(m0 * self.n + col0), self.n
        ldb = width if self.b_slots else self.n                  # a row-major B (packed pieces are dense)
        offset = 0
        for p, w in enumerate(widths):
            accumulate = k0 > 0
            reads = [a_buf, b_buf] + ([c_buf] if accumulate else [])
            shape = dict(m=rows, n=w, k=depth, precision=self.precision, acc_precision=self.acc,
                         accumulate=accumulate, split=self.split, subarray=p % self.ways)
            pitches = dict(lda=self.k, ldb=w if b.packed else ldb, ldc=ldc)
            if _dense(rows, depth, w, **pitches):
                # the rows of every operand are consecutive: the plain GEMM, addressed alike
                instruction = Gemm(a_addr=a_addr + self.a.nbytes(k0), b_addr=b_base + b.nbytes(offset * depth),
                                   c_addr=c_base + self.c.nbytes(offset), **shape)
            else:
                b_addr = b_base + (b.nbytes(offset * depth) if b.packed else b.nbytes(offset))
                instruction = GemmStrided(a_addr=a_addr + self.a.nbytes(k0), b_addr=b_addr,
                                          c_addr=c_base + self.c.nbytes(offset), **shape, **pitches)
            lw.emit(instruction, reads=reads, writes=[c_buf])
            offset += w

    def store(self, m0: int, rows: int, j: int, slot: int, width: int) -> None:
        if not self.c_slots:
            return
        c = self.c
        self.lw.emit(DmaStore(hbm_addr=c.addr + c.nbytes(m0 * self.n + j * self.n_chunk),
                              sram_addr=self.c_slots[slot].addr, rows=rows, row_bytes=c.nbytes(width),
                              hbm_row_stride=c.nbytes(self.n)),
                     reads=[self.c_slots[slot]], writes=[c.buf])


def _dense(rows: int, depth: int, w: int, lda: int, ldb: int, ldc: int) -> bool:
    """Whether A [rows, depth], B [depth, w] and C [rows, w] at these row pitches are dense."""
    return (rows == 1 or lda == depth) and (depth == 1 or ldb == w) and (rows == 1 or ldc == w)


def _unrolled(chunk: Callable[[int, int, int], None], unroll: int, width: int) -> Callable[[int], None]:
    def body(i: int) -> None:
        for u in range(unroll):
            chunk(i * unroll + u, u, width)

    return body


def packed_weight_bytes(rows: int, cols: int, bits: int) -> int:
    """Bytes of a [rows, cols] weight in packed order (a permutation: the same as dense)."""
    return math.ceil(rows * cols * bits / 8)
