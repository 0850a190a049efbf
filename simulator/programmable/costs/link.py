"""Chip-to-chip collectives on a ring of `chips` chips, with their bandwidth rooflines.

`nbytes` is the whole buffer (NCCL's convention: the all-reduce operand, the all-gather output,
the reduce-scatter input). Each chip sends over its link at `link_bytes_per_s`, one hop costs
`link_latency_s`, and a ring step moves nbytes / p per chip:

    all-reduce       2 (p-1)/p * nbytes / link_bytes_per_s + 2 (p-1) * link_latency_s
    all-gather       (p-1)/p * nbytes / link_bytes_per_s + (p-1) * link_latency_s
    reduce-scatter   (p-1)/p * nbytes / link_bytes_per_s + (p-1) * link_latency_s

The roofline drops the latency term (the bandwidth-optimal bound). One chip costs nothing.
"""

from __future__ import annotations

from compiler.targets.programmable.isa import CollectiveKind
from simulator.hardware.programmable import ProgrammableChip

_RING_STEPS = {CollectiveKind.ALL_REDUCE: 2, CollectiveKind.ALL_GATHER: 1, CollectiveKind.REDUCE_SCATTER: 1}


def collective_link_bytes(kind: CollectiveKind, nbytes: float, chips: int) -> float:
    """Bytes each chip sends."""
    if chips <= 1:
        return 0.0
    return _RING_STEPS[kind] * (chips - 1) / chips * nbytes


def collective_roofline_s(chip: ProgrammableChip, kind: CollectiveKind, nbytes: float, chips: int) -> float:
    return collective_link_bytes(kind, nbytes, chips) / chip.links.link_bytes_per_s


def collective_time_s(chip: ProgrammableChip, kind: CollectiveKind, nbytes: float, chips: int) -> float:
    if chips <= 1:
        return 0.0
    hops = _RING_STEPS[kind] * (chips - 1)
    return collective_roofline_s(chip, kind, nbytes, chips) + hops * chip.links.link_latency_s
