"""The selection ops (TOPK, SCAN_SUM, REDUCE_PROD, ARGMAX) and VECTOR_GATHER at the ISA level:
encodings, values against numpy, malformed instructions refused, and cycles against the
schedules documented in simulator/programmable/costs/vector.py, worked out here again."""

from __future__ import annotations

import dataclasses
import math

import ml_dtypes
import numpy as np
import pytest

from compiler.targets.programmable.isa import (
    ARG_LAST,
    ARG_MIN,
    INDEX_INT64,
    SCAN_EXCLUSIVE,
    SCAN_REVERSE,
    TOPK_INDICES,
    TOPK_LARGEST,
    TOPK_VALUES,
    DmaGather,
    Halt,
    Opcode,
    Precision,
    Vector,
    Vector2D,
    VectorGather,
    VectorOp,
    decode,
    encode,
)
from compiler.targets.programmable.program import Program
from simulator.programmable import ProgramError, run_functional, simulate_program
from simulator.programmable.plan import Plan

F32, I32, I64 = Precision.FP32, Precision.INT32, Precision.INT64


def _program(instructions) -> Program:
    program = Program()
    for ins in instructions:
        program.emit(ins, "other")
    program.emit(Halt(), "other")
    return program


def _run(chip, instructions, sram: dict[int, np.ndarray], hbm: np.ndarray | None = None):
    image = np.zeros(1 << 16, dtype=np.uint8)
    for addr, array in sram.items():
        raw = np.frombuffer(np.ascontiguousarray(array).tobytes(), dtype=np.uint8)
        image[addr:addr + len(raw)] = raw
    hbm = np.zeros(4096, np.uint8) if hbm is None else hbm
    return run_functional(_program(instructions), chip, hbm, sram=image)


def _read(result, addr: int, count: int, dtype) -> np.ndarray:
    return result.sram[addr:addr + count * np.dtype(dtype).itemsize].view(dtype).copy()


# ---- encodings ----------------------------------------------------------------------------------

def test_numbers_and_encodings():
    assert [int(op) for op in (VectorOp.TOPK, VectorOp.SCAN_SUM, VectorOp.REDUCE_PROD, VectorOp.ARGMAX)] == [
        32, 33, 34, 35]
    assert int(Opcode.VECTOR_GATHER) == 10 and VectorGather.ENGINE.name == "VECTOR"
    assert sum(bits for _, bits in VectorGather.FIELDS) + 24 <= 256
    assert sum(bits for _, bits in DmaGather.FIELDS) + 24 <= 256
    # DMA_GATHER's new field sits above the old ones: an old instruction encodes as it did
    old = DmaGather(hbm_addr=5, sram_addr=6, index_addr=7, rows=3, row_bytes=8, hbm_row_stride=8, index_int64=True)
    word = int.from_bytes(encode(old), "little")
    assert word >> (24 + sum(bits for name, bits in DmaGather.FIELDS if name != "table_rows")) == 0


@pytest.mark.parametrize("instruction", [
    Vector(op=VectorOp.TOPK, precision=F32, src_a=64, src_b=4096, dst=8192, length=35, row_len=7, imm=3,
           shift=TOPK_LARGEST | TOPK_VALUES | TOPK_INDICES | INDEX_INT64),
    Vector(op=VectorOp.SCAN_SUM, precision=I64, length=60, row_len=5, imm=4, shift=SCAN_EXCLUSIVE | SCAN_REVERSE),
    VectorGather(precision=Precision.INT8, src=(1 << 32) - 1, index_addr=3, dst=1 << 31, outer=(1 << 24) - 1,
                 count=(1 << 24) - 1, row_len=(1 << 24) - 1, axis_len=(1 << 24) - 1, index_int64=True, wait=(1, 2),
                 signal=(15,)),
    DmaGather(hbm_addr=(1 << 40) - 1, rows=2, row_bytes=4, hbm_row_stride=4, table_rows=(1 << 24) - 1),
])
def test_round_trip(instruction):
    assert decode(encode(instruction)) == instruction


# ---- values against numpy -------------------------------------------------------------------------

@pytest.mark.parametrize("largest", [True, False])
def test_topk_keeps_ties_in_index_order_and_writes_int32_or_int64_indices(matx, largest):
    x = np.array([[2, 5, 5, 1, 5, 2], [0, 0, 0, 0, 0, 0]], dtype=np.float32)
    k = 4
    for wide, dtype in ((False, np.int32), (True, np.int64)):
        shift = (TOPK_LARGEST if largest else 0) | TOPK_VALUES | TOPK_INDICES | (INDEX_INT64 if wide else 0)
        ins = Vector(op=VectorOp.TOPK, precision=F32, src_a=0, src_b=4096, dst=8192, length=12, row_len=6, imm=k,
                     shift=shift)
        result = _run(matx, [ins], {0: x})
        order = np.array([sorted(range(6), key=lambda i: (-row[i] if largest else row[i], i))[:k] for row in x])
        np.testing.assert_array_equal(_read(result, 4096, 2 * k, dtype).reshape(2, k), order)
        np.testing.assert_array_equal(_read(result, 8192, 2 * k, np.float32).reshape(2, k),
                                      np.take_along_axis(x, order, 1))


def test_arg_reductions_along_a_middle_axis(matx):
    """ARGMAX over axis 1 of [2, 3, 4] (inner stride 4), first or last of ties, max or min."""
    x = np.random.default_rng(0).integers(0, 3, (2, 3, 4)).astype(np.float32)
    for flags, expected in ((0, x.argmax(1)), (ARG_MIN, x.argmin(1)),
                            (ARG_LAST, 2 - np.flip(x, 1).argmax(1)), (ARG_LAST | ARG_MIN, 2 - np.flip(x, 1).argmin(1))):
        ins = Vector(op=VectorOp.ARGMAX, precision=F32, src_a=0, dst=4096, length=24, row_len=3, imm=4,
                     shift=flags | INDEX_INT64)
        np.testing.assert_array_equal(_read(_run(matx, [ins], {0: x}), 4096, 8, np.int64).reshape(2, 4), expected)


def test_scan_sum_exclusive_reverse_and_int32_wrap(matx):
    x = np.random.default_rng(1).standard_normal((2, 5, 3)).astype(np.float32)
    ins = Vector(op=VectorOp.SCAN_SUM, precision=F32, src_a=0, dst=4096, length=30, row_len=5, imm=3,
                 shift=SCAN_EXCLUSIVE | SCAN_REVERSE)
    flipped = np.cumsum(np.flip(x, 1), axis=1, dtype=np.float32)
    expected = np.flip(np.concatenate([np.zeros_like(flipped[:, :1]), flipped[:, :-1]], axis=1), 1)
    np.testing.assert_array_equal(_read(_run(matx, [ins], {0: x}), 4096, 30, np.float32).reshape(2, 5, 3), expected)
    big = np.array([2**31 - 1, 1, 5], dtype=np.int32)
    ins = Vector(op=VectorOp.SCAN_SUM, precision=I32, src_a=0, dst=4096, length=3, row_len=3)
    wrapped = [2**31 - 1, -2**31, -2**31 + 5]   # two's complement, as the integer vector ops
    np.testing.assert_array_equal(_read(_run(matx, [ins], {0: big}), 4096, 3, np.int32), wrapped)


def test_reduce_prod_of_bf16_is_computed_in_float32(matx):
    x = np.random.default_rng(2).uniform(0.5, 2, (4, 6)).astype(ml_dtypes.bfloat16)
    ins = Vector(op=VectorOp.REDUCE_PROD, precision=Precision.BF16, src_a=0, dst=4096, length=24, row_len=6)
    got = _read(_run(matx, [ins], {0: x}), 4096, 4, ml_dtypes.bfloat16)
    np.testing.assert_array_equal(got, np.prod(x.astype(np.float32), axis=1).astype(ml_dtypes.bfloat16))


def test_vector_gather_rows_of_an_sram_table(matx):
    table = np.arange(2 * 5 * 3, dtype=np.float32).reshape(2, 5, 3)
    index = np.array([4, -1, 0, -5], dtype=np.int32)
    ins = VectorGather(precision=F32, src=0, index_addr=4096, dst=8192, outer=2, count=4, row_len=3, axis_len=5)
    got = _read(_run(matx, [ins], {0: table, 4096: index}), 8192, 24, np.float32).reshape(2, 4, 3)
    np.testing.assert_array_equal(got, table[:, [4, 4, 0, 0], :])


def test_indices_outside_the_table_are_errors(matx):
    gather = VectorGather(precision=F32, src=0, index_addr=4096, dst=8192, outer=1, count=2, row_len=1, axis_len=5)
    with pytest.raises(ProgramError, match=r"index\[1\] = 5 outside -5..4"):
        _run(matx, [gather], {4096: np.array([0, 5], np.int32)})
    with pytest.raises(ProgramError, match=r"index\[0\] = -7 outside -6..5"):
        _run(matx, [DmaGather(hbm_addr=0, sram_addr=8192, index_addr=0, rows=1, row_bytes=4, hbm_row_stride=4,
                              table_rows=6)], {0: np.array([-7], np.int32)})


def test_dma_gather_counts_negative_indices_from_the_end_of_the_table(matx):
    table = np.arange(12, dtype=np.float32).reshape(6, 2)
    hbm = np.zeros(4096, np.uint8)
    hbm[256:256 + table.nbytes] = np.frombuffer(table.tobytes(), np.uint8)
    ins = DmaGather(hbm_addr=256, sram_addr=8192, index_addr=0, rows=3, row_bytes=8, hbm_row_stride=8,
                    index_int64=True, table_rows=6)
    got = _read(_run(matx, [ins], {0: np.array([-1, 2, -6], np.int64)}, hbm), 8192, 6, np.float32).reshape(3, 2)
    np.testing.assert_array_equal(got, table[[5, 2, 0]])


def test_malformed_selection_instructions_are_refused(matx, tiny):
    bad = [
        (Vector(op=VectorOp.TOPK, precision=F32, length=12, row_len=6, imm=7, shift=TOPK_VALUES), "k = imm = 7"),
        (Vector(op=VectorOp.TOPK, precision=F32, length=12, row_len=6, imm=2), "neither values"),
        (Vector(op=VectorOp.SCAN_SUM, precision=F32, length=10, row_len=3, imm=2), "not a multiple"),
        (Vector(op=VectorOp.ARGMAX, precision=Precision.INT8, length=4, row_len=4), "not int8"),
        (Vector2D(op=VectorOp.SCAN_SUM, rows=2, cols=3), "SCAN_SUM is a VECTOR op"),
    ]
    for ins, message in bad:
        with pytest.raises(ProgramError, match=message):
            Plan(_program([ins]), matx)
    for ins in (VectorGather(outer=1, count=1), Vector(op=VectorOp.TOPK, precision=I32, length=4, row_len=4, imm=1,
                                                      shift=TOPK_VALUES)):
        with pytest.raises(ProgramError, match="integer ISA subset"):
            Plan(_program([ins]), tiny)


# ---- cycles --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def narrow(matx):
    """16 lanes, one op per lane per cycle, 3 cycles of pipeline latency: schedules that differ."""
    return dataclasses.replace(matx, vector=dataclasses.replace(matx.vector, lanes=16, ops_per_lane_per_cycle=1,
                                                                pipeline_latency_cycles=3))


def _cost(chip, ins):
    cost = Plan(_program([ins]), chip).costs[0]
    assert cost.duration_s >= cost.roofline_s > 0
    assert simulate_program(_program([ins]), chip).time_s == pytest.approx(cost.duration_s)
    return cost


def _log2(n: int) -> int:
    return math.ceil(math.log2(n)) if n > 1 else 0


@pytest.mark.parametrize("rows, n, k, winner", [(64, 1024, 2, "k-pass"), (64, 32, 32, "bitonic"),
                                                  (4, 11, 2, "either"), (3, 1, 1, "either")])
def test_topk_cycles_are_the_cheaper_of_k_passes_and_a_bitonic_sort(narrow, rows, n, k, winner):
    lanes, latency = 16, 3
    k_pass = k * (math.ceil(rows * n / lanes) + _log2(n))
    s = _log2(n)
    stages = max(1, s * (s + 1) // 2)
    bitonic = stages * math.ceil(rows * 2**s / lanes)
    assert winner == "either" or (k_pass < bitonic) == (winner == "k-pass")
    ins = Vector(op=VectorOp.TOPK, precision=F32, length=rows * n, row_len=n, imm=k, shift=TOPK_VALUES)
    cost = _cost(narrow, ins)
    assert cost.duration_s == pytest.approx((min(k_pass, bitonic) + latency) / narrow.clock_hz)
    assert cost.roofline_s == pytest.approx(rows * n / lanes / narrow.clock_hz)
    assert cost.vector_ops == (k * rows * n if k_pass <= bitonic else stages * rows * 2**s)


@pytest.mark.parametrize("outer, n, inner, winner", [(1, 4096, 1, "log-step"), (64, 8, 1, "lane-sequential"),
                                                      (2, 8, 16, "lane-sequential"), (1, 1, 5, "either")])
def test_scan_cycles_are_the_cheaper_of_lane_sequential_and_log_step(narrow, outer, n, inner, winner):
    lanes, latency, length = 16, 3, outer * n * inner
    sequential = n * math.ceil(outer * inner / lanes)
    steps = max(1, _log2(n))
    log_step = steps * math.ceil(length / lanes)
    assert winner == "either" or (sequential < log_step) == (winner == "lane-sequential")
    ins = Vector(op=VectorOp.SCAN_SUM, precision=F32, length=length, row_len=n, imm=inner)
    cost = _cost(narrow, ins)
    assert cost.duration_s == pytest.approx((min(sequential, log_step) + latency) / narrow.clock_hz)
    assert cost.vector_ops == (length if sequential <= log_step else steps * length)


@pytest.mark.parametrize("op", [VectorOp.REDUCE_PROD, VectorOp.ARGMAX])
def test_one_pass_reductions_cost_an_op_per_element(narrow, op):
    ins = Vector(op=op, precision=F32, length=3 * 50 * 7, row_len=50, imm=7)
    cost = _cost(narrow, ins)
    assert cost.duration_s == pytest.approx((math.ceil(1050 / 16) + 3) / narrow.clock_hz)


def test_vector_gather_costs_an_op_per_row_and_per_element_moved(narrow):
    ins = VectorGather(precision=Precision.INT8, src=0, index_addr=4096, dst=8192, outer=6, count=40, row_len=3,
                       axis_len=9)
    cost = _cost(narrow, ins)
    assert cost.duration_s == pytest.approx((math.ceil(6 * 40 * (3 + 1) / 16) + 3) / narrow.clock_hz)
    assert cost.roofline_s == pytest.approx(6 * 40 * 3 / 16 / narrow.clock_hz)
