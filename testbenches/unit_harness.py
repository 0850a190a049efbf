"""Pieces the unit testbenches share: a cycle counter, a scratchpad model behind a unit's SRAM
ports, and a command driver that notes when each command was taken.

Conventions (as in streams.py): the testbench acts at falling edges and samples in the ReadOnly
phase of the same time step. `Cycles.now` at a falling edge is the cycle between rising edges
`now` and `now + 1`; a command seen valid and ready in cycle x is taken at edge x + 1, and a
`done` seen high in cycle y is sampled at edge y + 1, so the unit took y - x cycles.
"""

from __future__ import annotations

import random

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, ReadOnly


class Cycles:
    def __init__(self, clock) -> None:
        self.now = 0
        cocotb.start_soon(self._count(clock))

    async def _count(self, clock) -> None:
        while True:
            await FallingEdge(clock)
            self.now += 1


class ScratchpadModel:
    """A numpy byte array behind read ports (registered: data one cycle after `en`, the old data
    when the same word is written in that cycle) and byte-masked write ports (ports.py)."""

    def __init__(self, dut, clock, memory: np.ndarray, word_bytes: int, reads: list[str], writes: list[str]) -> None:
        self.memory = memory
        self.word_bytes = word_bytes
        self.reads = [(getattr(dut, f"{p}__en"), getattr(dut, f"{p}__addr"), getattr(dut, f"{p}__data")) for p in reads]
        self.writes = [(getattr(dut, f"{p}__en"), getattr(dut, f"{p}__addr"), getattr(dut, f"{p}__data"),
                        getattr(dut, f"{p}__mask")) for p in writes]
        self.read_count = 0
        self.write_count = 0
        cocotb.start_soon(self._run(clock))

    def _word(self, addr: int) -> int:
        at = addr * self.word_bytes
        return int.from_bytes(self.memory[at:at + self.word_bytes].tobytes(), "little")

    async def _run(self, clock) -> None:
        pending_reads: list[tuple[int, int]] = []
        pending_writes: list[tuple[int, int, int]] = []
        while True:
            await FallingEdge(clock)
            for port, addr in pending_reads:
                self.reads[port][2].value = self._word(addr)
            for addr, value, mask in pending_writes:
                at = addr * self.word_bytes
                raw = value.to_bytes(self.word_bytes, "little")
                for i in range(self.word_bytes):
                    if mask >> i & 1:
                        self.memory[at + i] = raw[i]
            await ReadOnly()
            pending_reads = [(i, int(addr.value)) for i, (en, addr, _) in enumerate(self.reads) if int(en.value)]
            pending_writes = [(int(addr.value), int(data.value), int(mask.value))
                              for en, addr, data, mask in self.writes if int(en.value) and int(mask.value)]
            self.read_count += len(pending_reads)
            self.write_count += len(pending_writes)


class CommandDriver:
    """Presents commands on stream `name` with random idle cycles; `taken[i]` is the cycle x in
    which command i was seen valid and ready (taken at edge x + 1)."""

    def __init__(self, dut, name: str, clock, cycles: Cycles, rng: random.Random, idle_probability: float) -> None:
        self.payload = getattr(dut, f"{name}__payload")
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.clock, self.cycles, self.rng = clock, cycles, rng
        self.idle_probability = idle_probability
        self.taken: list[int] = []
        self.valid.value = 0

    async def send(self, payloads: list[int]) -> None:
        await FallingEdge(self.clock)
        for payload in payloads:
            while self.rng.random() < self.idle_probability:
                self.valid.value = 0
                await FallingEdge(self.clock)
            self.payload.value = payload
            self.valid.value = 1
            while True:
                await ReadOnly()
                accepted = bool(int(self.ready.value))
                now = self.cycles.now
                await FallingEdge(self.clock)
                if accepted:
                    self.taken.append(now)
                    break
            self.valid.value = 0


class DoneMonitor:
    """Notes every cycle in which a bit of `done` (and `error`) is high."""

    def __init__(self, dut, clock, cycles: Cycles, width: int) -> None:
        self.done, self.error = dut.done, dut.error
        self.width = width
        self.events: list[tuple[int, int]] = []     # (cycle, bit)
        self.errors: list[int] = []
        cocotb.start_soon(self._run(clock, cycles))

    async def _run(self, clock, cycles: Cycles) -> None:
        while True:
            await FallingEdge(clock)
            await ReadOnly()
            bits = int(self.done.value)
            for bit in range(self.width):
                if bits >> bit & 1:
                    self.events.append((cycles.now, bit))
            if int(self.error.value):
                self.errors.append(cycles.now)


async def reset(dut, clock) -> None:
    from cocotb.triggers import ClockCycles

    dut.rst.value = 1
    dut.cmd__valid.value = 0
    await ClockCycles(clock, 2)
    dut.rst.value = 0
