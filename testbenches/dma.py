"""cocotb testbench of rtl/programmable/dma.py on the real scratchpad, and the external memory
model the core testbench uses too.

`ExternalMemory` is the far side of the DMA engine's port: a byte array that takes one request
per cycle (random back-pressure when asked), answers each after exactly `latency` cycles, in
order, one response per cycle (random gaps when asked). A write lands when its request is taken.

Inputs (tests/rtl/test_dma.py): the initial scratchpad and external memory, encoded DMA
instructions, the latency and the back-pressure probabilities. The testbench sends the
instructions one after another (random idle cycles between them), waits for each `done`, then
reads the whole scratchpad back through a port of its own. Outputs: final scratchpad and external
memory, and per instruction the cycle it was taken in and the cycle `done` was high in. The pytest
side compares memories with the simulator's functional model and cycles with the event engine.
"""

from __future__ import annotations

import random
from collections import deque

import cocotb
import numpy as np
from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge
from cocotb.utils import get_sim_time

from rtl.programmable.config import CoreConfig
from rtl.programmable.dma import DmaEngine, command_ports, ext_request_layout
from rtl.programmable.ports import sram_read_signature, sram_write_signature
from rtl.programmable.scratchpad import Scratchpad
from testbenches.runner import CLOCK_PERIOD_NS, load_inputs, write_outputs

WATCHDOG_CYCLES = 5000


class DmaHarness(wiring.Component):
    """The DMA engine on a real scratchpad, with one extra read and write port for the testbench."""

    def __init__(self, config: CoreConfig) -> None:
        self.config = config
        super().__init__({**command_ports(config), "tb_read": In(sram_read_signature(config)),
                          "tb_write": In(sram_write_signature(config))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.dma = dma = DmaEngine(self.config)
        m.submodules.sram = sram = Scratchpad(self.config, reads=("dma", "tb"), writes=("dma", "tb"),
                                              transparent=("dma",))
        wiring.connect(m, wiring.flipped(self.cmd), dma.cmd)
        wiring.connect(m, wiring.flipped(self.ext), dma.ext)
        wiring.connect(m, dma.sram_read, sram.read_dma)
        wiring.connect(m, dma.sram_write, sram.write_dma)
        wiring.connect(m, wiring.flipped(self.tb_read), sram.read_tb)
        wiring.connect(m, wiring.flipped(self.tb_write), sram.write_tb)
        m.d.comb += [self.done.eq(dma.done), self.error.eq(dma.error)]
        return m


class ExternalMemory:
    """The external memory behind port `prefix` (`ext__req__*`, `ext__resp__*` in Verilog)."""

    def __init__(self, dut, clock, memory: np.ndarray, config: CoreConfig, latency: int,
                 rng: random.Random | None = None, stall_probability: float = 0.0, gap_probability: float = 0.0,
                 prefix: str = "ext") -> None:
        self.memory = memory
        self.latency = latency
        self.beat = config.ext_bytes_per_cycle
        self.rng, self.stall, self.gap = rng, stall_probability, gap_probability
        fields = {name: (f.offset, f.width) for name, f in ext_request_layout(config)}
        self.addr_field, self.write_field, self.data_field = fields["addr"], fields["write"], fields["data"]
        self.req_valid = getattr(dut, f"{prefix}__req__valid")
        self.req_ready = getattr(dut, f"{prefix}__req__ready")
        self.req_payload = getattr(dut, f"{prefix}__req__payload")
        self.resp_valid = getattr(dut, f"{prefix}__resp__valid")
        self.resp_ready = getattr(dut, f"{prefix}__resp__ready")
        self.resp_payload = getattr(dut, f"{prefix}__resp__payload")
        self.req_ready.value = 0
        self.resp_valid.value = 0
        self.requests = 0
        self.pending: deque[tuple[int, int]] = deque()     # (edge it may be taken at, payload)
        cocotb.start_soon(self._run(clock))

    def reset(self, memory: np.ndarray) -> None:
        """A new memory image, nothing in flight (between programs, with the DUT in reset)."""
        self.memory = memory
        self.pending.clear()

    @staticmethod
    def _field(word: int, field: tuple[int, int]) -> int:
        offset, width = field
        return (word >> offset) & ((1 << width) - 1)

    async def _run(self, clock) -> None:
        pending = self.pending
        while True:
            await FallingEdge(clock)
            if not pending and not int(self.req_valid.value):
                await RisingEdge(self.req_valid)       # idle: sleep until the DMA engine asks
                await FallingEdge(clock)
            edge = int(get_sim_time("ns") // CLOCK_PERIOD_NS) + 1        # the next rising edge
            ready = self.rng is None or self.rng.random() >= self.stall
            self.req_ready.value = int(ready)
            present = bool(pending) and pending[0][0] <= edge and (self.rng is None or self.rng.random() >= self.gap)
            self.resp_valid.value = int(present)
            if present:
                self.resp_payload.value = pending[0][1]
            await ReadOnly()
            if ready and int(self.req_valid.value):
                word = int(self.req_payload.value)
                addr = self._field(word, self.addr_field)
                if addr % self.beat or addr + self.beat > len(self.memory):
                    raise AssertionError(f"external memory: request for byte {addr} (beat {self.beat}, "
                                         f"memory {len(self.memory)} bytes)")
                if self._field(word, self.write_field):
                    data = self._field(word, self.data_field).to_bytes(self.beat, "little")
                    self.memory[addr:addr + self.beat] = np.frombuffer(data, dtype=np.uint8)
                    pending.append((edge + self.latency, 0))
                else:
                    value = int.from_bytes(self.memory[addr:addr + self.beat].tobytes(), "little")
                    pending.append((edge + self.latency, value))
                self.requests += 1
            if present and int(self.resp_ready.value):
                pending.popleft()


async def start_clock(dut) -> None:
    cocotb.start_soon(Clock(dut.clk, CLOCK_PERIOD_NS, unit="ns").start())
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0


async def write_words(dut, memory: np.ndarray, word_bytes: int, prefix: str = "tb_write") -> None:
    """Fill the scratchpad through a testbench write port, one word per cycle."""
    en, addr, data, mask = (getattr(dut, f"{prefix}__{x}") for x in ("en", "addr", "data", "mask"))
    mask.value = (1 << word_bytes) - 1
    for w in range(len(memory) // word_bytes):
        await FallingEdge(dut.clk)
        en.value, addr.value = 1, w
        data.value = int.from_bytes(memory[w * word_bytes:(w + 1) * word_bytes].tobytes(), "little")
    await FallingEdge(dut.clk)
    en.value = 0


async def read_words(dut, nbytes: int, word_bytes: int, prefix: str = "tb_read") -> np.ndarray:
    """The scratchpad's bytes through a testbench read port (data one cycle after `en`)."""
    en, addr, data = (getattr(dut, f"{prefix}__{x}") for x in ("en", "addr", "data"))
    out = bytearray()
    words = nbytes // word_bytes
    for w in range(words + 1):
        await FallingEdge(dut.clk)
        en.value, addr.value = int(w < words), w % words
        await ReadOnly()
        if w:          # the word asked for in the previous cycle
            out += int(data.value).to_bytes(word_bytes, "little")
    await FallingEdge(dut.clk)
    en.value = 0
    return np.frombuffer(bytes(out), dtype=np.uint8)


@cocotb.test()
async def dma_instructions(dut):
    spec = load_inputs()
    config = CoreConfig(**spec["config"])
    await start_clock(dut)
    dut.cmd__valid.value = 0
    dut.tb_write__en.value = 0
    dut.tb_read__en.value = 0
    sram = np.frombuffer(bytes.fromhex(spec["sram_hex"]), dtype=np.uint8).copy()
    hbm = np.frombuffer(bytes.fromhex(spec["hbm_hex"]), dtype=np.uint8).copy()
    await write_words(dut, sram, config.word_bytes)
    rng = random.Random(spec["seed"])
    ExternalMemory(dut, dut.clk, hbm, config, spec["latency"], rng, spec["stall_probability"],
                   spec["gap_probability"])
    cycle = 0
    timings, errors = [], 0
    for number, blob in enumerate(spec["commands"]):
        for _ in range(rng.randrange(3) if spec["idle"] else 0):
            await FallingEdge(dut.clk)
            cycle += 1
        await FallingEdge(dut.clk)
        cycle += 1
        dut.cmd__payload.value = int.from_bytes(bytes.fromhex(blob), "little")
        dut.cmd__valid.value = 1
        taken = None
        quiet = 0
        while True:
            await ReadOnly()
            if taken is None and int(dut.cmd__ready.value):
                taken = cycle
            done = int(dut.done.value)
            errors += int(dut.error.value)
            await FallingEdge(dut.clk)
            cycle += 1
            if taken is not None:
                dut.cmd__valid.value = 0
            if done and taken is not None:
                timings.append([taken, cycle - 1])
                break
            quiet += 1
            if quiet > WATCHDOG_CYCLES:
                raise AssertionError(f"watchdog: DMA instruction {number} "
                                     f"{'not taken (cmd ready low)' if taken is None else 'taken, no done'} "
                                     f"after {WATCHDOG_CYCLES} cycles")
    final = await read_words(dut, config.sram_bytes, config.word_bytes)
    write_outputs("dma", {"timings": timings, "errors": errors, "sram_hex": final.tobytes().hex(),
                          "hbm_hex": hbm.tobytes().hex()})
