"""Recognize rotary position embedding, x*cos + rotate_half(x)*sin, as RotaryEmbedding (opset 23).

Matched from each Concat(Neg(Slice(x, h:d)), Slice(x, 0:h)) on the last axis of a 4-D x
[batch, heads, seq, d] (HF `rotate_half`, non-interleaved, rotary over the whole head):

    y = Add(Mul(x, cos), Mul(rotate_half(x), sin))      (either operand order)

Exporters gather cos/sin per position before the layers, as [b|1, 1, seq, d] tables whose two
halves are equal (Concat(freqs, freqs)). RotaryEmbedding without position_ids takes exactly such
per-position caches, [batch, seq, d/2], so the rewrite feeds it the first half of the exporter's
cos/sin (one Slice + Squeeze per table, shared by all layers). It only does so when the halves
are provably equal: the table is a Concat of a value with itself on the last axis, seen through
Cos/Sin/Cast/Unsqueeze/scalar scaling, or a constant whose halves compare equal. Interleaved
(GPT-J) and partial-rotary forms are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compiler.ir.graph import Graph, Node
from compiler.ir.ops import Op
from compiler.ir.tensor import TensorType
from compiler.ir.verify import verify
from compiler.passes import patterns as pt
from compiler.passes.dce import eliminate_dead_code

name = "recognize-rope"

# Elementwise steps between Concat(freqs, freqs) and the table that keep equal halves equal.
_HALF_PRESERVING = frozenset({Op.COS, Op.SIN, Op.CAST, Op.IDENTITY, Op.NEG})


@dataclass(frozen=True)
class _Rope:
    x: str
    cos: str
    sin: str
    final: Node  # the Add; the fused node takes over its output
    core: frozenset[str]


def recognize_rope(graph: Graph) -> Graph:
    rewriter = pt.Rewriter(graph)
    halves: dict[str, str | None] = {}  # table value -> its [b, seq, d/2] half, shared by layers
    for concat in [n for n in graph.nodes() if n.op == Op.CONCAT]:
        if concat.name in graph.dg:
            rope = _match(graph, concat)
            if rope is not None:
                _rewrite(rewriter, rope, halves)
    graph = eliminate_dead_code(graph)
    verify(graph)
    return graph


def _match(graph: Graph, concat: Node) -> _Rope | None:
    if len(concat.inputs) != 2:
        return None
    neg = pt.producer(graph, concat.input(0), Op.NEG)
    second = pt.producer(graph, neg.input(0), Op.SLICE) if neg is not None else None
    first = pt.producer(graph, concat.input(1), Op.SLICE)
    if second is None or first is None or first.input(0) != second.input(0):
        return None
    x = first.input(0)
    x_type = graph.type_of(x)
    head = x_type.shape[-1] if x_type.rank == 4 else None
    if not isinstance(head, int) or head % 2 or concat.attr("axis", 0) % 4 != 3:
        return None
    half = head // 2
    if _last_axis_range(graph, first, head) != (0, half) or _last_axis_range(graph, second, head) != (half, head):
        return None

    rotated = concat.outputs[0]
    times_sin = pt.only_consumer(graph, rotated, Op.MUL)
    total = pt.only_consumer(graph, times_sin.outputs[0], Op.ADD) if times_sin is not None else None
    if total is None:
        return None
    times_cos = pt.producer(graph, pt.other_input(total, times_sin.outputs[0]), Op.MUL)
    if times_cos is None or x not in times_cos.inputs or not pt.same_type(total.output_types[0], x_type):
        return None
    cos, sin = pt.other_input(times_cos, x), pt.other_input(times_sin, rotated)
    core = frozenset({first.name, second.name, neg.name, concat.name, times_sin.name, times_cos.name})
    return _Rope(x, cos, sin, total, core)


def _last_axis_range(graph: Graph, node: Node, size: int) -> tuple[int, int] | None:
    """(start, end) of a unit-step Slice along the last of 4 axes, clamped to `size`."""
    starts, ends = pt.int_list(graph, node.input(1)), pt.int_list(graph, node.input(2))
    axes = pt.int_list(graph, node.input(3)) if node.input(3) else [3]
    steps = pt.int_list(graph, node.input(4)) if node.input(4) else [1]
    if starts is None or ends is None or axes is None or steps != [1] or len(starts) != 1 or len(ends) != 1:
        return None
    if axes != [3] and axes != [-1]:
        return None
    start, end = (v + size if v < 0 else v for v in (starts[0], ends[0]))
    return min(max(start, 0), size), min(max(end, 0), size)


def _rewrite(rewriter: pt.Rewriter, rope: _Rope, halves: dict[str, str | None]) -> None:
    graph = rewriter.graph
    dead = pt.dead_after(graph, [rope.final.name], [rope.x, rope.cos, rope.sin])
    if not rope.core <= dead:
        return
    x_type = graph.type_of(rope.x)
    caches = []
    for table in (rope.cos, rope.sin):
        if table not in halves:
            halves[table] = _half_table(rewriter, table, x_type)
        caches.append(halves[table])
    if None in caches:
        return
    fused = Node(
        rewriter.fresh(f"{rope.final.name}/RotaryEmbedding"), Op.ROTARY_EMBEDDING,
        (rope.x, caches[0], caches[1]), rope.final.outputs, rope.final.output_types, {"interleaved": 0},
    )
    rewriter.replace(dead, fused)


def _half_table(rewriter: pt.Rewriter, table: str, x_type: TensorType) -> str | None:
    """The [b|1, seq, d/2] cache RotaryEmbedding reads, made from an exporter's full table."""
    graph = rewriter.graph
    t = graph.type_of(table)
    batch, _, seq, head = x_type.shape
    if t.dtype != x_type.dtype or t.rank not in (2, 3, 4) or not pt.same_dim(t.shape[-1], head):
        return None
    if not pt.same_dim(t.shape[-2], seq) or not _halves_equal(graph, table, head // 2):
        return None
    # Right-aligned against [batch, heads, seq, d]: the table must not vary over heads.
    if t.rank == 4 and not (t.shape[1] == 1 and (t.shape[0] == 1 or pt.same_dim(t.shape[0], batch))):
        return None
    if t.rank == 3 and t.shape[0] != 1:
        return None
    base = f"{table.split(':')[0]}/rope_half"
    half = rewriter.emit(base, Op.SLICE, [
        table, rewriter.int_const(f"{base}_start", [0]), rewriter.int_const(f"{base}_end", [head // 2]),
        rewriter.int_const(f"{base}_axis", [-1]),
    ])
    if t.rank == 4:
        return rewriter.emit(f"{base}_squeeze", Op.SQUEEZE, [half, rewriter.int_const(f"{base}_heads", [1])])
    if t.rank == 2:
        return rewriter.emit(f"{base}_unsqueeze", Op.UNSQUEEZE, [half, rewriter.int_const(f"{base}_batch", [0])])
    return half


def _halves_equal(graph: Graph, value: str, half: int) -> bool:
    """Whether table[..., :half] == table[..., half:] follows from how the table is made."""
    for _ in range(16):
        data = pt.constant(graph, value)
        if data is not None:
            return data.shape[-1] == 2 * half and bool(np.array_equal(data[..., :half], data[..., half:]))
        node = graph.producer(value)
        if node is None:
            return False
        rank = node.output_types[0].rank
        if node.op == Op.CONCAT and len(node.inputs) == 2 and node.input(0) == node.input(1):
            return node.attr("axis") % rank == rank - 1
        if node.op in _HALF_PRESERVING:
            value = node.input(0)
        elif node.op in (Op.UNSQUEEZE, Op.EXPAND) and _keeps_last_axis(graph, node):
            value = node.input(0)
        elif node.op in (Op.MUL, Op.DIV, Op.ADD, Op.SUB) and pt.scalar(graph, node.input(1)) is not None:
            value = node.input(0)
        elif node.op in (Op.MUL, Op.ADD) and pt.scalar(graph, node.input(0)) is not None:
            value = node.input(1)
        else:
            return False
    return False


def _keeps_last_axis(graph: Graph, node: Node) -> bool:
    """An Unsqueeze/Expand that leaves the last axis where and what it was."""
    before, after = graph.type_of(node.input(0)), node.output_types[0]
    if before.rank == 0 or not pt.same_dim(before.shape[-1], after.shape[-1]):
        return False
    if node.op == Op.UNSQUEEZE:
        axes = pt.axes_of(graph, node)
        return axes is not None and all(a % after.rank != after.rank - 1 for a in axes)
    return True
