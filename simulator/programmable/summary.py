"""From engine results to the shared SimReport: rates, bandwidth, utilization, energy, bottleneck.

Conventions (also written into every report's `extra`): a decode *step* produces one token for
each of `batch` users and takes TPOT; `hbm_bytes_per_token` and `per_layer` are per decode step
over all chips; `energy_j_per_token` is per generated token (step energy / batch). With tensor
parallelism the program is one chip's share, so bytes, MACs and energy are that chip's times the
number of chips, and peaks are per chip times the number of chips.
"""

from __future__ import annotations

import math

from simulator.hardware.programmable import ProgrammableChip
from simulator.programmable.stats import EngineResult
from simulator.report import LayerCost

# A resource whose roofline covers at least this share of the step is what binds it.
BINDING_SHARE = 0.5

CONVENTIONS = ("decode step = one token per user; hbm_bytes_per_token and per_layer are per decode step, "
               "all chips; energy_j_per_token is per generated token (step energy / batch)")


def roofline_shares(chip: ProgrammableChip, result: EngineResult) -> dict[str, float]:
    """Each resource's lower-bound time over the simulated time (1.0 = running at its peak)."""
    t = result.time_s
    if t <= 0:
        return {"hbm bandwidth": 0.0, "compute": 0.0, "vector": 0.0, "links": 0.0}
    totals = result.totals
    compute_s = sum(macs / chip.peak_macs_per_s(p) for p, macs in result.macs_by_precision.items())
    return {
        "hbm bandwidth": totals["hbm_bytes"] / chip.memory.hbm_bytes_per_s / t,
        "compute": compute_s / t,
        "vector": totals["vector_roofline_s"] / t,
        "links": totals["link_roofline_s"] / t,
    }


def bottleneck(chip: ProgrammableChip, result: EngineResult) -> str:
    """The resource closest to its roofline; when none is near one, the busiest engine says why
    (a GEMM engine busy far below peak MACs is paying systolic fill: still "compute"); a run where
    no engine is busy most of the time waits on latency and dependencies."""
    shares = roofline_shares(chip, result)
    name, share = max(shares.items(), key=lambda kv: kv[1])
    if share >= BINDING_SHARE:
        return name
    t = result.time_s or 1.0
    busy = {engine: s / t for engine, s in result.busy_s.items()}
    engine, fraction = max(busy.items(), key=lambda kv: kv[1])
    if fraction >= BINDING_SHARE:
        return {"gemm": "compute", "vector": "vector", "link": "links"}.get(engine, "latency/dependencies")
    return "latency/dependencies"


def bottleneck_detail(chip: ProgrammableChip, result: EngineResult) -> str:
    """One sentence behind the bottleneck's name: the busiest engine and how close each resource
    came to its peak (a busy GEMM engine far below peak MACs is paying systolic fill and drain)."""
    t = result.time_s or 1.0
    engine, busy = max(result.busy_s.items(), key=lambda kv: kv[1])
    shares = ", ".join(f"{name} {100 * share:.1f}%" for name, share in roofline_shares(chip, result).items())
    return f"busiest engine {engine.upper()} ({100 * busy / t:.0f}% of the step); share of peak: {shares}"


def compute_utilization(chip: ProgrammableChip, result: EngineResult) -> float:
    return roofline_shares(chip, result)["compute"]


def peak_macs_per_s(chip: ProgrammableChip, result: EngineResult, precision: str) -> float:
    """One chip's peak MAC rate at the step's precision mix (its MACs over their time at each
    precision's peak): the roof `compute_utilization` is measured against. A step without MACs
    takes `precision`'s peak."""
    macs = sum(result.macs_by_precision.values())
    if macs <= 0:
        return chip.peak_macs_per_s(precision) if chip.supports(precision) else math.nan
    return macs / sum(m / chip.peak_macs_per_s(p) for p, m in result.macs_by_precision.items() if m)


def per_layer(result: EngineResult, chips: int) -> dict[str, LayerCost]:
    return {tag: LayerCost(time_s=c.time_s, hbm_bytes=c.hbm_bytes * chips, macs=c.macs * chips, count=c.count)
            for tag, c in result.tags.items()}


def engine_extra(chip: ProgrammableChip, result: EngineResult, host_s: float) -> dict:
    t = result.time_s or math.inf
    return {
        "time_s": result.time_s,
        "busy_fraction": {e: s / t for e, s in result.busy_s.items()},
        "roofline_share": roofline_shares(chip, result),
        "hbm_bytes": result.totals["hbm_bytes"],
        "sram_bytes": result.totals["sram_bytes"],
        "link_bytes": result.totals["link_bytes"],
        "macs": result.totals["macs"],
        "vector_ops": result.totals["vector_ops"],
        "energy_j": result.energy_j,
        "instructions_executed": int(result.ops_simulated + result.ops_extrapolated),
        "instructions_simulated": result.ops_simulated,
        "instructions_extrapolated": result.ops_extrapolated,
        "loops_extrapolated": len(result.loops_extrapolated),
        "host_s": host_s,
    }
