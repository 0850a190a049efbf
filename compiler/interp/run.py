"""The numpy interpreter: executes any IR graph, binding symbolic dims from the inputs."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import sympy

from compiler.ir.dtypes import DType
from compiler.ir.graph import Graph, Node
from compiler.ir.shapes import Dim, evaluate, shape_str
from compiler.ir.tensor import TensorType
from compiler.ops.registry import opdef


class InterpreterError(ValueError):
    pass


def bind_inputs(graph: Graph, inputs: Mapping[str, np.ndarray]) -> dict[str, int]:
    """Check the given arrays against the graph inputs and return symbol bindings."""
    missing = [n for n in graph.inputs if n not in inputs]
    if missing:
        raise InterpreterError(f"missing graph inputs: {', '.join(missing)} (graph expects {', '.join(graph.inputs)})")
    extra = [n for n in inputs if n not in graph.inputs]
    if extra:
        raise InterpreterError(f"unknown inputs: {', '.join(extra)} (graph expects {', '.join(graph.inputs)})")
    bindings: dict[str, int] = {}
    for name, ttype in graph.inputs.items():
        array = np.asarray(inputs[name])
        if array.dtype != ttype.dtype.numpy:
            raise InterpreterError(f"input {name!r}: dtype {array.dtype} but the graph expects {ttype.dtype}")
        _bind_shape(f"input {name!r}", ttype, array.shape, bindings, solve=True)
    for name, ttype in graph.inputs.items():
        _bind_shape(f"input {name!r}", ttype, np.shape(inputs[name]), bindings, solve=False)
    return bindings


def _bind_shape(what: str, ttype: TensorType, actual: tuple[int, ...], bindings: dict[str, int], solve: bool) -> None:
    if len(actual) != ttype.rank:
        raise InterpreterError(
            f"{what}: rank {len(actual)} (shape {list(actual)}) but expected {shape_str(ttype.shape)}"
        )
    for axis, (dim, size) in enumerate(zip(ttype.shape, actual)):
        _bind_dim(what, axis, dim, int(size), ttype, bindings, solve)


def _bind_dim(what: str, axis: int, dim: Dim, size: int, ttype: TensorType, bindings: dict[str, int],
              solve: bool) -> None:
    value = evaluate(dim, bindings)
    if isinstance(value, int):
        if value != size:
            bound = ", ".join(f"{k}={v}" for k, v in sorted(bindings.items()) if not isinstance(dim, int)
                              and k in {s.name for s in dim.free_symbols})
            detail = f" with {bound}" if bound else ""
            raise InterpreterError(
                f"{what}: axis {axis} is {size} but {shape_str(ttype.shape)} requires {value}{detail}"
                + (" (a symbol bound to two different sizes)" if bound else "")
            )
        return
    unknowns = list(value.free_symbols)
    if isinstance(value, sympy.Symbol):
        bindings[value.name] = size
    elif len(unknowns) == 1 and not solve:
        solutions = [s for s in sympy.solve(sympy.Eq(value, size), unknowns[0]) if s.is_Integer and s > 0]
        if len(solutions) != 1:
            raise InterpreterError(f"{what}: axis {axis} = {size} does not fit {value}")
        bindings[unknowns[0].name] = int(solutions[0])


def run_graph(graph: Graph, inputs: Mapping[str, np.ndarray], check_types: bool = False) -> dict[str, np.ndarray]:
    """Run `graph` on `inputs` (keyed by input name); returns outputs keyed by output name.

    With `check_types`, every node's results are compared with its inferred types under the
    bindings, which tests the type rules against the semantics.
    """
    bindings = bind_inputs(graph, inputs)
    env: dict[str, np.ndarray] = {name: np.asarray(a) for name, a in inputs.items()}
    remaining_uses: dict[str, int] = {}
    for node in graph.nodes():
        for value in node.inputs:
            if value:
                remaining_uses[value] = remaining_uses.get(value, 0) + 1
    keep = set(graph.outputs)
    for node in graph.nodes():
        args = [_fetch(graph, env, v) if v else None for v in node.inputs]
        try:
            results = opdef(node.op, node).run(node, args)
        except InterpreterError:
            raise
        except Exception as exc:  # numpy raises many types; name the node that failed
            raise InterpreterError(f"{node.describe()} failed: {type(exc).__name__}: {exc}") from exc
        for out, ttype, result in zip(node.outputs, node.output_types, results):
            if not out:
                continue
            result = np.asarray(result)
            if check_types:
                _check_result(node, out, ttype, result, bindings)
            env[out] = result
        for value in node.inputs:
            if value and value in remaining_uses:
                remaining_uses[value] -= 1
                if remaining_uses[value] == 0 and value not in keep:
                    env.pop(value, None)
    return {name: _fetch(graph, env, name) for name in graph.outputs}


def _fetch(graph: Graph, env: dict[str, np.ndarray], value: str) -> np.ndarray:
    if value in env:
        return env[value]
    if value in graph.constants:
        return graph.constants[value].value()
    raise InterpreterError(f"value {value!r} has not been computed")


def _check_result(node: Node, out: str, ttype: TensorType, result: np.ndarray, bindings: dict[str, int]) -> None:
    expected_dtype = ttype.dtype.numpy
    if ttype.dtype != DType.STRING and result.dtype != expected_dtype:
        raise InterpreterError(f"{node.describe()} output {out!r}: dtype {result.dtype}, type rule says {ttype.dtype}")
    what = f"{node.describe()} output {out!r}"
    _bind_shape(what, ttype, result.shape, bindings, solve=True)
    _bind_shape(what, ttype, result.shape, bindings, solve=False)
