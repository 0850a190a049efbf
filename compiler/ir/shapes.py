"""Tensor dimensions: plain ints, or sympy expressions over named positive-integer symbols.

`batch`, `seq` and `past_len` stay symbols until a run binds them; expressions such as
`past_len + seq` arise from Concat along the cache axis and are kept exact. sympy is the
same choice onnxruntime's symbolic shape inference makes.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping

import sympy

Dim = int | sympy.Expr
Shape = tuple[Dim, ...]


@functools.cache
def symbol(name: str) -> sympy.Symbol:
    """The one positive-integer symbol called `name`."""
    return sympy.Symbol(name, integer=True, positive=True)


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_dim(text: str) -> Dim:
    """Parse an ONNX dim_param ("batch", "past_len + 1", "s0*s1") into a Dim.

    Any text that is not an arithmetic expression over identifiers becomes one opaque symbol.
    """
    text = text.strip()
    if _IDENT.fullmatch(text):
        return symbol(text)
    names = {n: symbol(n) for n in _IDENT.findall(text)}
    if re.fullmatch(r"[A-Za-z0-9_+\-*/() ]+", text):
        try:
            return normalize(sympy.sympify(text, locals=names))
        except (sympy.SympifyError, SyntaxError, TypeError):
            pass
    return symbol(re.sub(r"[^A-Za-z0-9_]", "_", text))


def normalize(dim) -> Dim:
    """Turn numpy ints and integer-valued sympy expressions into plain ints."""
    if isinstance(dim, sympy.Basic):
        if dim.is_Integer:
            return int(dim)
        return dim
    return int(dim)


def is_static(dim: Dim) -> bool:
    return isinstance(dim, int)


def shape_is_static(shape: Iterable[Dim]) -> bool:
    return all(isinstance(d, int) for d in shape)


def dim_str(dim: Dim) -> str:
    if isinstance(dim, int):
        return str(dim)
    return sympy.sstr(dim, order="lex").replace(" ", "")


def shape_str(shape: Iterable[Dim]) -> str:
    return "[" + ",".join(dim_str(d) for d in shape) + "]"


def numel(shape: Iterable[Dim]) -> Dim:
    total: Dim = 1
    for d in shape:
        total = total * d
    return normalize(total)


def free_symbols(shape: Iterable[Dim]) -> set[str]:
    names: set[str] = set()
    for d in shape:
        if isinstance(d, sympy.Basic):
            names |= {s.name for s in d.free_symbols}
    return names


def evaluate(dim: Dim, bindings: Mapping[str, int]) -> Dim:
    """Substitute bound symbols; returns an int when every symbol is bound."""
    if isinstance(dim, int):
        return dim
    subs = {symbol(n): v for n, v in bindings.items() if symbol(n) in dim.free_symbols}
    return normalize(dim.subs(subs)) if subs else dim


def dims_equal(a: Dim, b: Dim) -> bool:
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    return sympy.simplify(sympy.sympify(a) - sympy.sympify(b)) == 0
