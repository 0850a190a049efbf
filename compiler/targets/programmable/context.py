"""The state of one lowering: where every value lives, memory arenas, and the emitter."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from compiler.ir.dtypes import DType
from compiler.ir.graph import Graph, Node
from compiler.targets.programmable.arena import Arena, align
from compiler.targets.programmable.emitter import Buf, Emitter
from compiler.targets.programmable.isa import DmaLoad, Instruction, Precision
from compiler.targets.programmable.options import LoweringError, LoweringOptions
from compiler.targets.programmable.placement import WeightPlan
from compiler.targets.programmable.program import Program, Region
from compiler.targets.programmable.sharding import ShardPlan
from simulator.hardware.programmable import PRECISION_BITS, ProgrammableChip

PRECISION_OF = {
    "fp32": Precision.FP32, "bf16": Precision.BF16, "fp16": Precision.FP16,
    "fp8": Precision.FP8, "int8": Precision.INT8, "int4": Precision.INT4,
}
_DTYPE_PRECISION = {
    DType.FLOAT32: Precision.FP32, DType.FLOAT64: Precision.FP32, DType.BFLOAT16: Precision.BF16,
    DType.FLOAT16: Precision.FP16, DType.INT8: Precision.INT8, DType.UINT8: Precision.INT8,
    DType.INT4: Precision.INT4, DType.INT32: Precision.INT32,
}
_FP8 = {DType.FLOAT8E4M3, DType.FLOAT8E5M2, DType.FLOAT8E4M3FNUZ, DType.FLOAT8E5M2FNUZ}
_DMA_ROW_BYTES = 1 << 23  # one DMA row is at most 24 bits of bytes


def precision_of_dtype(dtype: DType) -> Precision:
    """The ISA element type a tensor of `dtype` is computed in (other integers as int32)."""
    if dtype in _FP8:
        return Precision.FP8
    return _DTYPE_PRECISION.get(dtype, Precision.INT32)


@dataclass
class Value:
    """A tensor as one chip holds it: bytes at `addr` inside `buf`, local (per-chip) shape."""

    name: str
    buf: Buf
    addr: int
    shape: tuple[int, ...]
    bits: int
    precision: Precision
    broadcast: bool = False  # an Expand view: more elements than bytes behind it

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return math.ceil(self.numel * self.bits / 8) if not self.broadcast else self.buf.nbytes

    @property
    def space(self) -> str:
        return self.buf.space

    @property
    def elem_bytes(self) -> float:
        return self.bits / 8


class StagingFull(LoweringError):
    """A kernel's tiles do not fit the free SRAM (it may retry with smaller tiles)."""


@dataclass
class Lowerer:
    graph: Graph
    chip: ProgrammableChip
    options: LoweringOptions
    shapes: dict[str, tuple[int, ...]]
    shard: ShardPlan
    weights: WeightPlan
    sram: Arena
    hbm: Arena
    program: Program = field(default_factory=Program)
    values: dict[str, Value] = field(default_factory=dict)
    uses: dict[str, int] = field(default_factory=dict)
    refs: dict[int, int] = field(default_factory=dict)
    # id -> the Buf itself: holding it keeps its id from being reused by a later Buf
    pinned: dict[int, Buf] = field(default_factory=dict)
    tag: str = "other"
    node: Node | None = None
    unrecognized: list[str] = field(default_factory=list)
    gaps: dict[str, list[str]] = field(default_factory=dict)
    not_value_exact: list[str] = field(default_factory=list)  # what the functional run would get wrong
    param_bufs: dict[str, Buf] = field(default_factory=dict)
    output_bufs: dict[str, Buf] = field(default_factory=dict)
    fresh_parts: dict[int, Buf] = field(default_factory=dict)
    capacity: dict[str, int] = field(default_factory=dict)
    overrides: dict[str, Value] = field(default_factory=dict)
    folded: dict[str, object] = field(default_factory=dict)  # compile-time values (folding.py)
    fused: set[str] = field(default_factory=set)
    stored: list[str] = field(default_factory=list)  # graph outputs already copied to their region

    def __post_init__(self) -> None:
        self.em = Emitter(self.program)
        self.sram_value_limit = self.sram.size // 8  # larger activations live in HBM and stream
        for node in self.graph.nodes():
            for value in node.inputs:
                if value:
                    self.uses[value] = self.uses.get(value, 0) + 1
        for value in self.graph.outputs:
            self.uses[value] = self.uses.get(value, 0) + 1

    # ---- values ---------------------------------------------------------------------------
    def local_shape(self, name: str) -> tuple[int, ...]:
        const = self.graph.constants.get(name)
        return self.shard.local_shape(name, self.shapes[name], is_param=bool(const and const.is_parameter))

    def value(self, name: str) -> Value:
        if name in self.overrides:  # an all-gathered copy for the node being lowered
            return self.overrides[name]
        if name not in self.values:
            if name in self.graph.constants:
                self._place_constant(name)
            else:
                raise LoweringError(f"internal: value {name!r} used before it was lowered")
        return self.values[name]

    def define(self, name: str, buf: Buf, addr: int | None = None, shape: tuple[int, ...] | None = None,
               bits: int | None = None, precision: Precision | None = None, broadcast: bool = False) -> Value:
        dtype = self.graph.type_of(name).dtype
        value = Value(
            name, buf, buf.addr if addr is None else addr, self.local_shape(name) if shape is None else shape,
            dtype.bits if bits is None else bits, precision_of_dtype(dtype) if precision is None else precision,
            broadcast,
        )
        self.values[name] = value
        self.refs[id(buf)] = self.refs.get(id(buf), 0) + 1
        return value

    def new_value(self, name: str, shape: tuple[int, ...] | None = None, bits: int | None = None,
                  space: str | None = None) -> Value:
        """Allocate the output `name`: in SRAM when small enough and free, else in HBM."""
        dtype = self.graph.type_of(name).dtype
        shape = self.local_shape(name) if shape is None else shape
        nbits = dtype.bits if bits is None else bits
        nbytes = math.ceil(math.prod(shape) * nbits / 8)
        if name in self.output_bufs:  # graph outputs are produced straight into their HBM region
            return self.define(name, self.output_bufs[name], shape=shape, bits=nbits)
        buf = self.alloc(nbytes, name, space)
        return self.define(name, buf, shape=shape, bits=nbits)

    def alias(self, name: str, source: Value, addr: int | None = None, shape: tuple[int, ...] | None = None,
              broadcast: bool = False) -> Value:
        """`name` is a view of `source`'s bytes (no data moves)."""
        return self.define(name, source.buf, source.addr if addr is None else addr,
                           self.local_shape(name) if shape is None else shape, source.bits,
                           source.precision, broadcast or source.broadcast)

    def alloc(self, nbytes: int, name: str, space: str | None = None) -> Buf:
        if space != "hbm" and nbytes <= self.sram_value_limit:
            buf = self.sram.alloc(nbytes, name)
            if buf is None and self.release_stored():
                buf = self.sram.alloc(nbytes, name)
            if buf is not None:
                return buf
        if space == "sram":
            raise LoweringError(f"{self.where()}: {nbytes} bytes for {name!r} do not fit the free SRAM "
                                f"(largest free block {self.sram.largest_free()} bytes)")
        buf = self.hbm.alloc(nbytes, name)
        if buf is None:
            raise LoweringError(f"{self.where()}: HBM scratch exhausted allocating {nbytes} bytes for {name!r}")
        return buf

    def staging(self, nbytes: int, name: str) -> Buf:
        """SRAM for a kernel's tiles; the kernel returns it with `unstage`."""
        buf = self.sram.alloc(nbytes, name)
        if buf is None and self.release_stored():
            buf = self.sram.alloc(nbytes, name)
        if buf is None:
            raise StagingFull(f"{self.where()}: {nbytes} bytes of SRAM staging for {name!r} do not fit "
                              f"(largest free block {self.sram.largest_free()} bytes of {self.sram.size})")
        return buf

    def stage_all(self, sizes: dict[str, int]) -> dict[str, Buf]:
        """All of a kernel's tiles, or none (StagingFull) so it can retry with smaller ones."""
        staged: dict[str, Buf] = {}
        try:
            for name, nbytes in sizes.items():
                staged[name] = self.staging(nbytes, name)
        except StagingFull:
            self.unstage(*staged.values())
            raise
        return staged

    def unstage(self, *bufs: Buf) -> None:
        for buf in bufs:
            self.sram.release(buf)

    def staging_budget(self) -> int:
        """SRAM a streaming kernel may take for its tiles now: most of what is free (kernels run
        one at a time; live activations already hold their own bytes)."""
        if self.sram.largest_free() * 3 // 4 < self.sram.size // 2:
            self.release_stored()
        return max(min(self.sram.largest_free() * 3 // 4, self.sram.size // 2), 1 << 12)

    def release_inputs(self, node: Node) -> None:
        for value in node.inputs:
            if value:
                self.release(value)

    def release_later(self, name: str) -> None:
        """A graph output now stored in its HBM region: its working copy may go once its consumers
        are done, but only when SRAM runs short (freeing it early makes the next owner of its
        bytes wait for the store)."""
        self.stored.append(name)

    def release_stored(self) -> bool:
        """Drop the graph outputs' working copies (see release_later); whether any were held."""
        names, self.stored = self.stored, []
        for name in names:
            self.release(name)
        return bool(names)

    def release(self, name: str) -> None:
        self.uses[name] -= 1
        if self.uses[name] > 0 or name not in self.values:
            return
        buf = self.values.pop(name).buf
        key = id(buf)
        self.refs[key] -= 1
        if self.refs[key] == 0 and key not in self.pinned:
            del self.refs[key]
            (self.sram if buf.space == "sram" else self.hbm).release(buf)

    def pin(self, buf: Buf) -> None:
        """Never return `buf` to an arena (weights, caches, graph inputs and outputs)."""
        self.pinned[id(buf)] = buf

    def fresh_part(self, cache: Buf) -> Buf:
        """Positions appended to a cache, as their own Buf: reading the past never waits on them."""
        if id(cache) not in self.fresh_parts:
            self.fresh_parts[id(cache)] = Buf(cache.name + ":new", cache.space, cache.addr, cache.nbytes)
        return self.fresh_parts[id(cache)]

    def region(self, name: str, buf: Buf) -> None:
        self.program.regions[name] = Region(name, buf.space, buf.addr, buf.nbytes)

    # ---- emission -------------------------------------------------------------------------
    def emit(self, instruction: Instruction, reads=(), writes=(), tag: str | None = None) -> int:
        return self.em.emit(instruction, tag or self.tag, reads, writes)

    def loop(self, count: int, body) -> None:
        self.em.loop(count, body, self.tag)

    def where(self) -> str:
        return self.node.describe() if self.node is not None else "lowering"

    def gap(self, what: str) -> None:
        """Record that the ISA lacks `what`; the node was lowered with a cost-equivalent stand-in."""
        names = self.gaps.setdefault(what, [])
        if len(names) < 8 and self.node is not None:
            names.append(self.node.name)

    def inexact(self, what: str) -> None:
        """Record that the emitted code times `what` right but would not compute its values."""
        if what not in self.not_value_exact and len(self.not_value_exact) < 32:
            self.not_value_exact.append(what)

    def weight_layout(self, name: str, widths: list[int]) -> None:
        """A packed weight is stored as consecutive [K, width] column blocks (memory images need it)."""
        layouts = self.program.meta.setdefault("weight_pieces", {})
        if layouts.setdefault(name, list(widths)) != list(widths):
            self.inexact(f"weight {name!r} is read with two different packings")

    def act_precision(self) -> Precision:
        return PRECISION_OF[self.options.activation_precision]

    def _place_constant(self, name: str) -> None:
        const = self.graph.constants[name]
        buf = self.param_bufs.get(name)
        bits = self.weights.bits.get(name, const.type.dtype.bits)
        if buf is None:  # small non-parameter constants (scales, masks) sit in SRAM for good
            nbytes = math.ceil(math.prod(self.local_shape(name)) * bits / 8)
            if self.em.raw:
                buf = self._load_constant(name, nbytes)
            else:  # before the first instruction: memory images put its value in its bytes
                buf = self.alloc(align(nbytes), f"const:{name}")
                self.pin(buf)
                self.region(name, buf)
        precision = None
        if const.is_parameter:
            label = self.options.weight_precision
            precision = PRECISION_OF[label] if bits == PRECISION_BITS[label] else self.act_precision()
        self.define(name, buf, bits=bits, precision=precision)
        self.uses[name] = self.uses.get(name, 0) + (1 << 30)  # constants are never freed

    def _load_constant(self, name: str, nbytes: int) -> Buf:
        """A constant first read once instructions were emitted: earlier kernels may have used any
        free byte as scratch, so memory images put its value in HBM bytes no kernel was ever given
        (its region), and a DMA loads it into SRAM bytes pinned from here on (or it is read in HBM
        when SRAM has no room)."""
        image = self.hbm.alloc_unused(nbytes, f"const:{name}")
        if image is None:
            raise LoweringError(f"{self.where()}: HBM scratch exhausted placing constant {name!r} ({nbytes} bytes)")
        self.pin(image)
        self.region(name, image)
        buf = self.sram.alloc(nbytes, f"const:{name}") if nbytes <= self.sram_value_limit else None
        if buf is None:
            return image
        self.pin(buf)
        row = min(nbytes, _DMA_ROW_BYTES)
        rows, rest = divmod(nbytes, row)
        for count, offset, size in ((rows, 0, row), (1 if rest else 0, rows * row, rest)):
            if count:
                self.emit(DmaLoad(hbm_addr=image.addr + offset, sram_addr=buf.addr + offset, rows=count,
                                  row_bytes=size, hbm_row_stride=size), reads=[image], writes=[buf])
        return buf
