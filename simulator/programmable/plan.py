"""A program prepared for execution: per-engine queues of segments, and each instruction's costs.

Engines run their own instructions in program order. A LOOP's body is split by engine: every
engine that has instructions in the body gets one segment that repeats those instructions
`count` times; straight-line instructions form segments of count 1. Loops are never unrolled,
so a 131072-context decode costs memory for its instructions, not for its iterations.
"""

from __future__ import annotations

from dataclasses import dataclass

from compiler.targets.programmable.isa import (
    SELECTION_OPS,
    Collective,
    DmaGather,
    DmaLoad,
    DmaStore,
    Engine,
    Gemm,
    GemmStrided,
    Halt,
    Instruction,
    Loop,
    Vector,
    Vector2D,
    VectorGather,
)
from compiler.targets.programmable.program import Program
from simulator.hardware.programmable import ProgrammableChip
from simulator.programmable.costs import dma, gemm_strided, link, systolic, vector
from simulator.programmable.costs.energy import PJ
from simulator.programmable.validate import (
    ProgramError,
    check_bounds,
    check_loop,
    check_shape,
    element_bytes,
    sram_ranges,
)

QUEUE_ENGINES = (Engine.LOAD, Engine.STORE, Engine.GEMM, Engine.VECTOR, Engine.LINK)
DMA_ENGINES = (Engine.LOAD, Engine.STORE)


@dataclass(frozen=True, slots=True)
class Segment:
    pcs: tuple[int, ...]
    count: int
    loop_pc: int       # the LOOP instruction's index, -1 for straight-line code
    pacer: bool        # this queue holds the loop body's first instruction (steady-state checkpoints)


class OpCost:
    """What one execution of an instruction costs; identical in every loop iteration."""

    __slots__ = ("pc", "engine", "is_dma", "fence", "duration_s", "nbytes", "waits", "needs", "signals", "tag",
                 "slices", "arrays", "operands", "macs", "precision", "vector_ops", "sram_bytes", "hbm_bytes",
                 "link_bytes", "energy_j", "roofline_s")

    def __init__(self, pc: int, engine: Engine, tag: int, waits: tuple[int, ...], signals: tuple[int, ...]) -> None:
        self.pc, self.engine, self.tag, self.waits, self.signals = pc, engine, tag, waits, signals
        # (semaphore, count it must reach): waiting twice on one semaphore needs it at 2
        self.needs = tuple((s, waits.count(s)) for s in dict.fromkeys(waits))
        self.is_dma = engine in DMA_ENGINES
        self.fence = False         # zero-size: carries waits and signals only, needs no resource
        self.duration_s = 0.0      # fixed-time ops; for DMA the latency before data moves
        self.nbytes = 0.0          # DMA data-phase bytes
        self.slices = 0            # GEMM: sub-array slices occupied on each array (bit mask)
        self.arrays = 0            # GEMM: arrays it occupies
        self.operands: tuple = ()  # GEMM: (base, bytes, loop stride) of A, B, [C read], C written
        self.macs = 0
        self.precision = ""
        self.vector_ops = 0
        self.sram_bytes = 0.0
        self.hbm_bytes = 0.0
        self.link_bytes = 0.0
        self.energy_j = 0.0        # dynamic energy of one execution
        self.roofline_s = 0.0      # its own resource's bound (for checks)

    def clone(self, pc: int, tag: int, waits: tuple[int, ...], signals: tuple[int, ...]) -> OpCost:
        """This shape's costs for another instruction (plan.py computes each shape once)."""
        c = OpCost.__new__(OpCost)
        for name in OpCost.__slots__:
            setattr(c, name, getattr(self, name))
        c.pc, c.tag, c.waits, c.signals = pc, tag, waits, signals
        c.needs = tuple((s, waits.count(s)) for s in dict.fromkeys(waits))
        return c

    def gemm_ranges(self, it: int) -> tuple[tuple[int, int], ...]:
        """[start, end) SRAM byte ranges of the operands in loop iteration `it`; the last is written."""
        return tuple((base + it * stride, base + it * stride + nbytes) for base, nbytes, stride in self.operands)


def _is_fence(ins: Instruction) -> bool:
    if isinstance(ins, (DmaLoad, DmaStore, DmaGather)):
        return ins.nbytes == 0
    if isinstance(ins, Gemm):
        return ins.macs == 0
    if isinstance(ins, (Vector, Vector2D, VectorGather)):
        return ins.length == 0
    if isinstance(ins, Collective):
        return ins.nbytes == 0
    return False


class Plan:
    def __init__(self, program: Program, chip: ProgrammableChip) -> None:
        self.program = program
        self.chip = chip
        self.tag_names: list[str] = []
        self.costs: list[OpCost | None] = [None] * len(program.instructions)
        self.queues: dict[Engine, list[Segment]] = {e: [] for e in QUEUE_ENGINES}
        self.loop_counts: dict[int, int] = {}
        self.aperiodic_loops: set[int] = set()    # loops steady.py must simulate in full
        self.total_ops = 0
        self.max_ways = max(chip.systolic.split_factors)
        self._templates: dict[tuple, OpCost] = {}
        self._build()

    # ---- structure -----------------------------------------------------------------------
    def _build(self) -> None:
        instructions = self.program.instructions
        tags = self.program.tags or [""] * len(instructions)
        if len(tags) != len(instructions):
            raise ProgramError(f"program has {len(instructions)} instructions but {len(tags)} tags")
        tag_ids: dict[str, int] = {}
        straight: dict[Engine, list[int]] = {e: [] for e in QUEUE_ENGINES}
        pc = 0
        while pc < len(instructions):
            ins = instructions[pc]
            if isinstance(ins, Halt):
                break
            if isinstance(ins, Loop):
                body = instructions[pc + 1: pc + 1 + ins.body]
                check_loop(len(instructions), pc, ins, body)
                self._flush(straight)
                self.loop_counts[pc] = ins.count
                per_engine: dict[Engine, list[int]] = {}
                for offset, body_ins in enumerate(body, start=pc + 1):
                    self._cost(offset, body_ins, tag_ids.setdefault(tags[offset], len(tag_ids)), ins.count)
                    per_engine.setdefault(body_ins.engine, []).append(offset)
                strides = {stride for b in body if isinstance(b, Gemm) and b.macs
                           for stride in (b.a_loop_stride, b.b_loop_stride, b.c_loop_stride)}
                if len(strides) > 1:
                    # GEMM operands moving at different rates can start or stop overlapping at
                    # some iteration, so the scoreboard's verdicts are not periodic: no jumps.
                    self.aperiodic_loops.add(pc)
                if ins.count > 0:
                    first = body[0].engine
                    for engine, pcs in per_engine.items():
                        self.queues[engine].append(Segment(tuple(pcs), ins.count, pc, engine == first))
                        self.total_ops += len(pcs) * ins.count
                pc += 1 + ins.body
                continue
            self._cost(pc, ins, tag_ids.setdefault(tags[pc], len(tag_ids)), 1)
            straight[ins.engine].append(pc)
            self.total_ops += 1
            pc += 1
        self._flush(straight)
        self.tag_names = [name or "untagged" for name in tag_ids]

    def _flush(self, straight: dict[Engine, list[int]]) -> None:
        for engine, pcs in straight.items():
            if pcs:
                self.queues[engine].append(Segment(tuple(pcs), 1, -1, False))
                pcs.clear()

    # ---- costs ---------------------------------------------------------------------------
    def _cost(self, pc: int, ins: Instruction, tag: int, iterations: int) -> None:
        if ins.engine not in QUEUE_ENGINES:
            raise ProgramError(f"instruction {pc} {type(ins).__name__}: engine {ins.engine.name} has no queue")
        key = (type(ins), *(getattr(ins, name) for name in _shape_fields(type(ins))))
        template = self._templates.get(key)
        if template is None:
            check_shape(self.chip, pc, ins)
            template = self._templates[key] = self._shape_cost(ins)
        ranges = sram_ranges(ins)
        check_bounds(self.chip, pc, ins, max(iterations, 1), ranges)
        c = template.clone(pc, tag, tuple(ins.wait), tuple(ins.signal))
        if c.slices:
            operands = {name: (base, nbytes, stride) for name, base, nbytes, stride in ranges}
            c.operands = (operands["a_addr"], operands["b_addr"],
                          *([operands["c_addr"]] if ins.accumulate else []), operands["c_addr"])
        self.costs[pc] = c

    def _shape_cost(self, ins: Instruction) -> OpCost:
        chip, e = self.chip, self.chip.energy
        c = OpCost(-1, ins.engine, -1, (), ())
        if _is_fence(ins):
            # The lowering emits zero-size instructions only to carry semaphores: they take no
            # DMA channel and no sub-array, and retire in order like any other. They take no
            # time unless issue has a cost (control.issue_cycles): then their signals come that
            # many cycles after they issue, as on the RTL core.
            c.fence = True
            c.duration_s = chip.control.issue_cycles / chip.clock_hz
        elif isinstance(ins, (DmaLoad, DmaStore)):
            c.duration_s = dma.request_latency_s(chip)
            c.nbytes = c.hbm_bytes = c.sram_bytes = float(ins.nbytes)
            c.roofline_s = dma.transfer_roofline_s(chip, ins.nbytes)
        elif isinstance(ins, DmaGather):
            # one latency (the rows are requested together), then the rows' bytes; the index
            # vector is read from SRAM
            c.duration_s = dma.request_latency_s(chip)
            c.nbytes = c.hbm_bytes = float(ins.nbytes)
            c.sram_bytes = float(ins.nbytes + ins.index_bytes)
            c.roofline_s = dma.transfer_roofline_s(chip, ins.nbytes)
        elif isinstance(ins, Gemm):
            precision = ins.precision.label
            if isinstance(ins, GemmStrided):
                cycles = gemm_strided.gemm_strided_cycles(chip, ins)
                roof = gemm_strided.gemm_strided_roofline_cycles(chip, ins)
            else:
                cycles = systolic.gemm_cycles(chip, ins.m, ins.n, ins.k, precision, ins.split)
                roof = systolic.gemm_roofline_cycles(chip, ins.m, ins.n, ins.k, precision, ins.split)
            assert cycles >= roof, f"systolic model beats its roofline on {ins}"
            c.duration_s = cycles / chip.clock_hz
            c.roofline_s = roof / chip.clock_hz
            c.macs, c.precision = ins.macs, precision
            width = self.max_ways >> ins.split
            c.slices = ((1 << width) - 1) << (ins.subarray * width)
            sa = systolic.sub_array(chip, ins.split, precision)
            c.arrays = min(sa.arrays, systolic.gemm_tiles(sa, ins.n, ins.k))
            n_tiles = -(-ins.n // sa.cols)
            c.sram_bytes = systolic.gemm_sram_bytes(ins.m, ins.n, ins.k, n_tiles, element_bytes(ins.precision),
                                                    element_bytes(ins.acc_precision), ins.accumulate)
            c.energy_j = ins.macs * e.pj_per_mac[precision] * PJ
        elif isinstance(ins, VectorGather) or (isinstance(ins, Vector) and ins.op in SELECTION_OPS):
            cost = vector.selection_cost(chip, ins)     # passes and schedules: see costs/vector.py
            c.duration_s = cost.cycles / chip.clock_hz
            c.roofline_s = cost.roofline_cycles / chip.clock_hz
            c.vector_ops, c.sram_bytes = cost.lane_ops, cost.sram_bytes
            c.energy_j = c.vector_ops * e.pj_per_vector_op * PJ
        elif isinstance(ins, (Vector, Vector2D)):
            # a 2-D op costs what the same number of contiguous elements costs: strides and
            # broadcasts are address generation, not lane work
            row_len = ins.cols if isinstance(ins, Vector2D) else ins.row_len
            c.duration_s = vector.vector_cycles(chip, ins.op, ins.length, ins.precision) / chip.clock_hz
            c.roofline_s = vector.vector_roofline_cycles(chip, ins.op, ins.length, ins.precision) / chip.clock_hz
            c.vector_ops = vector.vector_lane_ops(ins.op, ins.length, ins.precision)
            c.sram_bytes = vector.vector_sram_bytes(ins.op, ins.length, row_len, element_bytes(ins.precision))
            c.energy_j = c.vector_ops * e.pj_per_vector_op * PJ
        elif isinstance(ins, Collective):
            collective = link.collective_cost(chip, ins.kind, ins.nbytes, ins.chips)
            c.duration_s = collective.time_s
            c.roofline_s = link.collective_roofline_s(chip, ins.kind, ins.nbytes, ins.chips)
            c.link_bytes = collective.link_bytes
            c.sram_bytes = 2.0 * c.link_bytes   # read what is sent, write what arrives
            c.energy_j = c.link_bytes * e.pj_per_link_byte * PJ
        c.energy_j += c.sram_bytes * e.pj_per_sram_byte * PJ + c.hbm_bytes * e.pj_per_hbm_byte * PJ
        return c


# Fields that place an instruction in memory; the rest (its shape) decide its cost.
_PLACEMENT_FIELDS = frozenset({"hbm_addr", "hbm_loop_stride", "sram_addr", "sram_loop_stride", "hbm_row_stride",
                               "a_addr", "a_loop_stride", "b_addr", "b_loop_stride", "c_addr", "c_loop_stride",
                               "src_a", "src_b", "dst", "loop_stride", "lda", "ldb", "ldc", "src", "index_addr"})
_SHAPE_FIELDS: dict[type, tuple[str, ...]] = {}


def _shape_fields(cls: type[Instruction]) -> tuple[str, ...]:
    fields = _SHAPE_FIELDS.get(cls)
    if fields is None:
        fields = _SHAPE_FIELDS[cls] = tuple(n for n, _ in cls.FIELDS if n not in _PLACEMENT_FIELDS)
    return fields
