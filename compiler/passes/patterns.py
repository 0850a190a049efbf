"""Shared pieces of the recognition passes: reading constants, walking producers, finding the
nodes a rewrite leaves dead, and emitting typed replacement nodes.

A recognizer walks producers from an anchor node (Softmax, ReduceMean, Concat), collects the
values the fused op will read (its boundary) and asks `dead_after` which matched nodes die once
the last one is replaced. It rewrites only when every node of the pattern's core dies, so a
recognized op never duplicates work that something else still reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import sympy

from compiler.ir.graph import Graph, Node
from compiler.ir.ops import Op
from compiler.ir.shapes import Dim, Shape
from compiler.ir.tensor import Constant, TensorType
from compiler.ops.registry import InferContext, OpError, opdef
from compiler.passes.fold import GraphBuilder

# Nodes that pass a value through unchanged.
TRANSPARENT = frozenset({Op.IDENTITY})


# ---- constants ------------------------------------------------------------------------------
def constant(graph: Graph, value: str) -> np.ndarray | None:
    """The data of a materialized constant, else None (activations, described-only weights)."""
    const = graph.constants.get(value)
    return const.data if const is not None and const.is_materialized else None


def scalar(graph: Graph, value: str) -> float | None:
    """A one-element numeric constant as a float (shape [] or [1] alike)."""
    data = constant(graph, value)
    if data is None or data.size != 1 or data.dtype == object or data.dtype == np.bool_:
        return None
    return float(data.reshape(-1)[0])


def int_list(graph: Graph, value: str) -> list[int] | None:
    data = constant(graph, value) if value else None
    if data is None or not np.issubdtype(data.dtype, np.integer):
        return None
    return [int(x) for x in data.reshape(-1)]


def axes_of(graph: Graph, node: Node, index: int = 1) -> list[int] | None:
    """Axes given as a constant input (opset 13+/18+) or as the older attribute."""
    if node.input(index):
        return int_list(graph, node.input(index))
    axes = node.attr("axes")
    return None if axes is None else [int(a) for a in axes]


# ---- walking --------------------------------------------------------------------------------
def producer(graph: Graph, value: str, *ops: Op) -> Node | None:
    """The node making `value` when its op is one of `ops`, else None."""
    node = graph.producer(value) if value else None
    return node if node is not None and node.op in ops else None


def skip(graph: Graph, value: str, ops: frozenset[Op] = TRANSPARENT) -> str:
    """Walk up through single-input pass-through nodes."""
    node = graph.producer(value)
    while node is not None and node.op in ops:
        value = node.input(0)
        node = graph.producer(value)
    return value


def other_input(node: Node, value: str) -> str:
    """The other operand of a binary node that reads `value`."""
    a, b = node.input(0), node.input(1)
    return b if a == value else a


def only_consumer(graph: Graph, value: str, *ops: Op) -> Node | None:
    """The single node reading `value` (of one of `ops`), when the value is not a graph output."""
    readers = graph.consumers(value)
    if len(readers) != 1 or value in graph.outputs:
        return None
    if ops and readers[0].op not in ops:
        return None
    return readers[0]


def scaling(graph: Graph, value: str) -> tuple[str, float] | None:
    """(x, factor) when `value` is x * c, c * x or x / c for a scalar constant c."""
    node = producer(graph, value, Op.MUL, Op.DIV)
    if node is None:
        return None
    if node.op == Op.DIV:
        c = scalar(graph, node.input(1))
        return None if c in (None, 0.0) else (node.input(0), 1.0 / c)
    for mine, theirs in ((0, 1), (1, 0)):
        c = scalar(graph, node.input(theirs))
        if c is not None and graph.type_of(node.input(mine)).shape == graph.type_of(value).shape:
            return node.input(mine), c
    return None


# ---- shapes ---------------------------------------------------------------------------------
def same_dim(a: Dim, b: Dim) -> bool:
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    if a == b:
        return True
    # Exporters produce equal dims in unsimplified forms (64*b*(p+1)/(16*p+16) is 4*b).
    return sympy.simplify(sympy.sympify(a) - sympy.sympify(b)) == 0


def same_shape(a: Shape, b: Shape) -> bool:
    return len(a) == len(b) and all(same_dim(x, y) for x, y in zip(a, b))


def same_type(a: TensorType, b: TensorType) -> bool:
    return a.dtype == b.dtype and same_shape(a.shape, b.shape)


# ---- dead nodes -----------------------------------------------------------------------------
def dead_after(graph: Graph, roots: Iterable[str], boundary: Iterable[str]) -> set[str]:
    """Node names that nothing reads once the `roots` nodes are gone.

    The walk stops at `boundary` values (what the fused op reads), so it stays local to the
    pattern. A node dies when each of its outputs is unread except by dead nodes and is not a
    graph output; it is re-examined each time one of its readers dies, which reaches the
    fixpoint without a topological order.
    """
    keep = set(boundary)
    outputs = set(graph.outputs)
    dead = set(roots)
    stack = list(dead)
    while stack:
        node = graph.node(stack.pop())
        for value in node.inputs:
            if not value or value in keep:
                continue
            maker = graph.producer(value)
            if maker is None or maker.name in dead:
                continue
            if all(not out or (out not in outputs and all(c.name in dead for c in graph.consumers(out)))
                   for out in maker.outputs):
                dead.add(maker.name)
                stack.append(maker.name)
    return dead


# ---- emitting -------------------------------------------------------------------------------
class Rewriter:
    """Adds typed nodes and constants to a graph, tracking symbolic shape values.

    Wraps the constant folder's builder, so a helper node whose inputs are all known (a Slice
    of a constant table, a Shape of a static tensor) is folded to a constant on the spot.
    """

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.builder = GraphBuilder(graph)

    def fresh(self, base: str) -> str:
        """A node name starting with `base` that is neither a node nor a value yet."""
        name, n = base, 0
        while name in self.graph.dg or self.graph.has_value(name) or self.graph.has_value(f"{name}:0"):
            n += 1
            name = f"{base}_{n}"
        return name

    def const(self, base: str, array: np.ndarray, ttype: TensorType) -> str:
        name = self.fresh(base)
        self.builder.add_constant(Constant(name, ttype, data=np.asarray(array), is_parameter=False))
        return name

    def int_const(self, base: str, values: Sequence[int]) -> str:
        from compiler.ir.dtypes import DType

        array = np.asarray(values, dtype=np.int64)
        return self.const(base, array, TensorType(DType.INT64, array.shape))

    def emit(self, base: str, op: Op, inputs: Sequence[str], attrs: Mapping[str, Any] | None = None) -> str:
        """Add a one-output helper node (or its folded constant); returns the value name."""
        name = self.fresh(base)
        self.builder.emit(name, op, list(inputs), [f"{name}:0"], dict(attrs or {}))
        return f"{name}:0"

    def infer(self, op: Op, inputs: Sequence[str], attrs: Mapping[str, Any], n_outputs: int) -> list[TensorType] | None:
        """Output types of a prospective node, or None when its type rule rejects it."""
        types = [self.graph.type_of(v) if v else None for v in inputs]
        values = [self.builder.known.get(v) if v else None for v in inputs]
        placeholder = tuple(TensorType(t.dtype, t.shape) for t in types[:1]) * n_outputs
        probe = Node("probe", op, tuple(inputs), tuple(f"probe:{i}" for i in range(n_outputs)), placeholder, attrs)
        try:
            return list(opdef(op).infer(InferContext(probe, types, values)))[:n_outputs]
        except (OpError, ValueError, TypeError):
            return None

    def replace(self, dead: set[str], node: Node) -> bool:
        """Swap the `dead` nodes for `node`, which produces some of their output names.

        Refuses (returns False, graph untouched) when `node`'s type rule disagrees with the
        types the replaced values had: a recognizer must never change what a value is.
        """
        inferred = self.infer(node.op, node.inputs, node.attrs, len(node.outputs))
        if inferred is None or not all(same_type(a, b) for a, b in zip(inferred, node.output_types, strict=True)):
            return False
        for name in dead:
            self.graph.remove_node(name)
        self.graph.add_node(node)
        return True
