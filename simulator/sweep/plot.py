"""pareto.png: throughput against each minimised objective, every fitting point and its front.

Drawn with matplotlib's Agg backend (no display needed): one panel per objective, one colour
per workload group, all points faint, the front as a staircase with markers.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

MAX_LABELLED_GROUPS = 10


def plot_fronts(fronts: Mapping[str, Any], points: Mapping[tuple, list[dict[str, Any]]], path: Path,
                title: str) -> bool:
    """Write the figure; False (and no file) when no objective is available to plot."""
    objectives = list(fronts["objectives"])
    if not objectives or not fronts["groups"]:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    throughput = fronts["throughput"]
    fig, axes = plt.subplots(1, len(objectives), figsize=(5.2 * len(objectives), 4.4), squeeze=False)
    colours = plt.get_cmap("tab10")
    for panel, name in zip(axes[0], objectives):
        for i, group in enumerate(fronts["groups"]):
            key = tuple(group[g] for g in fronts["group_by"])
            label = _label(group, fronts["group_by"]) if i < MAX_LABELLED_GROUPS else None
            colour = colours(i % 10)
            cloud = [(p[name], p[throughput]) for p in points.get(key, [])
                     if p.get(name) is not None and p.get(throughput) is not None]
            if cloud:
                xs, ys = zip(*cloud)
                panel.scatter(xs, ys, s=8, alpha=0.25, color=colour, linewidths=0)
            front = [(p[name], p[throughput]) for p in group["fronts"].get(name, [])]
            if front:
                xs, ys = zip(*front)
                panel.step(xs, ys, where="post", color=colour, linewidth=1.2)
                panel.scatter(xs, ys, s=22, color=colour, edgecolors="black", linewidths=0.4, label=label)
        panel.set_xlabel(name)
        panel.set_ylabel(f"{throughput} (maximised)")
        _log_if_wide(panel)
        panel.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if labels:
        axes[0][0].legend(handles, labels, fontsize=7, loc="best")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _label(group: Mapping[str, Any], group_by: list[str]) -> str:
    return " ".join(f"{g} {group[g]}" if g != "model" else str(group[g]) for g in group_by) or "all points"


def _log_if_wide(panel) -> None:
    """Log axes when the values span more than a decade and are all positive."""
    offsets = [c.get_offsets() for c in panel.collections if len(c.get_offsets())]
    if not offsets:
        return
    for column, set_scale in ((0, panel.set_xscale), (1, panel.set_yscale)):
        values = [float(v) for o in offsets for v in o[:, column]]
        if min(values) > 0 and max(values) / min(values) > 10:
            set_scale("log")
