"""report.json: every run's report fields plus the derived figures and the gate's findings.

The Markdown and HTML views are built from this same dictionary, so they can never disagree
with the data (and can be rebuilt from a saved report.json).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from simulator.compare.figures import CONVENTIONS, derived
from simulator.compare.gate import GateResult
from simulator.compare.matrix import Matrix
from simulator.compare.run import RunResult

REPORT_FORMAT = "tessera-compare-report"
REPORT_VERSION = 1


def comparison_json(matrix: Matrix, results: list[RunResult], gate: GateResult | None,
                    baseline_path: str | None = None) -> dict[str, Any]:
    runs = []
    for r in results:
        runs.append({
            "key": r.run.key, "model": r.run.model, "target": r.run.target, "context": r.run.context,
            "batch": r.run.batch, "seconds": round(r.seconds, 3), "error": r.error,
            "derived": derived(r.report) if r.report else None, "report": r.report,
        })
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "settings": matrix.settings.to_json(),
        "matrix": matrix.to_json(),
        "conventions": CONVENTIONS,
        "targets": [t.__dict__ for t in matrix.targets],
        "models": [label for label, _ in matrix.models],
        "runs": runs,
        "gate": None if gate is None else {**gate.to_json(), "baseline": baseline_path},
    }


def write_reports(out: str | Path, data: dict[str, Any]) -> dict[str, Path]:
    """report.json, report.md and report.html under `out` (created); returns their paths."""
    from simulator.compare.html import render_html
    from simulator.compare.markdown import render_markdown

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json", "md": out / "report.md", "html": out / "report.html"}
    paths["json"].write_text(json.dumps(_finite(data), indent=2) + "\n")
    paths["md"].write_text(render_markdown(data))
    paths["html"].write_text(render_html(data))
    return paths


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
