"""Cycles of one vector instruction, with its roofline.

The vector unit has `lanes` lanes. Ordinary ops (copy, add, sub, mul, max, shift, requantize,
reduction steps) run at `ops_per_lane_per_cycle`; transcendentals (exp, rsqrt, reciprocal) at
`transcendentals_per_lane_per_cycle`. An op is a mix of both kinds per element (SiLU is
x * 1 / (1 + exp(-x)): two ordinary ops, exp and a reciprocal). REQUANT is one ordinary op: the
lane multiplies, rounds, shifts and clamps in one pipelined pass. A reduction does one ordinary
op per input element (the cross-lane tree is pipelined and not counted separately).

    cycles   = ceil(length * ordinary / (lanes * ops_per_lane_per_cycle))
             + ceil(length * transcendental / (lanes * transcendentals_per_lane_per_cycle))
    roofline = length * ordinary / (lanes * ops_per_lane_per_cycle)
             + length * transcendental / (lanes * transcendentals_per_lane_per_cycle)
Each instruction also pays `vector.pipeline_latency_cycles` once (operand reads, pipeline stages,
the last write); presets that leave it out model none. For matx-tiny it is the RTL vector unit's
(rtl/programmable/vector_unit.py, checked cycle for cycle by its testbench). The roofline keeps
only the throughput terms.
"""

from __future__ import annotations

import math

from compiler.targets.programmable.isa import VectorOp
from simulator.hardware.programmable import ProgrammableChip

# (ordinary ops, transcendental ops) per element.
OPS_PER_ELEMENT: dict[VectorOp, tuple[int, int]] = {
    VectorOp.COPY: (1, 0),
    VectorOp.ADD: (1, 0),
    VectorOp.SUB: (1, 0),
    VectorOp.MUL: (1, 0),
    VectorOp.MAX: (1, 0),
    VectorOp.SHIFT: (1, 0),
    VectorOp.REQUANT: (1, 0),
    VectorOp.REDUCE_SUM: (1, 0),
    VectorOp.REDUCE_MAX: (1, 0),
    VectorOp.EXP: (0, 1),
    VectorOp.RSQRT: (0, 1),
    VectorOp.RECIPROCAL: (0, 1),
    VectorOp.SILU: (2, 2),
    # float ops beyond the integer subset: one pipelined lane op each, LOG/SIN/COS on the
    # transcendental unit (an *_IMM op's operand comes from the instruction, CONVERT is a cast)
    VectorOp.MIN: (1, 0),
    VectorOp.NEG: (1, 0),
    VectorOp.ABS: (1, 0),
    VectorOp.LOG: (0, 1),
    VectorOp.SIN: (0, 1),
    VectorOp.COS: (0, 1),
    VectorOp.ADD_IMM: (1, 0),
    VectorOp.MUL_IMM: (1, 0),
    VectorOp.MAX_IMM: (1, 0),
    VectorOp.MIN_IMM: (1, 0),
    VectorOp.FILL: (1, 0),
    VectorOp.CONVERT: (1, 0),
    VectorOp.CMP_EQ: (1, 0),
    VectorOp.CMP_LT: (1, 0),
    VectorOp.CMP_LE: (1, 0),
    VectorOp.SELECT: (1, 0),
}

# Ops that read a second operand (src_b).
BINARY_OPS = frozenset({VectorOp.ADD, VectorOp.SUB, VectorOp.MUL, VectorOp.MAX, VectorOp.MIN, VectorOp.CMP_EQ,
                        VectorOp.CMP_LT, VectorOp.CMP_LE, VectorOp.SELECT})
REDUCTIONS = frozenset({VectorOp.REDUCE_SUM, VectorOp.REDUCE_MAX})


def _rates(chip: ProgrammableChip) -> tuple[float, float]:
    v = chip.vector
    return v.lanes * v.ops_per_lane_per_cycle, v.lanes * v.transcendentals_per_lane_per_cycle


def vector_cycles(chip: ProgrammableChip, op: VectorOp, length: int) -> int:
    ordinary, transcendental = OPS_PER_ELEMENT[op]
    ord_rate, trans_rate = _rates(chip)
    return (math.ceil(length * ordinary / ord_rate) + math.ceil(length * transcendental / trans_rate)
            + chip.vector.pipeline_latency_cycles)


def vector_roofline_cycles(chip: ProgrammableChip, op: VectorOp, length: int) -> float:
    ordinary, transcendental = OPS_PER_ELEMENT[op]
    ord_rate, trans_rate = _rates(chip)
    return length * ordinary / ord_rate + length * transcendental / trans_rate


def vector_lane_ops(op: VectorOp, length: int) -> int:
    """Lane operations of one instruction (what the energy model charges)."""
    ordinary, transcendental = OPS_PER_ELEMENT[op]
    return length * (ordinary + transcendental)


def vector_sram_bytes(op: VectorOp, length: int, row_len: int, element_bytes: float) -> float:
    """Bytes read and written: src_a (and src_b), then dst (one element per row for reductions,
    int8 for REQUANT). SELECT also reads dst; FILL reads nothing; CONVERT is charged at the
    destination's element size for its read too."""
    reads = length * element_bytes * ({VectorOp.SELECT: 3, VectorOp.FILL: 0}.get(op, 2 if op in BINARY_OPS else 1))
    if op in REDUCTIONS:
        writes = (length // max(row_len, 1)) * element_bytes
    elif op is VectorOp.REQUANT:
        writes = length
    else:
        writes = length * element_bytes
    return reads + writes
