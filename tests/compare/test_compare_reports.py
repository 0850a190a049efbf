"""The project's CI gate (the checked-in baseline's comparison at 5%) and the three report files it
writes: every run in report.json, Markdown rows, a self-contained HTML page, figures within the
physical bounds the roofline states."""

from __future__ import annotations

import base64
import json
import re

import pytest

from simulator.compare.figures import FLOPS_PER_MAC

SLACK = 1 + 1e-9
pytestmark = pytest.mark.slow   # the CI comparison: six full-size runs, about 10-20 s on 2 cores


def test_ci_gate_passes_against_checked_in_baseline(ci_compare):
    code, out, _ = ci_compare
    stdout = (out / "stdout.txt").read_text()
    assert code == 0, f"the gate failed; if the change is intended, refresh the baseline (README, 'Comparing " \
                      f"designs'):\n{stdout}"
    assert "gate: PASS" in stdout


@pytest.fixture(scope="module")
def report(ci_compare):
    _, out, _ = ci_compare
    return json.loads((out / "report.json").read_text())


def test_report_json_has_every_run(ci_compare, report):
    _, _, baseline = ci_compare
    m = baseline["matrix"]
    assert len(report["runs"]) == len(m["targets"]) * len(m["models"]) * len(m["contexts"]) * len(m["batches"])
    assert {r["key"] for r in report["runs"]} == set(baseline["runs"])
    for run in report["runs"]:
        assert run["error"] is None, run["error"]
        r = run["report"]
        assert (r["model"], r["context"], r["batch"]) == (run["model"], run["context"], run["batch"])
        for field in ("tokens_per_s_per_user", "ttft_s", "tpot_s", "energy_j_per_token", "fits", "per_layer",
                      "assumptions", "extra"):
            assert field in r
    assert report["gate"]["passed"] and report["gate"]["baseline"].endswith("ci-compare.json")


def test_figures_respect_their_roofs(report):
    """Derived figures restate the simulator's own: power x time = energy, and no run beats its roof."""
    checked = 0
    for run in report["runs"]:
        r, d = run["report"], run["derived"]
        if not r["fits"]:
            assert d["achieved_flops_per_s"] is None and d["power_w"] is None
            continue
        assert d["power_w"] == pytest.approx(r["energy_j_per_token"] * r["tokens_per_s_total"], rel=1e-12)
        assert d["flops_per_token"] == pytest.approx(FLOPS_PER_MAC * r["extra"]["macs_per_token"], rel=1e-12)
        # Bytes per token x tokens/s is the achieved bandwidth, never above its peak.
        assert d["memory_bytes_per_token"] * r["tokens_per_s_total"] <= r["peak_bandwidth_bytes_per_s"] * SLACK
        roof = min(d["peak_flops_per_s"], d["arithmetic_intensity_flops_per_byte"] * d["peak_bandwidth_bytes_per_s"])
        assert 0 < d["achieved_flops_per_s"] <= roof * SLACK, run["key"]
        checked += 1
    assert checked >= 3
    # Spatial chips report their die area; programmable descriptions have none, and say so.
    kinds = {t["label"]: t["kind"] for t in report["targets"]}
    for run in report["runs"]:
        area = run["derived"]["area_mm2"]
        assert (area is None) == (kinds[run["target"]] == "programmable")


def test_roofline_coordinates_match_published_figures(report):
    """REFERENCE.md: Llama 3.1 8B decode is about 15.0 GFLOP per token plus 524288 x context FLOP of
    attention (derived from the model config); H100 SXM's dense bf16 peak is 989 TFLOP/s (spec)."""
    llama = [r for r in report["runs"] if r["model"] == "llama3.1-8b" and r["report"]["fits"]]
    assert {r["target"] for r in llama} >= {"taalas-hc1", "matx-one", "h100-sxm"}
    for run in llama:
        expected = 15.0e9 + 524288 * run["context"]
        assert run["derived"]["flops_per_token"] == pytest.approx(expected, rel=0.02), run["key"]
    for run in (r for r in llama if r["target"] == "h100-sxm"):
        assert run["derived"]["peak_flops_per_s"] == pytest.approx(989e12, rel=0.005)
        assert run["derived"]["peak_bandwidth_bytes_per_s"] == 3.35e12


def test_markdown_has_a_row_per_run(ci_compare, report):
    _, out, _ = ci_compare
    md = (out / "report.md").read_text()
    assert md.startswith("## Tessera comparison") and "**Gate: PASS**" in md
    header = next(line for line in md.splitlines() if line.startswith("| model | target | context |"))
    width = header.count("|")
    for run in report["runs"]:
        r = run["report"]
        prefix = f"| {run['model']} | {run['target']} | {run['context']:,} | {run['batch']} | "
        rows = [line for line in md.splitlines() if line.startswith(prefix)]
        assert len(rows) == 1, prefix
        assert rows[0].count("|") == width
        assert ("| yes |" in rows[0]) == r["fits"]
    assert md.count("|---|") >= 2   # the run table and the target table


def test_html_is_self_contained(ci_compare, report):
    _, out, _ = ci_compare
    page = (out / "report.html").read_text()
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:|#)""", page)   # nothing loaded from elsewhere
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 5   # throughput, roofline, energy, area and power, per-layer time
    for image in images:
        png = base64.b64decode(image)
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        assert width > 300 and height > 150
    for run in report["runs"]:
        assert f"<td class=\"text\">{run['target']}</td>" in page
    for title in ("Roofline", "Energy per token", "Power and area", "Per-layer time breakdown"):
        assert f"<h2>{title}</h2>" in page

