"""Functional mode: execute a Program on values (HBM and SRAM byte arrays) — the living definition
of what each instruction computes, which the RTL must match bit for bit.

Order. Instructions take no time here. Each queue still runs in program order and a semaphore
wait still blocks until a signal, so any order this produces is one the hardware could produce;
among the queue heads that may run, the earliest in (loop-expanded) program order goes first. For
a correctly synchronised program every such order gives the same values; a missing dependency
shows up as a difference from the timing engine or the RTL, never as a silent reordering here.

Semantics (little-endian, row-major, addresses in bytes; in loop iteration i every address is
`base + i * its loop stride`):
  DMA_LOAD / DMA_STORE  row r moves `row_bytes` between HBM `hbm_addr + r * hbm_row_stride` and
                        SRAM `sram_addr + r * row_bytes` (a stride of 0 repeats one HBM row).
  GEMM                  C[m,n] (+)= A[m,k] @ B[k,n]. int8 operands accumulate exactly in int32
                        (two's-complement wrap-around, like the RTL's adders); float operands
                        (fp8, bf16, fp16, fp32) multiply and accumulate in float32 and store
                        C in `acc_precision`.
  GEMM_STRIDED          the same product on row-pitched operands: A[i, j] is element i * lda + j
                        from a_addr, B[i, j] element i * ldb + j from b_addr, C[i, j] element
                        i * ldc + j from c_addr; elements of C between its rows are untouched.
                        With transpose_b, B[i, j] is element j * ldb + i.
  VECTOR on int32       COPY, ADD, SUB, MUL wrap modulo 2**32; MAX; SHIFT is an arithmetic right
                        shift by `shift` (floor division by 2**shift); REDUCE_SUM (wraps) and
                        REDUCE_MAX reduce each row of `row_len` elements to one;
                        REQUANT: q = clamp(floor((a * imm) / 2**shift + 1/2), -128, 127), written
                        as int8. `imm` is an unsigned 32-bit scale, a * imm is exact (64-bit:
                        |a * imm| < 2**63), and ties round towards +infinity for negative values
                        too: -2.5 -> -2, -3.5 -> -3, 2.5 -> 3. With shift = 0 it is clamp(a * imm).
  VECTOR on integers    (float programs) int8, int32, int64 lanes: COPY; ADD, SUB, MUL, NEG, ABS,
                        REDUCE_SUM wrap modulo 2**bits; MAX, MIN, REDUCE_MAX; CMP_EQ, CMP_LT,
                        CMP_LE write 1 / 0; SELECT as on floats; IDIV: a / b truncated toward zero
                        (ONNX integer Div), IMOD: a - floor(a / b) * b (the divisor's sign, ONNX Mod
                        fmod=0), both 0 where b = 0; *_IMM and FILL read imm as a signed 32-bit
                        integer; SHIFT as on int32 (REQUANT is int32 only).
  VECTOR on floats      computed in float32 and stored in `precision`: COPY, ADD, SUB, MUL, MAX,
                        MIN, NEG, ABS, EXP, LOG, SIN, COS, RSQRT, RECIPROCAL, SILU (x / (1 + exp(-x))),
                        REDUCE_SUM, REDUCE_MAX; ADD_IMM, MUL_IMM, MAX_IMM, MIN_IMM use float32(imm bits)
                        as b; FILL writes float32(imm bits); CMP_EQ, CMP_LT (a < b),
                        CMP_LE write 1.0 / 0.0; SELECT: dst = b where a != 0, dst unchanged elsewhere.
  CONVERT               reads src_a as Precision(imm) (int8, int32, int64 or a float) and writes
                        `precision`: to a float via float32 (exact for |integers| <= 2**24); to an
                        integer, floats truncate toward zero and integers wrap (numpy astype).
  VECTOR_2D             the same ops, float or integer, over rows x cols: element (r, c) reads
                        a[r * a_row_stride + c * a_col_step], b[r * b_row_stride + c * b_col_step]
                        (element offsets from src_a / src_b) and writes dst[r * dst_row_stride + c];
                        reductions write dst[r * dst_row_stride]. Elements are read before any is
                        written (an in-place op sees its inputs as they were).
  DMA_GATHER            row r copies row_bytes from HBM hbm_addr + index[r] * hbm_row_stride to SRAM
                        sram_addr + r * row_bytes; index[] is int32 (int64 with index_int64) in SRAM
                        at index_addr; an index outside HBM is an error, never a clamp.
                        With table_rows > 0 a negative index counts from the end of the table.
  TOPK, SCAN_SUM,       along one axis (top-k values and/or indices, running sums, product,
  REDUCE_PROD, ARGMAX   arg max/min) exactly as ONNX TopK / CumSum / ReduceProd / ArgMax: see
                        simulator/programmable/selection.py and isa.VectorOp.
  VECTOR_GATHER         rows of a [outer, axis_len, row_len] SRAM table by an SRAM index vector
                        (negative indices from the end); an index outside the axis is an error.
  COLLECTIVE            one chip only here (chips = 1 is a no-op).

Float programs. A program lowered from a float graph runs here when every op it needs has an
instruction: run_functional refuses (naming them) a program whose meta lists `isa_gaps` (ops
timed by stand-ins) or `not_value_exact` (what the lowering knows it computes only for timing).
In float32 the results match the IR interpreter to rounding: tests hold the tiny models'
logits and caches to max |diff| <= 1e-4 * max |reference| (summation order differs: tiled
GEMMs, online softmax over cache blocks, rsqrt then multiply instead of divide).
"""

from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np

from compiler.targets.programmable.isa import (
    SELECTION_OPS,
    Collective,
    DmaGather,
    DmaLoad,
    DmaStore,
    Gemm,
    GemmStrided,
    Instruction,
    Precision,
    Vector,
    Vector2D,
    VectorGather,
    VectorOp,
    bits_f32,
)
from compiler.targets.programmable.program import Program
from simulator.hardware.programmable import ProgrammableChip
from simulator.programmable import selection
from simulator.programmable.costs.vector import BINARY_OPS, REDUCTIONS
from simulator.programmable.plan import QUEUE_ENGINES, Plan
from simulator.programmable.validate import ProgramError, where

DTYPES: dict[Precision, np.dtype] = {
    Precision.INT8: np.dtype("i1"),
    Precision.INT32: np.dtype("<i4"),
    Precision.INT64: np.dtype("<i8"),
    Precision.FP32: np.dtype("<f4"),
    Precision.FP16: np.dtype("<f2"),
    Precision.BF16: np.dtype(ml_dtypes.bfloat16),
    Precision.FP8: np.dtype(ml_dtypes.float8_e4m3fn),
}


class DeadlockError(RuntimeError):
    pass


@dataclass
class FunctionalResult:
    hbm: np.ndarray
    sram: np.ndarray
    executed: int


def requantize(acc: np.ndarray, imm: int, shift: int) -> np.ndarray:
    """int32 -> int8: clamp(floor(acc * imm / 2**shift + 1/2)); see the module docstring."""
    product = acc.astype(np.int64) * np.int64(imm)            # |product| < 2**63: exact in int64
    if shift:
        # floor(p / 2**s + 1/2) = ((p >> (s - 1)) + 1) >> 1, with no overflow for any s <= 63.
        product = ((product >> np.int64(shift - 1)) + 1) >> np.int64(1)
    return np.clip(product, -128, 127).astype(np.int8)


def gemm_int8(a: np.ndarray, b: np.ndarray, c: np.ndarray | None = None, accumulate: bool = False) -> np.ndarray:
    """int8 [m, k] @ int8 [k, n], exact, (+ c when accumulating), wrapped to int32 like the RTL's adders."""
    result = a.astype(np.int64) @ b.astype(np.int64)
    if accumulate:
        result += c.reshape(result.shape)
    return result.astype(np.int32)


class Machine:
    def __init__(self, chip: ProgrammableChip, hbm: np.ndarray | bytes | bytearray | int,
                 sram: np.ndarray | None = None) -> None:
        self.chip = chip
        if isinstance(hbm, int):
            hbm = np.zeros(hbm, dtype=np.uint8)
        self.hbm = np.frombuffer(bytearray(hbm), dtype=np.uint8) if isinstance(hbm, (bytes, bytearray)) else hbm
        if self.hbm.dtype != np.uint8:
            raise TypeError(f"HBM image must be uint8 bytes, got {self.hbm.dtype}")
        if len(self.hbm) > chip.memory.hbm_bytes:
            raise ProgramError(f"HBM image of {len(self.hbm):,} bytes exceeds {chip.name} memory.hbm_bytes "
                               f"{chip.memory.hbm_bytes:,}")
        self.sram = sram if sram is not None else np.zeros(chip.memory.sram_bytes, dtype=np.uint8)

    # ---- memory ---------------------------------------------------------------------------
    def _span(self, mem: np.ndarray, name: str, addr: int, nbytes: int, ctx: str) -> np.ndarray:
        if addr < 0 or addr + nbytes > len(mem):
            raise ProgramError(f"{ctx}: {name} bytes {addr:,}..{addr + nbytes:,} outside the "
                               f"{len(mem):,}-byte memory")
        return mem[addr:addr + nbytes]

    def _array(self, name: str, addr: int, count: int, precision: Precision, ctx: str,
               mem: np.ndarray | None = None) -> np.ndarray:
        dtype = DTYPES.get(precision)
        if dtype is None:
            raise ProgramError(f"{ctx}: functional mode has no {precision.label} values")
        raw = self._span(self.sram if mem is None else mem, name, addr, count * dtype.itemsize, ctx)
        return raw.view(dtype)

    # ---- instructions ---------------------------------------------------------------------
    def execute(self, pc: int, ins: Instruction, it: int) -> None:
        ctx = where(pc, ins) + (f", iteration {it}" if it else "")
        if isinstance(ins, DmaLoad):     # DmaStore too
            self._dma(ins, it, ctx)
        elif isinstance(ins, DmaGather):
            self._gather(ins, ctx)
        elif isinstance(ins, VectorGather):
            self._vector_gather(ins, ctx)
        elif isinstance(ins, Vector2D):
            self._vector_2d(ins, it, ctx)
        elif isinstance(ins, Gemm):
            self._gemm(ins, it, ctx)
        elif isinstance(ins, Vector):
            self._vector(ins, it, ctx)
        elif isinstance(ins, Collective):
            if ins.chips > 1:
                raise ProgramError(f"{ctx}: functional mode runs one chip; a collective over {ins.chips} "
                                   "chips needs the other chips' values")

    def _dma(self, ins: DmaLoad, it: int, ctx: str) -> None:
        hbm_addr = ins.hbm_addr + it * ins.hbm_loop_stride
        sram = self._span(self.sram, "sram_addr", ins.sram_addr + it * ins.sram_loop_stride, ins.nbytes, ctx)
        sram = sram.reshape(ins.rows, ins.row_bytes)
        last = hbm_addr + (ins.rows - 1) * ins.hbm_row_stride + ins.row_bytes
        self._span(self.hbm, "hbm_addr", hbm_addr, last - hbm_addr, ctx)
        rows = [slice(hbm_addr + r * ins.hbm_row_stride, hbm_addr + r * ins.hbm_row_stride + ins.row_bytes)
                for r in range(ins.rows)]
        if isinstance(ins, DmaStore):
            for r, span in enumerate(rows):        # row order matters when rows overlap in HBM
                self.hbm[span] = sram[r]
        else:
            for r, span in enumerate(rows):
                sram[r] = self.hbm[span]

    def _gather(self, ins: DmaGather, ctx: str) -> None:
        index_precision = Precision.INT64 if ins.index_int64 else Precision.INT32
        index = self._array("index_addr", ins.index_addr, ins.rows, index_precision, ctx).astype(np.int64)
        if ins.table_rows:
            try:
                index = selection.wrapped_index(index, ins.table_rows, "index")
            except ValueError as error:
                raise ProgramError(f"{ctx}: {error} (table_rows {ins.table_rows})") from None
        sram = self._span(self.sram, "sram_addr", ins.sram_addr, ins.nbytes, ctx).reshape(ins.rows, ins.row_bytes)
        starts = ins.hbm_addr + index * ins.hbm_row_stride
        bad = (starts < 0) | (starts + ins.row_bytes > len(self.hbm))
        if bad.any():
            r = int(np.argmax(bad))
            raise ProgramError(f"{ctx}: index[{r}] = {int(index[r])} reads HBM bytes {int(starts[r]):,}.."
                               f"{int(starts[r]) + ins.row_bytes:,}, outside the {len(self.hbm):,}-byte memory")
        sram[:] = self.hbm[starts[:, None] + np.arange(ins.row_bytes)[None, :]]

    def _vector_2d(self, ins: Vector2D, it: int, ctx: str) -> None:
        step = it * ins.loop_stride
        dtype = DTYPES.get(ins.precision)
        if ins.precision not in _FLOAT_LANES | _INTEGER_LANES:
            raise ProgramError(f"{ctx}: VECTOR_2D runs on floats (fp32, fp16, bf16) or int8, int32, int64, "
                               f"not {ins.precision.label}")
        if ins.op in _IMMEDIATE or ins.op is VectorOp.CONVERT:
            raise ProgramError(f"{ctx}: {ins.op.name} takes an immediate; VECTOR_2D has none (use VECTOR)")
        rows, cols = np.arange(ins.rows, dtype=np.int64), np.arange(ins.cols, dtype=np.int64)

        def grid(name: str, base: int, row_stride: int, col_step: int, width: int) -> tuple[np.ndarray, np.ndarray]:
            offsets = rows[:, None] * row_stride + cols[None, :width] * col_step
            count = int(offsets.max()) + 1 if offsets.size else 0
            return self._array(name, base, count, ins.precision, ctx), offsets

        a_mem, a_idx = grid("src_a", ins.src_a + step, ins.a_row_stride, ins.a_col_step, ins.cols)
        a = a_mem[a_idx]
        b = None
        if ins.op in BINARY_OPS:
            b_base = ins.src_b + (0 if ins.b_fixed else step)
            b_mem, b_idx = grid("src_b", b_base, ins.b_row_stride, ins.b_col_step, ins.cols)
            b = b_mem[b_idx]
        reduce = ins.op in REDUCTIONS
        d_mem, d_idx = grid("dst", ins.dst + step, ins.dst_row_stride, 1, 1 if reduce else ins.cols)
        old = d_mem[d_idx] if ins.op is VectorOp.SELECT else None
        shaped = Vector(op=ins.op, precision=ins.precision, length=ins.rows * ins.cols, row_len=max(ins.cols, 1))
        lanes = _int_vector if ins.precision in _INTEGER_LANES else _float_vector
        result = lanes(ins.op, a.reshape(-1), None if b is None else b.reshape(-1), shaped, ctx,
                       None if old is None else old.reshape(-1))
        d_mem[d_idx] = result.astype(dtype).reshape(d_idx.shape)

    def _matrix(self, name: str, addr: int, rows: int, cols: int, pitch: int, precision: Precision,
                ctx: str) -> np.ndarray:
        """A [rows, cols] view of SRAM whose rows start `pitch` elements apart (writable)."""
        count = (rows - 1) * pitch + cols if rows and cols else 0
        flat = self._array(name, addr, count, precision, ctx)
        if pitch == cols:
            return flat.reshape(rows, cols)
        return np.lib.stride_tricks.as_strided(flat, shape=(rows, cols),
                                               strides=(pitch * flat.itemsize, flat.itemsize))

    def _gemm(self, ins: Gemm, it: int, ctx: str) -> None:
        if isinstance(ins, GemmStrided):
            lda, ldb, ldc = ins.lda, ins.ldb, ins.ldc
        else:
            lda, ldb, ldc = ins.k, ins.n, ins.n
        a = self._matrix("a_addr", ins.a_addr + it * ins.a_loop_stride, ins.m, ins.k, lda, ins.precision, ctx)
        if isinstance(ins, GemmStrided) and ins.transpose_b:
            b = self._matrix("b_addr", ins.b_addr, ins.n, ins.k, ldb, ins.precision, ctx).T
        else:
            b = self._matrix("b_addr", ins.b_addr + it * ins.b_loop_stride, ins.k, ins.n, ldb, ins.precision, ctx)
        c = self._matrix("c_addr", ins.c_addr + it * ins.c_loop_stride, ins.m, ins.n, ldc, ins.acc_precision, ctx)
        if ins.precision == Precision.INT8:
            if ins.acc_precision != Precision.INT32:
                raise ProgramError(f"{ctx}: int8 GEMM accumulates in int32, not {ins.acc_precision.label}")
            c[:] = gemm_int8(a, b, c, ins.accumulate)
        else:
            result = a.astype(np.float32) @ b.astype(np.float32)
            if ins.accumulate:
                result += c.astype(np.float32)
            c[:] = result.astype(c.dtype)

    def _vector_gather(self, ins: VectorGather, ctx: str) -> None:
        dtype = DTYPES.get(ins.precision)
        if dtype is None:
            raise ProgramError(f"{ctx}: VECTOR_GATHER has no {ins.precision.label} elements")
        index_precision = Precision.INT64 if ins.index_int64 else Precision.INT32
        index = self._array("index_addr", ins.index_addr, ins.count, index_precision, ctx)
        table = self._array("src", ins.src, ins.outer * ins.axis_len * ins.row_len, ins.precision, ctx)
        try:
            rows = selection.gather(ins, table, index)
        except ValueError as error:
            raise ProgramError(f"{ctx}: {error} (axis_len {ins.axis_len})") from None
        self._array("dst", ins.dst, ins.length, ins.precision, ctx)[:] = rows

    def _selection(self, ins: Vector, it: int, ctx: str) -> None:
        """TOPK, SCAN_SUM, REDUCE_PROD, ARGMAX: see simulator/programmable/selection.py."""
        problem = selection.check(ins)
        if problem:
            raise ProgramError(f"{ctx}: {problem}")
        step = it * ins.loop_stride
        a = self._array("src_a", ins.src_a + step, ins.length, ins.precision, ctx).copy()
        for name, result in selection.run(ins, a).items():
            out = self._span(self.sram, name, getattr(ins, name) + step, result.nbytes, ctx)
            out[:] = np.ascontiguousarray(result).view(np.uint8).reshape(-1)

    def _vector(self, ins: Vector, it: int, ctx: str) -> None:
        if ins.op in SELECTION_OPS:
            self._selection(ins, it, ctx)
            return
        step = it * ins.loop_stride
        op = ins.op
        source = Precision(ins.imm) if op is VectorOp.CONVERT and ins.imm in Precision._value2member_map_ else None
        if op is VectorOp.CONVERT and source is None:
            raise ProgramError(f"{ctx}: CONVERT source precision imm = {ins.imm} is not a Precision")
        a = self._array("src_a", ins.src_a + step, ins.length, ins.precision if source is None else source, ctx)
        b = (self._array("src_b", ins.src_b + step, ins.length, ins.precision, ctx)
             if op in BINARY_OPS else None)
        old = self._array("dst", ins.dst + step, ins.length, ins.precision, ctx) if op is VectorOp.SELECT else None
        if op is VectorOp.CONVERT:
            result = _convert(a, ins.precision, ctx)
        elif ins.precision in _INTEGER_LANES:
            result = _int_vector(op, a, b, ins, ctx, old)
        elif ins.precision in _FLOAT_LANES:
            result = _float_vector(op, a, b, ins, ctx, old).astype(DTYPES[ins.precision])
        else:
            raise ProgramError(f"{ctx}: vector ops run on int8, int32, int64 or floats (fp32, fp16, bf16), "
                               f"not {ins.precision.label}")
        dst = self._span(self.sram, "dst", ins.dst + step, result.nbytes, ctx)
        dst[:] = np.ascontiguousarray(result).view(np.uint8)


_INTEGER_LANES = frozenset({Precision.INT8, Precision.INT32, Precision.INT64})
_FLOAT_LANES = frozenset({Precision.FP32, Precision.FP16, Precision.BF16})


def _int_vector(op: VectorOp, a: np.ndarray, b: np.ndarray | None, ins: Vector, ctx: str,
                old: np.ndarray | None = None) -> np.ndarray:
    """Integer lanes of a's width; int32 ADD, SUB, MUL, SHIFT, REDUCE_SUM wrap exactly as the RTL's."""
    dtype = a.dtype
    wide = a.astype(np.int64)
    if op is VectorOp.COPY:
        return a.copy()
    if op is VectorOp.ADD:
        return (wide + b).astype(dtype)
    if op is VectorOp.SUB:
        return (wide - b).astype(dtype)
    if op is VectorOp.MUL:
        return (wide * b).astype(dtype)
    if op is VectorOp.MAX:
        return np.maximum(a, b)
    if op is VectorOp.SHIFT:
        return (wide >> np.int64(ins.shift)).astype(dtype)
    if op is VectorOp.REQUANT and dtype == np.int32:
        return requantize(a, ins.imm, ins.shift)
    if op is VectorOp.REDUCE_SUM:
        return wide.reshape(-1, ins.row_len).sum(axis=1).astype(dtype)
    if op is VectorOp.REDUCE_MAX:
        return a.reshape(-1, ins.row_len).max(axis=1)
    imm = np.int64(np.uint32(ins.imm).astype(np.int32)) if op in _IMMEDIATE else None
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        table = {
            VectorOp.MIN: lambda: np.minimum(a, b),
            VectorOp.NEG: lambda: (-wide).astype(dtype),
            VectorOp.ABS: lambda: np.abs(wide).astype(dtype),
            VectorOp.CMP_EQ: lambda: (a == b).astype(dtype),
            VectorOp.CMP_LT: lambda: (a < b).astype(dtype),
            VectorOp.CMP_LE: lambda: (a <= b).astype(dtype),
            VectorOp.SELECT: lambda: np.where(a != 0, b, old),
            VectorOp.IDIV: lambda: _truncated_div(wide, b.astype(np.int64)).astype(dtype),
            VectorOp.IMOD: lambda: np.mod(wide, b.astype(np.int64)).astype(dtype),
            VectorOp.ADD_IMM: lambda: (wide + imm).astype(dtype),
            VectorOp.MUL_IMM: lambda: (wide * imm).astype(dtype),
            VectorOp.MAX_IMM: lambda: np.maximum(wide, imm).astype(dtype),
            VectorOp.MIN_IMM: lambda: np.minimum(wide, imm).astype(dtype),
            VectorOp.FILL: lambda: np.full(a.shape, imm).astype(dtype),
        }
        if op not in table:
            raise ProgramError(f"{ctx}: {op.name} has no integer form")
        return np.asarray(table[op](), dtype=dtype)


def _truncated_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b rounded toward zero (floor division, one back where the signs differ); 0 where b = 0."""
    q = np.floor_divide(a, b)
    return q + ((np.remainder(a, b) != 0) & ((a < 0) != (b < 0))).astype(q.dtype)


def _convert(a: np.ndarray, precision: Precision, ctx: str) -> np.ndarray:
    """CONVERT: floats via float32; integers by numpy's cast (truncation toward zero, wrap-around)."""
    if precision in _FLOAT_LANES:
        return a.astype(np.float32).astype(DTYPES[precision])
    if precision in _INTEGER_LANES:
        with np.errstate(invalid="ignore", over="ignore"):
            return a.astype(DTYPES[precision])
    raise ProgramError(f"{ctx}: CONVERT writes int8, int32, int64 or floats (fp32, fp16, bf16), "
                       f"not {precision.label}")


_IMMEDIATE = frozenset({VectorOp.ADD_IMM, VectorOp.MUL_IMM, VectorOp.MAX_IMM, VectorOp.MIN_IMM, VectorOp.FILL})


def _float_vector(op: VectorOp, a: np.ndarray, b: np.ndarray | None, ins: Vector, ctx: str,
                  old: np.ndarray | None = None) -> np.ndarray:
    x = a.astype(np.float32)
    y = None if b is None else b.astype(np.float32)
    imm = np.float32(bits_f32(ins.imm)) if op in _IMMEDIATE else None
    table = {
        VectorOp.MIN: lambda: np.minimum(x, y),
        VectorOp.NEG: lambda: -x,
        VectorOp.ABS: lambda: np.abs(x),
        VectorOp.LOG: lambda: np.log(x),
        VectorOp.SIN: lambda: np.sin(x),
        VectorOp.COS: lambda: np.cos(x),
        VectorOp.ADD_IMM: lambda: x + imm,
        VectorOp.MUL_IMM: lambda: x * imm,
        VectorOp.MAX_IMM: lambda: np.maximum(x, imm),
        VectorOp.MIN_IMM: lambda: np.minimum(x, imm),
        VectorOp.FILL: lambda: np.full_like(x, imm),
        VectorOp.CMP_EQ: lambda: (x == y).astype(np.float32),
        VectorOp.CMP_LT: lambda: (x < y).astype(np.float32),
        VectorOp.CMP_LE: lambda: (x <= y).astype(np.float32),
        VectorOp.SELECT: lambda: np.where(x != 0, y, old.astype(np.float32)),
        VectorOp.COPY: lambda: x,
        VectorOp.ADD: lambda: x + y,
        VectorOp.SUB: lambda: x - y,
        VectorOp.MUL: lambda: x * y,
        VectorOp.MAX: lambda: np.maximum(x, y),
        VectorOp.EXP: lambda: np.exp(x),
        VectorOp.RSQRT: lambda: 1.0 / np.sqrt(x),
        VectorOp.RECIPROCAL: lambda: 1.0 / x,
        VectorOp.SILU: lambda: x / (1.0 + np.exp(-x)),
        VectorOp.REDUCE_SUM: lambda: x.reshape(-1, ins.row_len).sum(axis=1),
        VectorOp.REDUCE_MAX: lambda: x.reshape(-1, ins.row_len).max(axis=1),
    }
    if op not in table:
        raise ProgramError(f"{ctx}: {op.name} has no float form")
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        return np.asarray(table[op](), dtype=np.float32)


def refuse_inexact(program: Program) -> None:
    """ProgramError naming each op a stand-in times, and what else the lowering left inexact."""
    gaps = program.meta.get("isa_gaps") or {}
    inexact = program.meta.get("not_value_exact") or []
    if not gaps and not inexact:
        return
    parts = [f"{what} (nodes {', '.join(nodes) or '?'})" for what, nodes in gaps.items()]
    parts += list(inexact)
    raise ProgramError(f"{program.meta.get('graph', 'program')}: functional mode refuses a program whose values "
                       f"would be wrong: ISA gaps timed by stand-ins / not value-exact: {'; '.join(parts)}")


def run_functional(program: Program, chip: ProgrammableChip, hbm: np.ndarray | bytes | bytearray | int,
                   sram: np.ndarray | None = None) -> FunctionalResult:
    """Execute `program` on `hbm` (modified in place when it is a uint8 array) and a zeroed SRAM.

    Refuses a program whose meta says its values would be wrong (see the module docstring)."""
    refuse_inexact(program)
    plan = Plan(program, chip)          # validates the ISA subset, splits, SRAM bounds, loops
    machine = Machine(chip, hbm, sram)
    instructions = program.instructions
    cursors = [[0, 0, 0] for _ in QUEUE_ENGINES]      # segment, iteration, position
    queues = [plan.queues[e] for e in QUEUE_ENGINES]
    sems = [0] * 16
    executed = 0
    while True:
        best, best_key = -1, None
        for qi, (segments, (seg, it, pos)) in enumerate(zip(queues, cursors)):
            if seg >= len(segments):
                continue
            segment = segments[seg]
            pc = segment.pcs[pos]
            waits = plan.costs[pc].waits
            if any(sems[s] < waits.count(s) for s in waits):
                continue
            key = (segment.loop_pc if segment.loop_pc >= 0 else pc, it, pc)
            if best_key is None or key < best_key:
                best, best_key = qi, key
        if best < 0:
            break
        seg, it, pos = cursors[best]
        segment = queues[best][seg]
        pc = segment.pcs[pos]
        cost = plan.costs[pc]
        for s in cost.waits:
            sems[s] -= 1
        if not cost.fence:            # zero-size instructions only carry semaphores
            machine.execute(pc, instructions[pc], it)
        for s in cost.signals:
            sems[s] += 1
        executed += 1
        pos += 1
        if pos == len(segment.pcs):
            pos, it = 0, it + 1
            if it == segment.count:
                seg, it = seg + 1, 0
        cursors[best] = [seg, it, pos]
    stuck = [f"{e.name} queue at instruction {queues[i][c[0]].pcs[c[2]]}" for i, (e, c) in
             enumerate(zip(QUEUE_ENGINES, cursors)) if c[0] < len(queues[i])]
    if stuck:
        raise DeadlockError("functional run deadlocked: " + "; ".join(stuck) + f"; semaphores {sems[1:]}")
    return FunctionalResult(machine.hbm, machine.sram, executed)
