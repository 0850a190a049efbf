"""cocotb testbench of rtl/programmable/gemm_unit.py: a scratchpad model behind every controller's
ports, a command driver with random idle cycles, a monitor of `done` and `error`.

Inputs (tests/rtl/test_gemm_unit.py): the initial scratchpad, batches of encoded GEMM commands
(each batch is sent back to back, then the testbench waits for all of them), and commands the
unit must refuse. Outputs: the final scratchpad and, per command, the cycle it was taken in and
the cycle its `done` was high in; the pytest side compares memory with the project's functional
model and cycles with the simulator's.
"""

from __future__ import annotations

import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from compiler.targets.programmable import isa
from testbenches.runner import load_inputs, write_outputs
from testbenches.unit_harness import CommandDriver, Cycles, DoneMonitor, ScratchpadModel, reset

WATCHDOG_CYCLES = 3000


def controller_of(ins: isa.Gemm, max_split: int) -> int:
    return ins.subarray << (max_split - ins.split)


@cocotb.test()
async def gemm_commands(dut):
    spec = load_inputs()
    controllers = 1 << spec["max_split"]
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    cycles = Cycles(dut.clk)
    memory = np.frombuffer(bytes.fromhex(spec["sram_hex"]), dtype=np.uint8).copy()
    await reset(dut, dut.clk)
    ScratchpadModel(dut, dut.clk, memory, spec["word_bytes"],
                    reads=[f"{p}__{c}" for c in range(controllers) for p in ("a_read", "b_read", "c_read")],
                    writes=[f"c_write__{c}" for c in range(controllers)])
    monitor = DoneMonitor(dut, dut.clk, cycles, controllers)
    rng = random.Random(spec["seed"])
    timings = []
    for number, batch in enumerate(spec["batches"]):
        blobs = [bytes.fromhex(h) for h in batch["commands"]]
        instructions = [isa.decode(b) for b in blobs]
        driver = CommandDriver(dut, "cmd", dut.clk, cycles, rng, batch["idle"])
        first_event = len(monitor.events)
        cocotb.start_soon(driver.send([int.from_bytes(b, "little") for b in blobs]))
        quiet = 0
        seen = 0
        while len(monitor.events) - first_event < len(blobs):
            await FallingEdge(dut.clk)
            quiet = 0 if len(monitor.events) - first_event > seen else quiet + 1
            seen = len(monitor.events) - first_event
            if quiet > WATCHDOG_CYCLES:
                waiting = len(blobs) - len(driver.taken)
                raise AssertionError(f"watchdog: batch {number}: {waiting} command(s) not taken (cmd ready low), "
                                     f"{len(driver.taken) - seen} taken without done after {WATCHDOG_CYCLES} cycles")
        await ClockCycles(dut.clk, 2)
        assert not monitor.errors, f"batch {number}: error high in cycles {monitor.errors}"
        events = monitor.events[first_event:]
        per_controller = {c: [cycle for cycle, bit in events if bit == c] for c in range(controllers)}
        rows = []
        for ins, taken in zip(instructions, driver.taken):
            done = per_controller[controller_of(ins, spec["max_split"])].pop(0)
            rows.append((taken, done))
        timings.append(rows)

    refused = []
    for blob in spec.get("refused", []):
        driver = CommandDriver(dut, "cmd", dut.clk, cycles, rng, 0.0)
        first_event, first_error = len(monitor.events), len(monitor.errors)
        cocotb.start_soon(driver.send([int.from_bytes(bytes.fromhex(blob), "little")]))
        await ClockCycles(dut.clk, 8)
        assert driver.taken, "a refused command was never taken: the unit would hang the queue"
        refused.append({"done": [bit for _, bit in monitor.events[first_event:]],
                        "done_cycles": [cycle for cycle, _ in monitor.events[first_event:]],
                        "error": monitor.errors[first_error:], "taken": driver.taken[0]})
        monitor.errors.clear()
    write_outputs("gemm_unit", {"timings": timings, "sram_hex": memory.tobytes().hex(), "refused": refused,
                               "cycles": cycles.now})
