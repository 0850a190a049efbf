"""Recognize RMSNorm, x / sqrt(mean(x^2) + eps) * w, as one RMSNormalization node (opset 23).

Matched from each ReduceMean, in the forms torch and our model builders export:

    x2 = Pow(x, 2) | Mul(x, x);  m = ReduceMean(x2, trailing axes, keepdims=1);  a = Add(m, eps)
    inv = Reciprocal(Sqrt(a)) | Div(1, Sqrt(a)) | Pow(a, -0.5);  n = Mul(x, inv) | Div(x, Sqrt(a))
    [n = Cast(n, to=T) when x = Cast(x_T, to=float32)];  y = Mul(w, n) | Mul(n, w)

The fp32 upcast around a bf16/fp16 norm becomes stash_type=float32 on the original input. A norm
without a gain (Mamba2's grouped gated norm) gets a constant scale of ones, since the ONNX op
requires one; its gain, applied after a Reshape, stays a separate Mul.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compiler.ir.dtypes import DType
from compiler.ir.graph import Graph, Node
from compiler.ir.ops import Op
from compiler.ir.tensor import TensorType
from compiler.ir.verify import verify
from compiler.passes import patterns as pt
from compiler.passes.dce import eliminate_dead_code

name = "recognize-rmsnorm"


@dataclass(frozen=True)
class _Norm:
    x: str  # what the fused op normalizes (before any fp32 upcast)
    weight: str | None  # the gain, or None for a norm without one
    final: Node  # the last matched node; the fused node takes over its output
    axis: int  # first normalized axis, negative
    epsilon: float
    stash: DType  # type the statistics are computed in
    core: frozenset[str]  # nodes that must die, or recognizing would duplicate the norm


def recognize_rmsnorm(graph: Graph) -> Graph:
    rewriter = pt.Rewriter(graph)
    for mean in [n for n in graph.nodes() if n.op == Op.REDUCE_MEAN]:
        if mean.name in graph.dg:
            norm = _match(graph, mean)
            if norm is not None:
                _rewrite(rewriter, norm)
    graph = eliminate_dead_code(graph)
    verify(graph)
    return graph


def _match(graph: Graph, mean: Node) -> _Norm | None:
    square = graph.producer(mean.input(0))
    if square is None:
        return None
    x = square.input(0)
    if square.op == Op.POW and pt.scalar(graph, square.input(1)) == 2.0:
        pass
    elif not (square.op == Op.MUL and square.input(0) == square.input(1)):
        return None
    x_type = graph.type_of(x)
    axes = pt.axes_of(graph, mean)
    if not x_type.dtype.is_float or not axes or not mean.attr("keepdims", 1):
        return None
    rank = x_type.rank
    axes = sorted(a % rank for a in axes)
    if axes != list(range(rank - len(axes), rank)):
        return None  # RMSNormalization normalizes over trailing axes only

    add = pt.only_consumer(graph, mean.outputs[0], Op.ADD)
    epsilon = pt.scalar(graph, pt.other_input(add, mean.outputs[0])) if add is not None else None
    if epsilon is None:
        return None
    core = [square.name, mean.name, add.name]
    normed = _normalize(graph, add.outputs[0], x, core)
    if normed is None:
        return None

    # fp32 statistics of a narrower input: Cast up before, Cast back after.
    x_in, stash, last = x, x_type.dtype, normed
    upcast = pt.producer(graph, x, Op.CAST)
    downcast = pt.only_consumer(graph, normed.outputs[0], Op.CAST)
    if upcast is not None and downcast is not None and x_type.dtype == DType.FLOAT32:
        source = graph.type_of(upcast.input(0)).dtype
        if source.is_float and downcast.output_types[0].dtype == source:
            x_in, stash, last = upcast.input(0), DType.FLOAT32, downcast
            core.append(downcast.name)

    weight, final = None, last
    gain = pt.only_consumer(graph, last.outputs[0], Op.MUL)
    if gain is not None:
        candidate = pt.other_input(gain, last.outputs[0])
        if _fits_gain(graph.type_of(candidate), x_type, len(axes)) and pt.same_type(
            gain.output_types[0], last.output_types[0]
        ):
            weight, final = candidate, gain
    return _Norm(x_in, weight, final, -len(axes), epsilon, stash, frozenset(core))


def _normalize(graph: Graph, variance_eps: str, x: str, core: list[str]) -> Node | None:
    """The node computing x / sqrt(variance_eps), in any of its exported spellings."""
    step = pt.only_consumer(graph, variance_eps)
    if step is None:
        return None
    if step.op == Op.POW and pt.scalar(graph, step.input(1)) == -0.5:
        inverse = step
    elif step.op == Op.SQRT:
        root = step
        core.append(root.name)
        step = pt.only_consumer(graph, root.outputs[0])
        if step is None:
            return None
        if step.op == Op.DIV and step.input(0) == x and step.input(1) == root.outputs[0]:
            return step
        if step.op == Op.RECIPROCAL or (
            step.op == Op.DIV and step.input(1) == root.outputs[0] and pt.scalar(graph, step.input(0)) == 1.0
        ):
            inverse = step
        else:
            return None
    else:
        return None
    core.append(inverse.name)
    scale = pt.only_consumer(graph, inverse.outputs[0], Op.MUL)
    if scale is None or pt.other_input(scale, inverse.outputs[0]) != x:
        return None
    return scale


def _fits_gain(gain: TensorType, x: TensorType, normalized: int) -> bool:
    """A gain that varies only along the normalized axes (so it is the op's scale input)."""
    if gain.rank > normalized or not gain.dtype.is_float:
        return False
    return all(g == 1 or pt.same_dim(g, d) for g, d in zip(reversed(gain.shape), reversed(x.shape)))


def _rewrite(rewriter: pt.Rewriter, norm: _Norm) -> None:
    graph = rewriter.graph
    boundary = [norm.x] + ([norm.weight] if norm.weight else [])
    dead = pt.dead_after(graph, [norm.final.name], boundary)
    if not norm.core <= dead:
        return  # some intermediate (the variance, say) is read elsewhere
    out_type = norm.final.output_types[0]
    scale = norm.weight
    if scale is None:
        # A gain of ones: over the normalized dims when static, else one broadcast element.
        dims = graph.type_of(norm.x).shape[norm.axis:]
        shape = tuple(dims) if all(isinstance(d, int) for d in dims) else (1,)
        ones = np.ones(shape, dtype=out_type.dtype.numpy)
        scale = rewriter.const(f"{norm.final.name}/rms_scale", ones, TensorType(out_type.dtype, shape))
    attrs = {"axis": norm.axis, "epsilon": norm.epsilon, "stash_type": norm.stash.onnx_code}
    fused = Node(
        rewriter.fresh(f"{norm.final.name}/RMSNormalization"), Op.RMS_NORMALIZATION,
        (norm.x, scale), norm.final.outputs, norm.final.output_types, attrs,
    )
    rewriter.replace(dead, fused)
