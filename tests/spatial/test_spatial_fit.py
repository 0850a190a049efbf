"""What does not fit says so, and by how much: KV over SRAM capacity, weights over the die."""

from __future__ import annotations

import dataclasses
import math

import pytest
from spatial_helpers import graphs, sim

from compiler.cli import main
from simulator.spatial.capacity import capacity_of
from simulator.spatial.context import context_model
from simulator.spatial.simulate import workload_of

KV_PER_TOKEN = 131072       # Llama 3.1 8B at bf16 (REFERENCE.md)


def test_full_context_kv_does_not_fit_and_says_by_how_much(hc1):
    report = sim("llama3.1-8b", hc1, context=131072, prompt_len=131072)
    need = 131072 * KV_PER_TOKEN
    capacity = hc1.sram.sram_bytes - hc1.sram.adapter_bytes
    assert report.fits is False
    assert report.extra["sram_over_capacity_bytes"] == need - capacity
    assert "KV cache does not fit on the die" in report.fits_reason
    assert "16.00 GiB" in report.fits_reason and f"over by {(need - capacity) / 2**30:,.2f} GiB" in report.fits_reason
    assert report.bottleneck.startswith("SRAM capacity")
    assert math.isnan(report.tokens_per_s_per_user) and math.isnan(report.ttft_s)
    assert report.extra["max_context_one_user"] == capacity // KV_PER_TOKEN
    assert report.extra["concurrency_users"] == 0
    # The hypothetical figures stay available, labelled, for a reader who wants them.
    assert report.extra["if_it_fit"]["tokens_per_s_per_user"] > 0


def test_cli_sim_reports_the_overflow(capsys):
    assert main(["sim", "--model", "llama3.1-8b", "--target", "taalas-hc1", "--context", "131072"]) == 0
    out = capsys.readouterr().out
    assert "NO - KV cache does not fit on the die" in out and "over by 15.64 GiB" in out


def test_concurrency_is_sram_over_cache_per_user(hc1):
    report = sim("llama3.1-8b", hc1, context=1024, prompt_len=1)
    capacity = hc1.sram.sram_bytes - hc1.sram.adapter_bytes
    assert report.extra["concurrency_users"] == capacity // (1024 * KV_PER_TOKEN)
    too_many = sim("llama3.1-8b", hc1, context=1024, batch=report.extra["concurrency_users"] + 1, prompt_len=1)
    assert too_many.fits is False and "user(s) fit at this context" in too_many.fits_reason


def test_weights_over_the_die_report_the_smallest_die(hc1):
    small = dataclasses.replace(hc1, die=dataclasses.replace(hc1.die, die_area_mm2=300.0))
    report = sim("llama3.1-8b", small, context=1024, prompt_len=1)
    assert report.fits is False and report.bottleneck == "die area"
    assert report.extra["min_die_area_mm2"] > 300.0
    assert report.extra["area_over_budget_mm2"] == pytest.approx(report.extra["area_mm2"]["total_mm2"] - 300.0)
    assert f"{report.extra['min_die_area_mm2']:,.1f} mm2" in report.fits_reason
    # One lane per region is the minimum: the smallest die holds exactly that plan.
    just = dataclasses.replace(hc1, die=dataclasses.replace(hc1.die, die_area_mm2=report.extra["min_die_area_mm2"]))
    assert sim("llama3.1-8b", just, context=1024, prompt_len=1).fits


@pytest.mark.parametrize("model, kind, unbounded", [
    ("tiny-llama", "dense", False), ("tiny-mamba2", "recurrent", True), ("tiny-grumem", "chunked", True),
    ("tiny-compact", "compacted", False), ("tiny-hybrid", "dense", False),
])
def test_context_models(hc1, model, kind, unbounded):
    workload = workload_of(graphs(model).decode)
    ctx = context_model(model, any(not isinstance(e, int) for e in workload.cache_elements.values()))
    assert ctx.kind == kind and ctx.unbounded == unbounded
    cap = capacity_of(workload, ctx, hc1, 16, ctx.past_len(4096))
    assert (cap.max_context is None) == unbounded
