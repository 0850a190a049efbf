"""Properties of the spatial plan and pipeline that must hold for any model and preset."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from spatial_helpers import graphs, sim

from compiler.targets.spatial import compile_spatial
from simulator.spatial.pipeline import Pipeline

MODELS = ["tiny-llama", "tiny-mamba2", "tiny-hybrid", "tiny-engram", "tiny-sparse", "tiny-compact", "tiny-grumem"]


@pytest.mark.parametrize("model", MODELS + ["llama3.1-8b"])
def test_area_parts_sum_to_total_and_fit_the_die(hc1, model):
    report = sim(model, hc1, context=256)
    area = report.extra["area_mm2"]
    parts = area["weights_mm2"] + area["macs_mm2"] + area["sram_mm2"] + area["other_mm2"]
    assert parts == pytest.approx(area["total_mm2"], rel=1e-12)
    assert sum(area["other_detail"].values()) == pytest.approx(area["other_mm2"], rel=1e-12)
    assert area["total_mm2"] <= hc1.die.die_area_mm2


def test_regions_sum_to_reported_weight_and_mac_area(hc1):
    plan = compile_spatial(graphs("llama3.1-8b").decode, hc1)
    assert sum(r.storage_um2 for r in plan.regions) / 1e6 == pytest.approx(plan.area.weights_mm2, rel=1e-12)
    assert sum(r.lanes_um2 for r in plan.regions) / 1e6 == pytest.approx(plan.area.macs_mm2, rel=1e-12)
    # One region per weight matrix: 7 per layer, the head, and the embedding table.
    assert len(plan.compute_regions) == 32 * 7 + 2


@pytest.mark.parametrize("model", MODELS)
def test_per_user_rate_is_one_over_the_critical_path(hc1, model):
    report = sim(model, hc1, context=128, prompt_len=1)
    assert report.tokens_per_s_per_user == pytest.approx(1 / report.extra["critical_path_s"], rel=1e-12)
    assert report.tpot_s == pytest.approx(report.extra["critical_path_s"], rel=1e-12)


@pytest.mark.parametrize("model", ["tiny-llama", "tiny-mamba2", "llama3.1-8b"])
def test_halving_the_clock_halves_the_rate(hc1, model):
    full = sim(model, hc1, context=512, batch=2)
    half = sim(model, dataclasses.replace(hc1, clock_hz=hc1.clock_hz / 2), context=512, batch=2)
    assert half.tokens_per_s_per_user == pytest.approx(full.tokens_per_s_per_user / 2, rel=1e-12)
    assert half.tokens_per_s_total == pytest.approx(full.tokens_per_s_total / 2, rel=1e-12)
    assert half.ttft_s == pytest.approx(full.ttft_s * 2, rel=1e-12)


def test_doubling_a_regions_parallelism_never_slows_it(tiny_chip):
    plan = compile_spatial(graphs("tiny-llama").decode, tiny_chip)
    pipe = Pipeline(plan, tiny_chip, kv_bits=16)
    before = pipe.evaluate(63)
    for region in plan.compute_regions:
        if not region.macs_per_token:
            continue
        lanes = min(2 * region.parallelism, region.macs_per_token)
        faster = Pipeline(plan.with_parallelism(region.name, lanes), tiny_chip, kv_bits=16).evaluate(63)
        key = f"region:{region.name}"
        assert faster.occupancy_cycles[key] <= before.occupancy_cycles[key]
        assert faster.critical_path_cycles <= before.critical_path_cycles
        assert faster.slowest_cycles <= before.slowest_cycles


def test_slower_regions_for_a_smaller_die(hc1):
    decode = graphs("llama3.1-8b").decode
    big, small = compile_spatial(decode, hc1), compile_spatial(decode, hc1, die_area_mm2=600.0)
    assert small.weights_per_cycle < big.weights_per_cycle
    assert small.area.total_mm2 <= 600.0


def test_hard_wired_weights_move_no_bytes(hc1):
    report = sim("llama3.1-8b", hc1, context=1024, prompt_len=1)
    assert report.extra["weight_bytes_moved_per_token"] == 0
    assert report.hbm_bytes_per_token == 0
    kv_per_token = 32 * 2 * 8 * 128 * 2                      # 128 KiB per cached token at bf16
    reads, writes = 1024 * kv_per_token, kv_per_token
    assert report.extra["sram_read_bytes_per_token"] == reads
    assert report.extra["sram_bytes_per_token"] == reads + writes
    # The only bandwidth used is the KV traffic (activations travel on wires, reported beside it).
    assert report.achieved_bandwidth_bytes_per_s == pytest.approx((reads + writes) * report.tokens_per_s_total)
    assert report.achieved_bandwidth_bytes_per_s <= report.peak_bandwidth_bytes_per_s
    # Stored, not moved: about 3.9 GB of 3- and 6-bit weights.
    assert report.weight_bytes == pytest.approx((5.637e9 * 3 + 2.393e9 * 6) / 8, rel=1e-3)


def test_throughput_never_beats_the_slowest_stage_or_the_critical_path(hc1):
    for users in (1, 4, 64):
        report = sim("tiny-llama", hc1, context=256, batch=users, prompt_len=1)
        slowest = report.extra["slowest_stage"]["seconds"]
        assert report.tokens_per_s_total <= 1 / slowest * (1 + 1e-12)
        assert report.tokens_per_s_total <= users / report.extra["critical_path_s"] * (1 + 1e-12)


@pytest.mark.parametrize("model, context", [("tiny-llama", 256), ("tiny-mamba2", 256), ("llama3.1-8b", 1024)])
def test_never_beats_the_roofline_or_the_peaks(hc1, model, context):
    for users in (1, 2, 1000):
        report = sim(model, hc1, context=context, batch=users, prompt_len=1)
        if not report.fits:
            continue
        assert report.tokens_per_s_total <= report.extra["roofline_tokens_per_s"] * (1 + 1e-12)
        assert report.compute_utilization <= 1.0
        assert report.achieved_bandwidth_bytes_per_s <= report.peak_bandwidth_bytes_per_s


def test_attention_grows_with_context_and_slowest_stage_bounds_prefill(hc1):
    plan = compile_spatial(graphs("llama3.1-8b").decode, hc1)
    pipe = Pipeline(plan, hc1, kv_bits=16)
    short, long = pipe.evaluate(512), pipe.evaluate(2048)
    assert long.critical_path_by_kind["attention"] > 3 * short.critical_path_by_kind["attention"]
    series = pipe.slowest(np.array([512.0, 2048.0]))
    assert series[0] == short.slowest_cycles and series[1] == long.slowest_cycles


def test_power_adds_static_and_activity(tiny_chip):
    report = sim("tiny-llama", tiny_chip, context=63)
    assert report.extra["power_w"] > tiny_chip.energy.static_power_w
    assert report.energy_j_per_token == pytest.approx(report.extra["power_w"] / report.tokens_per_s_total)


@pytest.mark.parametrize("model", ["tiny-llama", "tiny-hybrid", "tiny-compact"])
def test_fused_attention_after_recognition_moves_the_same_bytes(hc1, model):
    from compiler.passes.pipeline import recognize
    from simulator.api import ModelGraphs, SimOptions, load_model_graphs
    from simulator.spatial import simulate_spatial

    fused = recognize(load_model_graphs(model).decode)        # a fresh copy: recognition works in place
    assert any(node.op.value == "Attention" for node in fused.nodes())
    raw = sim(model, hc1, context=100, prompt_len=1)
    rec = simulate_spatial(ModelGraphs(model, fused, None), hc1, SimOptions(context=100, prompt_len=1))
    for key in ("sram_bytes_per_token", "activation_bytes_per_token", "weight_macs_per_token",
                "attention_macs_per_token"):
        assert rec.extra[key] == raw.extra[key], key
    # Fused norms, RoPE and attention are one pass each: never slower than the decomposed graph.
    assert rec.extra["critical_path_s"] <= raw.extra["critical_path_s"]
