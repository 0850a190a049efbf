"""Cycles of one GEMM instruction on the weight-stationary systolic arrays, with its roofline.

This closed form is the contract the RTL systolic array is checked against (cycle counts equal).

Geometry. A chip has `arrays_per_chip` arrays of `rows` x `cols` PEs; rows run along the
reduction dimension K, columns along the output dimension N. A GEMM with `split = s` divides
every array into f = 2**s sub-arrays along K, each `rows // f` x `cols`; instruction
`subarray = j` runs on sub-array j of *every* array at once (the arrays work in lockstep on
different weight tiles of the same GEMM). So split 0 uses the whole chip, and f different
instructions on sub-arrays 0..f-1 may run concurrently (the GEMM queue issues in order but does
not wait for a busy sub-array's neighbours).

A PE holds `p = macs_per_pe_per_cycle[precision]` weights (16 bits of weight register for the
presets: one bf16, two int8/fp8, four int4) and does p MACs per cycle, so one weight tile is
(R * p) x C values of B, where R = rows // f and C = cols.

Schedule (weight-stationary, double-buffered weights):
  * loading one weight tile takes R cycles (one row of the tile shifts in per cycle);
  * streaming the m rows of A through a loaded tile takes m cycles;
  * weights are double-buffered: the next tile loads while the current one streams, so a tile
    costs max(R, m) in steady state; only the first load is exposed;
  * the last tile loads nothing behind it, so it costs its m rows only;
  * after the last row enters, results leave after the pipeline skew, R + C cycles.
Tiles are distributed over the `arrays_per_chip` arrays; each array runs
T = ceil(tiles / arrays_per_chip) tiles back to back:

    tiles  = ceil(k / (R * p)) * ceil(n / C)
    T      = ceil(tiles / arrays_per_chip)
    cycles = R + (T - 1) * max(R, m) + m + (R + C)

rtl/programmable/gemm_unit.py runs this schedule (the SRAM read of a row and the write of its
result fall inside the drain R + C) and its testbench checks the count cycle for cycle. Until
the RTL check, the last tile was charged max(R, m) too: R - m cycles too many when m < R.

Roofline: the MACs over the PEs this instruction occupies,
    ceil(m * n * k / (arrays_per_chip * R * C * p)),
and cycles >= roofline always (T * m alone covers it).
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.hardware.programmable import ProgrammableChip


class GemmShapeError(ValueError):
    """A GEMM the chip cannot run (bad split, sub-array or precision)."""


@dataclass(frozen=True)
class SubArray:
    rows: int            # R: PEs along K in one sub-array
    cols: int            # C: PEs along N
    arrays: int          # sub-arrays working in lockstep (one per physical array)
    ways: int            # f: sub-arrays per physical array at this split
    macs_per_pe_per_cycle: int


def sub_array(chip: ProgrammableChip, split: int, precision: str) -> SubArray:
    ways = 1 << split
    s = chip.systolic
    if ways not in s.split_factors:
        raise GemmShapeError(f"{chip.name}: GEMM split {split} (= {ways} ways) is not one of "
                             f"systolic.split_factors {list(s.split_factors)}")
    if not chip.supports(precision):
        raise GemmShapeError(f"{chip.name}: no {precision} matrix path; supported: "
                             f"{', '.join(s.macs_per_pe_per_cycle)}")
    return SubArray(s.rows // ways, s.cols, s.arrays_per_chip, ways, s.macs_per_pe_per_cycle[precision])


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def gemm_tiles(sa: SubArray, n: int, k: int) -> int:
    """Weight tiles of B (k x n) on one sub-array: ceil(k / (R p)) * ceil(n / C)."""
    return _ceil_div(k, sa.rows * sa.macs_per_pe_per_cycle) * _ceil_div(n, sa.cols)


def gemm_cycles(chip: ProgrammableChip, m: int, n: int, k: int, precision: str, split: int = 0) -> int:
    """Cycles from issue to the last result written (see the module docstring)."""
    if min(m, n, k) <= 0:
        raise GemmShapeError(f"GEMM m={m} n={n} k={k}: every dimension must be positive")
    sa = sub_array(chip, split, precision)
    tiles_per_array = _ceil_div(gemm_tiles(sa, n, k), sa.arrays)
    fill, drain = sa.rows, sa.rows + sa.cols
    return fill + (tiles_per_array - 1) * max(sa.rows, m) + m + drain


def gemm_roofline_cycles(chip: ProgrammableChip, m: int, n: int, k: int, precision: str, split: int = 0) -> int:
    """MACs over the peak of the PEs the instruction occupies: the bound gemm_cycles never beats."""
    sa = sub_array(chip, split, precision)
    peak = sa.arrays * sa.rows * sa.cols * sa.macs_per_pe_per_cycle
    return _ceil_div(m * n * k, peak)


def gemm_sram_bytes(m: int, n: int, k: int, n_tiles: int, operand_bytes: float, acc_bytes: float,
                    accumulate: bool) -> float:
    """SRAM traffic of one GEMM: A is re-streamed once per N tile (weight-stationary), B is read
    once, C is written once (and read too when accumulating)."""
    return m * k * operand_bytes * n_tiles + k * n * operand_bytes + m * n * acc_bytes * (2 if accumulate else 1)
