"""Simulate a claim's workload, compare, give a verdict and what each unpublished parameter would need.

The decode figure is taken at the mean context of the generation (prompt + half the output), which
is the mean per-token time when that time grows linearly with the context; the fit is checked at
the end of the generation, where the cache is largest.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from simulator.api import SimOptions, load_model_graphs
from simulator.claims.claim import Claim, ClaimError
from simulator.claims.solve import KNOBS, POWER_KNOBS, Knob, figure_of, get_field, power_of, scaled, solve_factor
from simulator.hardware import load_hardware
from simulator.hardware.schema import HardwareError


class TargetUnavailableError(ClaimError):
    """The claim's target has no working simulator in this checkout."""


@dataclass
class Requirement:
    field: str
    label: str
    assumed: Any
    needed: Any = None          # None: this parameter alone cannot meet the claim
    factor: float | None = None
    note: str = ""
    at_preset: dict[str, Any] = field(default_factory=dict)     # a derived figure, as the preset has it
    at_solution: dict[str, Any] = field(default_factory=dict)   # the same figure at the needed value


@dataclass
class FigureCheck:
    figure: str
    claimed: float
    simulated: float
    ratio: float
    verdict: str
    requirements: list[Requirement] = field(default_factory=list)


@dataclass
class ClaimResult:
    claim: Claim
    decode_context: int
    precision: str
    fits: bool
    fits_reason: str
    bottleneck: str
    figures: list[FigureCheck]
    power: dict[str, Any] | None
    assumptions: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return _finite(asdict(self))


def run_target(graphs, chip, options):
    """Simulate pre-loaded graphs on a (possibly modified) description, dispatching on its kind."""
    if chip.kind == "spatial":
        from simulator.spatial import simulate_spatial

        return simulate_spatial(graphs, chip, options)
    if chip.kind == "programmable":
        try:
            from simulator.programmable import simulate_programmable

            return simulate_programmable(graphs, chip, options)
        except (ImportError, RuntimeError) as exc:
            # Another target's simulator missing or failing is that claim's error, stated, not a crash.
            raise TargetUnavailableError(f"{chip.name}: the programmable simulator could not run this claim "
                                         f"({type(exc).__name__}: {str(exc).splitlines()[0]})") from exc
    raise HardwareError(f"{chip.name}: no simulator for kind {chip.kind!r}")


def check_claim(claim: Claim, solve: bool = True) -> ClaimResult:
    graphs = load_model_graphs(claim.model)
    chip = load_hardware(claim.target)
    options = SimOptions(context=claim.decode_context, batch=claim.batch, prompt_len=claim.prompt_len,
                         gen_len=claim.gen_len, weight_precision=claim.weight_precision,
                         kv_precision=claim.kv_precision)
    report = run_target(graphs, chip, options)
    # The cache is largest on the last generated token: that is where it must still fit.
    end = run_target(graphs, chip, dataclasses.replace(options, context=claim.prompt_len + claim.gen_len,
                                                       prompt_len=1))
    fits = report.fits and end.fits
    reason = report.fits_reason if not report.fits else end.fits_reason
    # Solving re-simulates many descriptions: skip the prefill, which decode figures do not use.
    decode_only = dataclasses.replace(options, prompt_len=1)
    checks = []
    for figure, claimed in claim.figures.items():
        simulated = getattr(report, figure) if fits else math.nan
        ratio = simulated / claimed
        check = FigureCheck(figure, claimed, simulated, ratio, _verdict(claim, ratio, fits, reason))
        # A point claim always says what it needs; a bound only when the simulation beats it. A run
        # whose cache or weights do not fit needs more than a faster parameter: nothing is solved.
        wanted = claim.bound == "point" or ratio > 1 + claim.tolerance
        if solve and fits and wanted:
            check.requirements = [_requirement(graphs, chip, decode_only, knob, figure, claimed, report.extra)
                                  for knob in KNOBS.get(chip.kind, ())]
            if claim.bound == "point" and ratio < 1 - claim.tolerance and all(r.needed is None
                                                                              for r in check.requirements):
                check.verdict += "; no single unpublished parameter closes the gap"
        checks.append(check)
    return ClaimResult(claim, claim.decode_context, report.precision, fits, reason, report.bottleneck, checks,
                       _power(claim, graphs, chip, decode_only, report, solve and fits), dict(report.assumptions))


def _verdict(claim: Claim, ratio: float, fits: bool, reason: str) -> str:
    tol = claim.tolerance
    if not fits or not math.isfinite(ratio):
        return f"not reachable with these parameters: {reason}"
    gap = abs(ratio - 1) * 100
    if claim.bound == "upper":
        if ratio <= 1 + tol:
            return f"consistent: the simulation stays at {100 * ratio:.0f}% of the claimed bound"
        return (f"inconsistent: the simulation beats the claimed bound by {gap:.0f}%, so the simulator or the "
                "preset is optimistic")
    if ratio < 1 - tol:
        return f"needs {1 / ratio:.2f}x the simulated rate: the preset reaches {100 * ratio:.0f}% of the claim"
    if ratio > 1 + tol:
        return (f"reachable with margin: the preset exceeds the claim by {gap:.0f}%; the requirements below "
                "show how much less aggressive the unpublished parameters could be")
    return f"consistent within {gap:.0f}% (tolerance {100 * tol:.0f}%)"


def _requirement(graphs, chip, options, knob: Knob, figure: str, claimed: float, extra) -> Requirement:
    def simulate(factor: float):
        return run_target(graphs, scaled(chip, knob.field, factor), options)

    factor, note = solve_factor(lambda f: figure_of(simulate(f), figure), claimed, knob.increases_rate)
    assumed = get_field(chip, knob.field)
    req = Requirement(knob.field, knob.label, _plain(assumed), note=note)
    if knob.shown and isinstance(extra, dict):
        req.at_preset = {knob.shown: extra.get(knob.shown)}
    if factor is not None:
        solved = scaled(chip, knob.field, factor)
        req.needed, req.factor = _plain(get_field(solved, knob.field)), factor
        if knob.shown:
            report = run_target(graphs, solved, options)
            req.at_solution = {knob.shown: report.extra.get(knob.shown)}
    return req


def _power(claim: Claim, graphs, chip, options, report, solve: bool) -> dict[str, Any] | None:
    if claim.power_w is None:
        return None
    simulated = power_of(report)
    rate = report.tokens_per_s_total
    result: dict[str, Any] = {
        "claimed_w": claim.power_w, "simulated_w": simulated, "ratio": simulated / claim.power_w,
        "at_tokens_per_s_total": rate,
        "claimed_j_per_token": claim.power_w / claim.tokens_per_s_total if claim.tokens_per_s_total else
        claim.power_w / (claim.batch * claim.tokens_per_s_per_user),
        "simulated_j_per_token": report.energy_j_per_token,
    }
    knob = POWER_KNOBS.get(chip.kind)
    if solve and knob is not None and math.isfinite(simulated):
        def power(factor: float) -> float:
            value = power_of(run_target(graphs, scaled(chip, knob.field, factor), options))
            return value if math.isfinite(value) else 0.0

        factor, note = solve_factor(power, claim.power_w, increasing=True)
        needed = None if factor is None else _plain(get_field(scaled(chip, knob.field, factor), knob.field))
        result["requirement"] = asdict(Requirement(knob.field, knob.label, _plain(get_field(chip, knob.field)),
                                                   needed, factor, note))
    return result


def _plain(value: Any) -> Any:
    return dict(value) if hasattr(value, "items") else value


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
