"""The simulation report: one schema for every target, data first (JSON), then a terminal table.

Field names are stable and in SI units; `assumptions` lists every preset value nobody has
published, so two reports can be compared honestly.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


@dataclass
class LayerCost:
    """Time and traffic of one kind of layer work (e.g. "attention", "mlp") per decode token."""

    time_s: float
    hbm_bytes: float
    macs: float = 0.0
    count: int = 0


@dataclass
class SimReport:
    model: str
    target: str
    context: int
    batch: int
    prompt_len: int
    gen_len: int
    precision: str
    tokens_per_s_per_user: float
    tokens_per_s_total: float
    ttft_s: float
    tpot_s: float
    weight_bytes: float
    kv_bytes: float
    hbm_bytes_per_token: float
    achieved_bandwidth_bytes_per_s: float
    peak_bandwidth_bytes_per_s: float
    compute_utilization: float
    energy_j_per_token: float
    fits: bool
    fits_reason: str
    bottleneck: str
    per_layer: dict[str, LayerCost] = field(default_factory=dict)
    assumptions: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        return _finite(data)

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2, sort_keys=False) + "\n")


def _finite(value: Any) -> Any:
    """JSON has no inf/nan: write them as null (e.g. tokens/s of a model that does not fit)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def format_report(report: SimReport) -> str:
    """A readable terminal table of the headline figures and the per-layer breakdown."""
    r = report
    rows = [
        ("model / target", f"{r.model} on {r.target}"),
        ("context, batch", f"{r.context:,} tokens, batch {r.batch} ({r.precision})"),
        ("fits", f"{'yes' if r.fits else 'NO'} - {r.fits_reason}"),
        ("tokens/s per user", _num(r.tokens_per_s_per_user)),
        ("tokens/s total", _num(r.tokens_per_s_total)),
        ("time per output token", _time(r.tpot_s)),
        ("time to first token", _time(r.ttft_s)),
        ("weight bytes", _bytes(r.weight_bytes)),
        ("KV / state bytes", _bytes(r.kv_bytes)),
        ("HBM bytes per token", _bytes(r.hbm_bytes_per_token)),
        ("bandwidth achieved / peak", f"{_bytes(r.achieved_bandwidth_bytes_per_s)}/s of "
                                      f"{_bytes(r.peak_bandwidth_bytes_per_s)}/s"),
        ("compute utilization", _percent(r.compute_utilization)),
        ("energy per token", _millijoules(r.energy_j_per_token)),
        ("bottleneck", r.bottleneck),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    if r.per_layer:
        lines.append("")
        lines.append(f"{'layer kind':<16}{'time/token':>14}{'share':>8}{'HBM bytes':>14}")
        total = sum(c.time_s for c in r.per_layer.values()) or 1.0
        for kind, cost in sorted(r.per_layer.items(), key=lambda kv: -kv[1].time_s):
            lines.append(f"{kind:<16}{_time(cost.time_s):>14}{100 * cost.time_s / total:>7.1f}%"
                         f"{_bytes(cost.hbm_bytes):>14}")
    if r.extra.get("notes"):
        lines.append("")
        lines += [f"note: {note}" for note in r.extra["notes"]]
    if r.assumptions:
        lines.append("")
        lines.append(f"{len(r.assumptions)} preset values are assumptions (see --json 'assumptions').")
    return "\n".join(lines)


def _percent(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{100 * x:.1f}%"


def _millijoules(joules: float) -> str:
    return "-" if not math.isfinite(joules) else f"{joules * 1e3:.3f} mJ"


def _num(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{x:,.1f}"


def _time(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if seconds >= scale:
            return f"{seconds / scale:.3f} {unit}"
    return f"{seconds:.3g} s"


def _bytes(n: float) -> str:
    if not math.isfinite(n):
        return "-"
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} B"
