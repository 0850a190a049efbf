"""Arithmetic over a design point's values: the `[formulas]` and `[constraints]` of a sweep file.

An expression is Python arithmetic syntax restricted to numbers, names, + - * / // % **,
comparisons, `and` / `or` / `not` and a few functions (min, max, abs, sqrt, log, log2, ceil,
floor). Names are dotted hardware fields (`systolic.rows * systolic.cols`), the point's
`context` and `batch`, and for formulas the simulated metrics (`tokens_per_s_total`). Nothing
else of Python is reachable: no attributes of objects, no subscripts, no calls to other names.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class ExpressionError(ValueError):
    """An expression that does not parse, uses something outside the allowed subset, or names an
    unknown value; the caller adds the file and key."""


FUNCTIONS = {"min": min, "max": max, "abs": abs, "sqrt": math.sqrt, "log": math.log, "log2": math.log2,
             "ceil": math.ceil, "floor": math.floor}
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_COMPARE = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
            ast.Eq: operator.eq, ast.NotEq: operator.ne}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}


@dataclass(frozen=True)
class Expression:
    source: str
    tree: ast.Expression
    names: frozenset[str]

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        missing = sorted(self.names - set(values))
        if missing:
            raise ExpressionError(f"{self.source!r}: unknown name(s) {', '.join(missing)}")
        try:
            return _eval(self.tree.body, values)
        except (ArithmeticError, ValueError, TypeError) as exc:
            raise ExpressionError(f"{self.source!r}: {exc}") from None


def parse_expression(source: str) -> Expression:
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError(f"expected an expression string, got {source!r}")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"{source!r}: not a valid expression ({exc.msg})") from None
    names: set[str] = set()
    _check(tree.body, source, names)
    return Expression(source, tree, frozenset(names))


def _dotted(node: ast.AST) -> str | None:
    """`a.b.c` as one name, or None when the node is not a chain of plain names."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return None if head is None else f"{head}.{node.attr}"
    return None


def _check(node: ast.AST, source: str, names: set[str]) -> None:
    if isinstance(node, (ast.Name, ast.Attribute)):
        name = _dotted(node)
        if name is None:
            raise ExpressionError(f"{source!r}: only dotted names are allowed, not {ast.unparse(node)!r}")
        names.add(name)
        return
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise ExpressionError(f"{source!r}: constant {node.value!r} is not a number")
        return
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS or node.keywords:
            raise ExpressionError(f"{source!r}: calls are limited to {', '.join(FUNCTIONS)} (positional arguments)")
        for arg in node.args:
            _check(arg, source, names)
        return
    allowed = ((ast.BinOp, tuple(_BINARY)), (ast.UnaryOp, tuple(_UNARY)), (ast.BoolOp, (ast.And, ast.Or)))
    for kind, ops in allowed:
        if isinstance(node, kind):
            if not isinstance(node.op, ops):
                raise ExpressionError(f"{source!r}: operator {type(node.op).__name__} is not allowed")
            for child in ast.iter_child_nodes(node):
                if not isinstance(child, (ast.operator, ast.unaryop, ast.boolop)):
                    _check(child, source, names)
            return
    if isinstance(node, ast.Compare):
        if not all(isinstance(op, tuple(_COMPARE)) for op in node.ops):
            raise ExpressionError(f"{source!r}: comparisons are limited to < <= > >= == !=")
        for child in (node.left, *node.comparators):
            _check(child, source, names)
        return
    raise ExpressionError(f"{source!r}: {type(node).__name__} is not allowed in a sweep expression")


def _eval(node: ast.AST, values: Mapping[str, Any]) -> Any:
    if isinstance(node, (ast.Name, ast.Attribute)):
        return values[_dotted(node)]
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_eval(node.left, values), _eval(node.right, values))
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_eval(node.operand, values))
    if isinstance(node, ast.BoolOp):
        results = [_eval(v, values) for v in node.values]
        return all(results) if isinstance(node.op, ast.And) else any(results)
    if isinstance(node, ast.Compare):
        left = _eval(node.left, values)
        for op, right_node in zip(node.ops, node.comparators):
            right = _eval(right_node, values)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.Call):
        return FUNCTIONS[node.func.id](*(_eval(a, values) for a in node.args))
    raise ExpressionError(f"{type(node).__name__} is not allowed")  # _check rejects these first


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Numeric leaves of a nested table by dotted name (lists and strings are left out)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = value
    return out
