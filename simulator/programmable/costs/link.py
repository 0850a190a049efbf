"""Chip-to-chip collectives on a bidirectional ring of `chips` chips, with their bandwidth rooflines.

`nbytes` is the whole buffer (NCCL's convention: the all-reduce operand, the all-gather output,
the reduce-scatter input). Each chip sends at `link_bytes_per_s` in all, one hop costs
`link_latency_s`. The collective engine runs the faster of two algorithms per instruction, as
NCCL picks an algorithm by message size:

* ring (bandwidth-optimal): p - 1 steps (twice for an all-reduce: reduce-scatter then
  all-gather), each moving nbytes / p per chip and paying one hop:

      all-reduce       2 (p-1)/p * nbytes / link_bytes_per_s + 2 (p-1) * link_latency_s
      all-gather       (p-1)/p * nbytes / link_bytes_per_s + (p-1) * link_latency_s
      reduce-scatter   (p-1)/p * nbytes / link_bytes_per_s + (p-1) * link_latency_s

* direct all-reduce (latency-optimal, for the small all-reduces of decode): every chip sends its
  whole buffer both ways round the ring and forwards what it receives (cut-through), so the
  farthest chip's data arrives after floor(p/2) hops; each buffer crosses p - 1 links, so each
  chip sends (p - 1) * nbytes; every chip then sums the p buffers itself:

      all-reduce       (p-1) * nbytes / link_bytes_per_s + floor(p/2) * link_latency_s

  All-gather and reduce-scatter move no fewer bytes than their ring form either way; they
  stay ring. The local sums are vector work the model does not charge (as in the ring form).

The roofline keeps the ring's bytes and drops the latency (the bandwidth-optimal bound); the
link bytes (energy) are the chosen algorithm's. One chip costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from compiler.targets.programmable.isa import CollectiveKind
from simulator.hardware.programmable import ProgrammableChip

_RING_STEPS = {CollectiveKind.ALL_REDUCE: 2, CollectiveKind.ALL_GATHER: 1, CollectiveKind.REDUCE_SCATTER: 1}


@dataclass(frozen=True)
class CollectiveCost:
    algorithm: str       # "ring" or "direct"
    time_s: float
    link_bytes: float    # bytes each chip sends


def ring_link_bytes(kind: CollectiveKind, nbytes: float, chips: int) -> float:
    """Bytes each chip sends in the ring algorithm (the fewest any algorithm sends)."""
    if chips <= 1:
        return 0.0
    return _RING_STEPS[kind] * (chips - 1) / chips * nbytes


def collective_cost(chip: ProgrammableChip, kind: CollectiveKind, nbytes: float, chips: int) -> CollectiveCost:
    """The faster algorithm for this collective, its time and the bytes each chip sends."""
    if chips <= 1:
        return CollectiveCost("ring", 0.0, 0.0)
    bandwidth, hop = chip.links.link_bytes_per_s, chip.links.link_latency_s
    ring_bytes = ring_link_bytes(kind, nbytes, chips)
    best = CollectiveCost("ring", ring_bytes / bandwidth + _RING_STEPS[kind] * (chips - 1) * hop, ring_bytes)
    if kind is CollectiveKind.ALL_REDUCE:
        direct_bytes = (chips - 1) * nbytes
        direct = CollectiveCost("direct", direct_bytes / bandwidth + chips // 2 * hop, direct_bytes)
        if direct.time_s < best.time_s:
            best = direct
    return best


def collective_roofline_s(chip: ProgrammableChip, kind: CollectiveKind, nbytes: float, chips: int) -> float:
    return ring_link_bytes(kind, nbytes, chips) / chip.links.link_bytes_per_s


def collective_time_s(chip: ProgrammableChip, kind: CollectiveKind, nbytes: float, chips: int) -> float:
    return collective_cost(chip, kind, nbytes, chips).time_s
