"""The regression gate: compare a comparison's figures with a baseline file, figure by figure.

Each gated figure has a good direction. A figure fails when it moves past its tolerance in the
bad direction, relative to the baseline: a throughput below baseline x (1 - tolerance), a time or
an energy above baseline x (1 + tolerance); `fits` fails when it goes from true to false. A figure
the baseline had that is now unavailable (the run no longer fits, or fails) fails too; one that
becomes available is an improvement. A baseline run missing from the new results fails; a new run
the baseline lacks is reported and passes. The tolerance is `--tolerance` unless the baseline's
`tolerances` table names the figure.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from simulator.compare.figures import number
from simulator.compare.matrix import CompareError, Matrix, Settings
from simulator.compare.run import RunResult

BASELINE_FORMAT = "tessera-compare-baseline"
BASELINE_VERSION = 1

# figure -> True when higher is better
DIRECTIONS: dict[str, bool] = {
    "tokens_per_s_per_user": True,
    "tokens_per_s_total": True,
    "ttft_s": False,
    "tpot_s": False,
    "energy_j_per_token": False,
}
GATED = (*DIRECTIONS, "fits")


def parse_tolerance(text: str, where: str = "--tolerance") -> float:
    """'5%' -> 0.05; a bare fraction '0.05' too. A bare number above 1 is ambiguous and refused."""
    raw = str(text).strip()
    match = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)\s*(%?)", raw)
    if not match:
        raise CompareError(f"{where} {text!r}: expected a percentage like 5% or a fraction like 0.05")
    value = float(match.group(1))
    if match.group(2):
        return value / 100
    if value > 1:
        raise CompareError(f"{where} {text!r}: a bare number above 1 is ambiguous; write {raw}% or {value / 100:g}")
    return value


@dataclass(frozen=True)
class Baseline:
    path: Path
    settings: dict[str, Any]
    tolerances: dict[str, str]          # figure -> tolerance text, overriding --tolerance
    runs: dict[str, dict[str, Any]]     # run key -> {figure: value} or {"error": message}


def load_baseline(path: str | Path) -> Baseline:
    """Read and validate a baseline file; every problem is a CompareError naming the file and field."""
    path = Path(path)
    if not path.is_file():
        raise CompareError(f"{path}: no such baseline file (make one with --update-baseline)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CompareError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != BASELINE_FORMAT:
        raise CompareError(f"{path}: not a tessera compare baseline (expected \"format\": \"{BASELINE_FORMAT}\")")
    if data.get("version") != BASELINE_VERSION:
        raise CompareError(f"{path}: baseline version {data.get('version')!r}; this tessera reads version "
                           f"{BASELINE_VERSION} (regenerate it with --update-baseline)")
    for name in ("settings", "runs"):
        if not isinstance(data.get(name, {}), dict):
            raise CompareError(f"{path}: field {name!r} must be an object")
    tolerances = _checked_tolerances(path, data)
    runs = data.get("runs", {})
    for key, figures in runs.items():
        if not isinstance(figures, dict):
            raise CompareError(f"{path}: runs.{key}: must be an object of figures")
        if "error" in figures:
            continue
        missing = [f for f in GATED if f not in figures]
        if missing:
            raise CompareError(f"{path}: runs.{key}: missing figure(s) {', '.join(missing)}")
        for figure in DIRECTIONS:
            value = figures[figure]
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise CompareError(f"{path}: runs.{key}.{figure}: expected a number or null, got {value!r}")
        if not isinstance(figures["fits"], bool):
            raise CompareError(f"{path}: runs.{key}.fits: expected true or false")
    return Baseline(path, data.get("settings", {}), tolerances, runs)


def tolerances_to_keep(path: str | Path) -> dict[str, str]:
    """The per-figure tolerances of a baseline about to be rewritten (none if the file is new). Any
    baseline version may be refreshed, but a file that is not a baseline is never overwritten."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict) or data.get("format") != BASELINE_FORMAT:
        raise CompareError(f"{path}: exists and is not a tessera compare baseline; refusing to overwrite it")
    return _checked_tolerances(path, data)


def _checked_tolerances(path: Path, data: dict[str, Any]) -> dict[str, str]:
    tolerances = data.get("tolerances", {})
    if not isinstance(tolerances, dict):
        raise CompareError(f"{path}: field 'tolerances' must be an object")
    for figure, text in tolerances.items():
        if figure not in GATED:
            raise CompareError(f"{path}: tolerances.{figure}: not a gated figure; gated: {', '.join(GATED)}")
        parse_tolerance(text, f"{path}: tolerances.{figure}")
    return dict(tolerances)


def check_settings(baseline: Baseline, settings: Settings) -> None:
    """Figures made with other options (prompt, precision) are not comparable: refuse, saying which."""
    current = settings.to_json()
    differ = [f"{k}: baseline {baseline.settings.get(k)!r}, now {v!r}" for k, v in current.items()
              if baseline.settings.get(k) != v]
    if differ:
        raise CompareError(f"{baseline.path}: made with other settings ({'; '.join(differ)}); "
                           "run with the baseline's settings or refresh it with --update-baseline")


def baseline_figures(result: RunResult) -> dict[str, Any]:
    if result.error is not None:
        return {"error": result.error}
    report = result.report or {}
    figures: dict[str, Any] = {name: report.get(name) for name in DIRECTIONS}
    figures["fits"] = bool(report.get("fits"))
    return figures


def write_baseline(path: str | Path, matrix: Matrix, results: list[RunResult],
                   tolerances: dict[str, str] | None = None) -> None:
    """Write (or rewrite) a baseline from these results; per-figure tolerances are kept."""
    data = {
        "format": BASELINE_FORMAT,
        "version": BASELINE_VERSION,
        "refresh": "rerun the same tessera compare command with --update-baseline",
        "matrix": matrix.to_json(),
        "settings": matrix.settings.to_json(),
        "tolerances": dict(tolerances or {}),
        "runs": {r.run.key: baseline_figures(r) for r in results},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


@dataclass(frozen=True)
class Finding:
    run: str
    figure: str
    baseline: Any
    new: Any
    change: float | None        # relative change (new - baseline) / |baseline|; None where undefined
    tolerance: float
    verdict: str                # "regression", "improvement", "within", "missing", "new"
    why: str


@dataclass
class GateResult:
    tolerance: float
    findings: list[Finding] = field(default_factory=list)
    checked: int = 0                # figures compared

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.verdict in ("regression", "missing")]

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "tolerance": self.tolerance, "figures_checked": self.checked,
                "findings": [{k: _finite(v) for k, v in asdict(f).items()} for f in self.findings]}


def check(baseline: Baseline, results: list[RunResult], tolerance: float) -> GateResult:
    tolerances = {f: parse_tolerance(t) for f, t in baseline.tolerances.items()}
    gate = GateResult(tolerance)
    new = {r.run.key: r for r in results}
    for key, base in baseline.runs.items():
        if key not in new:
            gate.findings.append(Finding(key, "run", None, None, None, tolerance, "missing",
                                         "in the baseline but not in this comparison"))
            continue
        gate.findings += _check_run(key, base, new[key], tolerances, tolerance, gate)
    for key in new:
        if key not in baseline.runs:
            gate.findings.append(Finding(key, "run", None, None, None, tolerance, "new",
                                         "not in the baseline (not gated)"))
    return gate


def _check_run(key: str, base: dict[str, Any], result: RunResult, tolerances: dict[str, float],
               default: float, gate: GateResult) -> list[Finding]:
    if "error" in base:
        if result.error is not None:
            return []   # a known failure that still fails: nothing to compare
        return [Finding(key, "run", base["error"], "runs", None, default, "improvement",
                        "failed in the baseline, runs now")]
    if result.error is not None:
        return [Finding(key, "run", "ran", result.error, None, default, "regression",
                        f"ran in the baseline, fails now ({result.error})")]
    report = result.report or {}
    findings = []
    gate.checked += 1
    fits_now = bool(report.get("fits"))
    if base["fits"] and not fits_now:
        findings.append(Finding(key, "fits", True, False, None, 0.0, "regression",
                                f"fitted in the baseline, does not now ({report.get('fits_reason', '')})"))
    elif fits_now and not base["fits"]:
        findings.append(Finding(key, "fits", False, True, None, 0.0, "improvement", "fits now"))
    for figure, higher_is_better in DIRECTIONS.items():
        gate.checked += 1
        findings.append(_compare(key, figure, number(base[figure]), number(report.get(figure)),
                                 higher_is_better, tolerances.get(figure, default)))
    return findings


def _compare(key: str, figure: str, base: float, new: float, higher_is_better: bool, tolerance: float) -> Finding:
    def finding(change: float | None, verdict: str, why: str) -> Finding:
        return Finding(key, figure, _finite(base), _finite(new), change, tolerance, verdict, why)

    if not math.isfinite(base) and not math.isfinite(new):
        return finding(None, "within", "not available in either")
    if not math.isfinite(new):
        return finding(None, "regression", "available in the baseline, not now")
    if not math.isfinite(base):
        return finding(None, "improvement", "not available in the baseline, available now")
    if base == 0:
        worse = new < 0 if higher_is_better else new > 0
        better = new > 0 if higher_is_better else new < 0
        return finding(None, "regression" if worse else "improvement" if better else "within", "baseline is 0")
    change = (new - base) / abs(base)
    bad = -change if higher_is_better else change
    direction = "higher" if higher_is_better else "lower"
    if bad > tolerance:
        return finding(change, "regression", f"moved {abs(change):.1%} the wrong way ({direction} is better), "
                                             f"tolerance {tolerance:.1%}")
    if -bad > tolerance:
        return finding(change, "improvement", f"moved {abs(change):.1%} the good way")
    return finding(change, "within", "within tolerance")


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def format_gate(gate: GateResult) -> str:
    """Plain text for the terminal: the verdict, then each failing figure and each improvement."""
    lines = []
    for f in gate.findings:
        if f.verdict in ("regression", "missing"):
            lines.append(f"  FAIL {f.run} {f.figure}: {_value(f.baseline)} -> {_value(f.new)}: {f.why}")
    for f in gate.findings:
        if f.verdict in ("improvement", "new"):
            lines.append(f"  note {f.run} {f.figure}: {_value(f.baseline)} -> {_value(f.new)}: {f.why}")
    verdict = "PASS" if gate.passed else f"FAIL ({len(gate.failures)} figure(s) past tolerance)"
    head = f"gate: {verdict}; {gate.checked} figures checked, default tolerance {gate.tolerance:.1%}"
    return "\n".join([head, *lines])


def _value(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
