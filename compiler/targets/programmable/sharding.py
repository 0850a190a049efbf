"""Tensor parallelism (Megatron style): which axis of every value is split across the chips.

The plan is propagated through the graph in order. A weight MatMul whose input is replicated
becomes column-parallel (its output split along N: QKV, gate, up, LM head); one whose input
is split along K becomes row-parallel (O, down) and is followed by an all-reduce. Per-head
ops keep the head split; a KV-cache input takes the split of what is appended to it. Where a
rule cannot keep a split (e.g. a softmax along the split axis), the input is all-gathered:
always correct, and each such gather is listed in `notes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from compiler.ir.graph import Graph
from compiler.ir.ops import Op

_LAYOUT_CHAIN = {Op.TRANSPOSE, Op.CAST, Op.IDENTITY}
_STATE_WORDS = ("present", "state", "cache", "memory", "past")


@dataclass
class ShardPlan:
    chips: int
    axis: dict[str, int | None] = field(default_factory=dict)
    weight_axis: dict[str, int | None] = field(default_factory=dict)
    gather_before: dict[str, list[str]] = field(default_factory=dict)
    reduce_after: dict[str, list[str]] = field(default_factory=dict)
    gather_outputs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def split_axis(self, value: str) -> int | None:
        axis = self.axis.get(value)
        return axis if axis is not None and axis >= 0 else None

    def local_shape(self, value: str, shape: tuple[int, ...], is_param: bool = False) -> tuple[int, ...]:
        axis = self.weight_axis.get(value) if is_param else self.split_axis(value)
        if axis is None or self.chips == 1:
            return shape
        return shape[:axis] + (shape[axis] // self.chips,) + shape[axis + 1:]


def plan_sharding(graph: Graph, shapes: dict[str, tuple[int, ...]], chips: int) -> ShardPlan:
    plan = ShardPlan(chips)
    if chips == 1:
        return plan
    from compiler.targets.programmable.shard_rules import Planner

    Planner(graph, shapes, plan).run()
    return plan


def is_state_output(name: str) -> bool:
    """Cache and recurrent-state outputs stay split: each chip stores its own heads."""
    lowered = name.lower()
    return any(word in lowered for word in _STATE_WORDS)


def weight_source(graph: Graph, value: str) -> tuple[str, tuple[int, ...]] | None:
    """(parameter, axis map) when `value` is a parameter seen through Transpose/Cast/Identity."""
    perm: tuple[int, ...] | None = None
    while True:
        const = graph.constants.get(value)
        if const is not None:
            if not const.is_parameter:
                return None
            rank = len(const.type.shape)
            return value, perm if perm is not None else tuple(range(rank))
        producer = graph.producer(value)
        if producer is None or producer.op not in _LAYOUT_CHAIN:
            return None
        if producer.op == Op.TRANSPOSE:
            step = tuple(producer.attr("perm") or ())
            perm = step if perm is None else tuple(step[p] for p in perm)
        value = producer.inputs[0]
