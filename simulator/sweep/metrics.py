"""The figures a sweep records per design point, and which of them can be Pareto objectives.

Every figure comes from the simulator's report (`SimReport` fields, or its `extra` where a
target carries more). Power is the decode step's average power over all chips, static power
included: `energy_j_per_token * tokens_per_s_total` (the spatial report states it directly as
`extra.power_w`, computed the same way). Area is the spatial chip's used die area
(`extra.area_mm2.total_mm2`): the folding fills the die budget with multiplier lanes. The
programmable chip's description carries no area or cost figures, so those objectives exist
there only as `[formulas]` of the sweep file.
"""

from __future__ import annotations

import math
from typing import Any

from simulator.report import SimReport

THROUGHPUTS = ("tokens_per_s_total", "tokens_per_s_per_user")

# Figures every target's report gives (lower is better for all but the throughputs).
REPORT_METRICS = ("tokens_per_s_total", "tokens_per_s_per_user", "tpot_s", "ttft_s", "energy_j_per_token",
                  "power_w", "compute_utilization", "hbm_bytes_per_token", "achieved_bandwidth_bytes_per_s",
                  "weight_bytes", "kv_bytes")
KIND_METRICS = {"programmable": ("chips",), "spatial": ("area_mm2", "die_area_mm2", "concurrency_users")}

# Objectives people ask for that a target's description cannot give, and why.
UNAVAILABLE = {
    ("programmable", "area_mm2"): "the programmable chip description has no area figures (no mm2 per PE, per "
                                  "SRAM byte or per PHY in simulator/hardware/programmable.py or the presets); "
                                  "give [formulas] area_mm2 = \"...\" in the sweep file to use your own",
    ("programmable", "cost"): "hardware descriptions carry no cost figures; give [formulas] cost = \"...\"",
    ("spatial", "cost"): "hardware descriptions carry no cost figures; give [formulas] cost = \"...\"",
}
DEFAULT_MINIMIZE = ("area_mm2", "power_w", "cost")


def metric_names(kind: str) -> tuple[str, ...]:
    return REPORT_METRICS + KIND_METRICS.get(kind, ())


def metrics_of(report: SimReport, kind: str, prefill: bool) -> dict[str, Any]:
    """The recorded figures of one simulated point (JSON-ready: non-finite numbers become None)."""
    values: dict[str, Any] = {name: getattr(report, name) for name in REPORT_METRICS if hasattr(report, name)}
    if kind == "spatial":
        values["power_w"] = report.extra["power_w"]
        values["area_mm2"] = report.extra["area_mm2"]["total_mm2"]
        values["die_area_mm2"] = report.extra["die_area_mm2"]
        values["concurrency_users"] = report.extra["concurrency_users"]
    else:
        values["power_w"] = report.energy_j_per_token * report.tokens_per_s_total
        values["chips"] = report.extra.get("chips", 1)
        if not prefill:
            values["ttft_s"] = None   # the prefill graph was not simulated; no estimate is recorded
    values.update(fits=bool(report.fits), fits_reason=report.fits_reason, bottleneck=report.bottleneck)
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()}
