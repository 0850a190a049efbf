"""Where tensors live: weights in SRAM or streamed from HBM, caches and I/O in HBM, and "fits?".

Weights stay in SRAM when every per-chip weight (after sharding, at the weight precision)
fits beside a working-set reserve; lookup tables (embeddings) always stay in HBM because a
step reads only the rows it looks up. KV caches and recurrent state always live in HBM.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from compiler.ir.graph import Graph
from compiler.ir.ops import Op
from compiler.targets.programmable.arena import align
from compiler.targets.programmable.options import LoweringOptions
from compiler.targets.programmable.sharding import ShardPlan
from simulator.hardware.programmable import PRECISION_BITS, ProgrammableChip

_CONTRACTING = {Op.MATMUL, Op.GEMM, Op.EINSUM}
_THROUGH = {Op.TRANSPOSE, Op.CAST, Op.IDENTITY, Op.RESHAPE}
GB = 1e9


@dataclass
class WeightPlan:
    """Per parameter: storage bits per element, per-chip bytes, and whether it is a lookup table."""

    bits: dict[str, int] = field(default_factory=dict)
    local_bytes: dict[str, int] = field(default_factory=dict)
    total_bytes: dict[str, int] = field(default_factory=dict)
    tables: set[str] = field(default_factory=set)
    in_sram: bool = False
    reserve_bytes: int = 0

    @property
    def per_chip(self) -> int:
        return sum(self.local_bytes.values())

    @property
    def total(self) -> int:
        return sum(self.total_bytes.values())

    @property
    def sram_resident_bytes(self) -> int:
        if not self.in_sram:
            return 0
        return sum(align(b) for name, b in self.local_bytes.items() if name not in self.tables)


@dataclass(frozen=True)
class StateBytes:
    kv_per_chip: int
    kv_total: int
    state_per_chip: int
    state_total: int


def classify_parameters(graph: Graph, options: LoweringOptions) -> tuple[dict[str, int], set[str]]:
    """Storage bits of each parameter and the set used as lookup tables.

    Matrix operands of contractions and lookup tables take the weight precision; the rest
    (norm gains, biases, conv taps) feed the vector unit and stay at the activation precision.
    """
    bits: dict[str, int] = {}
    tables: set[str] = set()
    weight_bits = PRECISION_BITS[options.weight_precision]
    activation_bits = PRECISION_BITS[options.activation_precision]
    for name, const in graph.constants.items():
        if not const.is_parameter:
            continue
        uses = _final_uses(graph, name)
        matrix = any(op in _CONTRACTING for op, _ in uses) and len(const.type.shape) >= 2
        table = any(op == Op.GATHER and index == 0 for op, index in uses)
        if table:
            tables.add(name)
        bits[name] = weight_bits if (matrix or table) else activation_bits
    return bits, tables


def plan_weights(graph: Graph, shard: ShardPlan, chip: ProgrammableChip, options: LoweringOptions,
                 reserve_bytes: int) -> WeightPlan:
    bits, tables = classify_parameters(graph, options)
    plan = WeightPlan(bits=bits, tables=tables, reserve_bytes=reserve_bytes)
    for name, nbits in bits.items():
        shape = tuple(int(d) for d in graph.constants[name].type.shape)
        local = shard.local_shape(name, shape, is_param=True)
        plan.local_bytes[name] = math.ceil(math.prod(local) * nbits / 8)
        plan.total_bytes[name] = math.ceil(math.prod(shape) * nbits / 8)
    resident = sum(align(b) for name, b in plan.local_bytes.items() if name not in tables)
    # Weights in SRAM only when all of them fit with room left for the working set.
    plan.in_sram = resident + reserve_bytes <= chip.memory.sram_bytes
    return plan


def state_bytes(graph: Graph, shapes: dict[str, tuple[int, ...]], shard: ShardPlan,
                options: LoweringOptions) -> StateBytes:
    """KV caches (inputs named *key* / *value*, at the KV precision) and other recurrent state."""
    kv_local = kv_total = other_local = other_total = 0
    for name, ttype in graph.inputs.items():
        if not ttype.dtype.is_float:
            continue
        is_kv = is_kv_input(name)
        nbits = PRECISION_BITS[options.kv_precision] if is_kv else ttype.dtype.bits
        full = math.ceil(math.prod(shapes[name]) * nbits / 8)
        local = math.ceil(math.prod(shard.local_shape(name, shapes[name])) * nbits / 8)
        if is_kv:
            kv_local, kv_total = kv_local + local, kv_total + full
        else:
            other_local, other_total = other_local + local, other_total + full
    return StateBytes(kv_local, kv_total, other_local, other_total)


def is_kv_input(name: str) -> bool:
    lowered = name.lower()
    return "key" in lowered or "value" in lowered


def fits_report(weights: WeightPlan, kv: StateBytes, activation_hbm_bytes: int, io_bytes: int,
                chip: ProgrammableChip) -> tuple[bool, str]:
    """Whether one chip holds its weights, KV, state and activations, and the sizes that decide it."""
    hbm = chip.memory.hbm_bytes
    weights_hbm = weights.per_chip - (weights.sram_resident_bytes if weights.in_sram else 0)
    parts = [f"weights {weights_hbm / GB:.2f} GB", f"KV {kv.kv_per_chip / GB:.2f} GB"]
    if kv.state_per_chip:
        parts.append(f"state {kv.state_per_chip / GB:.2f} GB")
    parts.append(f"activations and I/O {(activation_hbm_bytes + io_bytes) / GB:.2f} GB")
    total = weights_hbm + kv.kv_per_chip + kv.state_per_chip + activation_hbm_bytes + io_bytes
    prefix = ""
    if weights.in_sram:
        prefix = (f"weights {weights.sram_resident_bytes / GB:.2f} GB in SRAM "
                  f"(of {chip.memory.sram_bytes / GB:.2f} GB); HBM: ")
    summed = " + ".join(parts) + f" = {total / GB:.2f} GB"
    if total <= hbm:
        return True, f"{prefix}{summed} <= {hbm / GB:.1f} GB HBM"
    return False, f"{prefix}{summed} exceeds {hbm / GB:.1f} GB HBM by {(total - hbm) / GB:.2f} GB"


def _final_uses(graph: Graph, value: str) -> list[tuple[Op, int]]:
    """(op, input index) of every consumer, looking through layout ops."""
    uses: list[tuple[Op, int]] = []
    frontier = [value]
    while frontier:
        current = frontier.pop()
        for node in graph.consumers(current):
            if node.op in _THROUGH and node.inputs[0] == current:
                frontier.append(node.outputs[0])
            else:
                uses += [(node.op, i) for i, v in enumerate(node.inputs) if v == current]
    return uses
