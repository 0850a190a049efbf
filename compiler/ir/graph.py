"""The dataflow IR: frozen op records in a `networkx.DiGraph`, plus inputs, outputs and constants.

Values are named (as in ONNX). A value is a graph input, a constant, or exactly one output of
one node. Edges run producer node -> consumer node and carry the value names they transport.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import networkx as nx

from compiler.ir.ops import Op
from compiler.ir.tensor import Constant, TensorType


@dataclass(frozen=True)
class Node:
    """One operation. `inputs` may hold "" for an omitted optional input."""

    name: str
    op: Op
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    output_types: tuple[TensorType, ...]
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "output_types", tuple(self.output_types))
        object.__setattr__(self, "attrs", MappingProxyType(dict(self.attrs)))
        if len(self.outputs) != len(self.output_types):
            raise ValueError(f"node {self.name!r}: {len(self.outputs)} outputs but {len(self.output_types)} types")

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)

    def input(self, index: int) -> str:
        """The value name of input `index`, or "" when absent."""
        return self.inputs[index] if index < len(self.inputs) else ""

    def describe(self) -> str:
        return f"{self.op.value} node {self.name!r}"


class GraphError(ValueError):
    pass


class Graph:
    def __init__(self, name: str = "graph", opset: int = 18) -> None:
        self.name = name
        self.opset = opset
        self.inputs: dict[str, TensorType] = {}
        self.outputs: list[str] = []
        self.constants: dict[str, Constant] = {}
        self.dg = nx.DiGraph()
        self._producer: dict[str, str] = {}
        self._consumers: dict[str, dict[str, None]] = {}
        self._order_key: dict[str, int] = {}
        self._next_key = 0
        self._topo: list[str] | None = None

    # ---- building -------------------------------------------------------------------------
    def add_input(self, name: str, ttype: TensorType) -> None:
        self._claim_value(name)
        self.inputs[name] = ttype

    def add_constant(self, const: Constant) -> None:
        self._claim_value(const.name)
        self.constants[const.name] = const

    def add_node(self, node: Node) -> Node:
        if node.name in self.dg:
            raise GraphError(f"duplicate node name {node.name!r}")
        for out in node.outputs:
            if out:
                self._claim_value(out)
        self.dg.add_node(node.name, node=node)
        self._order_key[node.name] = self._next_key
        self._next_key += 1
        for out in node.outputs:
            if out:
                self._producer[out] = node.name
                for consumer in self._consumers.get(out, ()):
                    self._add_edge(node.name, consumer, out)
        for value in node.inputs:
            if not value:
                continue
            self._consumers.setdefault(value, {})[node.name] = None
            producer = self._producer.get(value)
            if producer is not None:
                self._add_edge(producer, node.name, value)
        self._topo = None
        return node

    def remove_node(self, name: str) -> Node:
        node = self.node(name)
        for value in node.inputs:
            if value and value in self._consumers:
                self._consumers[value].pop(name, None)
        for out in node.outputs:
            if out:
                del self._producer[out]
        self.dg.remove_node(name)
        self._topo = None
        return node

    def replace_node(self, node: Node) -> None:
        """Swap in a node with the same name and outputs (e.g. refined types or attributes)."""
        old = self.node(node.name)
        if old.outputs != node.outputs:
            raise GraphError(f"replace_node {node.name!r}: outputs changed {old.outputs} -> {node.outputs}")
        self.remove_node(node.name)
        key = self._order_key[node.name]
        self.add_node(node)
        self._order_key[node.name] = key

    def remove_constant(self, name: str) -> None:
        del self.constants[name]

    def rename_uses(self, old: str, new: str) -> None:
        """Make every consumer of value `old` (and the graph outputs) read `new` instead."""
        for consumer in list(self._consumers.get(old, ())):
            node = self.node(consumer)
            inputs = tuple(new if v == old else v for v in node.inputs)
            self.replace_node(Node(node.name, node.op, inputs, node.outputs, node.output_types, node.attrs))
        self.outputs = [new if v == old else v for v in self.outputs]

    def _claim_value(self, name: str) -> None:
        if name in self.inputs or name in self.constants or name in self._producer:
            raise GraphError(f"value {name!r} is defined twice")

    def _add_edge(self, src: str, dst: str, value: str) -> None:
        if self.dg.has_edge(src, dst):
            self.dg.edges[src, dst]["values"].add(value)
        else:
            self.dg.add_edge(src, dst, values={value})

    # ---- queries --------------------------------------------------------------------------
    def node(self, name: str) -> Node:
        try:
            return self.dg.nodes[name]["node"]
        except KeyError:
            raise GraphError(f"no node named {name!r}") from None

    def nodes(self) -> list[Node]:
        """Nodes in a deterministic topological order (ties broken by insertion order)."""
        if self._topo is None:
            try:
                self._topo = list(nx.lexicographical_topological_sort(self.dg, key=self._order_key.__getitem__))
            except nx.NetworkXUnfeasible:
                cycle = nx.find_cycle(self.dg)
                raise GraphError(f"graph has a cycle through nodes {[e[0] for e in cycle]}") from None
        return [self.dg.nodes[n]["node"] for n in self._topo]

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes())

    def __len__(self) -> int:
        return self.dg.number_of_nodes()

    def producer(self, value: str) -> Node | None:
        name = self._producer.get(value)
        return None if name is None else self.node(name)

    def consumers(self, value: str) -> list[Node]:
        return [self.node(n) for n in self._consumers.get(value, ()) if n in self.dg]

    def has_value(self, value: str) -> bool:
        return value in self.inputs or value in self.constants or value in self._producer

    def type_of(self, value: str) -> TensorType:
        if value in self.inputs:
            return self.inputs[value]
        if value in self.constants:
            return self.constants[value].type
        producer = self.producer(value)
        if producer is None:
            raise GraphError(f"value {value!r} is not defined in graph {self.name!r}")
        return producer.output_types[producer.outputs.index(value)]

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node in self.nodes():
            counts[node.op.value] = counts.get(node.op.value, 0) + 1
        return dict(sorted(counts.items()))
