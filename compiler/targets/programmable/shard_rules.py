"""The per-op rules that propagate a tensor-parallel split through the graph (see sharding).

Each rule reads the split of a node's inputs and sets its outputs' split, asking for an
all-gather of an input it cannot keep split, or an all-reduce of an output that holds partial
sums (a row-parallel MatMul, a sum over the split axis).
"""

from __future__ import annotations

import math

import numpy as np

from compiler.ir.graph import Graph, Node
from compiler.ir.ops import Op
from compiler.targets.programmable.options import LoweringError
from compiler.targets.programmable.sharding import ShardPlan, is_state_output, weight_source

_LAZY = -2  # a float graph input (cache or state) whose split is decided by its first real use

_UNARY_PASS = {Op.CAST, Op.IDENTITY}
_ELEMENTWISE = {
    Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.POW, Op.MOD, Op.MAX, Op.MIN, Op.SUM, Op.MEAN, Op.WHERE,
    Op.EQUAL, Op.GREATER, Op.LESS, Op.LESS_OR_EQUAL, Op.GREATER_OR_EQUAL, Op.AND, Op.OR, Op.XOR,
    Op.SQRT, Op.RECIPROCAL, Op.NEG, Op.EXP, Op.LOG, Op.TANH, Op.SIGMOID, Op.SOFTPLUS, Op.RELU, Op.GELU,
    Op.ERF, Op.COS, Op.SIN, Op.ABS, Op.SIGN, Op.FLOOR, Op.CEIL, Op.ROUND, Op.CLIP, Op.NOT, Op.IS_NAN,
    Op.IS_INF, Op.CAST, Op.CAST_LIKE, Op.IDENTITY, Op.DROPOUT,
}
_VIEWS = {Op.RESHAPE, Op.FLATTEN, Op.SQUEEZE, Op.UNSQUEEZE}
_REDUCTIONS = {Op.REDUCE_MEAN, Op.REDUCE_SUM, Op.REDUCE_MAX, Op.REDUCE_MIN, Op.REDUCE_PROD, Op.ARGMAX}
_ALONG_AXIS = {Op.SOFTMAX, Op.LOG_SOFTMAX, Op.CUMSUM, Op.TOPK}




class Planner:
    def __init__(self, graph: Graph, shapes: dict[str, tuple[int, ...]], plan: ShardPlan) -> None:
        self.graph, self.shapes, self.plan, self.chips = graph, shapes, plan, plan.chips
        self.lazy_source: dict[str, str] = {}
        self.weight_uses: dict[str, list[int | None]] = {}
        for name, ttype in graph.inputs.items():
            plan.axis[name] = _LAZY if ttype.dtype.is_float else None

    def run(self) -> None:
        for node in self.graph.nodes():
            self.node(node)
        for name in self.graph.outputs:
            if self.state(name) is not None and not is_state_output(name):
                self.plan.gather_outputs.append(name)
        for param, uses in self.weight_uses.items():
            first = uses[0]
            self.plan.weight_axis[param] = first if all(u == first for u in uses) else None
        for name, axis in self.plan.axis.items():
            if axis == _LAZY:
                self.plan.axis[name] = None

    # ---- state helpers --------------------------------------------------------------------
    def state(self, value: str) -> int | None:
        axis = self.plan.axis.get(value)
        return None if axis == _LAZY else axis

    def is_lazy(self, value: str) -> bool:
        return self.plan.axis.get(value) == _LAZY

    def settle(self, value: str, axis: int | None) -> None:
        """Decide a lazy value (and the input it was cast from) to be split along `axis`."""
        while value and self.plan.axis.get(value) == _LAZY:
            self.plan.axis[value] = axis
            value = self.lazy_source.get(value, "")

    def use_param(self, param: str, axis: int | None) -> None:
        self.weight_uses.setdefault(param, []).append(axis)

    def divisible(self, value: str, axis: int) -> bool:
        size = self.shapes[value][axis]
        return size >= self.chips and size % self.chips == 0

    def gather(self, node: Node, value: str) -> None:
        if value not in self.plan.gather_before.setdefault(node.name, []):
            self.plan.gather_before[node.name].append(value)
            self.plan.notes.append(f"all-gather {value!r} before {node.describe()}")

    def gather_all(self, node: Node) -> None:
        for value in node.inputs:
            if value and self.state(value) is not None:
                self.gather(node, value)
            elif value and self.is_lazy(value):
                self.settle(value, None)
        self.set_outputs(node, None)

    def split_axis_or_replicate(self, node: Node, source: str) -> int | None:
        """The axis `source` is split along; when it is replicated, so are the node's outputs."""
        axis = self.state(source)
        if axis is None:
            self.settle(source, None)
            self.set_outputs(node, None)
        return axis

    def set_outputs(self, node: Node, axis: int | None) -> None:
        for out in node.outputs:
            if out:
                self.plan.axis[out] = axis

    def reduce(self, node: Node) -> None:
        self.plan.reduce_after.setdefault(node.name, []).append(node.outputs[0])
        self.set_outputs(node, None)

    def live_axis(self, node: Node, value: str) -> int | None:
        """A value's split as this node sees it (None once gathered)."""
        if value in self.plan.gather_before.get(node.name, ()):
            return None
        return self.state(value)

    # ---- rules ----------------------------------------------------------------------------
    def node(self, node: Node) -> None:
        op = node.op
        if op in _UNARY_PASS and self.is_lazy(node.inputs[0]):
            for out in node.outputs:
                self.plan.axis[out] = _LAZY
                self.lazy_source[out] = node.inputs[0]
        elif op in _ELEMENTWISE:
            self.elementwise(node, concat_axis=None)
        elif op == Op.CONCAT:
            axis = node.attr("axis") % len(self.shapes[node.outputs[0]])
            self.elementwise(node, concat_axis=axis)
        elif op in (Op.MATMUL, Op.GEMM):
            self.matmul(node)
        elif op == Op.EINSUM:
            self.einsum(node)
        elif op in _VIEWS:
            self.view(node)
        elif op == Op.TRANSPOSE:
            self.transpose(node)
        elif op == Op.EXPAND:
            self.expand(node)
        elif op in (Op.SLICE, Op.SPLIT, Op.PAD):
            self.slice_like(node)
        elif op == Op.GATHER:
            self.gather_op(node)
        elif op in _REDUCTIONS:
            self.reduction(node)
        elif op in _ALONG_AXIS or op in (Op.LAYER_NORMALIZATION, Op.RMS_NORMALIZATION):
            self.along_axis(node)
        elif op == Op.ATTENTION:
            self.attention(node)
        elif op == Op.ROTARY_EMBEDDING:
            self.rotary(node)
        elif op == Op.CONV:
            self.conv(node)
        else:
            self.gather_all(node)

    def elementwise(self, node: Node, concat_axis: int | None) -> None:
        rank = len(self.shapes[node.outputs[0]])
        chosen: int | None = None
        for value in node.inputs:
            if not value or self.state(value) is None:
                continue
            axis = self.state(value) + rank - len(self.shapes[value])
            if axis == concat_axis:
                self.gather(node, value)
            elif chosen is None:
                chosen = axis
            elif axis != chosen:
                self.gather(node, value)
        for value in node.inputs:
            if not value or self.live_axis(node, value) is not None:
                continue
            local = None if chosen is None else chosen - (rank - len(self.shapes[value]))
            full = local is not None and local >= 0 and self.shapes[value][local] > 1
            if self.is_lazy(value):
                self.settle(value, local if full and self.divisible(value, local) else None)
                if full and not self.divisible(value, local):
                    self.gather(node, value)
            elif value in self.graph.constants and self.graph.constants[value].is_parameter:
                self.use_param(value, local if full else None)
        self.set_outputs(node, chosen)

    def matmul(self, node: Node) -> None:
        a, b = node.inputs[0], node.inputs[1]
        out = node.outputs[0]
        weight = weight_source(self.graph, b)
        if node.op == Op.GEMM and (node.attr("transA", 0) or weight is None):
            self.gather_all(node)
            return
        if weight is not None:
            param, perm = weight
            rank_b = len(self.shapes[b])
            if self.state(a) is not None and self.state(a) != len(self.shapes[a]) - 1:
                self.gather(node, a)
            if self.live_axis(node, a) is None:
                if self.is_lazy(a):
                    self.settle(a, None)
                if self.divisible(out, len(self.shapes[out]) - 1):  # column-parallel
                    n_axis = 0 if node.op == Op.GEMM and node.attr("transB", 0) else rank_b - 1
                    self.use_param(param, perm[n_axis])
                    self.set_outputs(node, len(self.shapes[out]) - 1)
                else:
                    self.use_param(param, None)
                    self.set_outputs(node, None)
                    self.plan.notes.append(f"{node.describe()}: N not divisible by {self.chips}; weight replicated")
            else:  # row-parallel: A split along K, partial sums all-reduced
                k_axis = rank_b - 1 if node.op == Op.GEMM and node.attr("transB", 0) else rank_b - 2
                self.use_param(param, perm[k_axis])
                self.reduce(node)
            return
        self.activation_matmul(node, a, b, out)

    def activation_matmul(self, node: Node, a: str, b: str, out: str) -> None:
        ra, rb, ro = len(self.shapes[a]), len(self.shapes[b]), len(self.shapes[out])

        def role(value: str, rank: int, is_a: bool) -> int | str | None:
            axis = self.live_axis(node, value)
            if axis is None:
                return None
            if axis == rank - 1:
                return "K" if is_a else ro - 1
            if axis == rank - 2:
                return ro - 2 if is_a else "K"
            return axis + ro - rank

        for value in (a, b):
            if self.is_lazy(value):
                self.settle(value, None)
        ma, mb = role(a, ra, True), role(b, rb, False)
        if ma == "K" and mb == "K":
            self.reduce(node)
            return
        if ma == "K" or (ma is not None and mb is not None and ma != mb):
            self.gather(node, a)
            ma = None
        if mb == "K":
            self.gather(node, b)
            mb = None
        self.set_outputs(node, ma if ma is not None else mb)

    def einsum(self, node: Node) -> None:
        equation = node.attr("equation").replace(" ", "")
        lhs, _, rhs = equation.partition("->")
        terms = lhs.split(",")
        if "..." in equation or not rhs:
            self.gather_all(node)
            return
        letter: str | None = None
        for value, term in zip(node.inputs, terms):
            axis = self.state(value)
            if axis is None:
                if self.is_lazy(value):
                    self.settle(value, None)
                continue
            if letter is None:
                letter = term[axis]
            elif term[axis] != letter:
                self.gather(node, value)
        if letter is None:
            self.set_outputs(node, None)
        elif letter in rhs:
            self.set_outputs(node, rhs.index(letter))
        else:
            self.reduce(node)

    def view(self, node: Node) -> None:
        source, out = node.inputs[0], node.outputs[0]
        axis = self.split_axis_or_replicate(node, source)
        if axis is None:
            return
        mapped = _map_reshape(self.shapes[source], self.shapes[out], axis, self.chips)
        if mapped is None:
            self.gather(node, source)
        self.set_outputs(node, mapped)

    def transpose(self, node: Node) -> None:
        axis = self.state(node.inputs[0])
        if axis is None:
            self.settle(node.inputs[0], None)
            self.set_outputs(node, None)
            return
        perm = list(node.attr("perm") or reversed(range(len(self.shapes[node.inputs[0]]))))
        self.set_outputs(node, perm.index(axis))

    def expand(self, node: Node) -> None:
        source, out = node.inputs[0], node.outputs[0]
        axis = self.split_axis_or_replicate(node, source)
        if axis is None:
            return
        mapped = axis + len(self.shapes[out]) - len(self.shapes[source])
        if self.shapes[out][mapped] != self.shapes[source][axis]:
            self.gather(node, source)
            mapped = None
        self.set_outputs(node, mapped)

    def slice_like(self, node: Node) -> None:
        source = node.inputs[0]
        axis = self.split_axis_or_replicate(node, source)
        if axis is None:
            return
        extent = self.shapes[source][axis]
        pieces = [self.shapes[o][axis] for o in node.outputs if o]
        if all(p == extent for p in pieces):
            self.set_outputs(node, axis)
        elif node.op == Op.SPLIT and all(p % self.chips == 0 for p in pieces):
            self.plan.notes.append(f"{node.describe()}: every piece split {self.chips} ways "
                                   "(the producing weight's columns are permuted per chip)")
            self.set_outputs(node, axis)
        else:
            self.gather(node, source)
            self.set_outputs(node, None)

    def gather_op(self, node: Node) -> None:
        data, indices = node.inputs[0], node.inputs[1]
        if data in self.graph.constants and self.graph.constants[data].is_parameter:
            self.use_param(data, None)
        axis, gather_axis = self.state(data), node.attr("axis", 0) % len(self.shapes[data])
        if self.state(indices) is not None:
            self.gather(node, indices)
        if axis is None or axis == gather_axis:
            if axis is not None:
                self.gather(node, data)
            self.settle(data, None)
            self.set_outputs(node, None)
        else:
            shift = len(self.shapes[indices]) - 1 if axis > gather_axis else 0
            self.set_outputs(node, axis + shift)

    def reduction(self, node: Node) -> None:
        source = node.inputs[0]
        axis = self.split_axis_or_replicate(node, source)
        if axis is None:
            return
        rank = len(self.shapes[source])
        axes = _reduce_axes(self.graph, node, rank)
        if axis in axes:
            if node.op in (Op.REDUCE_SUM, Op.REDUCE_MEAN):
                self.reduce(node)  # partial sums over each chip's slice, then all-reduce
            else:
                self.gather(node, source)
                self.set_outputs(node, None)
            return
        keep = node.attr("keepdims", 1)
        self.set_outputs(node, axis if keep else axis - sum(1 for a in axes if a < axis))

    def along_axis(self, node: Node) -> None:
        source = node.inputs[0]
        axis = self.split_axis_or_replicate(node, source)
        if axis is None:
            return
        rank = len(self.shapes[source])
        if node.op == Op.CUMSUM:
            along = {int(np.asarray(self.graph.constants[node.inputs[1]].value()).reshape(-1)[0]) % rank} \
                if node.inputs[1] in self.graph.constants else set(range(rank))
        elif node.op in (Op.LAYER_NORMALIZATION, Op.RMS_NORMALIZATION):
            along = set(range(node.attr("axis", -1) % rank, rank))
        else:
            along = {node.attr("axis", -1) % rank}
        if axis in along:
            self.gather(node, source)
            self.set_outputs(node, None)
        else:
            self.set_outputs(node, axis)

    def attention(self, node: Node) -> None:
        q = node.inputs[0]
        head_axis = 1 if len(self.shapes[q]) == 4 else 2
        kv = [v for v in node.inputs[1:3] if v]
        past = [v for v in node.inputs[4:6] if v]
        q_heads = self.shapes[q][1] if head_axis == 1 else node.attr("q_num_heads")
        kv_heads = self.shapes[kv[0]][1] if head_axis == 1 else node.attr("kv_num_heads")
        splittable = q_heads % self.chips == 0 and kv_heads % self.chips == 0
        if self.state(q) == head_axis and splittable and all(self.state(v) == head_axis for v in kv):
            for value in past:
                if self.is_lazy(value):
                    self.settle(value, 1)
                elif self.state(value) != 1:
                    self.gather(node, value)
            mask = node.input(3)
            if mask and self.state(mask) is not None and self.state(mask) != len(self.shapes[mask]) - 3:
                self.gather(node, mask)
            for index, out in enumerate(node.outputs):
                if out:
                    self.plan.axis[out] = head_axis if index == 0 else 1
            return
        self.gather_all(node)

    def rotary(self, node: Node) -> None:
        x = node.inputs[0]
        if self.is_lazy(x):
            self.settle(x, None)
        for value in node.inputs[1:]:
            if value and self.state(value) is not None:
                self.gather(node, value)
        self.set_outputs(node, self.state(x))

    def conv(self, node: Node) -> None:
        x = node.inputs[0]
        channels = self.shapes[x][1]
        if self.state(x) == 1 and node.attr("group", 1) == channels:
            for value in node.inputs[1:]:
                if value in self.graph.constants and self.graph.constants[value].is_parameter:
                    self.use_param(value, 0)
            self.set_outputs(node, 1)
        else:
            self.gather_all(node)


def _map_reshape(source: tuple[int, ...], target: tuple[int, ...], axis: int, chips: int) -> int | None:
    """The target axis that carries `axis`'s split through a row-major reshape, if any."""
    prefix = math.prod(source[:axis])
    running = 1
    for index, size in enumerate(target):
        if running == prefix and size % chips == 0 and size >= chips:
            return index
        running *= size
        if running > prefix:
            return None
    return None


def _reduce_axes(graph: Graph, node: Node, rank: int) -> set[int]:
    axes = node.attr("axes")
    if axes is None and node.input(1):
        const = graph.constants.get(node.inputs[1])
        if const is None:
            raise LoweringError(f"{node.describe()}: reduction axes are computed at run time")
        axes = np.asarray(const.value()).reshape(-1).tolist()
    if node.op == Op.ARGMAX:
        axes = [node.attr("axis", 0)]
    if not axes:
        return set(range(rank))
    return {int(a) % rank for a in axes}
