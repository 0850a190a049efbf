"""Named passes, runnable alone (`tessera ir MODEL --passes fold-constants,dce`) or in order."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from compiler.ir.graph import Graph
from compiler.ir.verify import verify
from compiler.passes import dce, fold

PASSES: dict[str, Callable[[Graph], Graph]] = {
    fold.name: fold.fold_constants,
    dce.name: dce.eliminate_dead_code,
}


def run_passes(graph: Graph, names: Sequence[str], check: bool = True) -> Graph:
    for pass_name in names:
        if pass_name not in PASSES:
            raise ValueError(f"unknown pass {pass_name!r}; passes: {', '.join(PASSES)}")
        graph = PASSES[pass_name](graph)
        if check:
            verify(graph)
    return graph
