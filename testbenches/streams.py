"""cocotb drivers and monitors for Amaranth `lib.stream` ports, and a liveness watchdog.

An Amaranth stream port `x` appears in Verilog as `x__payload`, `x__valid` and `x__ready`. A
transfer happens on a rising clock edge where valid and ready are both high. The driver holds
valid low for random idle cycles between beats; the sink holds ready low at random (back-
pressure). Both draw from one seeded `random.Random`, so a failing run repeats with its seed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

import cocotb
from cocotb.triggers import FallingEdge, ReadOnly


class StreamPort:
    """The three signals of stream port `name` on `dut`."""

    def __init__(self, dut, name: str) -> None:
        self.name = name
        self.payload = getattr(dut, f"{name}__payload")
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")


class StreamDriver:
    """Sends payloads (ints) into a stream the DUT receives, with random idle cycles.

    All testbench activity happens at falling edges: drive, then read the settled signals in
    the ReadOnly phase of the same time step. Those are the values the next rising edge samples,
    so "valid and ready in ReadOnly" is exactly "a transfer happens at the next rising edge".
    """

    def __init__(self, dut, name: str, clock, rng: random.Random, idle_probability: float = 0.3) -> None:
        self.port = StreamPort(dut, name)
        self.clock = clock
        self.rng = rng
        self.idle_probability = idle_probability
        self.sent = 0
        self.port.valid.value = 0

    async def send(self, payloads: Iterable[int]) -> None:
        await FallingEdge(self.clock)
        for payload in payloads:
            while self.rng.random() < self.idle_probability:
                self.port.valid.value = 0
                await FallingEdge(self.clock)
            self.port.payload.value = int(payload)
            self.port.valid.value = 1
            while True:
                await ReadOnly()
                accepted = bool(self.port.ready.value)
                if accepted:
                    self.on_beat()
                await FallingEdge(self.clock)
                if accepted:
                    break
            self.sent += 1
            self.port.valid.value = 0

    def on_beat(self) -> None:
        """Called in the cycle a beat is taken (subclasses time the stream with it)."""


class StreamSink:
    """Collects payloads from a stream the DUT sends, with random back-pressure."""

    def __init__(self, dut, name: str, clock, rng: random.Random, stall_probability: float = 0.3) -> None:
        self.port = StreamPort(dut, name)
        self.clock = clock
        self.rng = rng
        self.stall_probability = stall_probability
        self.received: list[int] = []
        self.port.ready.value = 0

    def start(self) -> None:
        cocotb.start_soon(self._run())

    async def _run(self) -> None:
        while True:
            await FallingEdge(self.clock)
            self.port.ready.value = int(self.rng.random() >= self.stall_probability)
            await ReadOnly()
            if self.port.valid.value and self.port.ready.value:
                self.received.append(int(self.port.payload.value))
                self.on_beat()

    def on_beat(self) -> None:
        """Called in the cycle a beat is received (subclasses time the stream with it)."""

    async def wait_for(self, count: int, watchdog: Watchdog) -> list[int]:
        while len(self.received) < count:
            await FallingEdge(self.clock)
            watchdog.check(lambda: f"{self.port.name}: {len(self.received)} of {count} beats received")
        return self.received[:count]


class Watchdog:
    """Fails a test that makes no progress for `limit_cycles` cycles, saying what was stalled."""

    def __init__(self, clock, limit_cycles: int) -> None:
        self.clock = clock
        self.limit_cycles = limit_cycles
        self.cycles = 0

    def kick(self) -> None:
        self.cycles = 0

    def check(self, describe: Callable[[], str]) -> None:
        self.cycles += 1
        if self.cycles > self.limit_cycles:
            raise AssertionError(f"watchdog: no progress in {self.limit_cycles} cycles; {describe()}")


def split_words(value: int, count: int, bits: int, signed: bool = False) -> list[int]:
    """`count` little-endian `bits`-wide fields of a packed integer (two's complement when signed)."""
    mask = (1 << bits) - 1
    out = []
    for i in range(count):
        field = (value >> (i * bits)) & mask
        if signed and field >> (bits - 1):
            field -= 1 << bits
        out.append(field)
    return out


def pack_words(values: Iterable[int], bits: int) -> int:
    mask = (1 << bits) - 1
    packed = 0
    for i, v in enumerate(values):
        packed |= (int(v) & mask) << (i * bits)
    return packed
