"""report.md: the comparison as Markdown tables that read well as a CI comment or job summary.

The gate's verdict comes first (what a reviewer needs), then one row per run, then the targets'
peaks, then why runs did not fit or failed.
"""

from __future__ import annotations

from typing import Any

from simulator.compare import fmt


def render_markdown(data: dict[str, Any]) -> str:
    lines = ["## Tessera comparison", "", summary_line(data), ""]
    if data.get("gate"):
        lines += gate_section(data["gate"]) + [""]
    lines += ["### Decode, per run", ""]
    lines += table(RUN_HEADER, [run_row(r) for r in data["runs"]]) + [""]
    lines += ["### Targets", ""]
    lines += table(TARGET_HEADER, target_rows(data)) + [""]
    notes = run_notes(data)
    if notes:
        lines += ["### Runs without figures", ""] + [f"- `{key}`: {_cell(why)}" for key, why in notes] + [""]
    lines.append(f"FLOPs = {data['conventions']['flops_per_mac']} x MACs; memory bandwidth is "
                 f"{data['conventions']['memory']}. Full data: report.json; plots: report.html.")
    return "\n".join(lines) + "\n"


def summary_line(data: dict[str, Any]) -> str:
    m, s = data["matrix"], data["settings"]
    prompt = "prompt = context" if s["prompt_len"] is None else f"prompt {s['prompt_len']:,} tokens"
    return (f"{len(data['targets'])} target(s) x {len(data['models'])} model(s) x {len(m['contexts'])} context(s) "
            f"x {len(m['batches'])} batch size(s) = {len(data['runs'])} runs; weights {s['precision']}, "
            f"KV {s['kv_precision']}, {prompt}, {s['gen_len']:,} generated tokens per user.")


def gate_section(gate: dict[str, Any]) -> list[str]:
    failures = [f for f in gate["findings"] if f["verdict"] in ("regression", "missing")]
    better = [f for f in gate["findings"] if f["verdict"] in ("improvement", "new")]
    where = f" against `{gate['baseline']}`" if gate.get("baseline") else ""
    head = (f"**Gate: {'PASS' if gate['passed'] else 'FAIL'}**: {gate['figures_checked']} figures checked{where}, "
            f"default tolerance {100 * gate['tolerance']:.1f}%")
    lines = [head + (f"; {len(failures)} past tolerance in the bad direction:" if failures else "."), ""]
    header = ("run", "figure", "baseline", "now", "change", "tolerance", "why")
    if failures:
        lines += table(header, [finding_row(f) for f in failures]) + [""]
    if better:
        lines += [f"{len(better)} improvement(s) or new run(s), not failures:", ""]
        lines += table(header, [finding_row(f) for f in better])
    return lines


def finding_row(f: dict[str, Any]) -> list[str]:
    change = "-" if f["change"] is None else fmt.percent(f["change"])
    return [f"`{f['run']}`", f["figure"], _value(f["baseline"]), _value(f["new"]), change,
            f"{100 * f['tolerance']:.1f}%", f["why"]]


RUN_HEADER = ("model", "target", "context", "batch", "fits", "tokens/s per user", "tokens/s total", "TPOT", "TTFT",
              "energy/token", "power", "bottleneck")


def run_row(run: dict[str, Any]) -> list[str]:
    head = [run["model"], run["target"], f"{run['context']:,}", str(run["batch"])]
    if run["error"]:
        return head + ["error"] + ["-"] * 6 + ["see below"]
    r, d = run["report"], run["derived"]
    return head + ["yes" if r["fits"] else "**no**", fmt.rate(r["tokens_per_s_per_user"]),
                   fmt.rate(r["tokens_per_s_total"]), fmt.seconds(r["tpot_s"]), fmt.seconds(r["ttft_s"]),
                   fmt.si(r["energy_j_per_token"], "J"), fmt.si(d["power_w"], "W"),
                   fmt.short_bottleneck(r["bottleneck"])]


TARGET_HEADER = ("target", "kind", "peak compute", "peak memory bandwidth", "area", "assumed values", "description")


def target_rows(data: dict[str, Any]) -> list[list[str]]:
    rows = []
    for t in data["targets"]:
        peaks = target_peaks(data, t["label"])
        memory = "HBM" if t["kind"] == "programmable" else "on-die SRAM"
        rows.append([t["label"], t["kind"], fmt.si(peaks["peak_flops_per_s"], "FLOP/s"),
                     f"{fmt.si(peaks['peak_bandwidth_bytes_per_s'], 'B/s')} {memory}", fmt.area(peaks["area_mm2"]),
                     assumed_count(data, t["label"]), t["description"]])
    return rows


def assumed_count(data: dict[str, Any], label: str) -> str:
    """How many of the description's values are named assumptions (listed in report.json per run)."""
    for run in data["runs"]:
        if run["target"] == label and run["report"]:
            return str(len(run["report"]["assumptions"]))
    return fmt.MISSING


def target_peaks(data: dict[str, Any], label: str) -> dict[str, float | None]:
    """A target's largest peak and area over its runs (they differ only with precision, chips or folding)."""
    out: dict[str, float | None] = {"peak_flops_per_s": None, "peak_bandwidth_bytes_per_s": None, "area_mm2": None}
    for run in data["runs"]:
        if run["target"] != label or not run["derived"]:
            continue
        for key in out:
            value = run["derived"][key]
            if value is not None and (out[key] is None or value > out[key]):
                out[key] = value
    return out


def run_notes(data: dict[str, Any]) -> list[tuple[str, str]]:
    notes = []
    for run in data["runs"]:
        if run["error"]:
            notes.append((run["key"], f"error: {run['error']}"))
        elif not run["report"]["fits"]:
            notes.append((run["key"], f"does not fit: {run['report']['fits_reason']}"))
    return notes


def table(header: tuple[str, ...], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _value(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool) or isinstance(value, str):
        return str(value)
    return f"{value:.4g}"
