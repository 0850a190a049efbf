"""What `tessera inspect` reports about an IR graph: ops, parameters, weight bytes, FLOPs, KV.

Every figure is derived from shapes, so it is exact and stays symbolic where dims are symbols
(e.g. FLOPs per token of a decode graph grow with `past_len`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import sympy

from compiler.ir.graph import Graph, Node
from compiler.ir.ops import Op
from compiler.ir.shapes import Dim, dim_str, evaluate, free_symbols, normalize, numel, symbol

BATCH_SYMBOLS = ("batch", "batch_size")
CONTEXT_SYMBOLS = ("past_len", "past_sequence_length", "past_seq_len")
_CONTRACTIONS = {Op.MATMUL, Op.GEMM, Op.EINSUM, Op.CONV, Op.ATTENTION}
_LAYOUT_OPS = {Op.TRANSPOSE, Op.CAST, Op.RESHAPE, Op.IDENTITY, Op.UNSQUEEZE, Op.SQUEEZE, Op.FLATTEN}


@dataclass
class GraphSummary:
    name: str
    opset: int
    node_count: int
    op_counts: dict[str, int]
    parameter_count: int
    weight_bytes_by_dtype: dict[str, int]
    described_only_bytes: int
    symbols: list[str]
    inputs: dict[str, str]
    outputs: dict[str, str]
    matmul_flops: Dim
    vector_ops: Dim
    tokens_per_step: Dim | None
    matmul_flops_per_token: Dim | None
    weight_bytes_per_step: Dim
    kv_bytes_per_token: Dim | None
    state_bytes: Dim | None
    bindings: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict:
        def conv(v):
            if isinstance(v, sympy.Basic):
                v = evaluate(v, self.bindings)
                return dim_str(v) if isinstance(v, sympy.Basic) else int(v)
            if isinstance(v, float) and v.is_integer():
                return int(v)
            return v

        return {k: (conv(v) if not isinstance(v, (dict, list)) else v) for k, v in self.__dict__.items()}


def summarize(graph: Graph, bindings: Mapping[str, int] | None = None) -> GraphSummary:
    params = [c for c in graph.constants.values() if c.is_parameter]
    by_dtype: dict[str, int] = {}
    for const in params:
        by_dtype[str(const.type.dtype)] = by_dtype.get(str(const.type.dtype), 0) + int(const.type.nbytes)
    described = sum(int(c.type.nbytes) for c in graph.constants.values() if not c.is_materialized)
    matmul_flops: Dim = 0
    vector_ops: Dim = 0
    for node in graph.nodes():
        if node.op in _CONTRACTIONS:
            matmul_flops += contraction_flops(graph, node)
        elif node.op not in _LAYOUT_OPS:
            vector_ops += sum(t.numel for t in node.output_types)
    tokens = _tokens_per_step(graph)
    per_token = normalize(sympy.simplify(matmul_flops / tokens)) if tokens is not None else None
    symbols = sorted(set().union(*(free_symbols(t.shape) for t in graph.inputs.values())) if graph.inputs else set())
    kv_per_token, state = _cache_bytes(graph)
    return GraphSummary(
        name=graph.name,
        opset=graph.opset,
        node_count=len(graph),
        op_counts=graph.op_counts(),
        parameter_count=sum(int(c.type.numel) for c in params),
        weight_bytes_by_dtype=dict(sorted(by_dtype.items())),
        described_only_bytes=described,
        symbols=symbols,
        inputs={n: str(t) for n, t in graph.inputs.items()},
        outputs={n: str(graph.type_of(n)) for n in graph.outputs},
        matmul_flops=normalize(sympy.expand(matmul_flops)),
        vector_ops=normalize(sympy.expand(vector_ops)),
        tokens_per_step=tokens,
        matmul_flops_per_token=per_token,
        weight_bytes_per_step=normalize(sympy.expand(_weight_bytes_per_step(graph))),
        kv_bytes_per_token=kv_per_token,
        state_bytes=state,
        bindings=dict(bindings or {}),
    )


def contraction_flops(graph: Graph, node: Node) -> Dim:
    """2 x multiply-accumulates of a contraction, from its input and output shapes."""
    out = node.output_types[0]
    if node.op == Op.MATMUL:
        return 2 * out.numel * graph.type_of(node.inputs[0]).shape[-1]
    if node.op == Op.GEMM:
        a = graph.type_of(node.inputs[0]).shape
        k = a[0] if node.attr("transA", 0) else a[1]
        return 2 * out.numel * k
    if node.op == Op.CONV:
        w = graph.type_of(node.inputs[1]).shape
        return 2 * out.numel * numel(w[1:])
    if node.op == Op.EINSUM:
        return 2 * _einsum_index_product(graph, node)
    if node.op == Op.ATTENTION:
        return _attention_flops(graph, node)
    raise ValueError(f"{node.describe()} is not a contraction")


def _attention_flops(graph: Graph, node: Node) -> Dim:
    """QK^T and PV: 2 x batch x q_heads x q_len x kv_len x (qk_head_dim + v_head_dim)."""
    q = graph.type_of(node.inputs[0]).shape
    k = graph.type_of(node.inputs[1]).shape
    v = graph.type_of(node.inputs[2]).shape
    if len(q) == 4:
        batch, q_heads, q_len, qk_dim = q
        v_dim = v[-1]
        kv_len = node.output_types[1].shape[-2] if len(node.output_types) > 1 else k[-2]
    else:
        q_heads, kv_heads = node.attr("q_num_heads"), node.attr("kv_num_heads")
        batch, q_len = q[0], q[1]
        qk_dim, v_dim = q[2] / q_heads, v[2] / kv_heads
        kv_len = node.output_types[1].shape[-2] if len(node.output_types) > 1 else k[1]
    return normalize(2 * batch * q_heads * q_len * kv_len * (qk_dim + v_dim))


def _einsum_index_product(graph: Graph, node: Node) -> Dim:
    equation = node.attr("equation").replace(" ", "")
    lhs = equation.split("->")[0].split(",")
    sizes: dict[str, Dim] = {}
    for term, value in zip(lhs, node.inputs):
        shape = graph.type_of(value).shape
        letters = term.replace("...", "")
        ellipsis_rank = len(shape) - len(letters)
        offset = 0
        for ch in re.findall(r"\.\.\.|.", term):
            if ch == "...":
                for k in range(ellipsis_rank):
                    sizes.setdefault(f"...{k}", shape[offset + k])
                offset += ellipsis_rank
            else:
                sizes.setdefault(ch, shape[offset])
                offset += 1
    return numel(sizes.values())


def _tokens_per_step(graph: Graph) -> Dim | None:
    """Tokens processed per forward: the element count of the token-id input."""
    candidates = [n for n in graph.inputs if n == "input_ids"] or [
        n for n, t in graph.inputs.items() if t.dtype.is_integer and t.rank == 2
    ]
    if not candidates:
        return None
    return graph.inputs[candidates[0]].numel


def _weight_bytes_per_step(graph: Graph) -> Dim:
    """Parameter bytes read by one forward: whole matrices for contractions, rows for lookups."""
    total: Dim = 0
    for const in graph.constants.values():
        if not const.is_parameter:
            continue
        uses = _uses_through_layout(graph, const.name)
        if any(node.op == Op.GATHER and node.inputs[0] == value for node, value in uses):
            gathers = [(n, v) for n, v in uses if n.op == Op.GATHER and n.inputs[0] == v]
            row_bytes = const.type.nbytes // const.type.shape[0] if const.type.rank else const.type.nbytes
            total += sum(graph.type_of(n.inputs[1]).numel for n, _ in gathers) * row_bytes
        else:
            total += const.type.nbytes
    return total


def _uses_through_layout(graph: Graph, value: str) -> list[tuple[Node, str]]:
    uses: list[tuple[Node, str]] = []
    frontier = [value]
    while frontier:
        current = frontier.pop()
        for node in graph.consumers(current):
            if node.op in _LAYOUT_OPS and node.inputs[0] == current:
                frontier.append(node.outputs[0])
            else:
                uses.append((node, current))
    return uses


def _cache_bytes(graph: Graph) -> tuple[Dim | None, Dim | None]:
    """KV bytes per context token and fixed state bytes per sequence, from the cache inputs.

    Cache and recurrent state enter a decode graph as floating-point inputs; their byte count
    at batch 1 is `state + kv_per_token * past_len`.
    """
    cache_inputs = [t for t in graph.inputs.values() if t.dtype.is_float]
    if not cache_inputs:
        return None, None
    total = sum(t.nbytes for t in cache_inputs)
    total = sympy.sympify(total).subs({symbol(b): 1 for b in BATCH_SYMBOLS})
    context = [symbol(c) for c in CONTEXT_SYMBOLS if symbol(c) in total.free_symbols]
    per_token = normalize(sympy.expand(sum(sympy.diff(total, c) for c in context))) if context else 0
    state = normalize(sympy.expand(total.subs({c: 0 for c in context})))
    return per_token, state
