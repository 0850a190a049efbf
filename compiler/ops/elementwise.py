"""Elementwise arithmetic and math: broadcasting binary ops, variadic ops and unary functions."""

from __future__ import annotations

import math

import numpy as np
import sympy

from compiler.ir.dtypes import DType
from compiler.ir.graph import Node
from compiler.ir.ops import Op
from compiler.ir.tensor import TensorType
from compiler.ops.registry import InferContext, broadcast_shapes, register, same_as_input


def _broadcast_infer(ctx: InferContext) -> list[TensorType]:
    types = [ctx.type(i) for i in range(len(ctx.node.inputs)) if ctx.has_input(i)]
    first = types[0]
    for t in types[1:]:
        if t.dtype != first.dtype and ctx.node.op != Op.POW:
            raise ctx.fail(f"input types differ: {first.dtype} vs {t.dtype}")
    return [TensorType(first.dtype, broadcast_shapes(ctx.node, *(t.shape for t in types)))]


def _keep_dtype(result, like: np.ndarray) -> np.ndarray:
    result = np.asarray(result)
    if like.dtype == object or result.dtype == object:
        return result
    return result.astype(like.dtype, copy=False)


def _int_div(a, b):
    """ONNX integer Div truncates toward zero; object arrays hold symbolic dims (positive)."""
    if a.dtype == object or b.dtype == object:

        def div(x, y):
            if isinstance(x, sympy.Basic) or isinstance(y, sympy.Basic):
                q = sympy.floor(sympy.sympify(x) / y)
                return int(q) if q.is_Integer else q
            # Exact integer truncation (x / y would round large ints through a float).
            q = abs(int(x)) // abs(int(y))
            return q if (x < 0) == (y < 0) else -q

        return np.frompyfunc(div, 2, 1)(a, b)
    q = np.floor_divide(a, b)
    fix = (np.remainder(a, b) != 0) & ((a < 0) != (b < 0))
    return q + fix.astype(q.dtype)


@register(Op.ADD, infer=_broadcast_infer, symbolic=True)
def run_add(node: Node, inputs: list) -> list[np.ndarray]:
    a, b = inputs
    return [_keep_dtype(np.add(a, b), a)]


@register(Op.SUB, infer=_broadcast_infer, symbolic=True)
def run_sub(node: Node, inputs: list) -> list[np.ndarray]:
    a, b = inputs
    return [_keep_dtype(np.subtract(a, b), a)]


@register(Op.MUL, infer=_broadcast_infer, symbolic=True)
def run_mul(node: Node, inputs: list) -> list[np.ndarray]:
    a, b = inputs
    return [_keep_dtype(np.multiply(a, b), a)]


@register(Op.DIV, infer=_broadcast_infer, symbolic=True)
def run_div(node: Node, inputs: list) -> list[np.ndarray]:
    a, b = inputs
    if a.dtype == object or np.issubdtype(a.dtype, np.integer):
        return [_keep_dtype(_int_div(np.asarray(a), np.asarray(b)), a)]
    return [_keep_dtype(np.divide(a, b), a)]


@register(Op.POW, infer=_broadcast_infer)
def run_pow(node: Node, inputs: list) -> list[np.ndarray]:
    a, b = inputs
    if np.issubdtype(a.dtype, np.integer):
        if np.issubdtype(b.dtype, np.integer) and not np.any(b < 0):
            return [_keep_dtype(np.power(a, b.astype(np.int64)), a)]
        # Fractional or negative exponents of an integer base: evaluate in float64, as
        # onnxruntime does, and truncate to the base's type.
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            return [_keep_dtype(np.power(a.astype(np.float64), b.astype(np.float64)), a)]
    compute = _float_compute(lambda x: np.power(x, b.astype(x.dtype)))
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        return [_keep_dtype(compute(a), a)]


@register(Op.MOD, infer=_broadcast_infer, symbolic=True)
def run_mod(node: Node, inputs: list) -> list[np.ndarray]:
    a, b = inputs
    # fmod=1: the result takes the dividend's sign (C fmod); fmod=0: the divisor's (Python %),
    # which newer opsets also allow for floats.
    with np.errstate(divide="ignore", invalid="ignore"):
        if node.attr("fmod", 0):
            return [_keep_dtype(np.fmod(a, b), a)]
        return [_keep_dtype(np.mod(a, b), a)]


def _variadic(fn):
    def run(node: Node, inputs: list) -> list[np.ndarray]:
        result = inputs[0]
        for x in inputs[1:]:
            result = fn(result, x)
        return [_keep_dtype(result, inputs[0])]

    return run


def _extremum(numeric, symbolic):
    """Elementwise max/min; on symbolic dims only when sympy can decide (Max(seq, 1) = seq)."""

    def pick(x, y):
        if not isinstance(x, sympy.Basic) and not isinstance(y, sympy.Basic):
            return numeric(x, y)
        result = symbolic(x, y)
        if isinstance(result, (sympy.Max, sympy.Min)):
            raise ValueError(f"cannot decide {symbolic.__name__}({x}, {y}) for symbolic dims")
        return int(result) if result.is_Integer else result

    def fn(a, b):
        if np.asarray(a).dtype == object or np.asarray(b).dtype == object:
            return np.frompyfunc(pick, 2, 1)(a, b)
        return numeric(a, b)

    return fn


register(Op.MAX, infer=_broadcast_infer, symbolic=True)(_variadic(_extremum(np.maximum, sympy.Max)))
register(Op.MIN, infer=_broadcast_infer, symbolic=True)(_variadic(_extremum(np.minimum, sympy.Min)))
register(Op.SUM, infer=_broadcast_infer)(_variadic(np.add))


@register(Op.MEAN, infer=_broadcast_infer)
def run_mean(node: Node, inputs: list) -> list[np.ndarray]:
    total = _variadic(np.add)(node, inputs)[0]
    return [_keep_dtype(total / len(inputs), inputs[0])]


def _unary(op: Op, fn, symbolic: bool = False) -> None:
    def run(node: Node, inputs: list) -> list[np.ndarray]:
        x = inputs[0]
        return [_keep_dtype(fn(x), x)]

    register(op, infer=same_as_input(0), symbolic=symbolic)(run)


def _float_compute(fn):
    """Evaluate a transcendental in float32 at least (numpy lacks bf16/fp16 kernels for some)."""

    def wrapped(x):
        if x.dtype.itemsize < 4 and np.issubdtype(x.dtype, np.floating) or x.dtype.kind == "V":
            return fn(x.astype(np.float32))
        return fn(x)

    return wrapped


_erf = np.frompyfunc(math.erf, 1, 1)

_unary(Op.SQRT, np.sqrt)
_unary(Op.RECIPROCAL, _float_compute(lambda x: 1 / x))
_unary(Op.NEG, np.negative, symbolic=True)
_unary(Op.EXP, _float_compute(np.exp))
_unary(Op.LOG, _float_compute(np.log))
_unary(Op.TANH, _float_compute(np.tanh))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x), written with e^-|x| so it neither overflows nor loses tiny results."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


_unary(Op.SIGMOID, _float_compute(_sigmoid))
_unary(Op.SOFTPLUS, _float_compute(lambda x: np.logaddexp(0, x)))
_unary(Op.RELU, lambda x: np.maximum(x, np.zeros((), x.dtype)))
_unary(Op.ERF, _float_compute(lambda x: _erf(x).astype(x.dtype)))
_unary(Op.COS, _float_compute(np.cos))
_unary(Op.SIN, _float_compute(np.sin))
_unary(Op.ABS, np.abs, symbolic=True)
_unary(Op.SIGN, np.sign)
_unary(Op.FLOOR, np.floor)
_unary(Op.CEIL, np.ceil)
_unary(Op.ROUND, np.round)  # numpy rounds half to even, as ONNX specifies


@register(Op.GELU, infer=same_as_input(0))
def run_gelu(node: Node, inputs: list) -> list[np.ndarray]:
    x = inputs[0]
    xf = x.astype(np.float64)
    if node.attr("approximate", "none") == "tanh":
        y = 0.5 * xf * (1 + np.tanh(math.sqrt(2 / math.pi) * (xf + 0.044715 * xf**3)))
    else:
        y = 0.5 * xf * (1 + _erf(xf / math.sqrt(2)).astype(np.float64))
    return [y.astype(x.dtype)]


@register(Op.CLIP, infer=same_as_input(0))
def run_clip(node: Node, inputs: list) -> list[np.ndarray]:
    x = inputs[0]
    lo = inputs[1] if len(inputs) > 1 and inputs[1] is not None else None
    hi = inputs[2] if len(inputs) > 2 and inputs[2] is not None else None
    y = x
    if lo is not None:
        y = np.maximum(y, lo)
    if hi is not None:
        y = np.minimum(y, hi)
    return [_keep_dtype(y, x)]


def float_dtype_only(ctx: InferContext, index: int = 0) -> DType:
    dtype = ctx.type(index).dtype
    if not dtype.is_float:
        raise ctx.fail(f"expects a floating-point input, got {dtype}")
    return dtype
