"""The float ISA beyond the integer subset: VECTOR_2D (strided / broadcast operands), DMA_GATHER
(rows by an index vector), GEMM_STRIDED (row-pitched GEMM operands) and the float vector ops.
Each against numpy, its encoding round trip, its cost against the formula and the roofline, and
the integer subset's encodings unchanged."""

from __future__ import annotations

import dataclasses
import math

import ml_dtypes
import numpy as np
import pytest

from compiler.targets.programmable.isa import (
    INTEGER_VECTOR_OPS,
    DmaGather,
    DmaLoad,
    DmaStore,
    Gemm,
    GemmStrided,
    Halt,
    Loop,
    Opcode,
    Precision,
    Vector,
    Vector2D,
    VectorOp,
    decode,
    encode,
    f32_bits,
)
from compiler.targets.programmable.program import Program
from simulator.programmable import ProgramError, run_functional, simulate_program
from simulator.programmable.costs import dma, systolic
from simulator.programmable.costs import vector as vector_costs
from simulator.programmable.plan import Plan

F32 = Precision.FP32


def _run(chip, instructions, sram: dict[int, np.ndarray], hbm: np.ndarray | None = None):
    """Run `instructions` (plus HALT) with arrays placed in SRAM at the given byte addresses."""
    program = Program()
    for ins in instructions:
        program.emit(ins, "other")
    program.emit(Halt(), "other")
    image = np.zeros(1 << 16, dtype=np.uint8)
    for addr, array in sram.items():
        raw = np.frombuffer(np.ascontiguousarray(array).tobytes(), dtype=np.uint8)
        image[addr:addr + len(raw)] = raw
    return run_functional(program, chip, np.zeros(4096, np.uint8) if hbm is None else hbm, sram=image)


def _read(result, addr: int, count: int, dtype=np.float32) -> np.ndarray:
    return result.sram[addr:addr + count * np.dtype(dtype).itemsize].view(dtype).copy()


# ---- encodings --------------------------------------------------------------------------------------

def test_integer_subset_encoding_is_unchanged():
    """The RTL decodes these exactly: opcode numbers, field order and widths (the contract)."""
    assert [int(o) for o in (Opcode.HALT, Opcode.DMA_LOAD, Opcode.DMA_STORE, Opcode.GEMM, Opcode.VECTOR,
                             Opcode.LOOP)] == [0, 1, 2, 3, 4, 6]
    assert DmaLoad.FIELDS == DmaStore.FIELDS == (("hbm_addr", 40), ("hbm_loop_stride", 40), ("sram_addr", 32),
                                                 ("sram_loop_stride", 32), ("rows", 24), ("row_bytes", 24),
                                                 ("hbm_row_stride", 32))
    assert Gemm.FIELDS == (("a_addr", 32), ("a_loop_stride", 24), ("b_addr", 32), ("b_loop_stride", 24),
                           ("c_addr", 32), ("c_loop_stride", 24), ("m", 16), ("n", 16), ("k", 16),
                           ("precision", 3), ("acc_precision", 3), ("accumulate", 1), ("split", 3), ("subarray", 3))
    assert Vector.FIELDS == (("op", 6), ("precision", 3), ("src_a", 32), ("src_b", 32), ("dst", 32), ("length", 24),
                             ("row_len", 24), ("imm", 32), ("shift", 6), ("loop_stride", 24))
    assert Loop.FIELDS == (("body", 16), ("count", 32))
    assert {op.value for op in INTEGER_VECTOR_OPS} == {0, 1, 2, 3, 4, 5, 6, 7, 12}
    # one instruction's bits, written out by hand: VECTOR ADD int32 length 5 (opcode 4, engine 4)
    word = int.from_bytes(encode(Vector(op=VectorOp.ADD, precision=Precision.INT32, length=5)), "little")
    assert word & 0xFF == 0x44 and (word >> 24) & 0x3F == 1 and (word >> 30) & 0x7 == 6
    assert (word >> (24 + 6 + 3 + 96)) & 0xFFFFFF == 5


@pytest.mark.parametrize("instruction", [
    Vector2D(op=VectorOp.SUB, src_a=64, src_b=4096, dst=8192, rows=(1 << 20) - 1, cols=(1 << 20) - 1,
             a_row_stride=(1 << 20) - 1, b_row_stride=1, dst_row_stride=77, a_col_step=1, b_col_step=0,
             loop_stride=(1 << 24) - 1, b_fixed=True, wait=(3,), signal=(15, 1)),
    Vector2D(op=VectorOp.COS, precision=Precision.BF16, rows=3, cols=4),
    DmaGather(hbm_addr=(1 << 40) - 1, sram_addr=123, index_addr=(1 << 32) - 1, rows=(1 << 24) - 1,
              row_bytes=(1 << 24) - 1, hbm_row_stride=(1 << 32) - 1, index_int64=True, wait=(1, 2)),
    Vector(op=VectorOp.MUL_IMM, precision=F32, length=9, imm=f32_bits(-0.125)),
    Vector(op=VectorOp.CONVERT, precision=F32, length=9, imm=int(Precision.INT64)),
    GemmStrided(a_addr=(1 << 32) - 1, b_addr=7, c_addr=1 << 31, m=(1 << 16) - 1, n=3, k=(1 << 16) - 1,
                lda=(1 << 20) - 1, ldb=3, ldc=(1 << 20) - 1, precision=Precision.BF16, acc_precision=F32,
                accumulate=True, split=3, subarray=7, wait=(2, 3), signal=(4,)),
    GemmStrided(m=2, n=5, k=4, lda=4, ldb=9, ldc=5, transpose_b=True),
])
def test_new_instructions_round_trip(instruction):
    assert decode(encode(instruction)) == instruction


def test_fields_out_of_range_are_refused():
    with pytest.raises(ValueError, match="rows"):
        Vector2D(rows=1 << 20)
    with pytest.raises(ValueError, match="index_addr"):
        DmaGather(index_addr=1 << 32)
    with pytest.raises(ValueError, match="ldc"):
        GemmStrided(m=2, n=8, k=4, lda=4, ldb=8, ldc=1 << 20)
    with pytest.raises(ValueError, match="ldc = 4 is shorter than a row"):
        GemmStrided(m=2, n=8, k=4, lda=4, ldb=8, ldc=4)
    with pytest.raises(ValueError, match="no loop strides"):
        GemmStrided(m=1, n=8, k=4, lda=4, ldb=8, ldc=8, c_loop_stride=64)


def test_gemm_strided_fits_the_instruction_and_leaves_gemm_alone():
    assert sum(bits for _, bits in GemmStrided.FIELDS) + 24 <= 256
    assert int(Opcode.GEMM_STRIDED) == 9 and GemmStrided.ENGINE == Gemm.ENGINE
    plain = Gemm(m=2, n=3, k=4)
    assert type(decode(encode(plain))) is Gemm


# ---- functional semantics against numpy --------------------------------------------------------------

def test_vector2d_broadcasts_against_numpy(matx):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 7)).astype(np.float32)
    per_row = rng.standard_normal(5).astype(np.float32)
    row = rng.standard_normal(7).astype(np.float32)
    cases = [  # (op, b at 4096, b row stride, b col step, numpy)
        (VectorOp.SUB, per_row, 1, 0, x - per_row[:, None]),
        (VectorOp.MUL, row, 0, 1, x * row[None, :]),
        (VectorOp.MIN, per_row[:1], 0, 0, np.minimum(x, per_row[0])),
        (VectorOp.CMP_LT, row, 0, 1, (x < row[None, :]).astype(np.float32)),
    ]
    for op, b, b_rows, b_cols, expected in cases:
        ins = Vector2D(op=op, src_a=0, src_b=4096, dst=8192, rows=5, cols=7, a_row_stride=7, b_row_stride=b_rows,
                       b_col_step=b_cols, dst_row_stride=7)
        result = _run(matx, [ins], {0: x, 4096: b})
        np.testing.assert_array_equal(_read(result, 8192, 35).reshape(5, 7), expected, err_msg=op.name)


def test_vector2d_strided_copy_is_a_transpose_and_a_slice(matx):
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)             # [s, h, d]
    # rows of one head: source stride h * d, destination [h, s, d] dense
    copies = [Vector2D(op=VectorOp.COPY, src_a=h * 16, dst=4096 + h * 32, rows=2, cols=4, a_row_stride=12,
                       dst_row_stride=4) for h in range(3)]
    result = _run(matx, copies, {0: x})
    np.testing.assert_array_equal(_read(result, 4096, 24).reshape(3, 2, 4), x.transpose(1, 0, 2))
    # a column (cols = 1) read at a row stride: the last axis moves
    column = Vector2D(op=VectorOp.COPY, src_a=4, dst=4096, rows=6, cols=1, a_row_stride=4, dst_row_stride=1)
    np.testing.assert_array_equal(_read(_run(matx, [column], {0: x}), 4096, 6), x.reshape(6, 4)[:, 1])


def test_vector2d_reduces_rows_into_a_strided_destination(matx):
    x = np.random.default_rng(2).standard_normal((4, 6)).astype(np.float32)
    ins = Vector2D(op=VectorOp.REDUCE_MAX, src_a=0, dst=4096, rows=4, cols=3, a_row_stride=6, dst_row_stride=2)
    got = _read(_run(matx, [ins], {0: x}), 4096, 8)[::2]
    np.testing.assert_array_equal(got, x[:, :3].max(axis=1))


def test_vector2d_loop_keeps_a_fixed_operand_in_place(matx):
    x = np.random.default_rng(3).standard_normal((3, 2, 4)).astype(np.float32)   # 3 heads of [2, 4]
    table = np.random.default_rng(4).standard_normal((2, 4)).astype(np.float32)
    body = Vector2D(op=VectorOp.MUL, src_a=0, src_b=4096, dst=8192, rows=2, cols=4, a_row_stride=4,
                    b_row_stride=4, dst_row_stride=4, loop_stride=32, b_fixed=True)
    result = _run(matx, [Loop(body=1, count=3), body], {0: x, 4096: table})
    np.testing.assert_allclose(_read(result, 8192, 24).reshape(3, 2, 4), x * table[None], rtol=0, atol=0)


def test_float_vector_ops_against_numpy(matx):
    x = np.linspace(0.1, 3.0, 11, dtype=np.float32)
    y = np.linspace(-2.0, 2.0, 11, dtype=np.float32)
    cases = [
        (Vector(op=VectorOp.LOG, precision=F32, src_a=0, dst=8192, length=11), np.log(x)),
        (Vector(op=VectorOp.SIN, precision=F32, src_a=0, dst=8192, length=11), np.sin(x)),
        (Vector(op=VectorOp.COS, precision=F32, src_a=0, dst=8192, length=11), np.cos(x)),
        (Vector(op=VectorOp.NEG, precision=F32, src_a=4096, dst=8192, length=11), -y),
        (Vector(op=VectorOp.ABS, precision=F32, src_a=4096, dst=8192, length=11), np.abs(y)),
        (Vector(op=VectorOp.MIN, precision=F32, src_a=0, src_b=4096, dst=8192, length=11), np.minimum(x, y)),
        (Vector(op=VectorOp.ADD_IMM, precision=F32, src_a=0, dst=8192, length=11, imm=f32_bits(1.5)), x + 1.5),
        (Vector(op=VectorOp.MUL_IMM, precision=F32, src_a=0, dst=8192, length=11, imm=f32_bits(-3)), x * -3),
        (Vector(op=VectorOp.MAX_IMM, precision=F32, src_a=4096, dst=8192, length=11, imm=f32_bits(0)),
         np.maximum(y, 0)),
        (Vector(op=VectorOp.MIN_IMM, precision=F32, src_a=4096, dst=8192, length=11, imm=f32_bits(0.5)),
         np.minimum(y, 0.5)),
        (Vector(op=VectorOp.FILL, precision=F32, dst=8192, length=11, imm=f32_bits(-math.inf)),
         np.full(11, -np.inf, np.float32)),
        (Vector(op=VectorOp.CMP_EQ, precision=F32, src_a=0, src_b=0, dst=8192, length=11), np.ones(11, np.float32)),
        (Vector(op=VectorOp.CMP_LE, precision=F32, src_a=4096, src_b=0, dst=8192, length=11),
         (y <= x).astype(np.float32)),
    ]
    for ins, expected in cases:
        np.testing.assert_allclose(_read(_run(matx, [ins], {0: x, 4096: y}), 8192, 11), expected.astype(np.float32),
                                   rtol=1e-6, atol=0, err_msg=ins.op.name)


def test_select_keeps_the_destination_where_the_condition_is_zero(matx):
    cond = np.array([1, 0, 2, 0], dtype=np.float32)
    b = np.array([10, 20, 30, 40], dtype=np.float32)
    old = np.array([-1, -2, -3, -4], dtype=np.float32)
    ins = Vector(op=VectorOp.SELECT, precision=F32, src_a=0, src_b=4096, dst=8192, length=4)
    got = _read(_run(matx, [ins], {0: cond, 4096: b, 8192: old}), 8192, 4)
    np.testing.assert_array_equal(got, np.where(cond != 0, b, old))


def test_convert_reads_int64_and_int32(matx):
    ids = np.array([-3, 7, 1 << 40], dtype=np.int64)
    small = np.array([5, -6], dtype=np.int32)
    wide = Vector(op=VectorOp.CONVERT, precision=F32, src_a=0, dst=8192, length=3, imm=int(Precision.INT64))
    narrow = Vector(op=VectorOp.CONVERT, precision=F32, src_a=4096, dst=9000, length=2, imm=int(Precision.INT32))
    result = _run(matx, [wide, narrow], {0: ids, 4096: small})
    np.testing.assert_array_equal(_read(result, 8192, 3), ids.astype(np.float32))
    np.testing.assert_array_equal(_read(result, 9000, 2), small.astype(np.float32))


@pytest.mark.parametrize("wide", [False, True])
def test_dma_gather_rows_by_index(matx, wide):
    table = np.random.default_rng(5).standard_normal((10, 6)).astype(np.float32)
    hbm = np.zeros(4096, np.uint8)
    hbm[256:256 + table.nbytes] = np.frombuffer(table.tobytes(), np.uint8)
    index = np.array([3, 0, 9, 3], dtype=np.int64 if wide else np.int32)
    ins = DmaGather(hbm_addr=256, sram_addr=8192, index_addr=0, rows=4, row_bytes=24, hbm_row_stride=24,
                    index_int64=wide)
    got = _read(_run(matx, [ins], {0: index}, hbm), 8192, 24).reshape(4, 6)
    np.testing.assert_array_equal(got, table[index])


def test_dma_gather_refuses_an_index_outside_hbm(matx):
    ins = DmaGather(hbm_addr=0, sram_addr=8192, index_addr=0, rows=2, row_bytes=64, hbm_row_stride=64)
    with pytest.raises(ProgramError, match=r"index\[1\] = 1000"):
        _run(matx, [ins], {0: np.array([1, 1000], dtype=np.int32)})


def test_gemm_strided_reads_and_writes_slices_of_wider_matrices(matx):
    """A [3, 4] slice of a [3, 10] A, a [4, 5] slice of a [4, 7] B, into columns 2..6 of a [3, 9] C
    whose other columns stay; then accumulating; then B read as the transpose of a [5, 4] matrix."""
    rng = np.random.default_rng(6)
    bf = Precision.BF16
    a = rng.integers(-4, 5, (3, 10)).astype(np.float32)
    b = rng.integers(-4, 5, (4, 7)).astype(np.float32)
    bt = rng.integers(-4, 5, (5, 4)).astype(np.float32)
    c = rng.standard_normal((3, 9)).astype(np.float32)
    sram = {0: a.astype(ml_dtypes.bfloat16), 4096: b.astype(ml_dtypes.bfloat16), 8192: c,
            12288: bt.astype(ml_dtypes.bfloat16)}
    gemm = GemmStrided(a_addr=0 + 2 * 3, b_addr=4096 + 2 * 1, c_addr=8192 + 4 * 2, m=3, n=5, k=4, lda=10, ldb=7,
                       ldc=9, precision=bf, acc_precision=F32)
    expected = c.copy()
    expected[:, 2:7] = a[:, 3:7] @ b[:, 1:6]
    got = _read(_run(matx, [gemm], sram), 8192, 27).reshape(3, 9)
    np.testing.assert_array_equal(got, expected)
    twice = _read(_run(matx, [gemm, dataclasses.replace(gemm, accumulate=True)], sram), 8192, 27).reshape(3, 9)
    expected[:, 2:7] *= 2
    np.testing.assert_array_equal(twice, expected)
    transposed = GemmStrided(a_addr=2 * 3, b_addr=12288, c_addr=8192, m=3, n=5, k=4, lda=10, ldb=4, ldc=9,
                             precision=bf, acc_precision=F32, transpose_b=True)
    got = _read(_run(matx, [transposed], sram), 8192, 27).reshape(3, 9)
    np.testing.assert_array_equal(got[:, :5], a[:, 3:7] @ bt.T)
    np.testing.assert_array_equal(got[:, 5:], c[:, 5:])


def test_gemm_strided_operand_beyond_sram_is_refused(matx):
    far = matx.memory.sram_bytes - 2 * 8          # 8 bf16 elements fit: the pitch reaches past the end
    ins = GemmStrided(a_addr=far, m=2, n=1, k=8, lda=64, ldb=1, ldc=1, precision=Precision.BF16, acc_precision=F32)
    with pytest.raises(ProgramError, match="a_addr reaches SRAM byte"):
        Plan(_program([ins]), matx)


def test_integer_subset_chip_refuses_the_float_instructions(tiny):
    for ins in (Vector2D(rows=1, cols=1), DmaGather(rows=1, row_bytes=4), GemmStrided(m=2, n=1, k=1, lda=1, ldc=1)):
        with pytest.raises(ProgramError, match="integer ISA subset"):
            _run(tiny, [ins], {})


# ---- costs ------------------------------------------------------------------------------------------

def test_vector2d_costs_what_its_elements_cost(matx):
    """Strides and broadcasts are address generation: a rows x cols op costs what rows * cols
    contiguous elements cost (cycles by the formula in costs/vector.py), never below its roofline."""
    v = matx.vector
    for op, rows, cols in ((VectorOp.SUB, 300, 70), (VectorOp.COS, 7, 1000), (VectorOp.REDUCE_MAX, 5, 9)):
        ordinary, transcendental = vector_costs.OPS_PER_ELEMENT[op]
        n = rows * cols
        cycles = (math.ceil(n * ordinary / (v.lanes * v.ops_per_lane_per_cycle))
                  + math.ceil(n * transcendental / (v.lanes * v.transcendentals_per_lane_per_cycle))
                  + getattr(v, "pipeline_latency_cycles", 0))
        program = Program()
        program.emit(Vector2D(op=op, rows=rows, cols=cols, a_row_stride=cols, b_row_stride=1, b_col_step=0,
                              dst_row_stride=cols), "other")
        program.emit(Halt(), "other")
        cost = Plan(program, matx).costs[0]
        assert cost.duration_s == pytest.approx(cycles / matx.clock_hz)
        assert cost.duration_s >= cost.roofline_s > 0
        assert simulate_program(program, matx).time_s == pytest.approx(cycles / matx.clock_hz)


def test_new_float_ops_have_costs(matx):
    for op in VectorOp:
        if op not in INTEGER_VECTOR_OPS:
            ordinary, transcendental = vector_costs.OPS_PER_ELEMENT[op]
            assert ordinary + transcendental >= 1, op.name
    assert vector_costs.OPS_PER_ELEMENT[VectorOp.SIN] == vector_costs.OPS_PER_ELEMENT[VectorOp.EXP]


@pytest.mark.parametrize("m, n, k, split", [(16, 512, 4096, 0), (300, 70, 9, 2), (1, 128, 128, 3)])
def test_gemm_strided_costs_the_array_schedule_of_its_shape(matx, m, n, k, split):
    """A row pitch is address generation: the cycles of the dense GEMM of the same shape (the
    systolic schedule, checked against the RTL), never below its roofline, whatever the pitches."""
    bf = Precision.BF16
    dense = Gemm(m=m, n=n, k=k, precision=bf, acc_precision=F32, split=split)
    for ins in (GemmStrided(m=m, n=n, k=k, lda=k + 5, ldb=n, ldc=3 * n, precision=bf, acc_precision=F32,
                            split=split),
                GemmStrided(m=m, n=n, k=k, lda=k, ldb=k, ldc=n, precision=bf, acc_precision=F32, split=split,
                            transpose_b=True)):
        cost = Plan(_program([ins]), matx).costs[0]
        cycles = systolic.gemm_cycles(matx, m, n, k, "bf16", split)
        assert cost.duration_s == pytest.approx(cycles / matx.clock_hz)
        assert cost.duration_s >= cost.roofline_s > 0
        assert cost.roofline_s == pytest.approx(systolic.gemm_roofline_cycles(matx, m, n, k, "bf16", split)
                                                / matx.clock_hz)
        assert simulate_program(_program([ins]), matx).time_s == simulate_program(_program([dense]), matx).time_s


def _program(instructions) -> Program:
    program = Program()
    for ins in instructions:
        program.emit(ins, "other")
    program.emit(Halt(), "other")
    return program


def test_dma_gather_costs_a_latency_and_its_bytes(matx):
    """Rows are requested together: one latency, then rows * row_bytes at the HBM bandwidth."""
    program = Program()
    program.emit(DmaGather(hbm_addr=0, sram_addr=1 << 20, index_addr=0, rows=512, row_bytes=8192,
                           hbm_row_stride=8192), "embed")
    program.emit(Halt(), "embed")
    nbytes = 512 * 8192
    expected = dma.request_latency_s(matx) + nbytes / matx.memory.hbm_bytes_per_s
    cost = Plan(program, matx).costs[0]
    assert cost.roofline_s == pytest.approx(nbytes / matx.memory.hbm_bytes_per_s)
    assert simulate_program(program, matx).time_s == pytest.approx(expected)
    assert simulate_program(program, matx).time_s >= cost.roofline_s
