"""What a claim requires of one unpublished parameter: bisection on the simulator, not a formula.

A knob is a dotted field of a hardware description (`clock_hz`, `weights.um2_per_weight_bit`).
Scaling it by a factor gives a new frozen description; the simulator is re-run on it, and the
factor at which the simulated figure meets the claim is found by exponential search then
bisection in log2(factor). The simulated figure must be monotone in the knob.
"""

from __future__ import annotations

import dataclasses
import math
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from simulator.hardware.schema import HardwareError

MAX_LOG2_FACTOR = 16        # search factors from 2^-16 to 2^16 of the preset's value
LOG2_TOLERANCE = 1e-3       # stop when the factor is known to 0.07%


@dataclass(frozen=True)
class Knob:
    field: str                 # dotted field of the hardware description
    label: str
    increases_rate: bool = True
    shown: str = ""            # a report `extra` key worth showing at the solution


KNOBS: dict[str, tuple[Knob, ...]] = {
    "spatial": (
        Knob("clock_hz", "clock"),
        Knob("die.die_area_mm2", "weights per cycle (multiplier lanes the die area allows)",
             shown="weights_per_cycle"),
        Knob("weights.um2_per_weight_bit", "storage area per weight bit", increases_rate=False,
             shown="weights_per_cycle"),
    ),
    "programmable": (
        Knob("clock_hz", "clock"),
        Knob("memory.hbm_bytes_per_s", "HBM bandwidth"),
    ),
}
POWER_KNOBS: dict[str, Knob] = {
    "spatial": Knob("energy.pj_per_weight_mac", "energy per weight-MAC"),
    "programmable": Knob("energy.pj_per_mac", "energy per MAC"),
}


def get_field(chip: Any, dotted: str) -> Any:
    node = chip
    for part in dotted.split("."):
        if not dataclasses.is_dataclass(node) or not hasattr(node, part):
            raise HardwareError(f"{getattr(chip, 'name', chip)}: no field {dotted!r}")
        node = getattr(node, part)
    return node


def replace_field(chip: Any, dotted: str, value: Any) -> Any:
    """A copy of a frozen description with one (possibly nested) field changed."""
    head, _, rest = dotted.partition(".")
    if not dataclasses.is_dataclass(chip) or not any(f.name == head for f in dataclasses.fields(chip)):
        raise HardwareError(f"{getattr(chip, 'name', chip)}: no field {dotted!r}")
    if not rest:
        return dataclasses.replace(chip, **{head: value})
    return dataclasses.replace(chip, **{head: replace_field(getattr(chip, head), rest, value)})


def scaled(chip: Any, dotted: str, factor: float) -> Any:
    """The description with a numeric field (or every entry of a table field) times `factor`."""
    value = get_field(chip, dotted)
    if isinstance(value, Mapping):
        new: Any = types.MappingProxyType({k: v * factor for k, v in value.items()})
    elif isinstance(value, int) and not isinstance(value, bool):
        new = max(1, round(value * factor))
    elif isinstance(value, float):
        new = value * factor
    else:
        raise HardwareError(f"{getattr(chip, 'name', chip)}: {dotted} is not numeric ({value!r})")
    return replace_field(chip, dotted, new)


def solve_factor(measure: Callable[[float], float], target: float, increasing: bool) -> tuple[float | None, str]:
    """The factor at which `measure(factor)` reaches `target`, or None and why not.

    `measure` is monotone: non-decreasing in the factor when `increasing`, else non-increasing.
    """
    sign = 1.0 if increasing else -1.0

    def reached(x: float) -> bool:   # monotone non-decreasing in x
        return measure(2.0 ** (sign * x)) >= target

    if reached(0.0):
        lo, hi, step = -1.0, 0.0, 1.0
        while reached(lo):
            if lo <= -MAX_LOG2_FACTOR:
                return None, f"met even at {_factor_text(-sign)} the preset's value"
            hi, step = lo, step * 2
            lo = max(hi - step, -MAX_LOG2_FACTOR)
    else:
        lo, hi, step = 0.0, 1.0, 1.0
        while not reached(hi):
            if hi >= MAX_LOG2_FACTOR:
                return None, f"not reached even at {_factor_text(sign)} the preset's value alone"
            lo, step = hi, step * 2
            hi = min(lo + step, MAX_LOG2_FACTOR)
    while hi - lo > LOG2_TOLERANCE:
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if reached(mid) else (mid, hi)
    return 2.0 ** (sign * hi), ""


def _factor_text(direction: float) -> str:
    return f"{2**MAX_LOG2_FACTOR:,}x" if direction > 0 else f"1/{2**MAX_LOG2_FACTOR:,} of"


def figure_of(report: Any, figure: str) -> float:
    """A simulated figure; a run that does not fit delivers nothing."""
    value = getattr(report, figure)
    return value if report.fits and value is not None and math.isfinite(value) else 0.0


def power_of(report: Any) -> float:
    power = report.extra.get("power_w") if isinstance(report.extra, Mapping) else None
    if power is None:
        power = report.energy_j_per_token * report.tokens_per_s_total
    return power if power is not None and math.isfinite(power) else math.nan
