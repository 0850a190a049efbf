"""cocotb testbench of rtl/programmable/vector_unit.py: a scratchpad model behind its two read
ports and its write port, a command driver with random idle cycles, a monitor of `done`.

Inputs (tests/rtl/test_vector_unit.py): the initial scratchpad, encoded VECTOR commands (sent
one after another; the unit takes the next in the cycle it finishes) and commands it must
refuse. Outputs: the final scratchpad and, per command, the cycle it was taken in and the cycle
`done` was high in; the pytest side compares with the functional model and vector_cycles.
"""

from __future__ import annotations

import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from testbenches.runner import load_inputs, write_outputs
from testbenches.unit_harness import CommandDriver, Cycles, DoneMonitor, ScratchpadModel, reset

WATCHDOG_CYCLES = 2000


@cocotb.test()
async def vector_commands(dut):
    spec = load_inputs()
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    cycles = Cycles(dut.clk)
    memory = np.frombuffer(bytes.fromhex(spec["sram_hex"]), dtype=np.uint8).copy()
    await reset(dut, dut.clk)
    ScratchpadModel(dut, dut.clk, memory, spec["word_bytes"], reads=["a_read", "b_read"], writes=["write"])
    monitor = DoneMonitor(dut, dut.clk, cycles, 1)
    rng = random.Random(spec["seed"])
    commands = [int.from_bytes(bytes.fromhex(h), "little") for h in spec["commands"]]
    driver = CommandDriver(dut, "cmd", dut.clk, cycles, rng, spec["idle"])
    cocotb.start_soon(driver.send(commands))
    quiet, seen = 0, 0
    while len(monitor.events) < len(commands):
        await FallingEdge(dut.clk)
        quiet = 0 if len(monitor.events) > seen else quiet + 1
        seen = len(monitor.events)
        if quiet > WATCHDOG_CYCLES:
            raise AssertionError(f"watchdog: {len(commands) - len(driver.taken)} command(s) not taken (cmd ready "
                                 f"low), {len(driver.taken) - seen} taken without done after {WATCHDOG_CYCLES} cycles")
    await ClockCycles(dut.clk, 2)
    assert not monitor.errors, f"error high in cycles {monitor.errors}"
    timings = [(taken, done) for taken, (done, _) in zip(driver.taken, monitor.events)]

    refused = []
    for blob in spec.get("refused", []):
        driver = CommandDriver(dut, "cmd", dut.clk, cycles, rng, 0.0)
        first = len(monitor.events)
        cocotb.start_soon(driver.send([int.from_bytes(bytes.fromhex(blob), "little")]))
        await ClockCycles(dut.clk, 6)
        assert driver.taken, "a refused command was never taken: the unit would hang the queue"
        refused.append({"taken": driver.taken[0], "done": [c for c, _ in monitor.events[first:]],
                        "error": list(monitor.errors)})
        monitor.errors.clear()
    write_outputs("vector_unit", {"timings": timings, "sram_hex": memory.tobytes().hex(), "refused": refused,
                                  "cycles": cycles.now})
