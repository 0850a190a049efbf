"""Number formatting shared by the Markdown and HTML reports (a figure that is not available is '-')."""

from __future__ import annotations

import math
from typing import Any

from simulator.compare.figures import number

MISSING = "-"


def rate(value: Any) -> str:
    x = number(value)
    return MISSING if not math.isfinite(x) else f"{x:,.1f}" if x < 1e4 else f"{x:,.0f}"


def seconds(value: Any) -> str:
    x = number(value)
    if not math.isfinite(x):
        return MISSING
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if x >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.3g} s"


def si(value: Any, unit: str) -> str:
    """1.23e12, 'B/s' -> '1.23 TB/s'; 0.0024, 'J' -> '2.43 mJ'."""
    x = number(value)
    if not math.isfinite(x):
        return MISSING
    if x == 0:
        return f"0 {unit}"
    for prefix, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3), ("", 1.0), ("m", 1e-3),
                          ("u", 1e-6), ("n", 1e-9)):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {prefix}{unit}"
    return f"{x:.3g} {unit}"


def area(value: Any) -> str:
    x = number(value)
    return "not modelled" if not math.isfinite(x) else f"{x:,.1f} mm2"


def percent(value: Any) -> str:
    x = number(value)
    return MISSING if not math.isfinite(x) else f"{100 * x:+.1f}%"


def short_bottleneck(text: str | None) -> str:
    """The bottleneck's name without its explanation ('pipeline latency: 1 token(s) ...' -> 'pipeline latency')."""
    if not text:
        return MISSING
    return text.split(":")[0].split(" (")[0].strip()
