"""cocotb testbench of the hard-wired matrix-vector unit (rtl/spatial/mvu.py).

Inputs (from tests/rtl/test_mvu.py): `tokens` (int8 vectors), `expected` (the quantized layer's
outputs from the project's numpy model), the beat geometry, and `latency_cycles` for the
watchdog. `mvu_streams` drives the tokens with random idle cycles against random back-pressure
and checks every output (the scoreboard). `mvu_timing` sends the tokens back to back into an
always-ready sink and records, for pytest's cycle check, the rising edge of every input and
output transfer.
"""

from __future__ import annotations

import random
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly

from testbenches.runner import CLOCK_PERIOD_NS, load_inputs, write_outputs
from testbenches.streams import StreamDriver, StreamPort, StreamSink, Watchdog, pack_words, split_words

ACTIVATION_BITS = 8


class Geometry:
    def __init__(self, inputs: dict) -> None:
        self.simd = inputs["simd"]
        self.pe = inputs["pe"]
        self.out_bits = inputs["out_bits"]
        self.tokens = inputs["tokens"]
        self.expected = inputs["expected"]
        self.watchdog_cycles = 4 * inputs["latency_cycles"] + 64

    def beats(self, token: list[int]) -> list[int]:
        return [pack_words(token[b:b + self.simd], ACTIVATION_BITS) for b in range(0, len(token), self.simd)]

    def outputs(self, payloads: list[int]) -> list[int]:
        return [v for p in payloads for v in split_words(p, self.pe, self.out_bits, signed=True)]

    @property
    def output_beats(self) -> int:
        return len(self.expected[0]) // self.pe


async def _reset(dut) -> None:
    cocotb.start_soon(Clock(dut.clk, CLOCK_PERIOD_NS, unit="ns").start())
    dut.rst.value = 1
    dut.x__valid.value = 0
    dut.y__ready.value = 0
    await ClockCycles(dut.clk, 2)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


async def _collect(sink: StreamSink, driver: StreamDriver, count: int, watchdog: Watchdog, total_in: int) -> list[int]:
    """Wait for `count` output beats; the watchdog restarts on every input or output transfer."""
    seen = (0, 0)
    while len(sink.received) < count:
        await FallingEdge(sink.clock)
        now = (len(sink.received), driver.sent)
        if now != seen:
            seen = now
            watchdog.kick()
        watchdog.check(lambda: f"y: {len(sink.received)} of {count} beats received; "
                               f"x: {driver.sent} of {total_in} beats sent")
    return sink.received[:count]


@cocotb.test()
async def mvu_streams(dut):
    """Random idle cycles on x, random back-pressure on y: every output bit-exact."""
    inputs = load_inputs()
    geo = Geometry(inputs)
    await _reset(dut)
    rng = random.Random(inputs["seed"])
    driver = StreamDriver(dut, "x", dut.clk, rng, idle_probability=0.3)
    sink = StreamSink(dut, "y", dut.clk, rng, stall_probability=0.3)
    sink.start()
    beats = [b for token in geo.tokens for b in geo.beats(token)]
    cocotb.start_soon(driver.send(beats))
    count = geo.output_beats * len(geo.tokens)
    started = time.perf_counter()
    got = geo.outputs(await _collect(sink, driver, count, Watchdog(dut.clk, geo.watchdog_cycles), len(beats)))
    for t, expected in enumerate(geo.expected):
        cols = len(expected)
        actual = got[t * cols:(t + 1) * cols]
        bad = [n for n in range(cols) if actual[n] != expected[n]]
        assert not bad, (f"token {t}: {len(bad)} of {cols} outputs differ, first at column {bad[0]}: "
                         f"RTL {actual[bad[0]]}, model {expected[bad[0]]}")
    write_outputs("streams", {"wall_s": time.perf_counter() - started})


@cocotb.test()
async def mvu_timing(dut):
    """Tokens back to back, sink always ready: transfer edges of every beat on x and y."""
    inputs = load_inputs()
    geo = Geometry(inputs)
    await _reset(dut)
    edges = {"x": [], "y": []}
    cocotb.start_soon(_monitor(dut, edges))
    driver = StreamDriver(dut, "x", dut.clk, random.Random(0), idle_probability=0.0)
    sink = StreamSink(dut, "y", dut.clk, random.Random(0), stall_probability=0.0)
    sink.start()
    beats = [b for token in geo.tokens for b in geo.beats(token)]
    cocotb.start_soon(driver.send(beats))
    count = geo.output_beats * len(geo.tokens)
    started = time.perf_counter()
    await _collect(sink, driver, count, Watchdog(dut.clk, geo.watchdog_cycles), len(beats))
    wall_s = time.perf_counter() - started
    got = geo.outputs(sink.received[:count])
    assert got == [v for e in geo.expected for v in e], "outputs differ from the model in the timing run"
    write_outputs("timing", {"x_edges": edges["x"], "y_edges": edges["y"], "wall_s": wall_s,
                             "cycles": edges["y"][-1] if edges["y"] else 0})


async def _monitor(dut, edges: dict[str, list[int]]) -> None:
    """Passive: at each falling edge, a stream with valid and ready high transfers at the next rising edge."""
    ports = {name: StreamPort(dut, name) for name in edges}
    edge = 0
    while True:
        await FallingEdge(dut.clk)
        await ReadOnly()
        edge += 1
        for name, port in ports.items():
            if port.valid.value and port.ready.value:
                edges[name].append(edge)
