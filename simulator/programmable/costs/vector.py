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

Integer lanes. int8 and int32 ops cost what the float ops do. A lane is 32 bits wide, so an int64
op is two: add, sub, compare, min, max, select, copy and convert carry or compare across the two
halves (2 ordinary ops); a 64-bit product keeps the low 64 bits of three 32 x 32 partial products
(lo x lo, which yields both halves, 2 ops; lo x hi and hi x lo into the high half, 1 op each:
4 ops). Integer division has no lane of its own: the quotient comes from the reciprocal unit's
estimate of 1 / b (1 transcendental), a multiply, a multiply-back and subtract, and one
correction step (4 ordinary ops for IDIV, 5 for IMOD, which also fixes the remainder's sign).
On int64 the 24-bit estimate needs two Newton steps (r = r (2 - b r): two 64-bit multiplies and
a subtract, 10 ops each) before the 64-bit quotient and its correction (12 ops): 32 ordinary ops
and 1 transcendental for IDIV, 34 for IMOD.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from compiler.targets.programmable.isa import Precision, Vector, VectorGather, VectorOp
from simulator.hardware.programmable import ProgrammableChip
from simulator.programmable import selection

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
    VectorOp.IDIV: (4, 1),
    VectorOp.IMOD: (5, 1),
    # selection ops: one ordinary op per element and pass (compare-and-keep with the index riding
    # along, multiply, add); selection_cost below counts TOPK's and SCAN_SUM's passes
    VectorOp.TOPK: (1, 0),
    VectorOp.SCAN_SUM: (1, 0),
    VectorOp.REDUCE_PROD: (1, 0),
    VectorOp.ARGMAX: (1, 0),
}

# int64 lanes (module docstring): ops not listed cost twice their 32-bit count.
INT64_OPS_PER_ELEMENT: dict[VectorOp, tuple[int, int]] = {
    VectorOp.MUL: (4, 0),
    VectorOp.IDIV: (32, 1),
    VectorOp.IMOD: (34, 1),
}

# Ops that read a second operand (src_b).
BINARY_OPS = frozenset({VectorOp.ADD, VectorOp.SUB, VectorOp.MUL, VectorOp.MAX, VectorOp.MIN, VectorOp.CMP_EQ,
                        VectorOp.CMP_LT, VectorOp.CMP_LE, VectorOp.SELECT, VectorOp.IDIV, VectorOp.IMOD})
REDUCTIONS = frozenset({VectorOp.REDUCE_SUM, VectorOp.REDUCE_MAX})


def _rates(chip: ProgrammableChip) -> tuple[float, float]:
    v = chip.vector
    return v.lanes * v.ops_per_lane_per_cycle, v.lanes * v.transcendentals_per_lane_per_cycle


def ops_per_element(op: VectorOp, precision: Precision | None = None) -> tuple[int, int]:
    """(ordinary, transcendental) lane ops per element of `op` on `precision` (None: 32 bits or less)."""
    ordinary, transcendental = OPS_PER_ELEMENT[op]
    if precision is Precision.INT64:
        return INT64_OPS_PER_ELEMENT.get(op, (2 * ordinary, transcendental))
    return ordinary, transcendental


def vector_cycles(chip: ProgrammableChip, op: VectorOp, length: int, precision: Precision | None = None) -> int:
    ordinary, transcendental = ops_per_element(op, precision)
    ord_rate, trans_rate = _rates(chip)
    return (math.ceil(length * ordinary / ord_rate) + math.ceil(length * transcendental / trans_rate)
            + chip.vector.pipeline_latency_cycles)


def vector_roofline_cycles(chip: ProgrammableChip, op: VectorOp, length: int,
                           precision: Precision | None = None) -> float:
    ordinary, transcendental = ops_per_element(op, precision)
    ord_rate, trans_rate = _rates(chip)
    return length * ordinary / ord_rate + length * transcendental / trans_rate


def vector_lane_ops(op: VectorOp, length: int, precision: Precision | None = None) -> int:
    """Lane operations of one instruction (what the energy model charges)."""
    ordinary, transcendental = ops_per_element(op, precision)
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


# ---- selection ops (TOPK, SCAN_SUM, REDUCE_PROD, ARGMAX) and VECTOR_GATHER ------------------------
#
# R = lanes * ops_per_lane_per_cycle ordinary ops per cycle, P = pipeline_latency_cycles.
#
# REDUCE_PROD, ARGMAX: one pass, one op per element (a multiply, or a compare that keeps the
#   winner's index with it), the cross-lane tree pipelined as for REDUCE_SUM:
#       ceil(length / R) + P.
# TOPK (rows of n, k kept): the microcode runs the cheaper of two schedules for the shape, as
#   top-k kernels pick between selection and sorting by k:
#     k-pass selection: k dependent arg-max passes over every row (the winner is struck out
#       before the next pass), each waiting for its cross-lane tree:
#       k * (ceil(rows * n / R) + ceil(log2 n));   ops k * rows * n.
#     bitonic sort: rows padded to p = 2**ceil(log2 n), s = log2 p, S = s (s + 1) / 2 stages
#       (at least 1) of one compare-exchange op per element, stages in sequence:
#       S * ceil(rows * p / R);   ops S * rows * p.
#   Small k (tiny-sparse keeps 2 of 11 blocks) takes the k passes; k near n or large rows the sort.
#   cycles = min(the two) + P.
# SCAN_SUM (lines of n, m = outer * inner lines): again the cheaper of
#     lane-sequential: each lane carries one line's running sum; n dependent steps over the
#       lines: n * ceil(m / R);   ops m * n.
#     log-step (Hillis-Steele) across lanes: t = max(1, ceil(log2 n)) steps, each adding every
#       element to the one 2**j before it: t * ceil(length / R);   ops t * length.
#   Many short lines (mamba2's chunk scans) go lane-sequential, one long line log-step.
#   cycles = min(the two) + P.
# VECTOR_GATHER: each gathered row costs one op for its index (read, wrap, address) and one per
#   element moved:  ceil(outer * count * (row_len + 1) / R) + P.
# Roofline of all of them: one op per element read (or moved), length / R.
# SRAM bytes: the source read once (the passes work on the lanes' copy), the outputs written.


@dataclass(frozen=True)
class SelectionCost:
    cycles: int
    roofline_cycles: float
    lane_ops: int
    sram_bytes: float
    schedule: str


def selection_cost(chip: ProgrammableChip, ins: Vector | VectorGather) -> SelectionCost:
    """Cycles, roofline, lane ops and SRAM bytes of a selection op or a VECTOR_GATHER (see above)."""
    rate = chip.vector.lanes * chip.vector.ops_per_lane_per_cycle
    latency = chip.vector.pipeline_latency_cycles
    eb = selection.element_bytes(ins.precision)
    if isinstance(ins, VectorGather):
        moved = ins.length
        ops = ins.outer * ins.count * (ins.row_len + 1)
        return SelectionCost(math.ceil(ops / rate) + latency, moved / rate, ops,
                             2.0 * moved * eb + ins.index_bytes, "gather")
    outer, n, inner = selection.lines(ins)
    written = sum(nbytes for _, _, nbytes in selection.outputs(ins))
    sram_bytes = float(ins.length * eb + written)
    schedules = [("one pass", math.ceil(ins.length / rate), ins.length)]
    if ins.op is VectorOp.TOPK:
        k, s = ins.imm, math.ceil(math.log2(n)) if n > 1 else 0   # s: tree depth, log2 of the padded row
        stages, padded = max(1, s * (s + 1) // 2), 1 << s
        schedules = [("k-pass", k * (math.ceil(outer * n / rate) + s), k * outer * n),
                     ("bitonic", stages * math.ceil(outer * padded / rate), stages * outer * padded)]
    elif ins.op is VectorOp.SCAN_SUM:
        steps = max(1, math.ceil(math.log2(n))) if n > 1 else 1
        schedules = [("lane-sequential", n * math.ceil(outer * inner / rate), ins.length),
                     ("log-step", steps * math.ceil(ins.length / rate), steps * ins.length)]
    name, cycles, ops = min(schedules, key=lambda entry: entry[1])
    return SelectionCost(cycles + latency, ins.length / rate, ops, sram_bytes, name)

