"""A test-only stand-in for the attention recognition pass, for the Llama graphs of `models/`.

It rewrites QK^T -> scale -> [mask] -> softmax -> PV (with the KV-cache Concat and the GQA
Unsqueeze/Expand/Reshape) into one `Op.ATTENTION` node, so the lowering's streaming kernel can
be tested before `compiler/passes/recognize_*` lands. It knows only the plain Llama pattern.
"""

from __future__ import annotations

import math

import numpy as np

from compiler.ir.graph import Graph, Node
from compiler.ir.ops import Op
from compiler.passes.dce import eliminate_dead_code

_PASS_THROUGH = {Op.CAST, Op.IDENTITY}


def fuse_llama_attention(graph: Graph) -> Graph:
    for softmax in [n for n in graph.nodes() if n.op == Op.SOFTMAX]:
        _fuse(graph, softmax)
    return eliminate_dead_code(graph)


def _fuse(graph: Graph, softmax: Node) -> None:
    node, mask, scale = _producer(graph, softmax.inputs[0]), None, None
    while node is not None and node.op != Op.MATMUL:
        if node.op == Op.ADD:
            mask = node.inputs[1]
            node = graph.producer(node.inputs[0])
        elif node.op == Op.MUL:
            scale = float(np.asarray(graph.constants[node.inputs[1]].value()).reshape(-1)[0])
            node = graph.producer(node.inputs[0])
        elif node.op in _PASS_THROUGH:
            node = graph.producer(node.inputs[0])
        else:
            return
    if node is None:
        return
    qk, q = node, node.inputs[0]
    keys = _through(graph, qk.inputs[1], {Op.TRANSPOSE, Op.RESHAPE, Op.EXPAND, Op.UNSQUEEZE})
    after = graph.consumers(softmax.outputs[0])
    while len(after) == 1 and after[0].op in _PASS_THROUGH:
        after = graph.consumers(after[0].outputs[0])
    if len(after) != 1 or after[0].op != Op.MATMUL:
        return
    pv = after[0]
    values = _through(graph, pv.inputs[1], {Op.RESHAPE, Op.EXPAND, Op.UNSQUEEZE})
    inputs: list[str] = [q]
    outputs = [pv.outputs[0]]
    cache = []
    for full in (keys, values):
        producer = graph.producer(full)
        if producer is not None and producer.op == Op.CONCAT and producer.inputs[0] in graph.inputs:
            cache.append((producer.inputs[0], producer.inputs[1], full, producer))
        else:
            cache.append(("", full, "", None))
    inputs += [cache[0][1], cache[1][1], "", cache[0][0], cache[1][0]]
    head_dim = graph.type_of(q).shape[-1]
    attrs = {"scale": scale if scale is not None else 1 / math.sqrt(head_dim)}
    if mask is not None and cache[0][0] == "":
        attrs["is_causal"] = 1  # the Llama prefill mask is the causal one
    doomed = _between(graph, pv, {q, cache[0][1], cache[1][1], *(c[0] for c in cache if c[0])})
    present = [c[2] for c in cache if c[3] is not None]
    for name in doomed:
        graph.remove_node(name)
    outputs += present
    graph.add_node(Node(f"{pv.name}/attention", Op.ATTENTION, tuple(inputs), tuple(outputs),
                        tuple(_type(graph, pv, o, c) for o, c in zip(outputs, [None, *cache])), attrs))


def _type(graph: Graph, pv: Node, name: str, cache):
    if cache is None:
        return pv.output_types[0]
    return cache[3].output_types[0]


def _producer(graph: Graph, value: str) -> Node | None:
    return graph.producer(value)


def _through(graph: Graph, value: str, ops: set[Op]) -> str:
    node = graph.producer(value)
    while node is not None and node.op in ops:
        value = node.inputs[0]
        node = graph.producer(value)
    return value


def _between(graph: Graph, last: Node, stops: set[str]) -> list[str]:
    """Nodes feeding `last` (inclusive) back to the `stops` values, in reverse order."""
    seen: list[str] = []
    frontier = [last]
    while frontier:
        node = frontier.pop()
        if node.name in seen:
            continue
        seen.append(node.name)
        for value in node.inputs:
            if not value or value in stops or value in graph.constants or value in graph.inputs:
                continue
            producer = graph.producer(value)
            if producer is not None and producer.op not in (Op.WHERE,) and "masks" not in producer.name:
                frontier.append(producer)
    return seen
