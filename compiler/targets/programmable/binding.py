"""Substitute the run's bindings into every shape: the lowering works on concrete sizes only.

Most dims are expressions over `batch`, `seq`, `past_len`. A few are data-dependent symbols
the importer had to invent (TopK's k computed from the sequence length, say); once the
bindings are known such a k is often shape arithmetic, so those nodes are re-typed with the
small integer values that can now be computed.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from compiler.ir.graph import Graph, Node
from compiler.ir.ops import Op
from compiler.ir.shapes import Dim, dim_str, evaluate, free_symbols
from compiler.ir.tensor import TensorType
from compiler.ops.registry import InferContext, opdef
from compiler.targets.programmable.options import LoweringError

_SMALL = 64  # only shape-sized integer tensors are evaluated at compile time


def bind_shapes(graph: Graph, bindings: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
    """Static shape of every value (inputs, constants, node outputs).

    Raises LoweringError naming the value and the unbound symbols when a dim stays symbolic.
    """
    return _Binder(graph, bindings).run()


class _Binder:
    def __init__(self, graph: Graph, bindings: Mapping[str, int]) -> None:
        self.graph, self.bindings = graph, bindings
        self.memo: dict[Dim, int] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.known: dict[str, np.ndarray | None] = {}

    def run(self) -> dict[str, tuple[int, ...]]:
        for name, ttype in self.graph.inputs.items():
            self.shapes[name] = self.bind(ttype.shape, f"graph input {name!r}")
        for name, const in self.graph.constants.items():
            self.shapes[name] = tuple(int(d) for d in const.type.shape)
        for node in self.graph.nodes():
            self.node(node)
        return self.shapes

    def node(self, node: Node) -> None:
        try:
            bound = [self.bind(t.shape, "") for t in node.output_types]
        except _Symbolic:
            bound = self.reinfer(node)
        for value, shape in zip(node.outputs, bound):
            if value:
                self.shapes[value] = shape

    def bind(self, shape: tuple[Dim, ...], what: str) -> tuple[int, ...]:
        out = []
        for dim in shape:
            if isinstance(dim, int):
                out.append(dim)
                continue
            size = self.memo.get(dim)
            if size is None:
                value = evaluate(dim, self.bindings)
                if not isinstance(value, int):
                    if not what:
                        raise _Symbolic(value)
                    raise self.unbound(what, dim, value)
                if value <= 0:
                    raise LoweringError(f"{what}: dim {dim_str(dim)} = {value} with the given bindings")
                size = self.memo[dim] = value
            out.append(size)
        return tuple(out)

    def unbound(self, what: str, dim: Dim, value: Dim) -> LoweringError:
        missing = ", ".join(sorted(free_symbols([value])))
        given = ", ".join(f"{k}={v}" for k, v in sorted(self.bindings.items())) or "none"
        return LoweringError(f"{what}: dim {dim_str(dim)} stays symbolic; bind {missing} in "
                             f"LoweringOptions.bindings (bound: {given})")

    def reinfer(self, node: Node) -> list[tuple[int, ...]]:
        """Re-run the node's type rule with bound input shapes and computable small values."""
        types = [TensorType(self.graph.type_of(v).dtype, self.shapes[v]) if v else None for v in node.inputs]
        values = [self.value(v) if v else None for v in node.inputs]
        inferred = opdef(node.op).infer(InferContext(node, types, values))
        shapes = []
        for value, ttype in zip(node.outputs, inferred):
            if not ttype.is_static:
                original = node.output_types[node.outputs.index(value)].shape
                raise self.unbound(f"{node.describe()} output {value!r}", original[0], ttype.shape[0])
            shapes.append(tuple(int(d) for d in ttype.shape))
        return shapes

    def value(self, name: str) -> np.ndarray | None:
        """A small integer tensor's value when it follows from constants and bound shapes."""
        if name in self.known:
            return self.known[name]
        self.known[name] = None
        const = self.graph.constants.get(name)
        producer = self.graph.producer(name)
        result = None
        if const is not None and const.is_materialized and const.type.numel <= _SMALL:
            result = const.value()
        elif producer is not None and producer.op == Op.SHAPE:
            result = np.asarray(self.shapes[producer.inputs[0]], dtype=np.int64)
            start, end = producer.attr("start", 0), producer.attr("end", len(result))
            result = result[start:end]
        elif producer is not None and all(np.prod(self.shapes.get(o, (_SMALL + 1,))) <= _SMALL
                                          for o in producer.outputs if o):
            inputs = [self.value(v) if v else None for v in producer.inputs]
            if all(x is not None for v, x in zip(producer.inputs, inputs) if v):
                try:
                    outputs = opdef(producer.op).run(producer, inputs)
                    result = np.asarray(outputs[producer.outputs.index(name)])
                except (ValueError, TypeError, ArithmeticError, KeyError):
                    result = None
        self.known[name] = result
        return result


class _Symbolic(Exception):
    def __init__(self, value: Dim) -> None:
        super().__init__(str(value))
        self.value = value
