"""Dead-code elimination: drop nodes and constants that no graph output depends on."""

from __future__ import annotations

from compiler.ir.graph import Graph

name = "dce"


def eliminate_dead_code(graph: Graph) -> Graph:
    live_values: set[str] = set(graph.outputs)
    live_nodes: set[str] = set()
    for node in reversed(graph.nodes()):
        if any(out in live_values for out in node.outputs if out):
            live_nodes.add(node.name)
            live_values.update(v for v in node.inputs if v)
    for node in graph.nodes():
        if node.name not in live_nodes:
            graph.remove_node(node.name)
    for const_name in list(graph.constants):
        if const_name not in live_values:
            graph.remove_constant(const_name)
    return graph
