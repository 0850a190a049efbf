"""What the GEMM and vector units refuse, said before any simulation: the program check for the
integer subset, the units' placement rules, and hardware descriptions the generators cannot
build (no Icarus needed)."""

from __future__ import annotations

import dataclasses

import pytest
from rtl_unit_helpers import placed

from compiler.targets.programmable.isa import Precision, Vector, VectorOp
from rtl.programmable.config import CoreConfig, RtlConfigError
from rtl.programmable.gemm_unit import gemm_errors
from rtl.programmable.vector_unit import vector_errors
from simulator.programmable.validate import ProgramError, check_instruction

INT32 = Precision.INT32


def test_bad_gemms_fail_before_simulation(chip, config):
    """Outside the integer subset the program check refuses at compile time; misplaced operands
    are named by gemm_errors."""
    with pytest.raises(ProgramError, match="integer ISA subset"):
        check_instruction(chip, 0, placed(config, 0, 4, 8, 8, precision=Precision.BF16,
                                          acc_precision=Precision.FP32), 1)
    crossing = placed(config, 0, 6, 8, 12)            # A rows of 12 bytes: row 5's first k-slice crosses a word
    assert any(e.startswith("A:") for e in gemm_errors(crossing, config))
    overlapping = placed(config, 0, 4, 8, 8, c_addr=0)
    assert any("overlap A" in e for e in gemm_errors(overlapping, config))
    assert any("split 2" in e for e in gemm_errors(placed(config, 0, 4, 8, 8, split=2), config))


def test_bad_vectors_fail_before_simulation(chip, config):
    with pytest.raises(ProgramError, match="integer ISA subset"):
        check_instruction(chip, 0, Vector(op=VectorOp.EXP, precision=Precision.FP32, length=8), 1)
    assert "int32 elements must start at a multiple of 4" in " ".join(
        vector_errors(Vector(op=VectorOp.ADD, precision=INT32, src_b=6, length=8), config))
    late = Vector(op=VectorOp.COPY, precision=INT32, src_a=0, dst=64, length=32)
    assert any("starts after it" in e for e in vector_errors(late, config))
    assert not vector_errors(Vector(op=VectorOp.COPY, precision=INT32, src_a=64, dst=0, length=32), config)


def test_vector_latency_must_match_the_rtl(chip):
    other = dataclasses.replace(chip, vector=dataclasses.replace(chip.vector, pipeline_latency_cycles=0))
    with pytest.raises(RtlConfigError, match="vector.pipeline_latency_cycles"):
        CoreConfig.from_chip(other)


def test_array_needs_two_rows_per_sub_array(chip):
    four_way = dataclasses.replace(chip, systolic=dataclasses.replace(chip.systolic, rows=4, split_factors=(1, 2, 4)))
    with pytest.raises(RtlConfigError, match="at least 2 rows per sub-array"):
        CoreConfig.from_chip(four_way)
