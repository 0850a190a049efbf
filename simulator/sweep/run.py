"""Running a sweep on dask.distributed: resume, tasks, progress, results, Pareto outputs.

The client sends tasks of points that share a structure (so a worker lowers once and times
the rest, `reuse.py`), appends each finished task's records to results.jsonl at once, and
skips points whose ids the file already holds. A local cluster (one single-threaded worker per
core asked for) is started unless `scheduler` names a running one; that cluster's workers
must have this package installed.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import OrderedDict
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from simulator.sweep.evaluate import Job, run_points
from simulator.sweep.pareto import compute_fronts, point_values
from simulator.sweep.plot import plot_fronts
from simulator.sweep.points import DesignPoint, SweepPlan, hardware_data
from simulator.sweep.results import RESULTS_FILE, ResultsWriter, read_results
from simulator.sweep.reuse import structure_key
from simulator.sweep.spec import OPTION_PARAMETERS, SweepSpec

PARETO_JSON = "pareto.json"
PARETO_PNG = "pareto.png"
FRONT_DIR = "front"
MAX_POINTS_PER_TASK = 16     # coarse enough to share a lowering, fine enough for progress and balance
TASKS_PER_WORKER = 2         # at least this many tasks per worker when there are few points


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep; what finished is in results.jsonl and a re-run resumes from it."""


@dataclass
class SweepOutcome:
    out_dir: Path
    planned: int                 # points after constraints
    resumed: int                 # already in results.jsonl, not recomputed
    computed: int                # simulated in this run
    ok: int                      # points with a result (whole sweep)
    errors: int
    not_fitting: int
    workers: int
    cluster_start_s: float
    simulate_s: float
    programs_reused: int
    pareto: dict[str, Any] = field(default_factory=dict)
    wrote: list[Path] = field(default_factory=list)

    @property
    def points_per_s(self) -> float:
        return self.computed / self.simulate_s if self.simulate_s > 0 else math.nan


def run_sweep(spec: SweepSpec, plan: SweepPlan, out_dir: Path, *, scheduler: str | None = None, workers: int = 2,
              processes: bool = True, progress: bool = True, retry_errors: bool = False) -> SweepOutcome:
    out_dir.mkdir(parents=True, exist_ok=True)
    results_path = out_dir / RESULTS_FILE
    previous = read_results(results_path)
    finished = {i for i, r in previous.items() if r.get("status") == "ok" or not retry_errors}
    todo = [p for p in plan.points if p.id not in finished]
    resumed = len(plan.points) - len(todo)
    cluster_s = simulate_s = 0.0
    if todo:
        cluster_s, simulate_s, workers = _compute(spec, todo, results_path, len(plan.points), resumed,
                                                  scheduler, workers, processes, progress)
    return _finish(spec, plan, out_dir, results_path, resumed, len(todo), workers, cluster_s, simulate_s)


def _compute(spec: SweepSpec, todo: list[DesignPoint], results_path: Path, total: int, resumed: int,
             scheduler: str | None, workers: int, processes: bool, progress: bool) -> tuple[float, float, int]:
    from distributed import Client, LocalCluster, as_completed

    started = time.perf_counter()
    with ExitStack() as stack:
        if scheduler:
            client = stack.enter_context(Client(scheduler))
            workers = max(1, sum(client.nthreads().values()))
        else:
            cluster = stack.enter_context(LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes,
                                                       dashboard_address=None, silence_logs=logging.ERROR))
            client = stack.enter_context(Client(cluster))
        cluster_s = time.perf_counter() - started
        writer = stack.enter_context(ResultsWriter(results_path))
        bar = stack.enter_context(ProgressBar(progress, total, resumed))
        job = Job.of(spec)
        t0 = time.perf_counter()
        futures = {}
        for chunk in tasks(spec, todo, workers):
            future = client.submit(run_points, job, chunk, pure=False, key=f"sweep-{chunk[0].id}-{len(chunk)}")
            futures[future] = chunk
        done = 0
        try:
            for future in as_completed(list(futures)):
                try:
                    records = future.result()
                except Exception as exc:  # noqa: BLE001  (a lost worker fails its task's points, not the sweep)
                    records = [{**p.to_json(), "status": "error", "error": f"task failed: {type(exc).__name__}: {exc}"}
                               for p in futures[future]]
                writer.write(records)
                done += len(records)
                bar(len(records), done / max(time.perf_counter() - t0, 1e-9))
        except KeyboardInterrupt:
            client.cancel(list(futures))
            raise SweepInterrupted(f"interrupted: {resumed + done} of {total} points are in {results_path}; "
                                   "run the same command again to resume") from None
        simulate_s = time.perf_counter() - t0
    return cluster_s, simulate_s, workers


def tasks(spec: SweepSpec, points: list[DesignPoint], workers: int) -> list[list[DesignPoint]]:
    """Points grouped by structure (what lowering reads), cut into tasks of at most `size` points."""
    groups: OrderedDict[tuple, list[DesignPoint]] = OrderedDict()
    for point in points:
        key = structure_key(spec.kind, hardware_data(spec.base, point.overrides), point, spec.prefill)
        groups.setdefault(key, []).append(point)
    size = max(1, min(MAX_POINTS_PER_TASK, math.ceil(len(points) / (TASKS_PER_WORKER * workers))))
    out = []
    for group in groups.values():
        pieces = math.ceil(len(group) / size)
        step = math.ceil(len(group) / pieces)
        out += [group[i:i + step] for i in range(0, len(group), step)]
    return out


class ProgressBar:
    """A rich progress bar: points done / total, points per second, elapsed and ETA."""

    def __init__(self, enabled: bool, total: int, resumed: int) -> None:
        self.enabled, self.total, self.resumed = enabled, total, resumed

    def __enter__(self):
        if not self.enabled:
            return lambda advance, rate: None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), speed_estimate_period=120,
                            console=Console(stderr=True))
        self.bar.__enter__()
        task = self.bar.add_task("points", total=self.total, completed=self.resumed, rate="")

        def update(advance: int, rate: float) -> None:
            self.bar.update(task, advance=advance, rate=f"{rate:.2f} pts/s")

        return update

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.bar.__exit__(*exc)


def _finish(spec: SweepSpec, plan: SweepPlan, out_dir: Path, results_path: Path, resumed: int, computed: int,
            workers: int, cluster_s: float, simulate_s: float) -> SweepOutcome:
    records = read_results(results_path)
    mine = [records[p.id] for p in plan.points if p.id in records]
    ok = [r for r in mine if r.get("status") == "ok"]
    outcome = SweepOutcome(
        out_dir=out_dir, planned=len(plan.points), resumed=resumed, computed=computed, ok=len(ok),
        errors=sum(r.get("status") == "error" for r in mine),
        not_fitting=sum(not r["metrics"].get("fits") for r in ok), workers=workers, cluster_start_s=cluster_s,
        simulate_s=simulate_s, programs_reused=sum(r.get("lowering") == "reused" for r in ok))
    fronts = compute_fronts(spec, mine)
    outcome.pareto = {"sweep": str(spec.path), "target": spec.target, "kind": spec.kind,
                      "points": _counts(outcome, plan), **fronts}
    written = _write_front_targets(spec, fronts, out_dir / FRONT_DIR)
    (out_dir / PARETO_JSON).write_text(json.dumps(outcome.pareto, indent=2, allow_nan=False) + "\n")
    outcome.wrote = [results_path, out_dir / PARETO_JSON]
    if written:
        outcome.wrote.append(out_dir / FRONT_DIR)
    cloud: dict[tuple, list[dict[str, Any]]] = {}
    for record in ok:
        if record["metrics"].get("fits"):
            values, _ = point_values(spec, record)
            cloud.setdefault(tuple(record[g] for g in spec.group_by), []).append(values)
    if plot_fronts(fronts, cloud, out_dir / PARETO_PNG, f"{spec.path.name}: {spec.target}"):
        outcome.wrote.append(out_dir / PARETO_PNG)
    return outcome


def _write_front_targets(spec: SweepSpec, fronts: dict[str, Any], folder: Path) -> int:
    """Every front point's hardware as a description `tessera sim --target front/ID.toml` loads."""
    written: set[str] = set()
    for group in fronts["groups"]:
        for front in group["fronts"].values():
            for entry in front:
                entry["target_toml"] = f"{FRONT_DIR}/{entry['id']}.toml"
                if entry["id"] in written:
                    continue
                overrides = {k: v for k, v in entry["params"].items() if k not in OPTION_PARAMETERS}
                folder.mkdir(parents=True, exist_ok=True)
                header = (f"# Design point {entry['id']} of {spec.path.name}: {spec.target} with "
                          + (", ".join(f"{k} = {v!r}" for k, v in overrides.items()) or "no changes") + "\n")
                (folder / f"{entry['id']}.toml").write_text(header + tomli_w.dumps(hardware_data(spec.base, overrides)))
                written.add(entry["id"])
    return len(written)


def _counts(outcome: SweepOutcome, plan: SweepPlan) -> dict[str, Any]:
    return {"swept": plan.total, "excluded_by_constraints": plan.excluded, "planned": outcome.planned,
            "ok": outcome.ok, "errors": outcome.errors, "not_fitting": outcome.not_fitting,
            "computed_this_run": outcome.computed, "resumed": outcome.resumed,
            "programs_reused": outcome.programs_reused,
            "simulate_s": round(outcome.simulate_s, 3), "workers": outcome.workers}


def format_outcome(outcome: SweepOutcome) -> str:
    lines = [f"{outcome.planned} points: {outcome.computed} computed in this run, {outcome.resumed} resumed from "
             f"{outcome.out_dir / RESULTS_FILE}; {outcome.ok} ok ({outcome.not_fitting} do not fit), "
             f"{outcome.errors} errors"]
    if outcome.computed:
        lines.append(f"simulated {outcome.computed} points in {outcome.simulate_s:.1f} s on {outcome.workers} "
                     f"worker(s): {outcome.points_per_s:.2f} points/s (cluster start {outcome.cluster_start_s:.1f} s)")
    if outcome.programs_reused:
        lines.append(f"lowered programs reused for {outcome.programs_reused} of {outcome.ok} points "
                     "(exact: see simulator/sweep/reuse.py)")
    pareto = outcome.pareto
    lines.append(f"Pareto fronts, {pareto['throughput']} maximised:")
    for group in pareto["groups"]:
        label = ", ".join(f"{g} {group[g]}" for g in pareto["group_by"]) or "all points"
        sizes = ", ".join(f"{name} {len(front)}" for name, front in group["fronts"].items())
        lines.append(f"  {label} ({group['points']} fitting points): {sizes} on the front")
    for name, why in pareto["unavailable_objectives"].items():
        lines.append(f"objective {name} unavailable: {why}")
    if pareto["formula_errors"]:
        lines.append(f"{len(pareto['formula_errors'])} formula evaluations failed (see pareto.json formula_errors)")
    lines.append("wrote " + ", ".join(str(p) for p in outcome.wrote))
    return "\n".join(lines)
