"""What an attention mask means, read from how the graph builds it (for cost models).

`describe_mask` walks the nodes that compute a mask (bounded, not crossing into projections or
other fused blocks) and reports its parts:

* causal / sliding_window: a comparison of a query-position index with a key-position index.
  Written as (q - k) OP t it has one boundary B (q - k >= B on one side); B = 0 is the causal
  edge, B > 0 a window of B keys (HF `sliding_window` semantics: the query and B - 1 before it).
* block_sparse: a TopK over block scores; its k (or the constant bound of Min(k, n)) is the
  number of kept key blocks, and a Div of a key index by a constant gives the block size.
* padding: an integer or boolean graph input cast to a boolean mask (HF `attention_mask`).
* bias: a float graph input added to the scores (compacted-KV bias).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

import numpy as np

from compiler.ir.dtypes import DType
from compiler.ir.graph import Graph, Node
from compiler.ir.ops import Op
from compiler.passes import patterns as pt

# Priority when a mask has several parts: the part that most changes the kernel's cost.
KINDS = ("block_sparse", "sliding_window", "bias", "causal", "padding")

_COMPARISONS = {Op.LESS: "<", Op.LESS_OR_EQUAL: "<=", Op.GREATER: ">", Op.GREATER_OR_EQUAL: ">="}
_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}
_VIEWS = frozenset({Op.UNSQUEEZE, Op.SQUEEZE, Op.RESHAPE, Op.EXPAND, Op.CAST, Op.IDENTITY})
# Walking a mask's inputs stops at these: beyond them lie activations, not mask structure.
# Masks are built from indices and comparisons after any score MatMul (block-sparse selection).
_STOP = frozenset({
    Op.ATTENTION, Op.ROTARY_EMBEDDING, Op.RMS_NORMALIZATION, Op.SOFTMAX, Op.GEMM, Op.MATMUL, Op.SHAPE, Op.SIZE,
})
_SHAPE_ONLY = frozenset({Op.SHAPE, Op.SIZE})
# Steps that carry a float input's values into an added bias unchanged in meaning.
_CARRY = _VIEWS | {Op.CONCAT, Op.PAD, Op.TRANSPOSE, Op.SLICE, Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.NEG}
_MAX_CONE_NODES = 256


def describe_mask(
    graph: Graph, values: Iterable[str], added: Iterable[str] = (), window_hint: int | None = None
) -> dict[str, Any]:
    """tessera_* attributes for an Attention node whose mask is made from `values`.

    `added` are the values among them added to the scores as floats (candidates for a bias);
    `window_hint` is a window already known from the key cache (a shift buffer of fixed size).
    """
    parts: set[str] = set()
    windows: set[int] = set() if window_hint is None else {window_hint}
    kept: set[int] = set()
    blocks: set[int] = set()
    values = list(values)
    for node in _cone(graph, values):
        if node.op in _COMPARISONS:
            boundary = _boundary(graph, node)
            if boundary == 0:
                parts.add("causal")
            elif boundary is not None and boundary > 0:
                windows.add(boundary)
        elif node.op == Op.TOPK:
            parts.add("block_sparse")
            k = _kept_blocks(graph, node.input(1))
            if k is not None:
                kept.add(k)
        elif node.op == Op.DIV and pt.producer(graph, node.input(0), Op.RANGE) is not None:
            size = pt.scalar(graph, node.input(1))
            if size is not None and size == int(size) and size > 1:
                blocks.add(int(size))
        if node.op in _SHAPE_ONLY:
            continue
        if any(graph.inputs[v].dtype == DType.BOOL for v in node.inputs if v in graph.inputs):
            parts.add("padding")
        elif node.op == Op.CAST and node.output_types[0].dtype == DType.BOOL:
            source = pt.skip(graph, node.input(0), _VIEWS)
            if source in graph.inputs and not graph.inputs[source].dtype.is_float:
                parts.add("padding")
    if any(v in graph.inputs and graph.inputs[v].dtype == DType.BOOL for v in values):
        parts.add("padding")  # a boolean mask given from outside
    if any(_from_float_input(graph, v) for v in added):
        parts.add("bias")
    if windows:
        parts.add("sliding_window")
    kind = next((k for k in KINDS if k in parts), "none")
    attrs: dict[str, Any] = {"tessera_mask": kind, "tessera_mask_parts": tuple(k for k in KINDS if k in parts)}
    if len(windows) == 1:
        attrs["tessera_window"] = windows.pop()
    if "block_sparse" in parts and len(kept) == 1:
        attrs["tessera_kept_blocks"] = kept.pop()
    if "block_sparse" in parts and len(blocks) == 1:
        attrs["tessera_block_size"] = blocks.pop()
    return attrs


def _cone(graph: Graph, values: Iterable[str]) -> list[Node]:
    """Nodes computing `values`, breadth first, nearest first, capped."""
    seen: set[str] = set()
    found: list[Node] = []
    queue = deque(v for v in values if v)
    while queue and len(found) < _MAX_CONE_NODES:
        node = graph.producer(queue.popleft())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        found.append(node)
        if node.op in _STOP:
            continue
        queue.extend(v for v in node.inputs if v and v not in graph.constants)
    return found


def _from_float_input(graph: Graph, value: str, depth: int = 0) -> bool:
    """Whether an added float term carries a float graph input (a bias fed from outside)."""
    if value in graph.inputs:
        return graph.inputs[value].dtype.is_float
    node = graph.producer(value)
    if node is None or node.op not in _CARRY or depth > 12:
        return False
    return any(_from_float_input(graph, v, depth + 1) for v in node.inputs if v)


def _kept_blocks(graph: Graph, k: str) -> int | None:
    """TopK's k when constant, or the constant bound c of k = Min(c, n) (n = blocks so far)."""
    k = pt.skip(graph, k, frozenset({Op.IDENTITY, Op.CAST, Op.UNSQUEEZE, Op.RESHAPE}))
    value = pt.scalar(graph, k)
    if value is not None:
        return int(value)
    bound = pt.producer(graph, k, Op.MIN)
    if bound is None:
        return None
    constants = [pt.scalar(graph, v) for v in bound.inputs if pt.scalar(graph, v) is not None]
    return int(min(constants)) if constants else None


def _boundary(graph: Graph, compare: Node) -> int | None:
    """B such that the comparison splits key positions at q - k = B, or None if not q vs k."""
    left, right = _linear(graph, compare.input(0)), _linear(graph, compare.input(1))
    if left is None or right is None:
        return None
    q = left[0].get("q", 0) - right[0].get("q", 0)
    k = left[0].get("k", 0) - right[0].get("k", 0)
    offset = left[1] - right[1]
    op = _COMPARISONS[compare.op]
    if (q, k) == (-1, 1):  # multiply (k - q + c OP 0) by -1
        q, k, offset, op = 1, -1, -offset, _FLIPPED[op]
    if (q, k) != (1, -1):
        return None
    threshold = -offset  # (q - k) OP threshold
    return threshold if op in (">=", "<") else threshold + 1


def _linear(graph: Graph, value: str, depth: int = 0) -> tuple[dict[str, int], int] | None:
    """value as sum(coef * index) + constant, indices "q" (varies along the query axis) or "k".

    An index is an integer tensor that is not itself an Add/Sub; which axis it runs along is
    read from its shape: a trailing dim of 1 means it varies along queries (a query position,
    possibly offset by the past length), otherwise along keys.
    """
    c = pt.scalar(graph, value)
    if c is not None:
        return ({}, int(c)) if c == int(c) else None
    node = graph.producer(value)
    if depth < 8 and node is not None and node.op in (Op.ADD, Op.SUB):
        a, b = _linear(graph, node.input(0), depth + 1), _linear(graph, node.input(1), depth + 1)
        if a is None or b is None:
            return None
        sign = 1 if node.op == Op.ADD else -1
        coefs = dict(a[0])
        for key, coef in b[0].items():
            coefs[key] = coefs.get(key, 0) + sign * coef
        return coefs, a[1] + sign * b[1]
    ttype = graph.type_of(value)
    if ttype.dtype.is_float or ttype.rank < 2 or not _is_index(graph, value):
        return None
    return ({"q" if ttype.shape[-1] == 1 else "k": 1}, 0)


def _is_index(graph: Graph, value: str, depth: int = 0) -> bool:
    """An integer tensor of positions: a Range, an integer constant or a length read from a
    Shape, through views and sums (decode's query position is past_len + 0)."""
    data = pt.constant(graph, value)
    if data is not None:
        return bool(np.issubdtype(data.dtype, np.integer))
    node = graph.producer(value)
    if node is None or depth > 12:
        return False
    if node.op in (Op.RANGE, Op.SHAPE, Op.SIZE):
        return True
    if node.op in _VIEWS or node.op == Op.GATHER:
        return _is_index(graph, node.input(0), depth + 1)
    if node.op in (Op.ADD, Op.SUB):
        return all(_is_index(graph, v, depth + 1) for v in node.inputs)
    return False
