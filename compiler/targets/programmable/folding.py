"""Values known at compile time once shapes are bound (masks from Range, shape arithmetic).

The lowering folds such values into constants (`program.meta["static_values"]`); memory images
write them and kernels may look at them (attention checks what a mask computed from shapes
really is). Both evaluate them here, with the IR's own op semantics.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from compiler.ir.graph import Graph
from compiler.ir.ops import Op
from compiler.ops.registry import opdef
from compiler.targets.programmable.options import LoweringError

SHAPE_ONLY = frozenset({Op.SHAPE, Op.SIZE})


def evaluate_static(graph: Graph, wanted: set[str], shape_of: Callable[[str], tuple[int, ...] | None],
                    known: Mapping[str, np.ndarray] | None = None,
                    cache: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The values `wanted`, computed from constants, `known` arrays (graph inputs when given) and
    the shapes `shape_of` returns for values only Shape / Size read."""
    env: dict[str, np.ndarray] = {} if cache is None else cache
    env.update({name: np.asarray(a) for name, a in (known or {}).items()})
    needed = _cone(graph, wanted, env)
    for node in graph.nodes():
        if node.name not in needed:
            continue
        args = []
        for value in node.inputs:
            if not value:
                args.append(None)
            elif value in env:
                args.append(env[value])
            elif value in graph.constants:
                args.append(graph.constants[value].value())
            elif node.op in SHAPE_ONLY and shape_of(value) is not None:
                dtype = graph.type_of(value).dtype.numpy
                args.append(np.broadcast_to(np.zeros((), dtype=dtype), shape_of(value)))
            else:
                raise LoweringError(f"static value of {node.describe()} needs {value!r}, which is not known "
                                    "before the run (pass the graph inputs)")
        for out, result in zip(node.outputs, opdef(node.op, node).run(node, args)):
            if out:
                env[out] = np.asarray(result)
    return {name: env[name] for name in wanted}


def _cone(graph: Graph, wanted: set[str], env: Mapping[str, np.ndarray]) -> set[str]:
    """Names of the nodes that must run to produce `wanted` (stopping at known values)."""
    needed: set[str] = set()
    stack = [v for v in wanted if v not in env]
    while stack:
        node = graph.producer(stack.pop())
        if node is None or node.name in needed:
            continue
        needed.add(node.name)
        if node.op in SHAPE_ONLY:
            continue
        stack.extend(v for v in node.inputs if v and v not in env and v not in graph.constants)
    return needed


def fold_static(lw, name: str) -> np.ndarray:
    """The compile-time value of `name` (a value the lowering folded), cached per lowering."""
    return evaluate_static(lw.graph, {name}, lambda value: lw.shapes.get(value), cache=lw.folded)[name]
