"""Recognize scaled dot-product attention as one Attention node (ONNX opset 23 semantics).

Matched from each Softmax over the last axis, walking producers back to MatMul(Q, K^T) and
consumers forward to MatMul(P, V):

    S = MatMul(Q [* c], T(K)) [* c | / c] [+ mask | Where(keep, S, -inf) | Cast fp32] ...
    P = Softmax(S) [-> Where(IsNaN(P), 0, P)] [-> Cast];  Y = MatMul(P, V)

T(K) is Transpose(perm 0,1,3,2) or torch's Reshape/Transpose(0,2,1)/Reshape; K and V may be
GQA-repeated (HF repeat_kv: Unsqueeze(2)/Expand/Reshape), which is stripped so the node reads
the KV heads. Score blocks joined by Concat on the key axis (compacted KV + recent cache, each
with its own bias or mask) become one K/V (Concat of the originals) and one mask. A K/V that is
a KV-cache Concat(past input, new) read by nothing else becomes the node's past_key/past_value,
the node then producing the present K/V. Every scale folds into the `scale` attribute;
everything added to or masked out of the scores becomes `attn_mask`, and `attention_mask.py`
records what it means as tessera_* attributes. A scale applied after a mask, a mask that does
not span the keys, or anything else off this list leaves the subgraph alone.

One difference in meaning is accepted: a query row with no visible key is NaN after a plain
Softmax but 0 from Attention (torch's exported guard already maps it to 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from compiler.ir.dtypes import DType
from compiler.ir.graph import Graph, Node
from compiler.ir.ops import Op
from compiler.ir.shapes import Dim
from compiler.ir.tensor import TensorType
from compiler.ir.verify import verify
from compiler.passes import patterns as pt
from compiler.passes.attention_mask import describe_mask
from compiler.passes.dce import eliminate_dead_code

name = "recognize-attention"


@dataclass(frozen=True)
class _Term:
    """Something applied to the scores: "add" (a float added), "keep"/"drop" (a bool Where)."""

    value: str
    kind: str


@dataclass
class _Piece:
    """Scores of the queries against one block of keys (compaction has two blocks)."""

    q: str
    k: str  # un-repeated keys [B, Hkv, S, D]
    n_rep: Dim
    scale: float
    terms: list[_Term] = field(default_factory=list)


@dataclass
class _Walk:
    pieces: list[_Piece]
    terms: list[_Term]  # applied to all pieces
    scale: float
    upcast: bool  # scores cast to float32 before the softmax
    core: set[str]


def recognize_attention(graph: Graph) -> Graph:
    rewriter = pt.Rewriter(graph)
    for softmax in [n for n in graph.nodes() if n.op == Op.SOFTMAX]:
        if softmax.name in graph.dg:
            _recognize(rewriter, softmax)
    graph = eliminate_dead_code(graph)
    verify(graph)
    return graph


def _recognize(rewriter: pt.Rewriter, softmax: Node) -> None:
    graph = rewriter.graph
    rank = softmax.output_types[0].rank
    if rank != 4 or softmax.attr("axis", -1) % rank != rank - 1:
        return
    tail = _probabilities_to_output(graph, softmax)
    walk = _scores(graph, softmax.input(0), scaled_after=False) if tail is not None else None
    if walk is None:
        return
    final, tail_nodes = tail
    piece0 = walk.pieces[0]
    if any(p.q != piece0.q or not pt.same_dim(p.n_rep, piece0.n_rep) for p in walk.pieces):
        return
    scales = [walk.scale * p.scale for p in walk.pieces]
    if any(not math.isclose(s, scales[0], rel_tol=1e-6) for s in scales):
        return
    values = _values(graph, final.input(1), walk.pieces)
    if values is None:
        return
    core = walk.core | tail_nodes | {softmax.name, final.name}
    _rewrite(rewriter, walk, values, scales[0], final, core)


def _probabilities_to_output(graph: Graph, softmax: Node) -> tuple[Node, set[str]] | None:
    """The MatMul(P, V) the softmax feeds, through an IsNaN guard and a Cast back."""
    probs, nodes = softmax.outputs[0], set()
    readers = graph.consumers(probs)
    if len(readers) == 2 and probs not in graph.outputs:
        isnan = next((r for r in readers if r.op == Op.IS_NAN), None)
        where = next((r for r in readers if r.op == Op.WHERE), None)
        if isnan is None or where is None or pt.only_consumer(graph, isnan.outputs[0]) is not where:
            return None
        if where.inputs[0] != isnan.outputs[0] or where.input(2) != probs or pt.scalar(graph, where.input(1)) != 0:
            return None
        nodes |= {isnan.name, where.name}
        probs = where.outputs[0]
    cast = pt.only_consumer(graph, probs, Op.CAST)
    if cast is not None:
        nodes.add(cast.name)
        probs = cast.outputs[0]
    final = pt.only_consumer(graph, probs, Op.MATMUL)
    if final is None or final.input(0) != probs:
        return None
    return final, nodes


def _scores(graph: Graph, value: str, scaled_after: bool) -> _Walk | None:
    """Walk back from the softmax input to the QK^T MatMul(s).

    `scaled_after` says a scale multiplies this value later on: a mask found below it would
    be scaled too, which Attention cannot express.
    """
    node = graph.producer(value)
    if node is None:
        return None
    walk: _Walk | None = None
    if node.op == Op.CAST and node.output_types[0].dtype in (DType.FLOAT32, graph.type_of(node.input(0)).dtype):
        # Only widening to float32 (softmax_precision): a narrowing cast would round the scores.
        walk = _scores(graph, node.input(0), scaled_after)
        if walk is not None and node.output_types[0].dtype == DType.FLOAT32:
            walk.upcast = True
    elif node.op == Op.MATMUL:
        piece = _qk(graph, node)
        walk = _Walk([piece], [], 1.0, False, set()) if piece is not None else None
    elif (scaled := pt.scaling(graph, value)) is not None:
        walk = _scores(graph, scaled[0], scaled_after=True)
        if walk is not None:
            walk.scale *= scaled[1]
    elif node.op in (Op.ADD, Op.WHERE) and not scaled_after:
        walk = _masked(graph, node)
    elif node.op == Op.CONCAT and node.attr("axis", 0) % 4 == 3:
        walk = _joined(graph, node, scaled_after)
    if walk is not None:
        walk.core.add(node.name)
    return walk


def _masked(graph: Graph, node: Node) -> _Walk | None:
    """Add(scores, mask) in either order, or Where(keep, scores, -inf) / Where(drop, -inf, scores)."""
    if node.op == Op.ADD:
        candidates = [(node.input(0), _Term(node.input(1), "add")), (node.input(1), _Term(node.input(0), "add"))]
    elif pt.scalar(graph, node.input(2)) == -math.inf:
        candidates = [(node.input(1), _Term(node.input(0), "keep"))]
    elif pt.scalar(graph, node.input(1)) == -math.inf:
        candidates = [(node.input(2), _Term(node.input(0), "drop"))]
    else:
        return None
    for scores, term in candidates:
        if not pt.same_type(graph.type_of(scores), node.output_types[0]):
            continue  # the scores side never broadcasts
        walk = _scores(graph, scores, scaled_after=False)
        if walk is not None:
            walk.terms.append(term)
            return walk
    return None


def _joined(graph: Graph, concat: Node, scaled_after: bool) -> _Walk | None:
    """Score blocks over consecutive key blocks; each keeps its own terms and scale."""
    pieces, core, upcast = [], set(), None
    for block in concat.inputs:
        walk = _scores(graph, block, scaled_after)
        if walk is None or len(walk.pieces) != 1 or upcast not in (None, walk.upcast):
            return None
        piece = walk.pieces[0]
        piece.terms += walk.terms
        piece.scale *= walk.scale
        pieces.append(piece)
        core |= walk.core
        upcast = walk.upcast
    return _Walk(pieces, [], 1.0, bool(upcast), core)


def _qk(graph: Graph, matmul: Node) -> _Piece | None:
    q, q_scale = _unscaled(graph, matmul.input(0))
    keys = _keys(graph, matmul.input(1))
    if keys is None:
        return None
    k, n_rep, k_scale = keys
    q_type, k_type = graph.type_of(q), graph.type_of(k)
    if q_type.rank != 4 or k_type.rank != 4 or not q_type.dtype.is_float or q_type.dtype != k_type.dtype:
        return None
    if not pt.same_dim(q_type.shape[1], k_type.shape[1] * n_rep) or not pt.same_dim(q_type.shape[3], k_type.shape[3]):
        return None
    return _Piece(q, k, n_rep, q_scale * k_scale)


def _unscaled(graph: Graph, value: str) -> tuple[str, float]:
    factor = 1.0
    while (scaled := pt.scaling(graph, value)) is not None:
        value, factor = scaled[0], factor * scaled[1]
    return pt.skip(graph, value), factor


def _keys(graph: Graph, value: str) -> tuple[str, Dim, float] | None:
    """K^T back to the un-repeated K: (K, repeats, scale folded into K)."""
    factor, transposed, n_rep = 1.0, False, 1
    for _ in range(8):
        value, f = _unscaled(graph, value)
        factor *= f
        node = graph.producer(value)
        if node is None:
            break
        if not transposed and (source := _transposed_source(graph, node)) is not None:
            value, transposed = source, True
            continue
        base, repeats = _unrepeated(graph, value)
        if n_rep != 1 or base == value:
            break
        value, n_rep = base, repeats
    return (value, n_rep, factor) if transposed else None


def _transposed_source(graph: Graph, node: Node) -> str | None:
    """x when node is x with its last two axes swapped: Transpose, or torch's Reshape/Transpose/Reshape."""
    if node.op == Op.TRANSPOSE:
        return node.input(0) if list(node.attr("perm", ())) == [0, 1, 3, 2] else None
    if node.op != Op.RESHAPE:
        return None
    swap = pt.producer(graph, node.input(0), Op.TRANSPOSE)
    merge = pt.producer(graph, swap.input(0), Op.RESHAPE) if swap is not None else None
    if merge is None or list(swap.attr("perm", ())) != [0, 2, 1]:
        return None
    source = graph.type_of(merge.input(0)).shape
    merged, out = merge.output_types[0].shape, node.output_types[0].shape
    if len(source) != 4 or len(merged) != 3 or len(out) != 4:
        return None
    # [B, H, S, D] -> [B*H, S, D] -> [B*H, D, S] -> [B, H, D, S] is exactly a swap of S and D.
    pairs = [(merged[1], source[2]), (merged[2], source[3]), (out[0], source[0]), (out[1], source[1]),
             (out[2], source[3]), (out[3], source[2])]
    return merge.input(0) if all(pt.same_dim(a, b) for a, b in pairs) else None


def _unrepeated(graph: Graph, value: str) -> tuple[str, Dim]:
    """(x, n) when value is HF repeat_kv(x, n) [B, H*n, S, D], else (value, 1)."""
    reshape = pt.producer(graph, value, Op.RESHAPE)
    expand = pt.producer(graph, reshape.input(0), Op.EXPAND) if reshape is not None else None
    unsqueeze = pt.producer(graph, expand.input(0), Op.UNSQUEEZE) if expand is not None else None
    if unsqueeze is None or [a % 5 for a in pt.axes_of(graph, unsqueeze) or [0]] != [2]:
        return value, 1
    base = graph.type_of(unsqueeze.input(0)).shape
    wide, out = expand.output_types[0].shape, reshape.output_types[0].shape
    if len(base) != 4 or len(out) != 4:
        return value, 1
    n = wide[2]
    pairs = [(wide[0], base[0]), (wide[1], base[1]), (wide[3], base[2]), (wide[4], base[3]),
             (out[0], base[0]), (out[1], base[1] * n), (out[2], base[2]), (out[3], base[3])]
    return (unsqueeze.input(0), n) if all(pt.same_dim(a, b) for a, b in pairs) else (value, 1)


def _values(graph: Graph, value: str, pieces: list[_Piece]) -> list[str] | None:
    """Un-repeated V per key block (one entry when V is already whole), checked against K."""
    whole, n_outer = _unrepeated(graph, pt.skip(graph, value))
    if len(pieces) == 1:
        found, repeats = [whole], [n_outer]
    else:
        concat = pt.producer(graph, whole, Op.CONCAT)
        if concat is None or len(concat.inputs) != len(pieces) or concat.attr("axis", 0) % 4 != 2:
            return None
        parts = [_unrepeated(graph, pt.skip(graph, v)) for v in concat.inputs]
        found, repeats = [p[0] for p in parts], [n_outer * p[1] for p in parts]
    for v, n, piece in zip(found, repeats, pieces):
        v_type, k_type = graph.type_of(v), graph.type_of(piece.k)
        if v_type.rank != 4 or not pt.same_dim(n, piece.n_rep) or not pt.same_dim(v_type.shape[1], k_type.shape[1]):
            return None
        if not pt.same_dim(v_type.shape[2], k_type.shape[2]) or v_type.dtype != k_type.dtype:
            return None
    return [whole] if len(pieces) > 1 and n_outer != 1 else found


def _kv_cache(graph: Graph, value: str) -> tuple[Node, str, str] | None:
    """(Concat, past, new) for the KV-cache contract: present output = Concat(past input, new)."""
    concat = pt.producer(graph, value, Op.CONCAT)
    if concat is None or len(concat.inputs) != 2 or concat.attr("axis", 0) % 4 != 2:
        return None
    if concat.input(0) not in graph.inputs or value not in graph.outputs:
        return None
    return concat, concat.input(0), concat.input(1)


def _shift_buffer(graph: Graph, value: str) -> int | None:
    """The window of a fixed-size cache Slice(Concat(past input, new), 1:) (a ring buffer as dataflow)."""
    node = pt.producer(graph, value, Op.SLICE)
    joined = pt.producer(graph, node.input(0), Op.CONCAT) if node is not None else None
    length = graph.type_of(value).shape[2]
    if joined is None or not isinstance(length, int) or joined.input(0) not in graph.inputs:
        return None
    starts, axes = pt.int_list(graph, node.input(1)), pt.int_list(graph, node.input(3)) if node.input(3) else None
    if joined.attr("axis", 0) % 4 != 2 or starts != [1] or axes is None or [a % 4 for a in axes] != [2]:
        return None
    return length


def _rewrite(rewriter: pt.Rewriter, walk: _Walk, values: list[str], scale: float, final: Node,
             core: set[str]) -> None:
    graph = rewriter.graph
    pieces, q = walk.pieces, walk.pieces[0].q
    terms = [t for p in pieces for t in p.terms] + walk.terms
    cache = None
    if len(pieces) == 1:
        k_cache, v_cache = _kv_cache(graph, pieces[0].k), _kv_cache(graph, values[0])
        cache = (k_cache, v_cache) if k_cache is not None and v_cache is not None else None
    kv = [p.k for p in pieces] + values
    if cache is not None:
        kv = [cache[0][2], cache[0][1], cache[1][2], cache[1][1]]
    dead = pt.dead_after(graph, [final.name], [q, *kv, *(t.value for t in terms)])
    if not core <= dead:
        return
    if cache is not None:
        concats = [c[0] for c in cache]
        if not all(r.name in dead for c in concats for r in graph.consumers(c.outputs[0])):
            # Something else (a block-sparse mask, say) reads the cache: keep the Concat, read its result.
            cache, dead = None, pt.dead_after(graph, [final.name], [q, pieces[0].k, values[0],
                                                                     *(t.value for t in terms)])
            if not core <= dead:
                return
        else:
            dead |= {c.name for c in concats}

    dtype = graph.type_of(q).dtype
    mask = _mask(rewriter, walk, q, final.name, dtype)
    key_count = _key_count(graph, walk)
    if mask and not pt.same_dim(graph.type_of(mask).shape[-1], key_count):
        return  # a mask broadcast over keys would be padded with "masked" by Attention
    attrs = {"scale": float(scale)}
    if walk.upcast and dtype != DType.FLOAT32:
        attrs["softmax_precision"] = DType.FLOAT32.onnx_code
    window = _shift_buffer(graph, pieces[0].k) if len(pieces) == 1 else None
    attrs.update(describe_mask(graph, [t.value for t in terms], [t.value for t in terms if t.kind == "add"], window))

    base = final.name
    if len(pieces) > 1:
        k = rewriter.emit(f"{base}/keys", Op.CONCAT, [p.k for p in pieces], {"axis": 2})
        v = values[0] if len(values) == 1 else rewriter.emit(f"{base}/values", Op.CONCAT, values, {"axis": 2})
    else:
        k, v = pieces[0].k, values[0]
    inputs, outputs, types = [q, k, v, mask], list(final.outputs), list(final.output_types)
    if cache is not None:
        (k_concat, past_k, new_k), (v_concat, past_v, new_v) = cache
        inputs = [q, new_k, new_v, mask, past_k, past_v]
        outputs += [k_concat.outputs[0], v_concat.outputs[0]]
        types += [k_concat.output_types[0], v_concat.output_types[0]]
    while inputs[-1] == "":
        inputs.pop()
    fused = Node(rewriter.fresh(f"{base}/Attention"), Op.ATTENTION, inputs, outputs, types, attrs)
    rewriter.replace(dead, fused)


def _key_count(graph: Graph, walk: _Walk) -> Dim:
    total: Dim = 0
    for piece in walk.pieces:
        total = total + graph.type_of(piece.k).shape[2]
    return total


def _mask(rewriter: pt.Rewriter, walk: _Walk, q: str, base: str, dtype: DType) -> str:
    """One attn_mask for all terms ("" when there are none); bool when a single keep/drop."""
    if len(walk.pieces) == 1:
        terms = walk.pieces[0].terms + walk.terms
        if len(terms) == 1 and terms[0].kind != "add":
            cond = terms[0].value
            return cond if terms[0].kind == "keep" else rewriter.emit(f"{base}/keep", Op.NOT, [cond])
        return _additive(rewriter, terms, base, dtype)
    # Key blocks: each block's mask spread to [B, Hq, Sq, S_i], then joined along the keys.
    rows = rewriter.emit(f"{base}/rows", Op.SLICE, [
        rewriter.emit(f"{base}/q_shape", Op.SHAPE, [q]),
        rewriter.int_const(f"{base}/zero", [0]), rewriter.int_const(f"{base}/three", [3]),
    ])
    blocks = []
    for i, piece in enumerate(walk.pieces):
        keys = rewriter.emit(f"{base}/keys{i}", Op.SHAPE, [piece.k], {"start": 2, "end": 3})
        shape = rewriter.emit(f"{base}/mask{i}_shape", Op.CONCAT, [rows, keys], {"axis": 0})
        block = _additive(rewriter, piece.terms, f"{base}/mask{i}", dtype) or _scalar(rewriter, f"{base}/open", 0.0,
                                                                                      dtype)
        blocks.append(rewriter.emit(f"{base}/mask{i}_full", Op.EXPAND, [block, shape]))
    joined = rewriter.emit(f"{base}/mask", Op.CONCAT, blocks, {"axis": -1})
    rest = _additive(rewriter, walk.terms, f"{base}/mask_all", dtype)
    return rewriter.emit(f"{base}/mask_sum", Op.ADD, [joined, rest]) if rest else joined


def _additive(rewriter: pt.Rewriter, terms: list[_Term], base: str, dtype: DType) -> str:
    """The sum of the terms as a float mask in `dtype` ("" for none)."""
    graph = rewriter.graph
    total = ""
    for term in terms:
        if term.kind == "add":
            value = term.value
            if graph.type_of(value).dtype != dtype:
                value = rewriter.emit(f"{base}/cast", Op.CAST, [value], {"to": dtype.onnx_code})
        else:
            visible, hidden = _scalar(rewriter, f"{base}/visible", 0.0, dtype), _scalar(
                rewriter, f"{base}/hidden", -math.inf, dtype)
            branches = [visible, hidden] if term.kind == "keep" else [hidden, visible]
            value = rewriter.emit(f"{base}/bias", Op.WHERE, [term.value, *branches])
        total = value if not total else rewriter.emit(f"{base}/sum", Op.ADD, [total, value])
    return total


def _scalar(rewriter: pt.Rewriter, base: str, number: float, dtype: DType) -> str:
    return rewriter.const(base, np.array(number, dtype=dtype.numpy), TensorType(dtype, ()))
