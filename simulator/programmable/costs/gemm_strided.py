"""Cycles of one GEMM_STRIDED instruction, with its roofline: the GEMM array schedule unchanged.

A row pitch is address generation: the array streams A one row per cycle and writes C one row
per cycle whether consecutive rows sit k (n) elements apart or lda (ldc) apart, and a weight
tile shifts in one row of B per cycle from any pitch. With transpose_b a tile row is a column
of the stored operand: the loader reads it at pitch ldb, one element per PE column per cycle,
which this model (like a transposing weight loader in hardware) takes to cost the same. So the
cycles, the roofline and the SRAM traffic are those of a dense GEMM of the same m, n, k, split
and precision (costs/systolic.py, the contract the RTL array matches); only which bytes are
touched differs (validate.sram_ranges: each operand's span from its first to its last element).
"""

from __future__ import annotations

from compiler.targets.programmable.isa import GemmStrided
from simulator.hardware.programmable import ProgrammableChip
from simulator.programmable.costs.systolic import gemm_cycles, gemm_roofline_cycles


def gemm_strided_cycles(chip: ProgrammableChip, ins: GemmStrided) -> int:
    """Issue to last result written: systolic.gemm_cycles of the same shape."""
    return gemm_cycles(chip, ins.m, ins.n, ins.k, ins.precision.label, ins.split)


def gemm_strided_roofline_cycles(chip: ProgrammableChip, ins: GemmStrided) -> int:
    """The MACs over the peak of the PEs it occupies (systolic.gemm_roofline_cycles)."""
    return gemm_roofline_cycles(chip, ins.m, ins.n, ins.k, ins.precision.label, ins.split)
