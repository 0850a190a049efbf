"""Figures a comparison derives from each run's report, the same way for every target.

Conventions (written into report.json):
* FLOPs = 2 x MACs (a multiply-accumulate is two floating-point operations).
* Memory traffic is what the report's bandwidth figures count: HBM for programmable targets,
  on-die SRAM (KV cache and state) for spatial ones, which have no HBM. Bytes per token =
  achieved bandwidth / tokens per second in total.
* Arithmetic intensity = decode FLOPs per token / memory bytes per token; achieved FLOP/s =
  FLOPs per token x tokens per second in total. The roof is min(peak FLOP/s, intensity x peak
  bandwidth), with both peaks from the report (all chips).
* Power = energy per token x tokens per second in total (the decode step's average, static
  power included). Area is the spatial report's used die area; programmable descriptions have
  no area figures, so theirs is not available (None), never a guess.
"""

from __future__ import annotations

import math
from typing import Any

FLOPS_PER_MAC = 2

CONVENTIONS = {
    "flops_per_mac": FLOPS_PER_MAC,
    "memory": "HBM for programmable targets; on-die SRAM (KV cache, state) for spatial targets, which have no HBM",
    "memory_bytes_per_token": "achieved_bandwidth_bytes_per_s / tokens_per_s_total",
    "arithmetic_intensity_flops_per_byte": "flops_per_token / memory_bytes_per_token",
    "achieved_flops_per_s": "flops_per_token x tokens_per_s_total",
    "power_w": "energy_j_per_token x tokens_per_s_total (decode average, static power included)",
    "area_mm2": "spatial: used die area (extra.area_mm2.total_mm2); programmable: not in the description (null)",
}


def number(value: Any) -> float:
    """A report number, with JSON's null (a non-finite figure) read back as NaN."""
    if value is None or isinstance(value, bool):
        return math.nan
    return float(value)


def derived(report: dict[str, Any]) -> dict[str, float | None]:
    """The derived figures of one run's report (JSON form); None where one is not available."""
    extra = report.get("extra") or {}
    total = number(report.get("tokens_per_s_total"))
    macs_per_token = number(extra.get("macs_per_token"))
    flops_per_token = FLOPS_PER_MAC * macs_per_token
    memory_bytes = number(report.get("achieved_bandwidth_bytes_per_s")) / total if total else math.nan
    area = extra.get("area_mm2")
    values = {
        "power_w": number(report.get("energy_j_per_token")) * total,
        "area_mm2": number(area.get("total_mm2")) if isinstance(area, dict) else math.nan,
        "peak_flops_per_s": FLOPS_PER_MAC * number(extra.get("peak_macs_per_s")),
        "peak_bandwidth_bytes_per_s": number(report.get("peak_bandwidth_bytes_per_s")),
        "flops_per_token": flops_per_token,
        "achieved_flops_per_s": flops_per_token * total,
        "memory_bytes_per_token": memory_bytes,
        "arithmetic_intensity_flops_per_byte": flops_per_token / memory_bytes if memory_bytes else math.nan,
    }
    return {k: (v if math.isfinite(v) else None) for k, v in values.items()}
