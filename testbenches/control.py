"""cocotb testbench of rtl/programmable/control.py with the units modelled in Python.

The DMA engine, GEMM unit and vector unit are replaced by models that take a command when the
real unit would (the DMA and the vector unit when idle or in their `done` cycle; a GEMM when its
sub-array is free and its SRAM ranges do not collide with the GEMMs still running) and raise
`done` exactly N cycles later, N from the simulator's cost functions. So the control's issue,
semaphore and retirement logic is checked on its own: the program's cycles must equal the event
engine's. Values are the core testbench's business.

Inputs (tests/rtl/test_control.py): programs (encoded), each with a name. Outputs per program:
the cycles the control counted, the commands each unit took (program order per unit is checked
on the pytest side), and, when the watchdog fired, its message.
"""

from __future__ import annotations

import cocotb
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly

from compiler.targets.programmable import isa
from compiler.targets.programmable.isa import DmaLoad, DmaStore, Gemm, Halt, Loop, Vector, VectorOp
from compiler.targets.programmable.program import Program
from rtl.programmable.control import QUEUE_ENGINES, SEM_BITS, SEMAPHORES, STATE_SEMAPHORE, STATE_UNIT, QueueStatus
from simulator.hardware import load_hardware
from simulator.programmable.costs import dma, systolic, vector
from testbenches.dma import start_clock
from testbenches.runner import load_inputs, write_outputs

WATCHDOG_CYCLES = 400


def decode_status(status: int, sems: int) -> list[dict]:
    """The control's `status` and `sems` ports as a list of per-queue dicts."""
    width = QueueStatus.size
    fields = {name: (f.offset, f.width) for name, f in QueueStatus}
    counts = [(sems >> (s * SEM_BITS)) & ((1 << SEM_BITS) - 1) for s in range(SEMAPHORES)]
    out = []
    for q, engine in enumerate(QUEUE_ENGINES):
        word = status >> (q * width)
        item = {name: (word >> off) & ((1 << w) - 1) for name, (off, w) in fields.items()}
        item["queue"] = engine.name
        item["count"] = counts[item["sem"]]
        out.append(item)
    return out


def describe_stall(status: int, sems: int) -> str:
    """What each unfinished queue waits for, as the event engine's deadlock message says it."""
    lines = []
    for q in decode_status(status, sems):
        if q["state"] == STATE_SEMAPHORE:
            lines.append(f"{q['queue']} queue at instruction {q['pc']} waits on semaphore {q['sem']} "
                         f"(count {q['count']})")
        elif q["state"] == STATE_UNIT:
            lines.append(f"{q['queue']} queue at instruction {q['pc']} waits for its unit")
        elif q["inflight"]:
            lines.append(f"{q['queue']} queue has {q['inflight']} instruction(s) in flight")
    return "; ".join(lines) or "no queue is blocked"


class UnitModels:
    """Python stand-ins for the DMA, GEMM and vector units behind the control's command ports."""

    def __init__(self, dut, chip) -> None:
        self.dut, self.chip = dut, chip
        self.max_split = max(chip.systolic.split_factors).bit_length() - 1
        self.dma_until = -1            # edge of the DMA's done
        self.vector_until = -1
        self.gemm: dict[int, tuple[int, int, list]] = {}     # controller -> (done edge, span, ranges)
        self.taken: dict[str, list[str]] = {"dma": [], "gemm": [], "vector": []}
        for name in ("dma_cmd", "gemm_cmd", "vector_cmd"):
            getattr(dut, f"{name}__ready").value = 0
        dut.dma_done.value = 0
        dut.gemm_done.value = 0
        dut.vector_done.value = 0

    def cycles_of(self, ins: isa.Instruction) -> int:
        chip = self.chip
        if isinstance(ins, isa.DmaLoad):
            return round(dma.dma_time_s(chip, ins.nbytes) * chip.clock_hz)
        if isinstance(ins, isa.Gemm):
            return systolic.gemm_cycles(chip, ins.m, ins.n, ins.k, ins.precision.label, ins.split)
        return vector.vector_cycles(chip, ins.op, ins.length)

    @staticmethod
    def _decode(handle) -> isa.Instruction:
        return isa.decode(int(handle.value).to_bytes(isa.INSTRUCTION_BYTES, "little"))

    def _gemm_ready(self, ins: isa.Gemm, edge: int) -> bool:
        live = {c: v for c, v in self.gemm.items() if v[0] != edge}
        target = ins.subarray << (self.max_split - ins.split)
        span = 1 << (self.max_split - ins.split)
        for c, (_, other_span, _) in live.items():
            if c < target + span and target < c + other_span:
                return False
        a, b, c = _ranges(ins)
        for _, _, (oa, ob, oc) in live.values():
            if any(_overlap(x, oc) for x in (a, b, c)) or any(_overlap(c, x) for x in (oa, ob)):
                return False
        return True

    def before_edge(self, edge: int) -> None:
        """At a falling edge: `done` for what finishes at `edge`, `ready` for what may start then."""
        dut = self.dut
        dut.dma_done.value = int(self.dma_until == edge)
        dut.vector_done.value = int(self.vector_until == edge)
        dut.gemm_done.value = sum(1 << c for c, v in self.gemm.items() if v[0] == edge)
        dut.dma_cmd__ready.value = int(self.dma_until <= edge)
        dut.vector_cmd__ready.value = int(self.vector_until <= edge)
        gemm_ready = 0
        if isinstance(self.gemm_valid_payload, isa.Gemm):
            gemm_ready = int(self._gemm_ready(self.gemm_valid_payload, edge))
        dut.gemm_cmd__ready.value = gemm_ready

    def peek(self) -> None:
        """At a falling edge, before driving: the GEMM head the control presents (registered)."""
        payload = self.dut.gemm_cmd__payload.value
        self.gemm_valid_payload = self._decode(self.dut.gemm_cmd__payload) if payload.is_resolvable else None

    def after_edge_sample(self, edge: int) -> None:
        """In ReadOnly: commands taken at `edge`."""
        dut = self.dut
        self.gemm = {c: v for c, v in self.gemm.items() if v[0] > edge}
        if int(dut.dma_cmd__valid.value) and int(dut.dma_cmd__ready.value):
            ins = self._decode(dut.dma_cmd__payload)
            self.dma_until = edge + self.cycles_of(ins)
            self.taken["dma"].append(isa.encode(ins).hex())
        if int(dut.vector_cmd__valid.value) and int(dut.vector_cmd__ready.value):
            ins = self._decode(dut.vector_cmd__payload)
            self.vector_until = edge + self.cycles_of(ins)
            self.taken["vector"].append(isa.encode(ins).hex())
        if int(dut.gemm_cmd__valid.value) and int(dut.gemm_cmd__ready.value):
            ins = self._decode(dut.gemm_cmd__payload)
            target = ins.subarray << (self.max_split - ins.split)
            self.gemm[target] = (edge + self.cycles_of(ins), 1 << (self.max_split - ins.split), _ranges(ins))
            self.taken["gemm"].append(isa.encode(ins).hex())


def _ranges(ins: isa.Gemm) -> tuple[tuple[int, int], ...]:
    return ((ins.a_addr, ins.a_addr + ins.m * ins.k), (ins.b_addr, ins.b_addr + ins.k * ins.n),
            (ins.c_addr, ins.c_addr + 4 * ins.m * ins.n))


def _overlap(x: tuple[int, int], y: tuple[int, int]) -> bool:
    return x[0] < y[1] and y[0] < x[1]


async def load_program(dut, blob: bytes) -> None:
    """Send the program on `prog`, one instruction per cycle, then pulse `start`."""
    for at in range(0, len(blob), isa.INSTRUCTION_BYTES):
        await FallingEdge(dut.clk)
        dut.prog__payload.value = int.from_bytes(blob[at:at + isa.INSTRUCTION_BYTES], "little")
        dut.prog__valid.value = 1
    await FallingEdge(dut.clk)
    dut.prog__valid.value = 0
    dut.start.value = 1
    await FallingEdge(dut.clk)
    dut.start.value = 0


async def run_program(dut, units: UnitModels, blob: bytes, limit_cycles: int) -> dict:
    await load_program(dut, blob)
    edge, quiet = 0, 0
    while True:
        await FallingEdge(dut.clk)
        edge += 1
        units.peek()
        units.before_edge(edge)
        await ReadOnly()
        if int(dut.finished.value):
            return {"cycles": int(dut.cycles.value), "taken": units.taken, "error": int(dut.error.value)}
        if int(dut.running.value):
            units.after_edge_sample(edge)
            quiet = 0 if int(dut.activity.value) else quiet + 1
        if quiet > WATCHDOG_CYCLES or edge > limit_cycles:
            return {"watchdog": f"no progress in {WATCHDOG_CYCLES} cycles: "
                    + describe_stall(int(dut.status.value), int(dut.sems.value)), "taken": units.taken}


@cocotb.test()
async def control_programs(dut):
    spec = load_inputs()
    chip = load_hardware(spec["preset"])
    await start_clock(dut)
    results = {}
    for name, hex_blob in spec["programs"].items():
        await FallingEdge(dut.clk)
        dut.rst.value = 1
        dut.prog__valid.value = 0
        dut.start.value = 0
        units = UnitModels(dut, chip)
        await ClockCycles(dut.clk, 2)
        dut.rst.value = 0
        results[name] = await run_program(dut, units, bytes.fromhex(hex_blob), spec["limit_cycles"])
    write_outputs("control", results)


# ---- hand-written programs (tests/rtl/test_control.py times them with these unit models,
# tests/rtl/test_core.py runs them on the real units for values) -------------------------------

def _program(*instructions) -> Program:
    p = Program()
    for ins in instructions:
        p.emit(ins, "test")
    return p


def _int32(op: VectorOp, src: int, dst: int, length: int, **kw) -> Vector:
    return Vector(op=op, src_a=src, src_b=src, dst=dst, length=length, **kw)


PROGRAMS = {
    # load A and B (double wait on one semaphore), GEMM, two vector ops, store; an independent
    # load competes with the store for the DMA channel
    "pipeline": _program(
        DmaLoad(hbm_addr=0, sram_addr=0, rows=1, row_bytes=64, signal=(1,)),
        DmaLoad(hbm_addr=1024, sram_addr=1024, rows=8, row_bytes=8, hbm_row_stride=64, signal=(1,)),
        Gemm(a_addr=0, b_addr=1024, c_addr=2048, m=8, n=8, k=8, wait=(1, 1), signal=(2,)),
        _int32(VectorOp.ADD, 2048, 2048, 64, wait=(2,)),
        _int32(VectorOp.REQUANT, 2048, 4096, 64, imm=5, shift=7, signal=(4,)),
        DmaStore(hbm_addr=8192, sram_addr=4096, rows=1, row_bytes=64, wait=(4,)),
        DmaLoad(hbm_addr=16384, sram_addr=8192, rows=4, row_bytes=64, hbm_row_stride=64),
        Halt()),
    # one vector op signals LOAD and STORE at once: LOAD takes the channel first, so the long
    # vector op that waits for the load starts before the store has run
    "dma-contention": _program(
        _int32(VectorOp.COPY, 0, 512, 40, signal=(5, 6)),
        DmaStore(hbm_addr=0, sram_addr=512, rows=2, row_bytes=80, hbm_row_stride=96, wait=(6,)),
        DmaLoad(hbm_addr=4096, sram_addr=1024, rows=3, row_bytes=32, hbm_row_stride=64, wait=(5,), signal=(7,)),
        _int32(VectorOp.MAX, 1024, 1024, 400, wait=(7,)),
        Halt()),
    # a long GEMM on sub-array 0, a short one on sub-array 1 that finishes first but retires
    # second; the vector op waits on the short one's signal; a whole-array GEMM waits for both
    "gemm-order": _program(
        Gemm(a_addr=0, b_addr=1024, c_addr=4096, m=16, n=16, k=32, split=1, subarray=0, signal=(8,)),
        Gemm(a_addr=512, b_addr=2048, c_addr=6144, m=2, n=8, k=8, split=1, subarray=1, signal=(9,)),
        _int32(VectorOp.SHIFT, 6144, 6144, 16, shift=3, wait=(9,)),
        Gemm(a_addr=0, b_addr=3072, c_addr=8192, m=4, n=8, k=8, signal=(10,)),
        _int32(VectorOp.ADD, 8192, 8192, 32, wait=(10, 8)),
        Halt()),
    # zero-size instructions only pass semaphores on; one signals the same semaphore twice
    "fences": _program(
        DmaLoad(hbm_addr=0, sram_addr=0, rows=2, row_bytes=64, hbm_row_stride=64, signal=(1,)),
        Gemm(m=0, n=0, k=0, wait=(1,), signal=(2, 2)),
        Vector(length=0, wait=(2,), signal=(3,)),
        _int32(VectorOp.COPY, 0, 256, 32, wait=(2, 3), signal=(4,)),
        DmaStore(rows=0, row_bytes=0, wait=(4,), signal=(5,)),
        DmaStore(hbm_addr=512, sram_addr=256, rows=1, row_bytes=128, wait=(5,)),
        Halt()),
    # double-buffered loop: two credits, then load -> GEMM -> vector -> store per iteration with
    # every address advancing; a LOOP of count 0 and instructions after HALT are dropped
    "loop": _program(
        _int32(VectorOp.COPY, 12288, 12288, 8, signal=(11, 11)),
        Loop(body=4, count=6),
        DmaLoad(hbm_addr=0, hbm_loop_stride=256, sram_addr=0, sram_loop_stride=128, rows=4, row_bytes=32,
                hbm_row_stride=64, wait=(11,), signal=(12,)),
        Gemm(a_addr=0, a_loop_stride=128, b_addr=8192, c_addr=4096, c_loop_stride=256, m=2, n=8, k=64,
             wait=(12,), signal=(13,)),
        Vector(op=VectorOp.REQUANT, src_a=4096, src_b=4096, dst=10240, length=16, imm=3, shift=4, loop_stride=256,
               wait=(13,), signal=(14,)),
        DmaStore(hbm_addr=65536, hbm_loop_stride=64, sram_addr=10240, sram_loop_stride=256, rows=1, row_bytes=16,
                 wait=(14,), signal=(11,)),
        Loop(body=1, count=0),
        _int32(VectorOp.COPY, 0, 0, 8),
        _int32(VectorOp.ADD, 12288, 12288, 8, wait=(11, 11)),
        Halt(),
        _int32(VectorOp.COPY, 0, 0, 8, wait=(15,))),
}

# LOAD waits for VECTOR and VECTOR for LOAD: waits and signals balance, so counting cannot see it
DEADLOCK = _program(
    DmaLoad(hbm_addr=0, sram_addr=0, rows=1, row_bytes=64, wait=(13,), signal=(14,)),
    _int32(VectorOp.COPY, 0, 64, 16, wait=(14,), signal=(13,)),
    Halt())
