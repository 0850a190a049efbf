"""Type inference with constant folding, including symbolic shape arithmetic.

`GraphBuilder.emit` takes nodes in topological order, infers their output types and either
folds them to constants or adds them to the graph. Values that are only partly known (shape
tensors whose elements are sympy expressions, e.g. `[batch, seq, 4096]`) are tracked in
`known` so that Reshape / Expand / Range downstream get exact symbolic output shapes even
though the nodes computing them stay in the graph for run time.

`fold_constants` is the same machinery run as a pass over an existing graph.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import sympy

from compiler.ir.dtypes import DType
from compiler.ir.graph import Graph, Node
from compiler.ir.ops import Op
from compiler.ir.shapes import normalize
from compiler.ir.tensor import Constant, TensorType
from compiler.ops.registry import InferContext, OpDef, opdef
from compiler.ops.shape import shape_value, size_value

name = "fold-constants"

# Folding a concrete computation materializes its result; beyond this many elements we keep
# the node (a run computes it anyway) rather than growing the graph's constant storage.
MAX_FOLDED_ELEMENTS = 1 << 22
# Symbolic (object-array) values are only worth tracking for small shape tensors.
MAX_SYMBOLIC_ELEMENTS = 64


class GraphBuilder:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.known: dict[str, np.ndarray] = {}
        for const in graph.constants.values():
            if const.is_materialized:
                self.known[const.name] = const.data

    def add_constant(self, const: Constant) -> None:
        self.graph.add_constant(const)
        if const.is_materialized:
            self.known[const.name] = const.data

    def emit(self, node_name: str, op: Op, inputs: Sequence[str], outputs: Sequence[str],
             attrs: Mapping[str, Any]) -> None:
        definition = opdef(op)
        input_types = [self.graph.type_of(v) if v else None for v in inputs]
        input_values = [self.known.get(v) if v else None for v in inputs]
        placeholder = tuple(TensorType(DType.FLOAT32, ()) for _ in outputs)
        ctx = InferContext(Node(node_name, op, inputs, outputs, placeholder, attrs), input_types, input_values)
        output_types = list(definition.infer(ctx))[: len(outputs)]
        if len(output_types) < len(outputs):
            raise ctx.fail(f"type rule gave {len(output_types)} outputs, node has {len(outputs)}")
        node = Node(node_name, op, tuple(inputs), tuple(outputs), tuple(output_types), attrs)
        if self._fold(node, definition, input_values):
            return
        self.graph.add_node(node)
        if op == Op.SHAPE:
            self._record(outputs[0], shape_value(input_types[0], node))
        elif op == Op.SIZE:
            self._record(outputs[0], size_value(input_types[0]))

    # ---- folding ----------------------------------------------------------------------------
    def _fold(self, node: Node, definition: OpDef, values: list[np.ndarray | None]) -> bool:
        """Fold `node` to constants, or add it while tracking its symbolic values.

        Returns False when the node was left alone (the caller adds it).
        """
        present = [v for v, input_name in zip(values, node.inputs) if input_name]
        if any(v is None for v in present) or node.op in _NEVER_FOLD:
            return False
        # Weights stay weights: folding Transpose(W) would duplicate a tied parameter and make
        # tiny (materialized) and full-size (described-only) graphs differ in structure.
        if any(self.graph.constants[v].is_parameter for v in node.inputs if v in self.graph.constants):
            return False
        if not all(t.is_static for t in node.output_types):
            return False
        symbolic = any(v.dtype == object for v in present)
        if symbolic and not definition.symbolic:
            return False
        if not symbolic and sum(int(np.prod(t.shape)) for t in node.output_types) > MAX_FOLDED_ELEMENTS:
            return False
        try:
            results = [np.asarray(r) for r in definition.run(node, list(values))]
        except (ValueError, TypeError, ArithmeticError):
            # Undecidable symbolic comparisons and the like: leave the node for run time.
            return False
        concrete = [_concretize(r, t.dtype) for r, t in zip(results, node.output_types)]
        if all(c is not None for c in concrete):
            for out, ttype, array in zip(node.outputs, node.output_types, concrete):
                if out:
                    self.add_constant(Constant(out, ttype, data=array, is_parameter=False))
            return True
        if not symbolic:
            return False
        self.graph.add_node(node)
        for out, array in zip(node.outputs, results):
            if out:
                self._record(out, array)
        return True

    def _record(self, value: str, array: np.ndarray) -> None:
        if array.size <= MAX_SYMBOLIC_ELEMENTS:
            concrete = _concretize(array, DType.INT64)
            self.known[value] = concrete if concrete is not None else array


_NEVER_FOLD = frozenset({Op.DROPOUT})


def _concretize(array: np.ndarray, dtype: DType) -> np.ndarray | None:
    """An object array of dims becomes an int array when every element is an integer."""
    if array.dtype != object:
        return array
    flat = [normalize(x) if isinstance(x, (int, np.integer, sympy.Basic)) else x for x in array.reshape(-1)]
    if all(isinstance(x, (int, float, bool, np.bool_, np.floating)) for x in flat):
        return np.array(flat, dtype=dtype.numpy).reshape(array.shape)
    return None


def fold_constants(graph: Graph) -> Graph:
    """Re-run type inference and folding over `graph`, returning a new graph."""
    result = Graph(graph.name, graph.opset)
    for input_name, ttype in graph.inputs.items():
        result.add_input(input_name, ttype)
    builder = GraphBuilder(result)
    for const in graph.constants.values():
        builder.add_constant(const)
    for node in graph.nodes():
        builder.emit(node.name, node.op, node.inputs, node.outputs, node.attrs)
    result.outputs = list(graph.outputs)
    return result
