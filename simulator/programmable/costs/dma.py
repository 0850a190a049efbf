"""DMA transfers between HBM and SRAM: a fixed latency, then the bytes at a share of HBM bandwidth.

A transfer of `rows x row_bytes` first waits `hbm_latency_s` (request to first byte; it uses no
bandwidth), then moves its bytes. Transfers in their data phase share `hbm_bytes_per_s` equally
(processor sharing): with n of them active each moves at hbm_bytes_per_s / n, and when n changes
every in-flight transfer is re-timed. One transfer alone may use the full bandwidth (no preset
limits a single channel). At most `dma_channels` transfers are in flight at once (the engine
enforces that).

Alone:     time = hbm_latency_s + bytes / hbm_bytes_per_s
Roofline:  bytes / hbm_bytes_per_s

Before that, a DMA instruction spends `memory.dma_setup_cycles` in its engine (default 0): the
cycle(s) between the queue issuing it and its first request reaching memory. The RTL DMA engine
(rtl/programmable/dma.py) registers its first request, a store must read the scratchpad before
it can write, so matx-tiny sets 1 (measured on the RTL). The engine charges the setup together
with the latency (`request_latency_s`); neither uses bandwidth.

The external port of the RTL moves `hbm_bytes_per_s / clock_hz` bytes per cycle, one aligned beat
per request, with requests pipelined across rows: a strided transfer pays no per-row cost there,
so rows do not appear in the model (rtl/programmable/check.py refuses transfers whose rows or
addresses are not whole beats).
"""

from __future__ import annotations

import math

from simulator.hardware.programmable import ProgrammableChip

# Remaining bytes below this count as done: float re-timing leaves crumbs of 1e-9 bytes.
_DONE_BYTES = 1e-6


def transfer_time_s(chip: ProgrammableChip, nbytes: float, concurrent: int = 1) -> float:
    """A transfer that shares the bandwidth with `concurrent - 1` others for its whole data phase
    (from its first request; `dma_time_s` adds the engine's setup)."""
    return chip.memory.hbm_latency_s + nbytes * concurrent / chip.memory.hbm_bytes_per_s


def request_latency_s(chip: ProgrammableChip) -> float:
    """From issue to the first byte moving: the DMA engine's setup, then the memory's latency."""
    return chip.memory.dma_setup_cycles / chip.clock_hz + chip.memory.hbm_latency_s


def dma_time_s(chip: ProgrammableChip, nbytes: float) -> float:
    """One DMA instruction alone, from issue to its last byte."""
    return request_latency_s(chip) + nbytes / chip.memory.hbm_bytes_per_s


def transfer_roofline_s(chip: ProgrammableChip, nbytes: float) -> float:
    return nbytes / chip.memory.hbm_bytes_per_s


class SharedBandwidth:
    """Processor sharing of one bandwidth among active transfers (the event engine's DMA model).

    `remaining[key]` is each active transfer's bytes still to move as of `updated_s`; `advance`
    brings them to a later time at the current share, before any arrival or departure changes it.
    """

    __slots__ = ("bytes_per_s", "remaining", "updated_s")

    def __init__(self, bytes_per_s: float) -> None:
        self.bytes_per_s = bytes_per_s
        self.remaining: dict[object, float] = {}
        self.updated_s = 0.0

    def advance(self, now_s: float) -> None:
        if self.remaining and now_s > self.updated_s:
            moved = (now_s - self.updated_s) * self.bytes_per_s / len(self.remaining)
            for key in self.remaining:
                self.remaining[key] -= moved
        self.updated_s = now_s

    def add(self, key: object, nbytes: float, now_s: float) -> None:
        self.advance(now_s)
        self.remaining[key] = float(nbytes)

    def next_completion_s(self) -> float:
        """When the transfer closest to done finishes if nothing else changes (inf when idle)."""
        if not self.remaining:
            return math.inf
        least = min(self.remaining.values())
        return self.updated_s + max(least, 0.0) * len(self.remaining) / self.bytes_per_s

    def pop_finished(self, now_s: float, force_least: bool = False) -> list[object]:
        """Advance to `now_s` and remove the transfers that have moved all their bytes.

        `force_least`: `now_s` is the predicted completion of the transfer closest to done, so
        it finishes even if float re-timing left a few bytes (the tolerance scales with the
        time resolution at `now_s`, so long runs do not stall on rounding crumbs)."""
        self.advance(now_s)
        if not self.remaining:
            return []
        tolerance = max(_DONE_BYTES, self.bytes_per_s * abs(now_s) * 1e-14)
        if force_least:
            tolerance = max(tolerance, min(self.remaining.values()) + tolerance)
        done = [key for key, left in self.remaining.items() if left <= tolerance]
        for key in done:
            del self.remaining[key]
        return done
