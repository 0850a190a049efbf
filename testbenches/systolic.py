"""cocotb testbench of rtl/programmable/systolic.py: drivers for the weight and activation streams,
a monitor on each result stream, and the project's int8 GEMM (functional.gemm_int8) as the model.

Inputs (from tests/rtl/test_systolic.py): `rows`, `cols`, `max_split` and a list of `cases`; a
case sets `chain` and gives, per port set, tiles of A (m x R) and B (R x cols). All port sets of
a case run at once (sub-arrays are independent), every stream with random idle cycles and
random back-pressure unless the case says `stall: false`; then the latency of each result row
after its activation row is checked too (R + cols - 1 cycles, see the module docstring).
"""

from __future__ import annotations

import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from simulator.programmable.functional import gemm_int8
from testbenches.runner import load_inputs, write_outputs
from testbenches.streams import StreamDriver, StreamSink, Watchdog, pack_words, split_words
from testbenches.unit_harness import Cycles


class TimedSink(StreamSink):
    """A StreamSink that also notes the cycle of each beat."""

    def __init__(self, *args, cycles: Cycles, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cycles = cycles
        self.at: list[int] = []

    def on_beat(self) -> None:
        self.at.append(self.cycles.now)


class TimedDriver(StreamDriver):
    """A StreamDriver that notes the cycle each beat is taken in."""

    def __init__(self, *args, cycles: Cycles, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cycles = cycles
        self.at: list[int] = []

    def on_beat(self) -> None:
        self.at.append(self.cycles.now)


@cocotb.test()
async def tiles_through_sub_arrays(dut):
    spec = load_inputs()
    rows, cols = spec["rows"], spec["cols"]
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    cycles = Cycles(dut.clk)
    dut.rst.value = 1
    dut.chain.value = 0
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    rng = random.Random(spec["seed"])
    latencies = []
    for number, case in enumerate(spec["cases"]):
        await FallingEdge(dut.clk)
        dut.chain.value = case["chain"]
        stall = case.get("stall", True)
        sinks, expected, drivers, tasks = {}, {}, {}, []
        for port, tiles in case["ports"].items():
            c = int(port)
            r = len(tiles[0]["b"])
            weights, acts, want = [], [], []
            for tile in tiles:
                a = np.array(tile["a"], dtype=np.int8)
                b = np.array(tile["b"], dtype=np.int8)
                weights += [pack_words(row, 8) for row in b]
                for i, row in enumerate(a):
                    padded = list(row) + [0] * (rows - r)
                    acts.append(pack_words(padded, 8) | (int(i == len(a) - 1) << (8 * rows)))
                want += [list(row) for row in gemm_int8(a, b)]
            idle = 0.3 if stall else 0.0
            w = StreamDriver(dut, f"weights__{c}", dut.clk, rng, idle_probability=idle)
            x = TimedDriver(dut, f"acts__{c}", dut.clk, rng, idle_probability=idle, cycles=cycles)
            sink = TimedSink(dut, f"results__{c}", dut.clk, rng, stall_probability=0.3 if stall else 0.0,
                             cycles=cycles)
            tasks.append(cocotb.start_soon(sink._run()))
            cocotb.start_soon(w.send(weights))
            cocotb.start_soon(x.send(acts))
            sinks[c], expected[c], drivers[c] = sink, want, (r, x)
        watchdog = Watchdog(dut.clk, 200)
        for c, sink in sinks.items():
            got = await sink.wait_for(len(expected[c]), watchdog)
            rows_got = [split_words(v, cols, 32, signed=True) for v in got]
            for i, (row, want) in enumerate(zip(rows_got, expected[c])):
                assert row == want, f"case {number}, port {c}, result row {i}: RTL {row}, model {want}"
            if not stall:
                r, x = drivers[c]
                latencies += [(r, out - taken) for out, taken in zip(sink.at, x.at)]
        for task in tasks:
            task.cancel()
        await FallingEdge(dut.clk)
        for c in sinks:
            getattr(dut, f"results__{c}__ready").value = 1
        await ClockCycles(dut.clk, rows + cols + 2)        # drain before the next case regroups the array
    write_outputs("systolic", {"latencies": latencies})
