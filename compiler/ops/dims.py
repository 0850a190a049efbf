"""Dim arithmetic shared by the shape-changing type rules.

A shape value known at compile time is a numpy array: int64 when every element is a number,
object when some element is a sympy expression over the positive-integer dim symbols. These
helpers read such arrays as dims, build them back, and do the few things type rules need that
sympy does not do on its own: exact division, and deciding signs of expressions like
`past_len + seq - 1` (true for positive integers, but beyond sympy's assumption system).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import sympy

from compiler.ir.shapes import Dim, normalize
from compiler.ops.registry import InferContext

# Exporters write INT64_MAX / INT64_MIN (older ones INT32_MAX) as "to the end" in Slice; any
# index at least this large is read as past either end of a dim, symbolic or not.
INDEX_BEYOND = 2**31 - 1


def to_dim(x: object) -> Dim:
    """One element of a shape value (numpy or python int, sympy expression) as a Dim."""
    if isinstance(x, sympy.Basic):
        return normalize(x)
    if isinstance(x, int | np.integer) and not isinstance(x, bool):
        return int(x)
    raise TypeError(f"{x!r} is not a dim")


def dims_of(value: np.ndarray) -> list[Dim]:
    """The elements of a (1-D or scalar) shape value as Dims."""
    return [to_dim(v) for v in np.asarray(value).reshape(-1)]


def ints_of(value: np.ndarray, what: str = "value") -> list[int]:
    """The elements of a shape value as ints; a run needs concrete numbers."""
    out = []
    for d in dims_of(value):
        if not isinstance(d, int):
            raise ValueError(f"{what} element {d} is symbolic; a run needs concrete numbers")
        out.append(d)
    return out


def compile_time_ints(ctx: InferContext, index: int, what: str) -> list[int]:
    """Input `index` as plain ints known at compile time (axes, steps): a type rule needs them."""
    values = dims_of(ctx.required_value(index, what))
    if not all(isinstance(v, int) for v in values):
        raise ctx.fail(f"{what} must be numbers, got {values}")
    return values


def shape_array(dims: Iterable[Dim]) -> np.ndarray:
    """A 1-D shape value: int64 when all dims are numbers, else an object array of Dims."""
    dims = [to_dim(d) for d in dims]
    if all(isinstance(d, int) for d in dims):
        return np.array(dims, dtype=np.int64)
    out = np.empty(len(dims), dtype=object)
    out[:] = dims
    return out


def object_or_typed(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Return a folded object array as `dtype` when all its elements became numbers."""
    flat = [to_dim(v) if isinstance(v, sympy.Basic) else v for v in values.reshape(-1)]
    if all(not isinstance(v, sympy.Basic) for v in flat):
        return np.array(flat, dtype=dtype).reshape(values.shape)
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return out.reshape(values.shape)


def is_static(d: Dim) -> bool:
    return isinstance(d, int)


def product(dims: Iterable[Dim]) -> Dim:
    total: Dim = 1
    for d in dims:
        total = total * d
    return normalize(total)


def exact_quotient(num: Dim, den: Dim) -> Dim | None:
    """num / den when it divides exactly into a polynomial with integer coefficients.

    Plain division first: sympy cancels common factors itself and keeps products such as
    `batch*(past_len + seq)` intact; `cancel` is the fallback and gives an expanded form.
    """
    if isinstance(num, int) and isinstance(den, int):
        return num // den if den and num % den == 0 else None
    if den == 0:
        return None
    for q in (sympy.sympify(num) / den, sympy.cancel(sympy.sympify(num) / den)):
        numer, denom = sympy.fraction(sympy.together(q))
        if denom == 1 and _has_integer_coefficients(numer):
            return normalize(q)
    return None


def _has_integer_coefficients(expr: sympy.Expr) -> bool:
    if not expr.free_symbols:
        return expr.is_Integer
    if not expr.is_polynomial(*expr.free_symbols):
        return False
    return all(c.is_Integer for c in sympy.Poly(expr, *expr.free_symbols).coeffs())


def ceil_div(num: Dim, den: Dim) -> Dim:
    if isinstance(num, int) and isinstance(den, int):
        return -(-num // den)
    q = exact_quotient(num, den)
    return q if q is not None else sympy.ceiling(sympy.sympify(num) / den)


def provably_nonnegative(expr: Dim) -> bool | None:
    """Whether `expr` >= 0 for every positive-integer value of its symbols; None if undecided.

    Each symbol s >= 1 is rewritten as s' + 1 with s' >= 0: a polynomial whose coefficients are
    then all nonnegative is nonnegative; one with no positive coefficient and a negative constant
    term is negative.
    """
    if isinstance(expr, int):
        return expr >= 0
    expr = sympy.sympify(expr)
    known = expr.is_nonnegative
    if known is not None:
        return known
    if not expr.is_polynomial(*expr.free_symbols):
        return None
    shift = {s: sympy.Dummy(nonnegative=True, integer=True) + 1 for s in expr.free_symbols}
    shifted = sympy.expand(expr.subs(shift))
    if not shifted.free_symbols:
        return bool(shifted >= 0)
    poly = sympy.Poly(shifted, *shifted.free_symbols)
    if all(c >= 0 for c in poly.coeffs()):
        return True
    if all(c <= 0 for c in poly.coeffs()) and poly.coeff_monomial(1) < 0:
        return False
    return None


def provably_less(a: Dim, b: Dim) -> bool:
    """a < b for every value of the symbols (integers: b - a - 1 >= 0)."""
    return provably_nonnegative(normalize(sympy.sympify(b) - a - 1)) is True


def max0(d: Dim) -> Dim:
    """max(d, 0): 0 when provably not positive, d when provably nonnegative, else sympy.Max."""
    if isinstance(d, int):
        return max(d, 0)
    if provably_nonnegative(d):
        return d
    if provably_nonnegative(-d):
        return 0
    return sympy.Max(d, 0)


def slice_bounds(dim: Dim, start: Dim, end: Dim, step: int) -> tuple[Dim, Dim]:
    """ONNX Slice start/end for one axis: negative indices count from the end, then clamp.

    With a symbolic dim or index, a comparison sympy cannot decide is read as "the index lies
    inside the dim" (dim >= |index|): exporters slice within bounds (x[:, -1], mask[:seq]), and
    this keeps results simple expressions such as `past_len + seq - 1` instead of Min/Max trees.
    Indices of INDEX_BEYOND or more in magnitude mean "past that end".
    """
    lo_start, hi_start = (0, dim) if step > 0 else (0, normalize(sympy.sympify(dim) - 1))
    lo_end, hi_end = (0, dim) if step > 0 else (-1, normalize(sympy.sympify(dim) - 1))
    return _bound(dim, start, lo_start, hi_start), _bound(dim, end, lo_end, hi_end)


def _bound(dim: Dim, index: Dim, lo: Dim, hi: Dim) -> Dim:
    if isinstance(index, int) and index >= INDEX_BEYOND:
        return hi
    if isinstance(index, int) and index <= -INDEX_BEYOND:
        return lo
    if provably_nonnegative(index) is False:  # counts from the end
        index = normalize(sympy.sympify(dim) + index)
    if isinstance(index, int) and isinstance(lo, int) and isinstance(hi, int):
        return min(max(index, lo), hi)
    if provably_less(index, lo):
        return lo
    if provably_less(hi, index):
        return hi
    return index


def slice_length(dim: Dim, start: Dim, end: Dim, step: int) -> Dim:
    """Number of elements ONNX Slice takes from one axis of size `dim`."""
    if step == 0:
        raise ValueError("slice step 0")
    first, last = slice_bounds(dim, start, end, step)
    span = normalize(sympy.sympify(last) - first)
    if step > 0:
        return max0(ceil_div(span, step))
    return max0(ceil_div(normalize(-sympy.sympify(span)), -step))
