"""Shared test inputs for op tests: seeded arrays, int64 vectors and symbolic-dim arrays."""

from __future__ import annotations

import numpy as np

from compiler.ir import symbol

BATCH, SEQ, PAST = symbol("batch"), symbol("seq"), symbol("past_len")

rng = np.random.default_rng(0)


def f32(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def i64(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def dims(*values) -> np.ndarray:
    """A folded shape value holding symbolic dims (an object array, as constant folding makes)."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out
