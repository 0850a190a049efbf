"""cocotb testbench of rtl/programmable/core.py: whole programs on the whole core.

For each case (tests/rtl/test_core.py writes them): reset, preload the scratchpad through the
`init` port (zeros where the image has nothing, so no case sees another's leftovers), load the
program binary on `prog`, put the HBM image into the external memory model (testbenches/dma.py:
fixed latency, one beat per cycle), pulse `start` and run until `finished`. A watchdog fails a
case that retires nothing for WATCHDOG_CYCLES, naming each blocked
queue, its instruction and the semaphore it waits on. Outputs per case: the core's cycle count,
its error flag, the final external memory, or the watchdog's message.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, FallingEdge, First, ReadOnly, RisingEdge
from cocotb.utils import get_sim_time

from rtl.programmable.config import CoreConfig
from testbenches.control import describe_stall, load_program
from testbenches.dma import ExternalMemory, start_clock, write_words
from testbenches.runner import CLOCK_PERIOD_NS, load_inputs, write_outputs

WATCHDOG_CYCLES = 2000


async def run_case(dut, memory: ExternalMemory, case: dict, config: CoreConfig) -> dict:
    await FallingEdge(dut.clk)
    dut.rst.value = 1
    dut.prog__valid.value = 0
    dut.start.value = 0
    dut.init__en.value = 0
    hbm = np.frombuffer(bytes.fromhex(case["hbm_hex"]), dtype=np.uint8).copy()
    memory.reset(hbm)
    await ClockCycles(dut.clk, 2)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    sram = np.zeros(config.sram_bytes, dtype=np.uint8)
    image = bytes.fromhex(case["sram_hex"])
    sram[:len(image)] = np.frombuffer(image, dtype=np.uint8)
    await write_words(dut, sram, config.word_bytes, prefix="init")
    await load_program(dut, bytes.fromhex(case["program_hex"]))
    started = get_sim_time("ns")
    retired = -1
    while True:
        await First(RisingEdge(dut.finished), ClockCycles(dut.clk, WATCHDOG_CYCLES))
        await ReadOnly()
        simulated = round((get_sim_time("ns") - started) / CLOCK_PERIOD_NS)
        if int(dut.finished.value):
            return {"cycles": int(dut.cycles.value), "error": int(dut.error.value),
                    "hbm_hex": memory.memory.tobytes().hex(), "simulated_cycles": simulated}
        now = int(dut.retired.value)
        if (now == retired and int(dut.running.value)) or simulated > case["limit_cycles"]:
            return {"watchdog": f"{case['name']}: nothing retired in {WATCHDOG_CYCLES} cycles: "
                    + describe_stall(int(dut.status.value), int(dut.sems.value)), "simulated_cycles": simulated}
        retired = now
        await FallingEdge(dut.clk)


@cocotb.test()
async def core_programs(dut):
    spec = load_inputs()
    config = CoreConfig(**spec["config"])
    await start_clock(dut)
    dut.prog__valid.value = 0
    dut.start.value = 0
    dut.init__en.value = 0
    memory = ExternalMemory(dut, dut.clk, np.zeros(0, dtype=np.uint8), config, config.ext_latency_cycles)
    results = {}
    for case in spec["cases"]:
        results[case["name"]] = await run_case(dut, memory, case, config)
    await FallingEdge(dut.clk)
    write_outputs("core", results)
