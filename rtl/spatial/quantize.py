"""Symmetric quantization of a hard-wired region's weights and activations, and requantize scales.

Scheme (per tensor, symmetric, no zero point): with b bits, qmax = 2**(b-1) - 1 and
scale = max|x| / qmax, q = clip(rint(x / scale), -qmax, qmax); x is represented by q * scale.
The most negative code -2**(b-1) is never produced, so the range is symmetric and negating a
code never overflows. `rint` rounds halves to even. Weights use the region's bits (the
preset's precision policy); activations between regions use 8 bits.

A region computes acc = x_q @ W_q exactly in integers (scale s_x * s_w); its int8 output at
scale s_y is requantize(acc, imm, shift) with imm / 2**shift ~= s_x * s_w / s_y — VECTOR
REQUANT's semantics (`simulator.programmable.functional.requantize`), which the RTL implements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from compiler.targets.programmable.int_graphs import Requant

MAX_SHIFT = 63          # functional.requantize is exact for shifts up to 63
IMM_BITS = 15           # significant bits of the requantize multiplier (relative error <= 2**-15)


class QuantizeError(ValueError):
    """A tensor or scale that the scheme cannot represent."""


@dataclass(frozen=True)
class QuantizedTensor:
    values: np.ndarray      # int8 array holding b-bit codes in [-qmax, qmax]
    scale: float            # real value of one code step
    bits: int

    @property
    def qmax(self) -> int:
        return (1 << (self.bits - 1)) - 1

    def dequantize(self) -> np.ndarray:
        return self.values.astype(np.float64) * self.scale


def quantize_symmetric(x: np.ndarray, bits: int, max_abs: float | None = None) -> QuantizedTensor:
    """Quantize `x` to `bits`-bit symmetric codes; `max_abs` (default max|x|) maps to the top code."""
    if not 2 <= bits <= 8:
        raise QuantizeError(f"{bits}-bit codes: supported widths are 2 to 8 bits")
    x = np.asarray(x, dtype=np.float64)
    top = float(np.max(np.abs(x))) if max_abs is None else float(max_abs)
    if not math.isfinite(top) or top <= 0:
        raise QuantizeError(f"cannot quantize a tensor whose largest magnitude is {top}")
    qmax = (1 << (bits - 1)) - 1
    scale = top / qmax
    values = np.clip(np.rint(x / scale), -qmax, qmax).astype(np.int8)
    return QuantizedTensor(values, scale, bits)


def requant_for(multiplier: float, imm_bits: int = IMM_BITS) -> Requant:
    """(imm, shift) with imm / 2**shift the closest `imm_bits`-bit fixed-point value to `multiplier`."""
    if not math.isfinite(multiplier) or multiplier <= 0:
        raise QuantizeError(f"requantize multiplier {multiplier}: must be positive and finite")
    exponent = math.floor(math.log2(multiplier))
    shift = imm_bits - 1 - exponent          # puts the multiplier's leading bit at imm bit imm_bits - 1
    if shift < 0 or shift > MAX_SHIFT:
        raise QuantizeError(f"requantize multiplier {multiplier:g} needs a shift of {shift}; "
                            f"supported shifts are 0 to {MAX_SHIFT}")
    return Requant(imm=round(multiplier * 2.0**shift), shift=shift)
