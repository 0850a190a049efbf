"""What a decode step asks of a spatial chip, read off the IR: weight tensors and per-node work.

Every weight tensor (a parameter reached through layout ops) becomes a candidate region: its
MatMul/Gemm/Einsum/Conv uses give weight-MACs per token, its Gather uses give table lookups.
Every other node is work for a per-layer unit: contractions and anything that touches the KV
cache or grows with the context go to the layer's attention unit, the rest (norms, RoPE,
SwiGLU, residuals) to its vector unit. Layout and data-movement ops are wiring and cost nothing.
Figures are for one user (batch bound to 1) and stay symbolic in the context length.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from compiler.ir.graph import Graph, Node
from compiler.ir.ops import Op
from compiler.ir.shapes import Dim, evaluate, normalize
from compiler.summary import BATCH_SYMBOLS, CONTEXT_SYMBOLS, contraction_flops

CONTRACTIONS = frozenset({Op.MATMUL, Op.GEMM, Op.EINSUM, Op.CONV})
# Views of a tensor: a weight reached through these is still the weight.
LAYOUT = frozenset({Op.TRANSPOSE, Op.CAST, Op.RESHAPE, Op.IDENTITY, Op.UNSQUEEZE, Op.SQUEEZE, Op.FLATTEN})
# Data movement a spatial chip does with wiring or addressing: the data passes through unchanged
# (a KV cache read through Concat/Expand is still one read of the cache).
PASS_THROUGH = LAYOUT | {Op.CONCAT, Op.EXPAND, Op.SLICE, Op.SPLIT, Op.PAD, Op.TILE, Op.DROPOUT, Op.CAST_LIKE}
# Metadata and constants: free, and they read no data.
METADATA = frozenset({Op.SHAPE, Op.SIZE, Op.CONSTANT, Op.CONSTANT_OF_SHAPE})
REDUCING = frozenset({Op.REDUCE_MEAN, Op.REDUCE_SUM, Op.REDUCE_MAX, Op.REDUCE_MIN, Op.REDUCE_PROD, Op.SOFTMAX,
                      Op.LOG_SOFTMAX, Op.TOPK, Op.ARGMAX, Op.RMS_NORMALIZATION, Op.LAYER_NORMALIZATION})
TRANSCENDENTAL = frozenset({Op.EXP, Op.LOG, Op.TANH, Op.SIGMOID, Op.SOFTPLUS, Op.ERF, Op.GELU, Op.SQRT,
                            Op.RECIPROCAL, Op.SIN, Op.COS, Op.SOFTMAX, Op.LOG_SOFTMAX})

_NODE_LAYER = re.compile(r"layers[./](\d+)")
_VALUE_LAYER = re.compile(r"\.(\d+)(?:\.|$)")
GLOBAL = "global"


class SpatialCompileError(ValueError):
    pass


@dataclass(frozen=True)
class WeightUse:
    node: str
    macs: int                 # weight multiply-accumulates per token (0 for a lookup)
    lookup_rows: int          # table rows gathered per token (0 for a contraction)
    activation_elements: int  # input + output activations of this use, per token


@dataclass(frozen=True)
class WeightTensor:
    name: str
    layer: str
    elements: int
    row_elements: int
    uses: tuple[WeightUse, ...]

    @property
    def macs_per_token(self) -> int:
        return sum(u.macs for u in self.uses)

    @property
    def lookup_rows_per_token(self) -> int:
        return sum(u.lookup_rows for u in self.uses)

    @property
    def is_region(self) -> bool:
        """Tensors only used elementwise (norm gains, biases) are stored beside the vector units."""
        return bool(self.uses)


@dataclass(frozen=True)
class Work:
    """One IR node's demand on a unit. `unit` is 'region', 'attention', 'vector' or 'free'."""

    node: str
    unit: str
    layer: str
    weight: str | None = None           # the weight tensor of region work
    macs: Dim = 0
    elements: Dim = 0
    transcendental: bool = False
    reads: tuple[tuple[str, Dim], ...] = ()   # (cache layer, cache elements) read from SRAM


@dataclass(frozen=True)
class Workload:
    name: str
    weights: tuple[WeightTensor, ...]
    works: tuple[Work, ...]                     # every node, topological order
    preds: Mapping[str, tuple[str, ...]]        # node -> the nodes it waits for
    cache_elements: Mapping[str, Dim]           # per layer: resident KV / state elements per user
    cache_bits: int                             # element width of the cache inputs in the graph
    write_elements: Mapping[str, Dim]           # per layer: cache / state elements written per token
    logits_node: str
    vocab: int
    unbound: Mapping[str, str]                  # data-dependent size symbol -> node; taken as 1


def extract_workload(graph: Graph) -> Workload:
    """Read a decode graph's per-token demand; fails naming the node when a figure cannot be bound."""
    if not graph.outputs:
        raise SpatialCompileError(f"{graph.name}: graph has no outputs")
    caches = {n: t for n, t in graph.inputs.items() if t.dtype.is_float}
    bits = {t.dtype.bits for t in caches.values()}
    tracer = _Tracer(graph)
    weight_uses: dict[str, list[WeightUse]] = {n: [] for n, c in graph.constants.items() if c.is_parameter}
    unbound: dict[str, str] = {}
    works = [_classify(graph, node, tracer, caches, weight_uses, unbound) for node in graph.nodes()]
    weights = tuple(_weight_tensor(graph, name, uses) for name, uses in weight_uses.items())
    writes: dict[str, Dim] = {}
    for out in graph.outputs[1:]:
        for leaf in tracer.leaves(out):
            if leaf not in caches and graph.has_value(leaf) and leaf not in graph.constants:
                layer = _value_layer(out)
                written = _written_elements(graph, leaf)
                writes[layer] = normalize(writes.get(layer, 0) + _per_user(written, leaf, unbound))
    cache_elements: dict[str, Dim] = {}
    for name, ttype in caches.items():
        layer = _value_layer(name)
        cache_elements[layer] = normalize(cache_elements.get(layer, 0) + _per_user(ttype.numel, name))
    logits = graph.producer(graph.outputs[0])
    if logits is None:
        raise SpatialCompileError(f"{graph.name}: first output {graph.outputs[0]!r} is not computed")
    vocab_dim = graph.type_of(graph.outputs[0]).shape[-1]
    return Workload(
        name=graph.name,
        weights=weights,
        works=tuple(works),
        preds=MappingProxyType({n.name: tuple(graph.dg.predecessors(n.name)) for n in graph.nodes()}),
        cache_elements=MappingProxyType(cache_elements),
        cache_bits=max(bits) if bits else 16,
        write_elements=MappingProxyType(writes),
        logits_node=logits.name,
        vocab=int(vocab_dim) if isinstance(vocab_dim, int) else 0,
        unbound=MappingProxyType(unbound),
    )


def _classify(graph: Graph, node: Node, tracer: _Tracer, caches: Mapping, weight_uses: dict,
              unbound: dict[str, str]) -> Work:
    layer = _node_layer(node.name)
    if node.op in PASS_THROUGH or node.op in METADATA:
        return Work(node.name, "free", layer)
    weight = _weight_operand(graph, node, weight_uses)
    if weight is not None:
        index, name = weight
        if node.op == Op.GATHER:
            rows = _per_user(graph.type_of(node.inputs[1]).numel, node.name)
            weight_uses[name].append(WeightUse(node.name, 0, int(rows), 0))
            return Work(node.name, "region", layer, weight=name)
        if node.op in CONTRACTIONS:
            macs = _per_user(contraction_flops(graph, node), node.name)
            if _is_symbolic(macs):
                raise SpatialCompileError(f"{node.describe()}: weight-MACs grow with the context ({macs}); "
                                          "a hard-wired region needs a fixed size per token")
            macs = int(macs) // 2
            acts = sum(_per_user(graph.type_of(v).numel, node.name) for i, v in enumerate(node.inputs)
                       if v and i != index) + _per_user(node.output_types[0].numel, node.name)
            weight_uses[name].append(WeightUse(node.name, int(macs), 0, int(acts)))
            return Work(node.name, "region", layer, weight=name, macs=macs)
    reads = tuple((_value_layer(leaf), _per_user(caches[leaf].numel, leaf))
                  for value in node.inputs if value for leaf in sorted(tracer.leaves(value)) if leaf in caches)
    grows = any(_is_symbolic(_per_user(t.numel, node.name, unbound)) for t in node.output_types) or any(
        _is_symbolic(_per_user(graph.type_of(v).numel, node.name, unbound)) for v in node.inputs if v)
    if node.op in CONTRACTIONS or node.op == Op.ATTENTION:
        # A fused Attention node (after recognition) is QK^T and PV on the attention unit.
        macs = normalize(_per_user(contraction_flops(graph, node), node.name, unbound) / 2)
        return Work(node.name, "attention", layer, macs=macs, reads=reads)
    if node.op in REDUCING and node.inputs:
        elements = _per_user(graph.type_of(node.inputs[0]).numel, node.name, unbound)
    else:
        elements = _per_user(node.output_types[0].numel, node.name, unbound)
    unit = "attention" if (reads or grows) and layer != GLOBAL else "vector"
    return Work(node.name, unit, layer, elements=elements, transcendental=node.op in TRANSCENDENTAL, reads=reads)


def _written_elements(graph: Graph, value: str) -> Dim:
    """Elements a state output writes: all of it, except a fused Attention's present K/V, which
    appends the new tokens to its past input (opset 23: past_key, past_value are inputs 4 and 5)."""
    producer = graph.producer(value)
    numel = graph.type_of(value).numel
    if producer is not None and producer.op == Op.ATTENTION and value in producer.outputs[1:3]:
        past = producer.input(3 + producer.outputs.index(value))
        if past:
            return normalize(numel - graph.type_of(past).numel)
    return numel


def _weight_operand(graph: Graph, node: Node, weight_uses: dict) -> tuple[int, str] | None:
    """(input index, parameter name) when a contraction or gather reads a weight through layout ops."""
    if node.op not in CONTRACTIONS and node.op != Op.GATHER:
        return None
    candidates = (0,) if node.op == Op.GATHER else range(len(node.inputs))
    for index in candidates:
        value = node.inputs[index] if index < len(node.inputs) else ""
        while value and value not in graph.constants:
            producer = graph.producer(value)
            if producer is None or producer.op not in LAYOUT:
                break
            value = producer.inputs[0]
        if value in weight_uses:
            return index, value
    return None


def _weight_tensor(graph: Graph, name: str, uses: list[WeightUse]) -> WeightTensor:
    ttype = graph.constants[name].type
    elements = int(ttype.numel)
    rows = int(ttype.shape[0]) if ttype.rank else 1
    return WeightTensor(name, _node_layer(name), elements, elements // max(rows, 1), tuple(uses))


class _Tracer:
    """Leaves of a value through pass-through ops: graph inputs and computed values, memoized."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self._memo: dict[str, frozenset[str]] = {}

    def leaves(self, value: str) -> frozenset[str]:
        if value not in self._memo:
            producer = self.graph.producer(value)
            if producer is None or producer.op not in PASS_THROUGH:
                result = frozenset() if value in self.graph.constants else frozenset({value})
            else:
                data = producer.inputs if producer.op == Op.CONCAT else producer.inputs[:1]
                result = frozenset().union(*(self.leaves(v) for v in data if v))
            self._memo[value] = result
        return self._memo[value]


def _per_user(dim: Dim, where: str, unbound: dict[str, str] | None = None) -> Dim:
    """Bind batch to 1 (one user's token). Any other symbol but the context is an error, unless the
    caller collects it in `unbound` (a data-dependent size such as TopK's k, taken as 1 and reported)."""
    bound = evaluate(dim, {b: 1 for b in BATCH_SYMBOLS})
    if _is_symbolic(bound):
        extra = {s.name for s in bound.free_symbols} - set(CONTEXT_SYMBOLS)
        if extra and unbound is None:
            raise SpatialCompileError(f"{where}: size depends on {', '.join(sorted(extra))}; a decode step "
                                      f"may only depend on the context ({', '.join(CONTEXT_SYMBOLS)})")
        if extra:
            unbound.update({name: where for name in extra})
            bound = evaluate(bound, {name: 1 for name in extra})
    return bound


def _is_symbolic(dim: Dim) -> bool:
    return not isinstance(dim, int)


def _node_layer(name: str) -> str:
    match = _NODE_LAYER.search(name)
    return f"layers.{int(match.group(1))}" if match else GLOBAL


def _value_layer(name: str) -> str:
    match = _NODE_LAYER.search(name) or _VALUE_LAYER.search(name)
    return f"layers.{int(match.group(1))}" if match else GLOBAL

