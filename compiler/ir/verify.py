"""IR verifier: structural checks every pass must preserve."""

from __future__ import annotations

import networkx as nx

from compiler.ir.graph import Graph


class VerificationError(ValueError):
    pass


def verify(graph: Graph) -> None:
    """Raise VerificationError listing every problem found in `graph`."""
    from compiler.ops.registry import is_registered

    problems: list[str] = []
    if not nx.is_directed_acyclic_graph(graph.dg):
        problems.append("graph has a cycle")
    produced: dict[str, str] = {}
    for node in graph.dg.nodes(data="node"):
        record = node[1]
        if not is_registered(record.op):
            problems.append(f"{record.describe()}: op has no registered semantics")
        for value in record.inputs:
            if value and not graph.has_value(value):
                problems.append(f"{record.describe()}: input {value!r} is undefined")
        for out in record.outputs:
            if not out:
                continue
            if out in produced:
                problems.append(f"value {out!r} produced by both {produced[out]!r} and {record.name!r}")
            if out in graph.inputs or out in graph.constants:
                problems.append(f"{record.describe()}: output {out!r} shadows an input or constant")
            produced[out] = record.name
    for out in graph.outputs:
        if not graph.has_value(out):
            problems.append(f"graph output {out!r} is undefined")
    if problems:
        raise VerificationError(f"graph {graph.name!r} is invalid:\n  " + "\n  ".join(problems))
