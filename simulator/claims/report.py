"""A claim check as terminal text: claimed vs simulated, verdict, and what each parameter would need."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from simulator.claims.check import ClaimResult, Requirement


def format_result(result: ClaimResult) -> str:
    c = result.claim
    lines = [
        f"claim      {c.path}",
        f"           {c.model} on {c.target}: {c.prompt_len:,} tokens in / {c.gen_len:,} out, "
        f"{c.batch} user(s); {result.precision}",
        f"source     {c.source}",
        f"simulated  decode at {result.decode_context:,} cached tokens (mean over the generation)",
        f"fits       {'yes' if result.fits else 'NO'} - {result.fits_reason}",
        f"bottleneck {result.bottleneck}",
    ]
    for check in result.figures:
        lines += [
            "",
            f"{check.figure}: claimed {_num(check.claimed)}, simulated {_num(check.simulated)}, "
            f"ratio {_ratio(check.ratio)}" + (" (claim is an upper bound)" if c.bound == "upper" else ""),
            f"  verdict: {check.verdict}",
        ]
        if check.requirements:
            lines.append("  to meet the claim exactly, each alone (everything else as in the preset):")
            lines += [f"    {line}" for line in map(_requirement, check.requirements)]
    if result.power:
        p = result.power
        lines += ["", f"power: claimed {_num(p['claimed_w'])} W, simulated {_num(p['simulated_w'])} W at "
                      f"{_num(p['at_tokens_per_s_total'])} tokens/s, ratio {_ratio(p['ratio'])}",
                  f"  energy per token: claim implies {_num(p['claimed_j_per_token'] * 1e3, 2)} mJ, "
                  f"simulated {_num(p['simulated_j_per_token'] * 1e3, 2)} mJ"]
        if "requirement" in p:
            lines.append(f"  {_requirement(Requirement(**p['requirement']))} (to draw the claimed power)")
    if result.assumptions:
        lines += ["", f"{len(result.assumptions)} preset values are assumptions; `--json` lists them with reasons."]
    return "\n".join(lines)


def _requirement(req: Requirement) -> str:
    preset = "".join(f" ({k.replace('_', ' ')} {_num(v)})" for k, v in req.at_preset.items())
    head = f"{req.label} [{req.field}]: assumed {_value(req.field, req.assumed)}{preset}"
    if req.needed is None:
        return f"{head}; {req.note}"
    shown = "".join(f"; {k.replace('_', ' ')} {_num(v)}" for k, v in req.at_solution.items())
    return f"{head} -> needs {_value(req.field, req.needed)} ({req.factor:.3g}x){shown}"


def _value(name: str, value: Any) -> str:
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {v:.3g}" for k, v in value.items()) + "}"
    if name.endswith("_hz"):
        return f"{value / 1e9:.3g} GHz"
    if name.endswith("bytes_per_s"):
        return f"{value / 1e12:.3g} TB/s"
    if name.endswith("_mm2"):
        return f"{value:,.1f} mm2"
    if "um2" in name:
        return f"{value:.3g} um2"
    return f"{value:.4g}"


def _num(x: float | None, digits: int = 0) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:,.{digits}f}" if abs(x) >= 10 or digits else f"{x:.3g}"


def _ratio(x: float) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.2f}"
