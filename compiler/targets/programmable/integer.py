"""Exact lowering of integer graphs for the integer ISA subset (and any chip with int8 GEMMs).

Only what the integer subset can run is accepted: int8 MLP layers (see `int_graphs`), each
a GEMM int8 x int8 -> int32 per weight piece, then per row the bias ADD and the ReLU MAX
against zeros, and one REQUANT to int8. Addresses and layouts are real, so a functional
simulator running the program on `image.hbm_image(...)` gets the interpreter's values. Any
other node is a compile-time error naming it and the instruction it would need.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from compiler.ir.dtypes import DType
from compiler.ir.graph import Graph, Node
from compiler.ir.ops import Op
from compiler.targets.programmable.arena import Arena, align
from compiler.targets.programmable.binding import bind_shapes
from compiler.targets.programmable.emitter import Buf, Emitter
from compiler.targets.programmable.int_graphs import Requant, match_requant
from compiler.targets.programmable.isa import (
    INTEGER_VECTOR_OPS,
    DmaLoad,
    DmaStore,
    Gemm,
    Precision,
    Vector,
    VectorOp,
)
from compiler.targets.programmable.options import LoweringError, LoweringOptions
from compiler.targets.programmable.program import Program, Region
from compiler.targets.programmable.tiling import GEMM_DIM_LIMIT, choose_split, pieces
from compiler.targets.programmable.vector import recipe_ops
from simulator.hardware.programmable import ProgrammableChip

_SUBSET = ("DMA_LOAD, DMA_STORE, GEMM int8 (int32 accumulate), VECTOR "
           + ", ".join(op.name for op in sorted(INTEGER_VECTOR_OPS)) + " on int32, LOOP, HALT")
_FAMILY = "int8 MLP layers: Cast(int8->int32) -> MatMul -> Add(int32 bias) -> Max(0) -> requantize to int8"


@dataclass
class _Layer:
    source: str
    weight: str
    bias: str | None
    relu: bool
    scale: Requant
    output: str


def lower_integer_graph(graph: Graph, chip: ProgrammableChip, options: LoweringOptions) -> tuple[Program, list]:
    started = time.perf_counter()
    if not chip.supports("int8"):
        raise LoweringError(f"{chip.name} has no int8 matrix path for an integer graph; it supports "
                            f"{', '.join(chip.systolic.macs_per_pe_per_cycle)}")
    layers, covered = match_layers(graph)
    check_integer_subset(graph, chip, covered)
    _check_chain(graph, layers)
    shapes = bind_shapes(graph, options.all_bindings())
    program, accesses = _IntegerKernel(graph, chip, shapes, layers).run()
    program.meta["lowering_s"] = time.perf_counter() - started
    return program, accesses


def check_integer_subset(graph: Graph, chip: ProgrammableChip, covered: set[str]) -> None:
    """Name the first node outside the known integer layers: what instruction it would need
    that the integer subset lacks, or else that the integer lowering does not know it."""
    uncovered = [node for node in graph.nodes() if node.name not in covered]
    if chip.isa_subset == "integer":
        for node in uncovered:
            need = _needs(graph, node)
            if need:
                raise LoweringError(f"{node.describe()}: needs {need}, which {chip.name}'s integer ISA subset "
                                    f"lacks (it has {_SUBSET})")
    if uncovered:
        raise LoweringError(f"{uncovered[0].describe()}: not part of an integer layer the lowering knows ({_FAMILY})")


def _needs(graph: Graph, node: Node) -> str | None:
    missing = sorted(recipe_ops(node.op) - INTEGER_VECTOR_OPS, key=lambda op: op.value)
    if node.op in (Op.SOFTMAX, Op.LOG_SOFTMAX, Op.RMS_NORMALIZATION, Op.LAYER_NORMALIZATION, Op.ATTENTION):
        missing = [VectorOp.EXP if node.op in (Op.SOFTMAX, Op.LOG_SOFTMAX, Op.ATTENTION) else VectorOp.RSQRT]
    if missing:
        return "VECTOR " + ", ".join(op.name for op in missing)
    types = [graph.type_of(v) for v in node.inputs if v] + list(node.output_types)
    floats = sorted({str(t.dtype) for t in types if t.dtype.is_float})
    if floats:
        return f"floating-point arithmetic ({', '.join(floats)})"
    return None


def match_layers(graph: Graph) -> tuple[list[_Layer], set[str]]:
    """The int8 MLP layers of the graph and the names of the nodes they cover."""
    layers: list[_Layer] = []
    covered: set[str] = set()
    for node in graph.nodes():
        if node.name in covered:
            continue
        found = match_requant(graph, node) if node.op == Op.CAST else None
        if found is None:
            continue
        source, scale, chain = found
        layer, nodes = _layer_before(graph, source)
        layers.append(_Layer(layer[0], layer[1], layer[2], layer[3], scale, node.outputs[0]))
        covered |= {n.name for n in chain} | {n.name for n in nodes}
    return layers, covered


def _check_chain(graph: Graph, layers: list[_Layer]) -> None:
    if not layers:
        raise LoweringError(f"graph {graph.name!r} has no integer layer ({_FAMILY})")
    expected = [name for name in graph.inputs][:1] + [layer.output for layer in layers[:-1]]
    for layer, source in zip(layers, expected):
        if layer.source != source or len(graph.inputs) != 1 or graph.outputs != [layers[-1].output]:
            raise LoweringError(f"integer layers must form one chain from the input to the output "
                                f"({layer.source!r} feeds {layer.weight!r}; expected {source!r})")


def _layer_before(graph: Graph, value: str) -> tuple[tuple[str, str, str | None, bool], list[Node]]:
    nodes: list[Node] = []
    node = graph.producer(value)
    relu = False
    if node is not None and node.op in (Op.MAX, Op.RELU):
        if node.op == Op.MAX and _scalar_zero(graph, node.inputs[1]) is False:
            raise LoweringError(f"{node.describe()}: only Max with 0 (ReLU) is supported ({_FAMILY})")
        nodes.append(node)
        relu, node = True, graph.producer(node.inputs[0])
    bias = None
    if node is not None and node.op == Op.ADD:
        bias = node.inputs[1]
        if bias not in graph.constants or graph.constants[bias].type.dtype != DType.INT32:
            raise LoweringError(f"{node.describe()}: the bias must be an int32 constant ({_FAMILY})")
        nodes.append(node)
        node = graph.producer(node.inputs[0])
    if node is None or node.op != Op.MATMUL:
        raise LoweringError(f"{value!r}: expected a MatMul feeding the requantize ({_FAMILY})")
    nodes.append(node)
    operands = []
    for operand in node.inputs:
        cast = graph.producer(operand)
        if cast is None or cast.op != Op.CAST or graph.type_of(cast.inputs[0]).dtype != DType.INT8:
            raise LoweringError(f"{node.describe()}: operands must be int8 cast to int32 ({_FAMILY})")
        nodes.append(cast)
        operands.append(cast.inputs[0])
    if operands[1] not in graph.constants:
        raise LoweringError(f"{node.describe()}: the weight operand must be a constant ({_FAMILY})")
    return (operands[0], operands[1], bias, relu), nodes


def _scalar_zero(graph: Graph, value: str) -> bool:
    const = graph.constants.get(value)
    return const is not None and const.type.numel == 1 and int(const.value().reshape(-1)[0]) == 0


class _IntegerKernel:
    def __init__(self, graph: Graph, chip: ProgrammableChip, shapes: dict, layers: list[_Layer]) -> None:
        self.graph, self.chip, self.shapes, self.layers = graph, chip, shapes, layers
        self.program = Program()
        self.em = Emitter(self.program)

    def run(self) -> tuple[Program, list]:
        graph, chip, shapes = self.graph, self.chip, self.shapes
        rows = shapes[self.layers[0].source][0]
        params = [name for layer in self.layers for name in (layer.weight, layer.bias) if name]
        param_bytes = {name: math.ceil(math.prod(shapes[name]) * graph.constants[name].type.dtype.bits / 8)
                       for name in params}
        widths = {layer.weight: self.piece_widths(layer, GEMM_DIM_LIMIT) for layer in self.layers}
        resident = sum(align(b) for b in param_bytes.values())
        in_sram = resident + self.reserve(widths, streamed=False) <= chip.memory.sram_bytes
        if not in_sram:  # streamed weights arrive a piece at a time: pieces sized to SRAM slots
            slot = chip.memory.sram_bytes // 8
            widths = {layer.weight: self.piece_widths(layer, max(1, slot // shapes[layer.weight][0]))
                      for layer in self.layers}
        regions, sram_next, hbm_next = self.program.regions, 0, 0
        self.params: dict[str, Buf] = {}
        for name in params:
            space = "sram" if in_sram else "hbm"
            base = sram_next if in_sram else hbm_next
            self.params[name] = Buf(name, space, base, align(param_bytes[name]))
            regions[name] = Region(name, space, base, align(param_bytes[name]))
            sram_next, hbm_next = (sram_next + align(param_bytes[name]), hbm_next) if in_sram else (
                sram_next, hbm_next + align(param_bytes[name]))
        io: dict[str, Buf] = {}
        for name in [*graph.inputs, *graph.outputs]:
            nbytes = align(math.ceil(math.prod(shapes[name]) * graph.type_of(name).dtype.bits / 8))
            io[name] = Buf(name, "hbm", hbm_next, nbytes)
            regions[name] = Region(name, "hbm", hbm_next, nbytes)
            hbm_next += nbytes
        if sram_next > chip.memory.sram_bytes:
            raise LoweringError(f"integer weights need {sram_next} bytes of SRAM; {chip.name} has "
                                f"{chip.memory.sram_bytes}")
        self.sram = Arena("sram", sram_next, chip.memory.sram_bytes - sram_next)
        self.widths, self.rows = widths, rows
        self.emit_layers(io)
        count = self.em.finish()
        total = sum(param_bytes.values())
        hbm_total = hbm_next
        fits = hbm_total <= chip.memory.hbm_bytes
        self.program.meta.update({
            "target": chip.name, "graph": graph.name, "tensor_parallel": 1, "integer": True,
            "weights_in_sram": in_sram, "weight_bytes": {"per_chip": total, "total": total},
            "weight_bytes_per_step": 0 if in_sram else total,
            "kv_bytes": {"per_chip": 0, "total": 0}, "state_bytes": {"per_chip": 0, "total": 0},
            "hbm_capacity_bytes": chip.memory.hbm_bytes, "sram_capacity_bytes": chip.memory.sram_bytes,
            "fits": fits, "fits_reason": (f"weights {total} B {'in SRAM' if in_sram else 'in HBM'} + I/O "
                                          f"{hbm_total - (0 if in_sram else total)} B "
                                          f"{'<=' if fits else 'exceeds'} {chip.memory.hbm_bytes} B HBM"),
            "unrecognized": [], "isa_gaps": {}, "instructions": count, "fences": self.em.fence_count,
            "semaphores_used": self.em.semaphores_used,
            "weight_pieces": {name: ws for name, ws in widths.items()}, "graph_outputs": list(graph.outputs),
            "tensors": {name: {"dtype": str(graph.type_of(name).dtype), "shape": list(shapes[name])}
                        for name in [*graph.inputs, *graph.outputs, *params]},
            "layouts": "row-major everywhere; SRAM-resident weights as consecutive [K, piece] column pieces",
        })
        return self.program, self.em.accesses

    def piece_widths(self, layer: _Layer, widest: int) -> list[int]:
        """Columns per GEMM: one piece per sub-array of the chosen split, each at most `widest`.

        On integer-subset chips (what the RTL core builds) every piece but a ragged last one is a
        whole number of array columns: the RTL GEMM unit reads B rows and writes C rows a word
        at a time and the DMA moves whole beats (rtl/programmable/check.py)."""
        k, n = self.shapes[layer.weight]
        if k > GEMM_DIM_LIMIT:
            raise LoweringError(f"integer layer {layer.weight!r}: K = {k} exceeds one GEMM's 65535")
        ways = choose_split(self.chip, self.shapes[layer.source][0], n, k, "int8").ways
        count = max(ways, math.ceil(n / widest))
        quantum = self.chip.systolic.cols if self.chip.isa_subset == "integer" else 1
        units = pieces(math.ceil(n / quantum), count)
        widths = [u * quantum for u in units]
        widths[-1] -= sum(widths) - n
        return widths

    def reserve(self, widths: dict[str, list[int]], streamed: bool) -> int:
        """SRAM besides the weights: layer input and output, two accumulators, zeros, slots."""
        rows, shapes = self.shapes[self.layers[0].source][0], self.shapes
        widest = max(w for ws in widths.values() for w in ws)
        activations = max(rows * shapes[v][1] for layer in self.layers for v in (layer.source, layer.output))
        deepest = max(shapes[layer.weight][0] for layer in self.layers)
        slots = 2 * align(deepest * widest) if streamed else 0
        return 2 * align(activations) + 2 * align(rows * widest * 4) + align(widest * 4) + slots

    def emit_layers(self, io: dict[str, Buf]) -> None:
        em, rows = self.em, self.rows
        tag = "mlp"
        first = self.layers[0]
        x = self.alloc(rows * self.shapes[first.source][1], "x")
        em.emit(DmaLoad(hbm_addr=io[first.source].addr, sram_addr=x.addr, rows=1, row_bytes=x.nbytes,
                        hbm_row_stride=x.nbytes), tag, reads=[io[first.source]], writes=[x])
        widest = max(w for ws in self.widths.values() for w in ws)
        zeros = self.alloc(4 * widest, "zeros")
        # x - x is 0 whatever SRAM held: the ReLU's zero operand without a constant
        em.emit(Vector(op=VectorOp.SUB, precision=Precision.INT32, src_a=zeros.addr, src_b=zeros.addr,
                       dst=zeros.addr, length=widest), tag, reads=[zeros], writes=[zeros])
        accs = [self.alloc(4 * rows * widest, f"acc{i}") for i in range(2)]
        slots = [self.alloc(max(self.shapes[layer.weight][0] for layer in self.layers) * widest, f"w{i}")
                 for i in range(2)] if self.params[first.weight].space == "hbm" else []
        step = 0
        for layer in self.layers:
            k, n = self.shapes[layer.weight]
            y = self.alloc(rows * n, layer.output)
            bias = self.params.get(layer.bias) if layer.bias else None
            if bias is not None and bias.space == "hbm":
                staged = self.alloc(bias.nbytes, "bias")
                em.emit(DmaLoad(hbm_addr=bias.addr, sram_addr=staged.addr, rows=1, row_bytes=bias.nbytes,
                                hbm_row_stride=bias.nbytes), tag, reads=[bias], writes=[staged])
                bias = staged
            col = 0
            weight = self.params[layer.weight]
            ways = len(self.widths[layer.weight])
            split = ways.bit_length() - 1 if ways & (ways - 1) == 0 and ways in self.chip.systolic.split_factors else 0
            for p, width in enumerate(self.widths[layer.weight]):
                acc = accs[step % 2]
                if weight.space == "sram":
                    b_buf, b_addr = weight, weight.addr + k * col
                else:
                    b_buf = slots[step % 2]
                    em.emit(DmaLoad(hbm_addr=weight.addr + col, sram_addr=b_buf.addr, rows=k, row_bytes=width,
                                    hbm_row_stride=n), tag, reads=[weight], writes=[b_buf])
                    b_addr = b_buf.addr
                em.emit(Gemm(a_addr=x.addr, b_addr=b_addr, c_addr=acc.addr, m=rows, n=width, k=k,
                             precision=Precision.INT8, acc_precision=Precision.INT32,
                             split=split if ways > 1 else 0, subarray=p if split else 0),
                        tag, reads=[x, b_buf], writes=[acc])
                for r in range(rows):
                    row = acc.addr + 4 * r * width
                    if bias is not None:
                        em.emit(Vector(op=VectorOp.ADD, precision=Precision.INT32, src_a=row,
                                       src_b=bias.addr + 4 * col, dst=row, length=width), tag,
                                reads=[acc, bias], writes=[acc])
                    if layer.relu:
                        em.emit(Vector(op=VectorOp.MAX, precision=Precision.INT32, src_a=row, src_b=zeros.addr,
                                       dst=row, length=width), tag, reads=[acc, zeros], writes=[acc])
                    em.emit(Vector(op=VectorOp.REQUANT, precision=Precision.INT32, src_a=row, src_b=row,
                                   dst=y.addr + r * n + col, length=width, imm=layer.scale.imm,
                                   shift=layer.scale.shift), tag, reads=[acc], writes=[y])
                col += width
                step += 1
            x = y
        out = io[self.layers[-1].output]
        em.emit(DmaStore(hbm_addr=out.addr, sram_addr=x.addr, rows=1, row_bytes=self.rows * self.shapes[
            self.layers[-1].output][1], hbm_row_stride=out.nbytes), tag, reads=[x], writes=[out])

    def alloc(self, nbytes: int, name: str) -> Buf:
        buf = self.sram.alloc(nbytes, name)
        if buf is None:
            raise LoweringError(f"integer lowering: {nbytes} bytes for {name!r} do not fit {self.chip.name}'s SRAM "
                                f"({self.sram.largest_free()} bytes free)")
        return buf
