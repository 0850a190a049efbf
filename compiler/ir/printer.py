"""Deterministic text form of an IR graph, for golden tests and `DEBUG=2` dumps."""

from __future__ import annotations

from typing import Any

import numpy as np

from compiler.ir.graph import Graph

_MAX_INLINE_ELEMENTS = 8


def format_graph(graph: Graph, constants: bool = True) -> str:
    lines = [f"graph {graph.name} (opset {graph.opset}) {{"]
    for name, ttype in graph.inputs.items():
        lines.append(f"  input {name}: {ttype}")
    if constants:
        for name in sorted(graph.constants):
            const = graph.constants[name]
            kind = "param" if const.is_parameter else "const"
            if const.is_materialized:
                body = _format_value(const.data) if const.data.size <= _MAX_INLINE_ELEMENTS else "<data>"
            else:
                body = f"<external {const.location}>"
            lines.append(f"  {kind} {name}: {const.type} = {body}")
    for node in graph.nodes():
        outs = ", ".join(f"{o}: {t}" if o else "_" for o, t in zip(node.outputs, node.output_types))
        args = ", ".join(v if v else "_" for v in node.inputs)
        attrs = ""
        if node.attrs:
            attrs = " {" + ", ".join(f"{k}={_format_value(node.attrs[k])}" for k in sorted(node.attrs)) + "}"
        lines.append(f"  {outs} = {node.op.value}({args}){attrs}  # {node.name}")
    lines.append(f"  return {', '.join(graph.outputs)}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _format_value(value: Any) -> str:
    if isinstance(value, np.ndarray):
        if value.size > _MAX_INLINE_ELEMENTS:
            return f"<{value.dtype}{_shape(value)}>"
        return f"{value.dtype}{_shape(value)}{{{', '.join(str(v) for v in value.reshape(-1).tolist())}}}"
    if isinstance(value, float):
        return repr(float(np.float32(value)))
    if isinstance(value, tuple):
        return "[" + ",".join(_format_value(v) for v in value) + "]"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _shape(value: np.ndarray) -> str:
    return "[" + ",".join(str(d) for d in value.shape) + "]"
