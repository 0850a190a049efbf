"""The regression gate, both ways, on a baseline written by --update-baseline from real runs and then
perturbed: past the tolerance in the bad direction fails and names the figure; within tolerance or in
the good direction passes."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from compare_helpers import TINY_MATRIX
from onnx import TensorProto, helper, numpy_helper

from compiler.cli import main
from simulator.compare.gate import DIRECTIONS, GATED, check, format_gate, load_baseline
from simulator.compare.matrix import Run
from simulator.compare.run import RunResult

FITTING = "tiny-llama/h100-sxm/4096/1"
NOT_FITTING = "tiny-llama/tiny-spatial/16384/1"


def gate(tmp_path, baseline: dict, capsys, tolerance: str = "5%") -> tuple[int, str, dict]:
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(baseline))
    code = main(["compare", *TINY_MATRIX, "--out", str(tmp_path / "out"), "--baseline", str(path),
                 "--tolerance", tolerance, "--jobs", "1", "--no-progress"])
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    return code, capsys.readouterr().out, report


def test_update_baseline_round_trip(tiny_baseline, tmp_path, capsys):
    baseline = json.loads(tiny_baseline.read_text())
    assert set(baseline["runs"]) == {f"tiny-llama/{t}/{c}/1" for t in ("tiny-spatial", "h100-sxm")
                                     for c in (64, 4096, 16384)}
    assert baseline["runs"][NOT_FITTING]["fits"] is False
    assert baseline["runs"][NOT_FITTING]["tokens_per_s_per_user"] is None
    code, out, report = gate(tmp_path, baseline, capsys, tolerance="0%")
    assert code == 0, out
    # The simulator is deterministic: every figure comes back exactly, so even a 0% gate passes.
    numeric = [f for f in report["gate"]["findings"] if f["change"] is not None]
    assert len(numeric) == 5 * len(DIRECTIONS)
    assert all(f["change"] == 0 for f in numeric), [f for f in numeric if f["change"]]
    assert report["gate"]["passed"] and "gate: PASS" in out
    # The report's figures are the ones the baseline recorded.
    run = next(r for r in report["runs"] if r["key"] == FITTING)
    assert run["report"]["tokens_per_s_per_user"] == baseline["runs"][FITTING]["tokens_per_s_per_user"]


@pytest.fixture(scope="module")
def tiny_results(tiny_baseline):
    """The tiny comparison's runs as the gate sees them, read back from its report.json."""
    report = json.loads((tiny_baseline.parent / "first" / "report.json").read_text())
    return [RunResult(Run(r["model"], r["model"], r["target"], r["target"], r["context"], r["batch"]), r["report"],
                      r["error"], r["seconds"]) for r in report["runs"]]


def perturbed(tiny_baseline, tmp_path, figure: str, move: float, tolerances: dict | None = None):
    """The baseline with one figure set so that the new run sits `move` from it in the bad direction
    (negative: the good direction): new = baseline x (1 - move) when higher is better, else x (1 + move)."""
    data = json.loads(tiny_baseline.read_text())
    value = data["runs"][FITTING][figure]
    data["runs"][FITTING][figure] = value / (1 - move) if DIRECTIONS[figure] else value / (1 + move)
    data["tolerances"] = tolerances or {}
    path = tmp_path / "perturbed.json"
    path.write_text(json.dumps(data))
    return load_baseline(path)


@pytest.mark.parametrize("figure", list(DIRECTIONS))
@pytest.mark.parametrize("move, verdict", [(0.10, "regression"), (0.049, "within"), (-0.049, "within"),
                                           (-0.50, "improvement")])
def test_gate_directions(tiny_baseline, tiny_results, tmp_path, figure, move, verdict):
    result = check(perturbed(tiny_baseline, tmp_path, figure, move), tiny_results, 0.05)
    moved = [f for f in result.findings if f.verdict != "within"]
    if verdict == "within":
        assert result.passed and not moved
    else:
        assert [(f.run, f.figure, f.verdict) for f in moved] == [(FITTING, figure, verdict)]
        assert result.passed == (verdict == "improvement")
        assert moved[0].change == pytest.approx(-move if DIRECTIONS[figure] else move, rel=1e-9)


def test_gate_command_fails_past_tolerance_and_names_the_figure(tiny_baseline, tmp_path, capsys):
    figure = "tokens_per_s_total"
    data = json.loads(tiny_baseline.read_text())
    data["runs"][FITTING][figure] = data["runs"][FITTING][figure] * (1.10 if DIRECTIONS[figure] else 1 / 1.10)
    code, out, report = gate(tmp_path, data, capsys)
    assert code == 1
    assert f"FAIL {FITTING} {figure}" in out and out.count("  FAIL ") == 1
    md = (tmp_path / "out" / "report.md").read_text()
    assert "**Gate: FAIL**" in md and f"| `{FITTING}` | {figure} |" in md
    # Within tolerance (the same move, a wider gate) the command passes.
    code, out, report = gate(tmp_path, data, capsys, tolerance="12%")
    assert code == 0 and "gate: PASS" in out


def test_per_figure_tolerance_in_baseline_overrides(tiny_baseline, tiny_results, tmp_path):
    loose = perturbed(tiny_baseline, tmp_path, "tpot_s", 0.10, {"tpot_s": "15%"})
    assert check(loose, tiny_results, 0.05).passed
    tight = perturbed(tiny_baseline, tmp_path, "tpot_s", 0.10, {"tpot_s": "8%"})
    failures = check(tight, tiny_results, 0.50).failures
    assert [(f.figure, f.tolerance) for f in failures] == [("tpot_s", 0.08)]


def test_fits_true_to_false_fails(tiny_baseline, tmp_path, capsys):
    baseline = json.loads(tiny_baseline.read_text())
    baseline["runs"][NOT_FITTING] = dict(baseline["runs"][FITTING])   # the baseline says it fitted
    code, out, _ = gate(tmp_path, baseline, capsys)
    assert code == 1
    assert f"FAIL {NOT_FITTING} fits" in out
    assert f"FAIL {NOT_FITTING} tokens_per_s_per_user" in out   # figures that are no longer available


def test_fits_false_to_true_is_an_improvement(tiny_baseline, tiny_results, tmp_path):
    data = json.loads(tiny_baseline.read_text())
    data["runs"][FITTING] = {**{f: None for f in DIRECTIONS}, "fits": False}
    path = tmp_path / "b.json"
    path.write_text(json.dumps(data))
    result = check(load_baseline(path), tiny_results, 0.05)
    assert result.passed
    assert {f.figure for f in result.findings if f.run == FITTING and f.verdict == "improvement"} == set(GATED)


def test_missing_run_fails_and_new_run_is_reported(tiny_baseline, tiny_results, tmp_path):
    data = json.loads(tiny_baseline.read_text())
    data["runs"]["tiny-llama/h100-sxm/999/1"] = data["runs"].pop(FITTING)
    path = tmp_path / "b.json"
    path.write_text(json.dumps(data))
    result = check(load_baseline(path), tiny_results, 0.05)
    assert [(f.run, f.verdict) for f in result.failures] == [("tiny-llama/h100-sxm/999/1", "missing")]
    text = format_gate(result)
    assert "FAIL tiny-llama/h100-sxm/999/1 run" in text and "not in this comparison" in text
    assert f"note {FITTING} run" in text and "not in the baseline" in text


def test_update_baseline_keeps_tolerances(tiny_baseline, tmp_path, capsys):
    baseline = json.loads(tiny_baseline.read_text())
    baseline["tolerances"] = {"ttft_s": "12%"}
    baseline["runs"][FITTING]["ttft_s"] *= 3
    path = tmp_path / "b.json"
    path.write_text(json.dumps(baseline))
    assert main(["compare", *TINY_MATRIX, "--out", str(tmp_path / "o"), "--baseline", str(path),
                 "--update-baseline", "--jobs", "1", "--no-progress"]) == 0
    rewritten = json.loads(path.read_text())
    assert rewritten["tolerances"] == {"ttft_s": "12%"}
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert set(rewritten["runs"]) == {r["key"] for r in report["runs"]}
    for run in report["runs"]:
        recorded = rewritten["runs"][run["key"]]
        assert recorded == {**{f: run["report"][f] for f in DIRECTIONS}, "fits": run["report"]["fits"]}


def test_failing_run_is_reported_and_gated(tmp_path, capsys):
    """A graph without a decode step cannot be simulated: that run fails, the others still report."""
    mlp = tmp_path / "mlp.onnx"
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "mlp",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["seq", 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["seq", 4])],
                              [numpy_helper.from_array(np.ones((8, 4), np.float32), "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), mlp)
    args = ["compare", "--targets", "h100-sxm", "--models", "tiny-llama", str(mlp), "--contexts", "64",
            "--out", str(tmp_path / "out"), "--jobs", "1", "--no-progress"]
    assert main(args) == 1
    assert "run failed: mlp on h100-sxm" in capsys.readouterr().err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    runs = {r["model"]: r for r in report["runs"]}
    assert "no decode graph" in runs["mlp"]["error"] and runs["mlp"]["report"] is None
    assert runs["tiny-llama"]["error"] is None and runs["tiny-llama"]["report"]["fits"]
    assert "`mlp/h100-sxm/64/1`: error: ValueError" in (tmp_path / "out" / "report.md").read_text()
    # Recorded in a baseline, the known failure passes the gate; a baseline in which it ran fails.
    path = tmp_path / "b.json"
    assert main([*args, "--baseline", str(path), "--update-baseline"]) == 0
    results = [RunResult(Run(r["model"], r["model"], r["target"], r["target"], r["context"], r["batch"]),
                         r["report"], r["error"], r["seconds"]) for r in report["runs"]]
    assert check(load_baseline(path), results, 0.05).passed
    data = json.loads(path.read_text())
    assert "error" in data["runs"]["mlp/h100-sxm/64/1"]
    data["runs"]["mlp/h100-sxm/64/1"] = data["runs"]["tiny-llama/h100-sxm/64/1"]
    path.write_text(json.dumps(data))
    capsys.readouterr()
    assert main([*args, "--baseline", str(path)]) == 1
    assert "FAIL mlp/h100-sxm/64/1 run" in capsys.readouterr().out
