"""A small family of integer graphs the integer ISA subset runs exactly: int8 MLP layers.

    y = requant(relu(x_int8 @ W_int8 + b_int32))

Requantization has to be bit-identical to VECTOR REQUANT, `clamp(round_half_up((a * imm) >>
shift))` to int8, where `>>` is an arithmetic shift (floor) and round-half-up adds half of the
last kept bit first. ONNX integer Div truncates toward zero, so the IR spells the floor
division out exactly:

    t = int64(a) * imm + 2**(shift - 1)
    q = (t - Mod(t, 2**shift)) / 2**shift      # Mod with fmod=0 takes the divisor's sign, so
                                                # t - Mod(t, d) is a multiple of d and Div is exact
    y = int8(Clip(q, -128, 127))

int64 keeps `a * imm` exact (|a| < 2**31, imm < 2**32). `match_requant` recognizes exactly
this chain, so the lowering can emit one REQUANT for it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from compiler.ir.dtypes import DType
from compiler.ir.graph import Graph, Node
from compiler.ir.ops import Op
from compiler.ir.tensor import Constant, TensorType
from compiler.passes.fold import GraphBuilder


@dataclass(frozen=True)
class Requant:
    imm: int
    shift: int


def requantize_reference(a: np.ndarray, imm: int, shift: int) -> np.ndarray:
    """VECTOR REQUANT in numpy (Python-int exact): the meaning both sides must agree on."""
    wide = a.astype(np.int64) * np.int64(imm) + (np.int64(1) << np.int64(shift - 1))
    return np.clip(wide >> np.int64(shift), -128, 127).astype(np.int8)


class _Builder:
    def __init__(self, name: str) -> None:
        self.graph = Graph(name, opset=18)
        self.fold = GraphBuilder(self.graph)
        self.count = 0

    def const(self, value, dtype: DType, parameter: bool = False, name: str | None = None) -> str:
        array = np.asarray(value, dtype=dtype.numpy)
        self.count += 1
        name = name or f"c{self.count}"
        self.fold.add_constant(Constant(name, TensorType(dtype, tuple(array.shape)), data=array,
                                        is_parameter=parameter))
        return name

    def op(self, op: Op, *inputs: str, **attrs) -> str:
        self.count += 1
        name = f"{op.value}_{self.count}"
        self.fold.emit(name, op, inputs, [f"{name}:0"], attrs)
        return f"{name}:0"


def build_int8_mlp(batch: int, widths: Sequence[int], seed: int = 0, name: str = "int8_mlp",
                   requant: Sequence[Requant] | None = None) -> Graph:
    """An int8 MLP: input "x" [batch, widths[0]] -> len(widths) - 1 layers -> output "y".

    Weights are seeded int8 in [-7, 7], biases int32; the default requantization (imm 5 and a
    shift growing with log2 K) keeps a layer's outputs spread over the int8 range.
    """
    rng = np.random.default_rng(seed)
    b = _Builder(name)
    b.graph.add_input("x", TensorType(DType.INT8, (batch, widths[0])))
    hidden = "x"
    for layer, (k, n) in enumerate(zip(widths[:-1], widths[1:])):
        w = b.const(rng.integers(-7, 8, (k, n)), DType.INT8, parameter=True, name=f"layer{layer}.weight")
        bias = b.const(rng.integers(-256, 256, (n,)), DType.INT32, parameter=True, name=f"layer{layer}.bias")
        # |acc| is about 320 * sqrt(k) for int8 inputs; map that to about 48 after the shift
        default = Requant(imm=5, shift=max(1, round(math.log2(5 * 320 * math.sqrt(k) / 48))))
        scale = requant[layer] if requant is not None else default
        acc = b.op(Op.MATMUL, b.op(Op.CAST, hidden, to=DType.INT32.onnx_code),
                   b.op(Op.CAST, w, to=DType.INT32.onnx_code))
        acc = b.op(Op.ADD, acc, bias)
        acc = b.op(Op.MAX, acc, b.const(0, DType.INT32))
        hidden = _requant(b, acc, scale)
    b.graph.outputs.append(hidden)
    return _rename_output(b.graph, hidden, "y")


def _requant(b: _Builder, acc: str, scale: Requant) -> str:
    if scale.shift < 1:
        raise ValueError(f"requantize shift must be >= 1, got {scale.shift}")
    divisor = 1 << scale.shift
    t = b.op(Op.CAST, acc, to=DType.INT64.onnx_code)
    t = b.op(Op.MUL, t, b.const(scale.imm, DType.INT64))
    t = b.op(Op.ADD, t, b.const(divisor // 2, DType.INT64))
    d = b.const(divisor, DType.INT64)
    q = b.op(Op.DIV, b.op(Op.SUB, t, b.op(Op.MOD, t, d, fmod=0)), d)
    q = b.op(Op.CLIP, q, b.const(-128, DType.INT64), b.const(127, DType.INT64))
    return b.op(Op.CAST, q, to=DType.INT8.onnx_code)


def _rename_output(graph: Graph, value: str, name: str) -> Graph:
    producer = graph.producer(value)
    graph.remove_node(producer.name)
    graph.add_node(Node(producer.name, producer.op, producer.inputs, (name,), producer.output_types, producer.attrs))
    graph.outputs = [name]
    return graph


def match_requant(graph: Graph, node: Node) -> tuple[str, Requant, list[Node]] | None:
    """If `node` is the final Cast(int8) of the requantize chain: (its int32 source, the scale,
    the chain's nodes)."""
    if node.op != Op.CAST or graph.type_of(node.outputs[0]).dtype != DType.INT8:
        return None
    try:
        clip = _producer(graph, node.inputs[0], Op.CLIP)
        div = _producer(graph, clip.inputs[0], Op.DIV)
        sub = _producer(graph, div.inputs[0], Op.SUB)
        mod = _producer(graph, sub.inputs[1], Op.MOD)
        add = _producer(graph, sub.inputs[0], Op.ADD)
        mul = _producer(graph, add.inputs[0], Op.MUL)
        widen = _producer(graph, mul.inputs[0], Op.CAST)
    except LookupError:
        return None
    divisor = _scalar(graph, div.inputs[1])
    shift = divisor.bit_length() - 1 if divisor and divisor & (divisor - 1) == 0 else -1
    ok = (shift >= 1 and mod.inputs == (add.outputs[0], div.inputs[1]) and not mod.attr("fmod", 0)
          and _scalar(graph, mod.inputs[1]) == divisor and _scalar(graph, add.inputs[1]) == divisor // 2
          and _scalar(graph, clip.inputs[1]) == -128 and _scalar(graph, clip.inputs[2]) == 127
          and graph.type_of(widen.inputs[0]).dtype == DType.INT32)
    imm = _scalar(graph, mul.inputs[1])
    if not ok or imm is None or not 0 <= imm < 1 << 32:
        return None
    return widen.inputs[0], Requant(imm, shift), [widen, mul, add, mod, sub, div, clip, node]


def _producer(graph: Graph, value: str, op: Op) -> Node:
    node = graph.producer(value)
    if node is None or node.op != op:
        raise LookupError(value)
    return node


def _scalar(graph: Graph, value: str) -> int | None:
    const = graph.constants.get(value)
    if const is None or const.type.numel != 1 or not const.is_materialized:
        return None
    return int(np.asarray(const.value()).reshape(-1)[0])


def build_requant_graph(count: int, scale: Requant, name: str = "requant") -> Graph:
    """Just the requantize chain on an int32 input "a" [count] -> int8 "y" (for checking it)."""
    b = _Builder(name)
    b.graph.add_input("a", TensorType(DType.INT32, (count,)))
    out = _requant(b, "a", scale)
    b.graph.outputs.append(out)
    return _rename_output(b.graph, out, "y")
