"""GEMM tiling: how to split the systolic array, and tile sizes that fit SRAM double-buffered.

A GEMM instruction covers any (m, n, k) up to 65535 each; the engine walks it over array
tiles. The compiler's choices are the array split (several sub-arrays on independent N
tiles, the MatX idea for skinny decode GEMMs) and how big a piece of each operand is staged
in SRAM at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.hardware.programmable import ProgrammableChip
from simulator.programmable.costs.systolic import gemm_cycles

GEMM_DIM_LIMIT = (1 << 16) - 1  # m, n and k are 16-bit fields
DMA_ROW_LIMIT = (1 << 24) - 1  # rows and row_bytes are 24-bit fields
SLOT_LIMIT_BYTES = 1 << 23  # a staged tile fits one DMA row with room to spare


@dataclass(frozen=True)
class Split:
    ways: int

    @property
    def log2(self) -> int:
        return self.ways.bit_length() - 1


def estimated_cycles(chip: ProgrammableChip, m: int, n: int, k: int, ways: int, precision: str) -> int:
    """Cycles of the GEMM split `ways` ways: one instruction per sub-array, each on its share of
    N, all running concurrently. Uses the simulator's systolic cost model, the one contract the
    RTL is checked against, so the compiler never optimizes for a different machine."""
    return gemm_cycles(chip, m, math.ceil(n / ways), k, precision, split=ways.bit_length() - 1)


def choose_split(chip: ProgrammableChip, m: int, n: int, k: int, precision: str) -> Split:
    """The split that finishes soonest; a smaller split wins unless a larger one saves 5%.

    Skinny GEMMs (decode, m = batch) leave a whole array mostly loading weights, so several
    sub-arrays with their own weight tiles on separate N pieces finish sooner (MatX's
    splittable array).
    """
    best_ways, best_cycles = 1, estimated_cycles(chip, m, n, k, 1, precision)
    for ways in sorted(chip.systolic.split_factors):
        if ways == 1 or ways & (ways - 1) or n < ways:
            continue  # the split field is log2, and every sub-array needs columns
        cycles = estimated_cycles(chip, m, n, k, ways, precision)
        if cycles < 0.95 * best_cycles:
            best_ways, best_cycles = ways, cycles
    return Split(best_ways)


def even_chunk(total: int, largest: int, multiple: int) -> int:
    """A chunk size <= `largest` (a multiple of `multiple`) that splits `total` into an even number
    of equal chunks when one exists nearby: a double-buffered loop then needs no leftover code."""
    least = max(1, -(-total // max(largest, 1)))
    for count in range(least, 2 * least + 2):
        if total % count == 0 and (count % 2 == 0 or count == 1) and (total // count) % multiple == 0:
            return total // count
    return largest


def pieces(total: int, count: int) -> list[int]:
    """`total` split into `count` near-equal positive parts (larger ones first)."""
    count = max(1, min(count, total))
    base, extra = divmod(total, count)
    return [base + 1] * extra + [base] * (count - extra)


@dataclass(frozen=True)
class GemmTiles:
    m_block: int  # rows of A (and C) staged at once
    n_chunk: int  # columns of B per DMA / per loop step
    k_chunk: int  # reduction depth per instruction (accumulate across chunks)


def plan_gemm_tiles(m: int, n: int, k: int, a_bits: int, b_bits: int, c_bits: int, *, stream_a: bool,
                    stream_b: bool, stream_c: bool, ways: int, budget_bytes: int) -> GemmTiles:
    """Tile sizes whose staged pieces fit `budget_bytes` with B and C double-buffered.

    B (weights, or a large activation) takes half the budget in two slots; A and C blocks share
    the rest. Without streaming, whole operands are used in place.
    """
    k_chunk = min(k, GEMM_DIM_LIMIT)
    if stream_b:
        # with A or C staged too, row blocks are what repeat (loops do not nest): B takes a
        # quarter of the budget so that A's row blocks are as tall as possible
        slot = min(budget_bytes // (8 if stream_a or stream_c else 4), SLOT_LIMIT_BYTES)
        n_chunk = (slot * 8) // max(1, k_chunk * b_bits)
        if n_chunk < ways:  # even `ways` columns of full depth overflow a slot: cut K instead
            n_chunk = ways
            k_chunk = max(1, min(k_chunk, (slot * 8) // (n_chunk * b_bits)))
        n_chunk = max(ways, min(n, n_chunk) // ways * ways)
    else:
        c_slot = min(budget_bytes // 4, SLOT_LIMIT_BYTES)
        n_chunk = n if not stream_c else max(ways, min(n, (c_slot * 8) // max(1, min(m, GEMM_DIM_LIMIT) * c_bits)))
    n_chunk = even_chunk(n, min(n_chunk, GEMM_DIM_LIMIT * ways, n), ways) if (stream_b or stream_c) else n
    m_block = min(m, GEMM_DIM_LIMIT)
    if stream_a or stream_c:
        left = budget_bytes - (2 * slot if stream_b else 0)
        per_row = (k * a_bits if stream_a else 0) + (2 * n_chunk * c_bits if stream_c else 0)
        m_block = max(1, min(m_block, (left * 8) // max(1, per_row)))
        if stream_c:  # a C slot is stored as one DMA of m_block rows of n_chunk
            m_block = max(1, min(m_block, (SLOT_LIMIT_BYTES * 8) // max(1, n_chunk * c_bits)))
        if stream_a:
            m_block = max(1, min(m_block, (SLOT_LIMIT_BYTES * 8 * 4) // max(1, k * a_bits)))
    return GemmTiles(m_block, n_chunk, k_chunk)
