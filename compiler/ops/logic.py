"""Comparisons, boolean logic, NaN/Inf tests and Where.

Comparisons and Where are symbolic: constant folding runs them on shape tensors whose elements
are ints or sympy dims (e.g. `Where(Equal(shape, -1), ...)` in exported Reshape patterns). A
comparison of symbolic dims gives an answer only when it is provable from the symbols'
assumptions (positive integers); otherwise it raises ValueError so the folder leaves the node.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

import numpy as np
import sympy

from compiler.ir.dtypes import DType
from compiler.ir.graph import Node
from compiler.ir.ops import Op
from compiler.ir.tensor import TensorType
from compiler.ops.registry import InferContext, broadcast_shapes, register, same_as_input

# ---- type rules -----------------------------------------------------------------------------


def _compare_infer(ctx: InferContext) -> list[TensorType]:
    a, b = ctx.type(0), ctx.type(1)
    if a.dtype != b.dtype:
        raise ctx.fail(f"input types differ: {a.dtype} vs {b.dtype}")
    return [TensorType(DType.BOOL, broadcast_shapes(ctx.node, a.shape, b.shape))]


def _bool_infer(ctx: InferContext) -> list[TensorType]:
    types = [ctx.type(i) for i in range(len(ctx.node.inputs))]
    for t in types:
        if t.dtype != DType.BOOL:
            raise ctx.fail(f"expects bool inputs, got {t.dtype}")
    return [TensorType(DType.BOOL, broadcast_shapes(ctx.node, *(t.shape for t in types)))]


def _float_test_infer(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    if not x.dtype.is_float:
        raise ctx.fail(f"expects a floating-point input, got {x.dtype}")
    return [TensorType(DType.BOOL, x.shape)]


def _where_infer(ctx: InferContext) -> list[TensorType]:
    cond, x, y = ctx.type(0), ctx.type(1), ctx.type(2)
    if cond.dtype != DType.BOOL:
        raise ctx.fail(f"condition must be bool, got {cond.dtype}")
    if x.dtype != y.dtype:
        raise ctx.fail(f"X and Y types differ: {x.dtype} vs {y.dtype}")
    return [TensorType(x.dtype, broadcast_shapes(ctx.node, cond.shape, x.shape, y.shape))]


# ---- symbolic comparison --------------------------------------------------------------------


def _decide(node: Node, relation: sympy.Basic | bool, a, b, symbol: str) -> bool:
    """A sympy relation that evaluated to True/False, or a ValueError naming the operands."""
    if isinstance(relation, (bool, np.bool_)):
        return bool(relation)
    if relation is sympy.true or relation is sympy.false:
        return bool(relation)
    raise ValueError(f"{node.describe()}: cannot decide {a} {symbol} {b} for symbolic dims")


def _symbolic_equal(node: Node) -> Callable:
    def equal(a, b) -> bool:
        if not isinstance(a, sympy.Basic) and not isinstance(b, sympy.Basic):
            return bool(a == b)
        difference = sympy.simplify(sympy.sympify(a) - sympy.sympify(b))
        if difference.is_zero is None:
            raise ValueError(f"{node.describe()}: cannot decide {a} == {b} for symbolic dims")
        return bool(difference.is_zero)

    return equal


def _symbolic_order(node: Node, relate: Callable, symbol: str) -> Callable:
    def compare(a, b) -> bool:
        if not isinstance(a, sympy.Basic) and not isinstance(b, sympy.Basic):
            return bool(relate(a, b))
        return _decide(node, relate(sympy.sympify(a), sympy.sympify(b)), a, b, symbol)

    return compare


def _compare(numeric: Callable, symbolic: Callable[[Node], Callable]):
    def run(node: Node, inputs: list) -> list[np.ndarray]:
        a, b = np.asarray(inputs[0]), np.asarray(inputs[1])
        if a.dtype == object or b.dtype == object:
            # Object arrays hold symbolic dims or strings; decide element by element.
            result = np.frompyfunc(symbolic(node), 2, 1)(a, b)
            return [np.asarray(result, dtype=np.bool_)]
        return [np.asarray(numeric(a, b), dtype=np.bool_)]

    return run


register(Op.EQUAL, infer=_compare_infer, symbolic=True)(_compare(np.equal, _symbolic_equal))
register(Op.LESS, infer=_compare_infer, symbolic=True)(
    _compare(np.less, lambda node: _symbolic_order(node, operator.lt, "<"))
)
register(Op.LESS_OR_EQUAL, infer=_compare_infer, symbolic=True)(
    _compare(np.less_equal, lambda node: _symbolic_order(node, operator.le, "<="))
)
register(Op.GREATER, infer=_compare_infer, symbolic=True)(
    _compare(np.greater, lambda node: _symbolic_order(node, operator.gt, ">"))
)
register(Op.GREATER_OR_EQUAL, infer=_compare_infer, symbolic=True)(
    _compare(np.greater_equal, lambda node: _symbolic_order(node, operator.ge, ">="))
)


# ---- boolean logic --------------------------------------------------------------------------


def _logical(fn: Callable):
    def run(node: Node, inputs: list) -> list[np.ndarray]:
        # astype(bool) also turns object arrays of python bools (folded shape logic) into bool.
        args = [np.asarray(x).astype(np.bool_) for x in inputs]
        return [np.asarray(fn(*args), dtype=np.bool_)]

    return run


register(Op.AND, infer=_bool_infer, symbolic=True)(_logical(np.logical_and))
register(Op.OR, infer=_bool_infer, symbolic=True)(_logical(np.logical_or))
register(Op.XOR, infer=_bool_infer, symbolic=True)(_logical(np.logical_xor))
register(Op.NOT, infer=same_as_input(0), symbolic=True)(_logical(np.logical_not))


@register(Op.IS_NAN, infer=_float_test_infer)
def run_isnan(node: Node, inputs: list) -> list[np.ndarray]:
    return [np.isnan(inputs[0].astype(np.float32, copy=False) if inputs[0].dtype.kind == "V" else inputs[0])]


@register(Op.IS_INF, infer=_float_test_infer)
def run_isinf(node: Node, inputs: list) -> list[np.ndarray]:
    x = inputs[0]
    if x.dtype.kind == "V":  # ml_dtypes (bf16, fp8): test in float32, which holds every value
        x = x.astype(np.float32)
    positive = np.isposinf(x) if node.attr("detect_positive", 1) else np.zeros(x.shape, np.bool_)
    negative = np.isneginf(x) if node.attr("detect_negative", 1) else np.zeros(x.shape, np.bool_)
    return [positive | negative]


@register(Op.WHERE, infer=_where_infer, symbolic=True)
def run_where(node: Node, inputs: list) -> list[np.ndarray]:
    cond, x, y = (np.asarray(v) for v in inputs)
    result = np.where(cond.astype(np.bool_), x, y)
    if x.dtype == object or y.dtype == object:
        return [result]
    return [result.astype(x.dtype, copy=False)]
