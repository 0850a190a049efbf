"""The ISA's binary encoding: every instruction round-trips; fields that do not fit are errors."""

from __future__ import annotations

import pytest

from compiler.targets.programmable.isa import (
    INSTRUCTION_BYTES,
    Collective,
    CollectiveKind,
    DmaLoad,
    DmaStore,
    Gemm,
    Halt,
    Loop,
    Precision,
    Vector,
    VectorOp,
    decode,
    decode_program,
    encode,
    encode_program,
)

PROGRAM = [
    DmaLoad(hbm_addr=(1 << 39) + 7, sram_addr=4096, rows=128, row_bytes=256, hbm_row_stride=8192,
            hbm_loop_stride=1 << 20, sram_loop_stride=1 << 15, signal=(1,)),
    Gemm(a_addr=0, b_addr=4096, c_addr=1 << 20, m=1, n=256, k=4096, precision=Precision.BF16,
         acc_precision=Precision.FP32, accumulate=True, split=3, subarray=5, b_loop_stride=999,
         wait=(1,), signal=(2, 3)),
    Vector(op=VectorOp.REQUANT, precision=Precision.INT32, src_a=1, src_b=2, dst=3, length=64, row_len=8,
           imm=(1 << 31) + 5, shift=13, loop_stride=64, wait=(2,)),
    Loop(body=3, count=123456),
    DmaStore(hbm_addr=64, sram_addr=1 << 20, rows=1, row_bytes=64, wait=(3,)),
    Collective(kind=CollectiveKind.ALL_REDUCE, precision=Precision.BF16, sram_addr=0, nbytes=8192, chips=8),
    Halt(),
]


def test_program_round_trips_through_binary():
    blob = encode_program(PROGRAM)
    assert len(blob) == INSTRUCTION_BYTES * len(PROGRAM)
    assert decode_program(blob) == PROGRAM


def test_header_layout_is_stable():
    word = int.from_bytes(encode(Gemm(m=1, n=1, k=1, wait=(1, 2), signal=(3, 4))), "little")
    assert word & 0xF == 3  # opcode GEMM
    assert (word >> 4) & 0xF == 3  # engine GEMM
    assert [(word >> s) & 0xF for s in (8, 12, 16, 20)] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Gemm(m=1 << 16), "Gemm.m = 65536 does not fit 16 bits"),
        (lambda: DmaLoad(hbm_addr=1 << 40), "hbm_addr"),
        (lambda: Vector(length=-1), "does not fit"),
        (lambda: Halt(wait=(16,)), "outside 1..15"),
        (lambda: Halt(signal=(1, 2, 3)), "at most 2"),
    ],
)
def test_out_of_range_fields_are_rejected(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_unknown_opcode_and_bad_length():
    with pytest.raises(ValueError, match="unknown opcode"):
        decode(bytes([15]) + bytes(INSTRUCTION_BYTES - 1))
    with pytest.raises(ValueError, match="multiple of 32"):
        decode_program(bytes(33))
