"""Contractions: MatMul (numpy semantics: 1-D operands, broadcast batch dims), Gemm and Einsum.

Narrow floats (fp16, bf16, fp8) are multiplied in float32 and rounded once at the end, the way
accelerators accumulate them.
"""

from __future__ import annotations

import numpy as np

from compiler.ir.dtypes import DType
from compiler.ir.graph import Node
from compiler.ir.ops import Op
from compiler.ir.shapes import Dim, shape_str
from compiler.ir.tensor import TensorType
from compiler.ops.registry import InferContext, broadcast_shapes, register


def _same_dtype(ctx: InferContext, *indices: int) -> DType:
    dtype = ctx.type(indices[0]).dtype
    for i in indices[1:]:
        if ctx.type(i).dtype != dtype:
            raise ctx.fail(f"input types differ: {dtype} vs {ctx.type(i).dtype}")
    if dtype in (DType.BOOL, DType.STRING):
        raise ctx.fail(f"cannot multiply {dtype} tensors")
    return dtype


def _check_contracted(ctx: InferContext, k_a: Dim, k_b: Dim, a: TensorType, b: TensorType) -> None:
    if isinstance(k_a, int) and isinstance(k_b, int) and k_a != k_b:
        raise ctx.fail(f"contracted dims differ: {a} x {b} ({k_a} vs {k_b})")


def _accumulate_type(dtype: np.dtype) -> np.dtype:
    """The type products are summed in: float32 for floats narrower than 32 bits."""
    if dtype.kind == "f" and dtype.itemsize >= 4 or dtype.kind in "iub":
        return dtype
    return np.dtype(np.float32)


# ---- MatMul ----------------------------------------------------------------------------------
def _infer_matmul(ctx: InferContext) -> list[TensorType]:
    dtype = _same_dtype(ctx, 0, 1)
    a, b = ctx.type(0), ctx.type(1)
    if a.rank == 0 or b.rank == 0:
        raise ctx.fail(f"operands must have rank >= 1, got {a} x {b}")
    # numpy rules: a 1-D operand is a row (left) or column (right) vector, dropped afterwards.
    a_shape = a.shape if a.rank >= 2 else (1, a.shape[0])
    b_shape = b.shape if b.rank >= 2 else (b.shape[0], 1)
    _check_contracted(ctx, a_shape[-1], b_shape[-2], a, b)
    batch = broadcast_shapes(ctx.node, tuple(a_shape[:-2]), tuple(b_shape[:-2]))
    rows = (a_shape[-2],) if a.rank >= 2 else ()
    cols = (b_shape[-1],) if b.rank >= 2 else ()
    return [TensorType(dtype, batch + rows + cols)]


@register(Op.MATMUL, infer=_infer_matmul)
def run_matmul(node: Node, inputs: list) -> list[np.ndarray]:
    a, b = inputs
    acc = _accumulate_type(a.dtype)
    return [np.asarray(np.matmul(a.astype(acc), b.astype(acc))).astype(a.dtype)]


# ---- Gemm ------------------------------------------------------------------------------------
def _infer_gemm(ctx: InferContext) -> list[TensorType]:
    dtype = _same_dtype(ctx, 0, 1)
    a, b = ctx.type(0), ctx.type(1)
    if a.rank != 2 or b.rank != 2:
        raise ctx.fail(f"operands must be matrices, got {a} x {b}")
    m, k_a = a.shape[::-1] if ctx.attr("transA", 0) else a.shape
    k_b, n = b.shape[::-1] if ctx.attr("transB", 0) else b.shape
    _check_contracted(ctx, k_a, k_b, a, b)
    if ctx.has_input(2):
        c = ctx.type(2)
        if c.dtype != dtype:
            raise ctx.fail(f"C type {c.dtype} differs from {dtype}")
        out = broadcast_shapes(ctx.node, (m, n), tuple(c.shape))
        if c.rank > 2 or out != (m, n) and all(isinstance(d, int) for d in out):
            raise ctx.fail(f"C {shape_str(c.shape)} does not broadcast to {shape_str((m, n))}")
    return [TensorType(dtype, (m, n))]


@register(Op.GEMM, infer=_infer_gemm)
def run_gemm(node: Node, inputs: list) -> list[np.ndarray]:
    a, b = inputs[0], inputs[1]
    c = inputs[2] if len(inputs) > 2 else None
    alpha, beta = node.attr("alpha", 1.0), node.attr("beta", 1.0)
    acc = _accumulate_type(a.dtype)
    if acc.kind in "iu" and not (float(alpha).is_integer() and float(beta).is_integer()):
        acc = np.dtype(np.float64)  # fractional scale factors on integer matrices
    a = a.astype(acc).T if node.attr("transA", 0) else a.astype(acc)
    b = b.astype(acc).T if node.attr("transB", 0) else b.astype(acc)
    scale = (lambda v: acc.type(v)) if acc.kind == "f" else (lambda v: int(v))
    y = scale(alpha) * (a @ b)
    if c is not None:
        y = y + scale(beta) * c.astype(acc)
    return [np.asarray(y).astype(inputs[0].dtype)]


# ---- Einsum ----------------------------------------------------------------------------------
def parse_einsum(equation: str, ranks: list[int]) -> tuple[list[list[str]], list[str]]:
    """Labels per input and for the output, with "..." expanded into numbered labels (".1", ".0").

    Without "->" the output is every label used once, in alphabetical order, after the
    broadcast ("...") dims, as ONNX and numpy both define it.
    """
    equation = equation.replace(" ", "")
    lhs, arrow, rhs = equation.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise ValueError(f"equation {equation!r} names {len(terms)} operands, the node has {len(ranks)}")
    ellipsis_rank = 0
    inputs = []
    for term, rank in zip(terms, ranks, strict=True):
        letters = term.replace("...", "")
        if not letters.isalpha() and letters:
            raise ValueError(f"equation {equation!r}: term {term!r} has characters other than letters")
        extra = rank - len(letters)
        if "..." not in term and extra != 0 or extra < 0:
            raise ValueError(f"equation {equation!r}: term {term!r} does not match an operand of rank {rank}")
        ellipsis_rank = max(ellipsis_rank, extra)
        inputs.append(_expand_term(term, extra))
    if arrow:
        output = _expand_term(rhs, ellipsis_rank)
    else:
        counts: dict[str, int] = {}
        for labels in inputs:
            for label in labels:
                counts[label] = counts.get(label, 0) + 1
        broadcast = [f".{ellipsis_rank - 1 - j}" for j in range(ellipsis_rank)]
        output = broadcast + sorted(lbl for lbl, n in counts.items() if n == 1 and not lbl.startswith("."))
    return inputs, output


def _expand_term(term: str, ellipsis_rank: int) -> list[str]:
    head, dots, tail = term.partition("...")
    # Broadcast labels count from the right (".0" is the last) so operands of different rank
    # line up the way numpy broadcasting aligns them.
    middle = [f".{ellipsis_rank - 1 - j}" for j in range(ellipsis_rank)] if dots else []
    return list(head) + middle + list(tail)


def _infer_einsum(ctx: InferContext) -> list[TensorType]:
    count = len(ctx.node.inputs)
    dtype = _same_dtype(ctx, *range(count))
    types = [ctx.type(i) for i in range(count)]
    try:
        inputs, output = parse_einsum(ctx.attr("equation", ""), [t.rank for t in types])
    except ValueError as e:
        raise ctx.fail(str(e)) from None
    sizes: dict[str, list[Dim]] = {}
    for labels, t in zip(inputs, types, strict=True):
        for label, dim in zip(labels, t.shape, strict=True):
            sizes.setdefault(label, []).append(dim)
    dims = []
    for label in output:
        if label not in sizes:
            raise ctx.fail(f"output label {label!r} appears in no input")
        # Repeated labels broadcast like numpy's (a size-1 occurrence gives way).
        dims.append(broadcast_shapes(ctx.node, *((d,) for d in sizes[label]))[0])
    return [TensorType(dtype, tuple(dims))]


@register(Op.EINSUM, infer=_infer_einsum)
def run_einsum(node: Node, inputs: list) -> list[np.ndarray]:
    acc = _accumulate_type(inputs[0].dtype)
    equation = node.attr("equation").replace(" ", "")
    return [np.asarray(np.einsum(equation, *(x.astype(acc) for x in inputs))).astype(inputs[0].dtype)]
