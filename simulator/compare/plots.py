"""The comparison's plots, drawn with matplotlib (Agg, no pyplot state) from report.json data as PNG bytes.

Every plot skips runs without the figure it shows (not fitting, failed) and says so in its
caption rather than drawing a zero.
"""

from __future__ import annotations

import io
import math
from typing import Any

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402  (after choosing the backend)
from matplotlib.lines import Line2D  # noqa: E402

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">")
DPI = 100


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})   # constrained layout fits the labels
    return buf.getvalue()


def _colors(data: dict[str, Any]) -> dict[str, Any]:
    palette = matplotlib.colormaps["tab10"]
    return {t["label"]: palette(i % 10) for i, t in enumerate(data["targets"])}


def _markers(data: dict[str, Any]) -> dict[str, str]:
    return {m: MARKERS[i % len(MARKERS)] for i, m in enumerate(data["models"])}


def _ok(run: dict[str, Any]) -> bool:
    return not run["error"] and run["report"]["tokens_per_s_per_user"] is not None


def throughput_vs_context(data: dict[str, Any]) -> bytes:
    """Tokens/s per user against context, one panel per model, one line per target (and batch)."""
    models = data["models"]
    cols = min(len(models), 3)
    rows = math.ceil(len(models) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.4 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
    colors, batches = _colors(data), data["matrix"]["batches"]
    for ax, model in zip(axes.flat, models):
        drawn = False
        for target in (t["label"] for t in data["targets"]):
            for batch in batches:
                points = sorted((r["context"], r["report"]["tokens_per_s_per_user"]) for r in data["runs"]
                                if r["model"] == model and r["target"] == target and r["batch"] == batch and _ok(r))
                if not points:
                    continue
                label = target if len(batches) == 1 else f"{target}, batch {batch}"
                ax.plot(*zip(*points), marker="o", color=colors[target], label=label,
                        linestyle="-" if batch == batches[0] else "--")
                drawn = True
            # Contexts at which the target does not fit: an x on the bottom edge, in its colour.
            misses = [r["context"] for r in data["runs"] if r["model"] == model and r["target"] == target
                      and not r["error"] and not r["report"]["fits"]]
            ax.scatter(misses, [0.03] * len(misses), marker="x", color=colors[target], clip_on=False,
                       transform=ax.get_xaxis_transform())
        ax.set_title(model, fontsize=10)
        ax.set_xscale("log", base=2)
        ax.set_xticks(data["matrix"]["contexts"], [_tokens(c) for c in data["matrix"]["contexts"]])
        ax.minorticks_off()
        ax.set_yscale("log")
        ax.set_xlabel("context (tokens)")
        ax.grid(True, which="both", alpha=0.3)
        if drawn:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no run fits", transform=ax.transAxes, ha="center")
    for ax in axes[:, 0]:
        ax.set_ylabel("tokens/s per user")
    for ax in list(axes.flat)[len(models):]:
        ax.set_visible(False)
    return _png(fig)


def _tokens(n: int) -> str:
    """1024 -> '1k', 131072 -> '128k' (binary k, as contexts are quoted)."""
    return f"{n // 1024}k" if n >= 1024 and n % 1024 == 0 else f"{n:,}"


def roofline(data: dict[str, Any]) -> bytes:
    """Achieved FLOP/s against FLOPs per memory byte, each target's roof drawn from its peaks."""
    fig = Figure(figsize=(8, 5.5), layout="constrained")
    ax = fig.subplots()
    colors, markers = _colors(data), _markers(data)
    points = [r for r in data["runs"] if _ok(r) and r["derived"]["arithmetic_intensity_flops_per_byte"]
              and r["derived"]["achieved_flops_per_s"]]
    roofs = sorted({(r["target"], r["derived"]["peak_flops_per_s"], r["derived"]["peak_bandwidth_bytes_per_s"])
                    for r in data["runs"] if r["derived"] and r["derived"]["peak_flops_per_s"]
                    and r["derived"]["peak_bandwidth_bytes_per_s"]})
    xs = [r["derived"]["arithmetic_intensity_flops_per_byte"] for r in points] + [f / b for _, f, b in roofs]
    if not xs:
        ax.text(0.5, 0.5, "no run has the figures a roofline needs", transform=ax.transAxes, ha="center")
        return _png(fig)
    lo, hi = min(xs) / 10, max(xs) * 10
    grid = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    for target, peak, bandwidth in roofs:
        ax.plot(grid, [min(peak, x * bandwidth) for x in grid], color=colors[target], linewidth=1.2, alpha=0.8)
    for target, model in sorted({(r["target"], r["model"]) for r in points}):
        group = [r["derived"] for r in points if (r["target"], r["model"]) == (target, model)]
        xs = [d["arithmetic_intensity_flops_per_byte"] for d in group]
        ax.scatter(xs, [d["achieved_flops_per_s"] for d in group], color=colors[target], marker=markers[model], s=36,
                   edgecolors="black", linewidths=0.4, zorder=3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP per memory byte, decode; FLOP = 2 x MAC)")
    ax.set_ylabel("achieved FLOP/s (decode)")
    ax.grid(True, which="both", alpha=0.3)
    handles = [Line2D([], [], color=colors[t["label"]], label=f"{t['label']} roof") for t in data["targets"]]
    handles += [Line2D([], [], color="gray", marker=markers[m], linestyle="", label=m) for m in data["models"]]
    ax.legend(handles=handles, fontsize=7, loc="lower right")
    return _png(fig)


def _groups(data: dict[str, Any]) -> list[tuple[str, int, int]]:
    return [(m, c, b) for m in data["models"] for c in data["matrix"]["contexts"] for b in data["matrix"]["batches"]]


def _grouped_bars(ax, data: dict[str, Any], value, ylabel: str) -> None:
    """One group per (model, context, batch), one bar per target; missing values leave a gap."""
    colors, targets = _colors(data), [t["label"] for t in data["targets"]]
    runs = {(r["model"], r["context"], r["batch"], r["target"]): r for r in data["runs"]}
    groups = _groups(data)
    width = 0.8 / len(targets)
    for j, target in enumerate(targets):
        xs, ys = [], []
        for i, (m, c, b) in enumerate(groups):
            run = runs.get((m, c, b, target))
            v = value(run) if run and _ok(run) else None
            if v:
                xs.append(i + (j - (len(targets) - 1) / 2) * width)
                ys.append(v)
        ax.bar(xs, ys, width=width, color=colors[target], label=target)
    ax.set_xticks(range(len(groups)))
    many_batches = len(data["matrix"]["batches"]) > 1
    ax.set_xticklabels([f"{m}\n{c:,}" + (f" b{b}" if many_batches else "") for m, c, b in groups],
                       rotation=60, ha="right", fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=7)


def energy_per_token(data: dict[str, Any]) -> bytes:
    fig = Figure(figsize=(max(6, 0.5 * len(_groups(data)) * len(data["targets"]) ** 0.5 + 3), 4.5),
                 layout="constrained")
    ax = fig.subplots()
    _grouped_bars(ax, data, lambda r: r["report"]["energy_j_per_token"], "energy per token (J)")
    return _png(fig)


def area_and_power(data: dict[str, Any]) -> bytes:
    """Decode power per run (left) and each target's die area (right; 'not modelled' where the
    description has no area figures)."""
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=(3, 1))
    _grouped_bars(left, data, lambda r: r["derived"]["power_w"], "decode power, all chips (W)")
    colors = _colors(data)
    labels = [t["label"] for t in data["targets"]]
    for i, label in enumerate(labels):
        areas = [r["derived"]["area_mm2"] for r in data["runs"]
                 if r["target"] == label and r["derived"] and r["derived"]["area_mm2"]]
        if areas:
            right.bar(i, max(areas), color=colors[label])
            right.text(i, max(areas), f"{max(areas):,.0f}", ha="center", va="bottom", fontsize=7)
        else:
            right.text(i, 0.02, "not\nmodelled", ha="center", va="bottom", fontsize=7,
                       transform=right.get_xaxis_transform())
    right.set_xticks(range(len(labels)))
    right.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    right.set_ylabel("die area used (mm2)")
    right.grid(True, axis="y", alpha=0.3)
    return _png(fig)


def per_layer_breakdown(data: dict[str, Any]) -> bytes:
    """Share of per-layer time by layer kind, one bar per run that has a decode time."""
    runs = [r for r in data["runs"] if _ok(r) and r["report"]["per_layer"]]
    kinds = sorted({k for r in runs for k in r["report"]["per_layer"]})
    fig = Figure(figsize=(10, 1.2 + 0.28 * max(len(runs), 1)), layout="constrained")
    ax = fig.subplots()
    if not runs:
        ax.text(0.5, 0.5, "no run has a per-layer breakdown", transform=ax.transAxes, ha="center")
        return _png(fig)
    palette = matplotlib.colormaps["tab20"]
    left = [0.0] * len(runs)
    for k, kind in enumerate(kinds):
        shares = []
        for r in runs:
            layers = r["report"]["per_layer"]
            total = sum(c["time_s"] or 0.0 for c in layers.values()) or 1.0
            shares.append(100 * (layers.get(kind, {}).get("time_s") or 0.0) / total)
        ax.barh(range(len(runs)), shares, left=left, color=palette(k % 20), label=kind)
        left = [a + b for a, b in zip(left, shares)]
    ax.set_yticks(range(len(runs)))
    ax.set_yticklabels([f"{r['model']} / {r['target']} / {r['context']:,}" + (f" b{r['batch']}" if r["batch"] > 1
                                                                                else "") for r in runs], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of per-layer decode time (%)")
    fig.legend(handles=ax.get_legend_handles_labels()[0], fontsize=7, loc="outside right center")
    return _png(fig)


PLOTS = (
    ("throughput", "Tokens/s per user vs context", throughput_vs_context,
     "Decode throughput per user for each target and model; an x on the bottom edge marks a context at which the "
     "target does not fit; failed runs are not drawn."),
    ("roofline", "Roofline", roofline,
     "Each run's decode step: FLOPs (2 per MAC) per memory byte against achieved FLOP/s. Lines are each target's "
     "roof, min(peak FLOP/s, intensity x peak bandwidth); memory is HBM for programmable targets and on-die SRAM "
     "for spatial ones."),
    ("energy", "Energy per token", energy_per_token,
     "Energy per generated token (decode), log scale; a gap is a run without the figure."),
    ("area_power", "Power and area", area_and_power,
     "Average decode power (energy per token x tokens/s, static power included) and die area used; programmable "
     "descriptions carry no area figures."),
    ("per_layer", "Per-layer time breakdown", per_layer_breakdown,
     "Share of each layer kind in the per-layer decode time of every run that has one."),
)
