"""Sweep expressions: Python arithmetic semantics over dotted names, nothing else of Python."""

from __future__ import annotations

import math

import pytest

from simulator.sweep.expr import ExpressionError, flatten, parse_expression

VALUES = {"links.chips": 8, "memory.sram_bytes": 2**29, "clock_hz": 1.5e9, "context": 8192}
PLAIN = {"chips": 8, "sram": 2**29, "clock": 1.5e9, "context": 8192}


@pytest.mark.parametrize("source, python", [
    ("links.chips * memory.sram_bytes / 2**20", "chips * sram / 2**20"),
    ("-clock_hz // 7 + context % 5", "-clock // 7 + context % 5"),
    ("max(links.chips, 3) * log2(context) - sqrt(clock_hz)", "max(chips, 3) * math.log2(context) - math.sqrt(clock)"),
    ("links.chips >= 4 and not context < 100 or clock_hz == 0", "chips >= 4 and not context < 100 or clock == 0"),
    ("1 < links.chips <= 8", "1 < chips <= 8"),
    ("ceil(clock_hz / 7e8) + floor(2.5) + abs(-3)", "math.ceil(clock / 7e8) + math.floor(2.5) + abs(-3)"),
])
def test_same_value_as_python(source, python):
    assert parse_expression(source).evaluate(VALUES) == eval(python, {"math": math}, dict(PLAIN))  # noqa: S307


@pytest.mark.parametrize("source", ["os.system('x')", "x[0]", "lambda: 1", "'text'", "(1).real()",
                                    "[1, 2]", "f(1)", "max(a=1)", "x if y else z", ""])
def test_rejects_everything_else(source):
    with pytest.raises(ExpressionError):
        parse_expression(source)


def test_unknown_names_and_arithmetic_errors():
    with pytest.raises(ExpressionError, match="unknown name"):
        parse_expression("links.chipz + 1").evaluate(VALUES)
    with pytest.raises(ExpressionError, match="division by zero"):
        parse_expression("context / 0").evaluate(VALUES)


def test_flatten_keeps_numeric_leaves():
    doc = {"a": 1, "b": {"c": 2.5, "d": "text", "e": [1, 2], "f": {"g": True, "h": 3}}}
    assert flatten(doc) == {"a": 1, "b.c": 2.5, "b.f.h": 3}
