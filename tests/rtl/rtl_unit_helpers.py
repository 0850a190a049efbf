"""Helpers shared by the RTL unit tests (a unique module name: test directories have no
__init__.py)."""

from __future__ import annotations

from compiler.targets.programmable.isa import Gemm, Precision
from rtl.programmable.config import CoreConfig

REGION_BYTES = 4096


def _align(x: int, to: int = 32) -> int:
    return -(-x // to) * to


def placed(config: CoreConfig, region: int, m: int, n: int, k: int, split: int = 0, subarray: int = 0,
           accumulate: bool = False, **fields) -> Gemm:
    """A GEMM with A, B and C packed into 4 KiB region `region`."""
    a = region * REGION_BYTES
    b = _align(a + m * k)
    c = _align(b + k * n)
    assert c + 4 * m * n <= (region + 1) * REGION_BYTES
    values = dict(a_addr=a, b_addr=b, c_addr=c, m=m, n=n, k=k, split=split, subarray=subarray,
                  accumulate=accumulate, precision=Precision.INT8, acc_precision=Precision.INT32)
    values.update(fields)
    return Gemm(**values)
