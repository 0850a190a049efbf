"""Sweeps on a local dask cluster: results, failures, resume, Pareto outputs, agreement with `simulate()`."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from compiler.cli import main
from simulator.api import SimOptions, simulate
from simulator.hardware import load_hardware
from simulator.sweep import load_sweep, plan_sweep, run_sweep
from simulator.sweep.pareto import non_dominated

# 8 points; memory.sram_bytes = 1024 cannot stage tiny-llama's first RMSNorm: 4 points fail at lowering.
SWEEP = """
[sweep]
target = "matx-one"
models = ["tiny-llama"]
contexts = [128]

[parameters]
"memory.sram_bytes" = [1024, 536870912]
clock_hz = [1.0e9, 2.0e9]
"links.chips" = [1, 2]

[formulas]
cost = "links.chips * 1000 + clock_hz / 1e6"

[objectives]
minimize = ["power_w", "cost", "area_mm2"]
"""


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep")
    path = folder / "tiny.toml"
    path.write_text(SWEEP)
    spec = load_sweep(path)
    plan = plan_sweep(spec)
    outcome = run_sweep(spec, plan, folder / "out", workers=1, processes=False, progress=False)
    return spec, plan, outcome


def test_every_point_is_recorded_and_failures_do_not_stop_the_sweep(swept):
    spec, plan, outcome = swept
    records = _records(outcome.out_dir / "results.jsonl")
    assert sorted(r["id"] for r in records) == sorted(p.id for p in plan.points)
    failed = [r for r in records if r["status"] == "error"]
    assert len(failed) == 4 and all(r["params"]["memory.sram_bytes"] == 1024 for r in failed)
    assert all("SRAM staging" in r["error"] for r in failed)
    ok = [r for r in records if r["status"] == "ok"]
    assert len(ok) == 4 and all(r["metrics"]["tokens_per_s_total"] > 0 for r in ok)
    assert (outcome.computed, outcome.resumed, outcome.errors, outcome.ok) == (8, 0, 4, 4)


def test_pareto_fronts_match_a_brute_force_check(swept):
    spec, plan, outcome = swept
    pareto = json.loads((outcome.out_dir / "pareto.json").read_text())
    assert set(pareto["objectives"]) == {"power_w", "cost"}
    assert "area_mm2" in pareto["unavailable_objectives"]
    ok = [r for r in _records(outcome.out_dir / "results.jsonl") if r["status"] == "ok"]
    cost = {r["id"]: r["params"]["links.chips"] * 1000 + r["params"]["clock_hz"] / 1e6 for r in ok}
    (group,) = pareto["groups"]
    for name, value in (("power_w", lambda r: r["metrics"]["power_w"]), ("cost", lambda r: cost[r["id"]])):
        # brute force: a point is on the front unless another is at least as good in both and better in one
        pts = [(r["id"], r["metrics"]["tokens_per_s_total"], value(r)) for r in ok]
        expected = {i for i, t, c in pts
                    if not any(t2 >= t and c2 <= c and (t2 > t or c2 < c) for _, t2, c2 in pts)}
        assert {e["id"] for e in group["fronts"][name]} == expected
    joint = np.array([[-r["metrics"]["tokens_per_s_total"], r["metrics"]["power_w"], cost[r["id"]]] for r in ok])
    assert {e["id"] for e in group["fronts"]["joint"]} == {r["id"] for r, k in zip(ok, non_dominated(joint)) if k}
    assert (outcome.out_dir / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_front_points_agree_with_simulate(swept):
    """Each front point's written description, through the full `simulate()` path, gives the sweep's figures."""
    spec, plan, outcome = swept
    pareto = json.loads((outcome.out_dir / "pareto.json").read_text())
    records = {r["id"]: r for r in _records(outcome.out_dir / "results.jsonl")}
    entries = {e["id"]: e for front in pareto["groups"][0]["fronts"].values() for e in front}
    assert entries
    for point_id, entry in entries.items():
        target = outcome.out_dir / entry["target_toml"]
        chip = load_hardware(target)
        assert chip.links.chips == entry["params"]["links.chips"] and chip.clock_hz == entry["params"]["clock_hz"]
        report = simulate("tiny-llama", str(target), SimOptions(context=128, prompt_len=128))
        metrics = records[point_id]["metrics"]
        for name in ("tokens_per_s_total", "tpot_s", "energy_j_per_token", "hbm_bytes_per_token", "fits"):
            assert metrics[name] == getattr(report, name), name


def test_resume_computes_only_the_missing_points(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(SWEEP)
    spec = load_sweep(path)
    plan = plan_sweep(spec)
    out = tmp_path / "out"
    run_sweep(spec, plan, out, workers=1, processes=False, progress=False)
    results = out / "results.jsonl"
    lines = results.read_text().splitlines(keepends=True)
    kept = 3
    results.write_text("".join(lines[:kept]) + lines[kept][:20])   # as if killed while writing line 4
    outcome = run_sweep(spec, plan, out, workers=1, processes=False, progress=False)
    assert (outcome.resumed, outcome.computed) == (kept, len(plan.points) - kept)
    records = _records(results)
    assert len(records) == len(plan.points) and len({r["id"] for r in records}) == len(plan.points)
    again = run_sweep(spec, plan, out, workers=1, processes=False, progress=False)
    assert (again.resumed, again.computed) == (len(plan.points), 0)
    retried = run_sweep(spec, plan, out, workers=1, processes=False, progress=False, retry_errors=True)
    assert (retried.resumed, retried.computed) == (4, 4)


def test_cli_sweep_on_two_worker_processes(tmp_path, capsys):
    path = tmp_path / "tiny.toml"
    path.write_text(SWEEP.replace('"links.chips" = [1, 2]', '"links.chips" = [1]'))
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--workers", "2", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "4 points: 4 computed" in printed and "points/s" in printed and "on 2 worker(s)" in printed
    assert len(_records(tmp_path / "out" / "results.jsonl")) == 4


def test_cli_bad_sweep_fails_before_any_work(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(SWEEP.replace('"links.chips"', '"links.chipz"'))
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert str(path) in error and "links.chipz" in error
    assert not out.exists()


def test_expansion_order_does_not_matter_for_ids(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(SWEEP)
    swapped = tmp_path / "swapped.toml"
    swapped.write_text(SWEEP.replace('clock_hz = [1.0e9, 2.0e9]\n"links.chips" = [1, 2]',
                                     '"links.chips" = [2, 1]\nclock_hz = [2.0e9, 1.0e9]'))
    a, b = (plan_sweep(load_sweep(p)) for p in (path, swapped))
    assert {p.id for p in a.points} == {p.id for p in b.points}
    assert len(a.points) == len(list(itertools.product([1024, 536870912], [1e9, 2e9], [1, 2])))


def test_runs_on_an_existing_scheduler(tmp_path):
    """--scheduler: connect to a running cluster instead of starting one."""
    from distributed import LocalCluster

    path = tmp_path / "tiny.toml"
    path.write_text(SWEEP.replace("[1024, 536870912]", "[536870912]").replace("[1.0e9, 2.0e9]", "[1.0e9]"))
    spec = load_sweep(path)
    plan = plan_sweep(spec)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        outcome = run_sweep(spec, plan, tmp_path / "out", scheduler=cluster.scheduler_address, progress=False)
    assert (outcome.workers, outcome.computed, outcome.ok) == (1, 2, 2)
