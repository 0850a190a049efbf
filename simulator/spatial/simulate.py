"""The spatial target's report: decode and prefill rates, SRAM fit, area, power, from the pipeline.

Per user, one token is in flight: its time is the critical path. With B users interleaved the
pipeline delivers B / max(critical path, B x slowest stage) tokens per cycle. A prompt streams
through one token per slowest-stage interval and the first output token appears a critical path
after the last prompt token enters. Weights never move (they are the silicon); the only memory
traffic is KV / state in SRAM and activations between regions. The weight precision is what the
preset hard-wires (its per-tensor policy); `options.weight_precision` does not apply to silicon.
"""

from __future__ import annotations

import math
import weakref
from typing import TYPE_CHECKING

import numpy as np

from compiler.ir.graph import Graph
from compiler.targets.spatial import SpatialPlan, Workload, extract_workload, fold
from simulator.hardware import PRECISION_BITS
from simulator.report import LayerCost, SimReport
from simulator.spatial.capacity import Capacity, capacity_of
from simulator.spatial.context import context_model
from simulator.spatial.pipeline import Pipeline, Timing

if TYPE_CHECKING:
    from simulator.api import ModelGraphs, SimOptions
    from simulator.spatial.hardware import SpatialChip

_WORKLOADS: weakref.WeakKeyDictionary[Graph, Workload] = weakref.WeakKeyDictionary()
PREFILL_CHUNK = 8192


def workload_of(graph: Graph) -> Workload:
    """The decode step's demand; cached per graph because claim solving re-simulates many chips."""
    if graph not in _WORKLOADS:
        _WORKLOADS[graph] = extract_workload(graph)
    return _WORKLOADS[graph]


def kv_bits_of(precision: str) -> int:
    if precision not in PRECISION_BITS:
        raise ValueError(f"--kv-precision {precision!r}: one of {', '.join(PRECISION_BITS)}")
    return PRECISION_BITS[precision]


def simulate(graphs: ModelGraphs, chip: SpatialChip, options: SimOptions) -> SimReport:
    if graphs.decode is None:
        raise ValueError(f"{graphs.name}: the spatial target simulates decode steps and needs a decode graph "
                         "(an ONNX graph with past_* cache inputs)")
    workload = workload_of(graphs.decode)
    plan = fold(workload, chip)
    kv_bits = kv_bits_of(options.kv_precision)
    pipe = Pipeline(plan, chip, kv_bits)
    ctx = context_model(graphs.name, _grows(workload))
    past_len = ctx.past_len(options.context)
    cap = capacity_of(workload, ctx, chip, kv_bits, past_len)
    timing = pipe.evaluate(past_len)
    clock = chip.clock_hz
    users = options.batch
    cycles_per_round = max(timing.critical_path_cycles, users * timing.slowest_cycles)
    total = users / cycles_per_round * clock
    ttft = _ttft_cycles(pipe, ctx, options.prompt_len) / clock
    fits, reason = _fit(plan, cap, users, options.context, kv_bits)
    rates = (total / users, total, ttft, cycles_per_round / clock)
    per_user, total_rate, ttft_s, tpot_s = rates if fits else (math.nan,) * 4
    power = _power_w(chip, timing, total)
    macs_per_token = sum(timing.weight_macs_by_bits.values())
    peak_macs = plan.weights_per_cycle * clock
    extra = {
        "area_mm2": plan.area.to_json(),
        "die_area_mm2": plan.die_area_mm2,
        "min_die_area_mm2": plan.min_die_area_mm2,
        "area_over_budget_mm2": max(0.0, plan.area.total_mm2 - plan.die_area_mm2),
        "slowest_stage": {"name": timing.slowest_unit, "cycles": timing.slowest_cycles,
                          "seconds": timing.slowest_cycles / clock},
        "critical_path_s": timing.critical_path_cycles / clock,
        "critical_path_by_kind_s": {k: v / clock for k, v in timing.critical_path_by_kind.items()},
        "clock_hz": clock,
        "regions": len(plan.compute_regions),
        "weights_per_cycle": plan.weights_per_cycle,
        "concurrency_users": cap.users_fit,
        "past_len": past_len,
        "context_model": ctx.describe(),
        "sram_bytes_per_token": timing.sram_bytes,
        "sram_read_bytes_per_token": timing.sram_read_bytes,
        "activation_bytes_per_token": timing.activation_bytes,
        "weight_bytes_moved_per_token": 0,
        "weight_macs_per_token": macs_per_token,
        "attention_macs_per_token": timing.attention_macs,
        # All MAC hardware (weight lanes and attention units) and all MACs of a token, for rooflines
        # drawn across targets; compute_utilization counts the weight lanes only.
        "peak_macs_per_s": peak_macs + plan.attention_units * chip.attention.macs_per_cycle * clock,
        "macs_per_token": macs_per_token + timing.attention_macs,
        "cache_bytes_per_user": cap.per_user_bytes,
        "sram_kv_capacity_bytes": cap.capacity_bytes,
        "sram_over_capacity_bytes": max(0.0, users * cap.per_user_bytes - cap.capacity_bytes),
        "max_context_one_user": cap.max_context,
        "power_w": power,
        "board_power_w": chip.die.board_power_w,
        "tokens_per_s_total_at_max_users": _at_users(timing, max(cap.users_fit, 1)) * clock,
        "roofline_tokens_per_s": _roofline(plan, chip, timing),
    }
    if workload.unbound:
        # Data-dependent sizes (TopK's k) cannot be known from shapes; they were costed as 1.
        extra["data_dependent_sizes_taken_as_1"] = dict(workload.unbound)
    if not fits:
        extra["if_it_fit"] = {"tokens_per_s_per_user": rates[0], "tokens_per_s_total": rates[1],
                              "ttft_s": rates[2], "tpot_s": rates[3]}
    return SimReport(
        model=graphs.name,
        target=chip.name,
        context=options.context,
        batch=users,
        prompt_len=options.prompt_len,
        gen_len=options.gen_len,
        precision=_precision(plan, options.kv_precision),
        tokens_per_s_per_user=per_user,
        tokens_per_s_total=total_rate,
        ttft_s=ttft_s,
        tpot_s=tpot_s,
        weight_bytes=sum(r.weights * r.bits for r in plan.regions) / 8,
        kv_bytes=users * cap.per_user_bytes,
        hbm_bytes_per_token=0.0,
        achieved_bandwidth_bytes_per_s=timing.sram_bytes * total if fits else math.nan,
        peak_bandwidth_bytes_per_s=chip.sram_bytes_per_s,
        compute_utilization=macs_per_token * total / peak_macs if fits and peak_macs else 0.0,
        energy_j_per_token=power / total if fits else math.nan,
        fits=fits,
        fits_reason=reason,
        bottleneck=_bottleneck(plan, cap, timing, users, fits),
        per_layer=_per_kind(plan, timing, clock),
        assumptions=dict(chip.assumed),
        extra=extra,
    )


def _grows(workload: Workload) -> bool:
    return any(not isinstance(e, int) for e in workload.cache_elements.values())


def _at_users(timing: Timing, users: int) -> float:
    return users / max(timing.critical_path_cycles, users * timing.slowest_cycles)


def _roofline(plan: SpatialPlan, chip: SpatialChip, timing: Timing) -> float:
    """The cheap bound beside the pipeline model: every lane, attention MAC and SRAM port busy at once."""
    bounds = [plan.weights_per_cycle * chip.clock_hz / max(sum(timing.weight_macs_by_bits.values()), 1)]
    if timing.attention_macs:
        bounds.append(plan.attention_units * chip.attention.macs_per_cycle * chip.clock_hz / timing.attention_macs)
    if timing.sram_bytes:
        bounds.append(chip.sram_bytes_per_s / timing.sram_bytes)
    return min(bounds)


def _ttft_cycles(pipe: Pipeline, ctx, prompt_len: int) -> float:
    """Prompt token t enters one slowest-stage interval after token t-1; the last one then runs the path."""
    total = 0.0
    for start in range(0, prompt_len - 1, PREFILL_CHUNK):
        positions = np.arange(start, min(start + PREFILL_CHUNK, prompt_len - 1), dtype=float)
        total += float(pipe.slowest(np.asarray(ctx.past_len(positions), dtype=float)).sum())
    return total + pipe.evaluate(ctx.past_len(prompt_len - 1)).critical_path_cycles


def _power_w(chip: SpatialChip, timing: Timing, tokens_per_s: float) -> float:
    e = chip.energy
    pj = sum(m * chip.weight_mac_pj(b) for b, m in timing.weight_macs_by_bits.items())
    pj += timing.attention_macs * e.pj_per_attention_mac + timing.elementwise_ops * e.pj_per_vector_op
    pj += timing.sram_bytes * e.pj_per_sram_byte
    return e.static_power_w + pj * 1e-12 * tokens_per_s


def _fit(plan: SpatialPlan, cap: Capacity, users: int, context: int, kv_bits: int) -> tuple[bool, str]:
    problems = []
    if not plan.fits_area:
        problems.append(
            f"die area: the weights need at least {plan.min_die_area_mm2:,.1f} mm2 (storage "
            f"{plan.area.weights_mm2:,.1f} mm2 + one multiplier lane per region + SRAM and units), the die is "
            f"{plan.die_area_mm2:,.1f} mm2 (over by {plan.area.total_mm2 - plan.die_area_mm2:,.1f} mm2)")
    need = users * cap.per_user_bytes
    if need > cap.capacity_bytes:
        problems.append(
            f"KV cache does not fit on the die: {users} user(s) x {context:,} tokens need {_gib(need)} of "
            f"KV/state at {kv_bits}-bit, SRAM holds {_gib(cap.capacity_bytes)} (over by "
            f"{_gib(need - cap.capacity_bytes)}, {need / cap.capacity_bytes:,.1f}x); "
            f"{cap.users_fit} user(s) fit at this context, {_longest(cap.max_context)}")
    if problems:
        return False, "; ".join(problems)
    return True, (f"area {plan.area.total_mm2:,.1f} of {plan.die_area_mm2:,.1f} mm2; KV/state "
                  f"{_gib(need)} of {_gib(cap.capacity_bytes)} SRAM ({cap.users_fit} user(s) fit at "
                  f"{context:,} tokens)")


def _bottleneck(plan: SpatialPlan, cap: Capacity, timing: Timing, users: int, fits: bool) -> str:
    if not fits:
        return "SRAM capacity (KV cache)" if users * cap.per_user_bytes > cap.capacity_bytes else "die area"
    slowest = f"{timing.slowest_unit} ({timing.slowest_cycles:,.0f} cycles/token)"
    if users * timing.slowest_cycles >= timing.critical_path_cycles:
        return f"slowest stage {slowest} with {users} users interleaved"
    shares = sorted(timing.critical_path_by_kind.items(), key=lambda kv: -kv[1])[:3]
    parts = ", ".join(f"{k} {100 * v / timing.critical_path_cycles:.0f}%" for k, v in shares)
    return (f"pipeline latency: {users} token(s) in flight over {timing.critical_path_cycles:,.0f} critical-path "
            f"cycles ({parts}); slowest stage {slowest}")


def _per_kind(plan: SpatialPlan, timing: Timing, clock: float) -> dict[str, LayerCost]:
    macs: dict[str, float] = {}
    count: dict[str, int] = {}
    for r in plan.compute_regions:
        key = f"weights:{r.kind}"
        macs[key] = macs.get(key, 0) + r.macs_per_token
        count[key] = count.get(key, 0) + 1
    macs["attention"] = timing.attention_macs
    count["attention"] = plan.attention_units
    count["vector"] = plan.vector_units
    return {k: LayerCost(time_s=v / clock, hbm_bytes=0.0, macs=macs.get(k, 0.0), count=count.get(k, 0))
            for k, v in timing.critical_path_by_kind.items()}


def _precision(plan: SpatialPlan, kv_precision: str) -> str:
    kinds = {}
    for r in plan.compute_regions:
        kinds.setdefault(r.kind, set()).add(r.bits)
    weights = ", ".join(f"{k} int{'/'.join(map(str, sorted(b)))}" for k, b in sorted(kinds.items()))
    return f"hard-wired weights ({weights}); kv {kv_precision}"


def _gib(n: float) -> str:
    return f"{n / 2**30:,.2f} GiB" if n >= 2**30 else f"{n / 2**20:,.1f} MiB"


def _longest(n: int | None) -> str:
    if n is None:
        return "1 user fits at any context"
    return f"1 user fits up to {n:,} tokens" if n else "not even 1 user fits at any context"
