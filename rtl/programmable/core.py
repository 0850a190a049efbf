"""The programmable core: control, scratchpad, DMA engine, GEMM unit and vector unit, running
whole programs of the integer ISA subset.

Ports:
  * `prog` (In stream, 256 bits): the program binary, one instruction per transfer, before `start`;
  * `init` (a scratchpad write port): preloads the scratchpad before `start` (weights the program
    keeps resident in SRAM);
  * `start` (In): run the loaded program; `running` rises when every queue has its first
    instruction ready, `finished` after the last instruction retires; `cycles` is the program's
    time in cycles (the event engine's time 0 to its end);
  * `ext` (the DMA engine's external memory port, see dma.py);
  * `status`, `sems`, `activity`, `retired` (the control's stall report and progress) and `error` (sticky: the control,
    DMA, GEMM or vector unit refused something).

Each unit has its own scratchpad ports (scratchpad.py), so the engines never wait for each other
except through semaphores, and each instruction takes its cost formula's cycles.
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from compiler.targets.programmable import isa
from rtl.programmable.config import CoreConfig
from rtl.programmable.control import QUEUE_ENGINES, SEM_BITS, SEMAPHORES, Control, QueueStatus
from rtl.programmable.dma import DmaEngine, ext_memory_signature
from rtl.programmable.gemm_unit import GemmUnit
from rtl.programmable.ports import sram_write_signature
from rtl.programmable.scratchpad import Scratchpad
from rtl.programmable.vector_unit import VectorUnit


def scratchpad_clients(config: CoreConfig) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(read ports, write ports, transparent read ports) of the core's scratchpad."""
    controllers = range(1 << config.max_split)
    reads = ("dma", *(f"gemm_{x}{c}" for c in controllers for x in "abc"), "vector_a", "vector_b")
    writes = ("dma", *(f"gemm_c{c}" for c in controllers), "vector", "init")
    return reads, writes, ("dma",)


class Core(wiring.Component):
    def __init__(self, config: CoreConfig) -> None:
        self.config = config
        super().__init__({
            "prog": In(stream.Signature(isa.INSTRUCTION_BITS)),
            "init": In(sram_write_signature(config)),
            "start": In(1),
            "loaded": Out(1),
            "running": Out(1),
            "finished": Out(1),
            "cycles": Out(32),
            "ext": Out(ext_memory_signature(config)),
            "status": Out(data.ArrayLayout(QueueStatus, len(QUEUE_ENGINES))),
            "sems": Out(data.ArrayLayout(SEM_BITS, SEMAPHORES)),
            "activity": Out(1),
            "retired": Out(32),
            "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        m.submodules.control = control = Control(cfg)
        m.submodules.dma = dma = DmaEngine(cfg)
        m.submodules.gemm = gemm = GemmUnit(cfg)
        m.submodules.vector = vector = VectorUnit(cfg)
        reads, writes, transparent = scratchpad_clients(cfg)
        m.submodules.sram = sram = Scratchpad(cfg, reads, writes, transparent)

        wiring.connect(m, wiring.flipped(self.prog), control.prog)
        wiring.connect(m, control.dma_cmd, dma.cmd)
        wiring.connect(m, control.gemm_cmd, gemm.cmd)
        wiring.connect(m, control.vector_cmd, vector.cmd)
        m.d.comb += [
            control.start.eq(self.start), control.dma_done.eq(dma.done), control.gemm_done.eq(gemm.done),
            control.vector_done.eq(vector.done),
            self.loaded.eq(control.loaded), self.running.eq(control.running), self.finished.eq(control.finished),
            self.cycles.eq(control.cycles), self.status.eq(control.status), self.sems.eq(control.sems),
            self.activity.eq(control.activity), self.retired.eq(control.retired),
        ]
        wiring.connect(m, wiring.flipped(self.ext), dma.ext)
        wiring.connect(m, dma.sram_read, sram.read_dma)
        wiring.connect(m, dma.sram_write, sram.write_dma)
        for c in range(1 << cfg.max_split):
            wiring.connect(m, gemm.a_read[c], getattr(sram, f"read_gemm_a{c}"))
            wiring.connect(m, gemm.b_read[c], getattr(sram, f"read_gemm_b{c}"))
            wiring.connect(m, gemm.c_read[c], getattr(sram, f"read_gemm_c{c}"))
            wiring.connect(m, gemm.c_write[c], getattr(sram, f"write_gemm_c{c}"))
        wiring.connect(m, vector.a_read, sram.read_vector_a)
        wiring.connect(m, vector.b_read, sram.read_vector_b)
        wiring.connect(m, vector.write, sram.write_vector)
        wiring.connect(m, wiring.flipped(self.init), sram.write_init)

        error = Signal()
        with m.If(dma.error | gemm.error | vector.error):
            m.d.sync += error.eq(1)
        m.d.comb += self.error.eq(error | control.error)
        return m


def design(chip) -> Core:
    return Core(CoreConfig.from_chip(chip))
