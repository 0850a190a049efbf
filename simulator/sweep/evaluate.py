"""Simulating design points on a worker: one model load and a program cache per worker process.

A task is a list of points that share a structure (`reuse.structure_key`); each point becomes
one record. A point that raises is recorded with its error and the task goes on with the next,
so one bad point never stops a sweep.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.api import ModelGraphs, SimOptions
from simulator.hardware.schema import build_description
from simulator.report import SimReport
from simulator.sweep.metrics import metrics_of
from simulator.sweep.points import DesignPoint, hardware_data
from simulator.sweep.reuse import ProgramCache


@dataclass(frozen=True)
class Job:
    """What every task of one sweep shares; small, since it travels with each task."""

    kind: str
    hardware_class: type
    base: dict[str, Any]
    target_path: str
    sweep_dir: str
    prefill: bool
    prompt_len: int | None
    reuse_lowering: bool

    @classmethod
    def of(cls, spec) -> Job:
        return cls(kind=spec.kind, hardware_class=spec.hardware_class, base=dict(spec.base),
                   target_path=str(spec.target_path), sweep_dir=str(spec.path.parent), prefill=spec.prefill,
                   prompt_len=spec.prompt_len, reuse_lowering=spec.reuse_lowering)


# Per worker process. The lock serialises points when several worker threads share a process
# (LocalCluster(processes=False)): the recognizer rewrites a model's graph in place.
_MODELS: dict[tuple[str, bool], ModelGraphs] = {}
_PROGRAMS = ProgramCache()
_LOCK = threading.Lock()


def run_points(job: Job, points: list[DesignPoint]) -> list[dict[str, Any]]:
    return [run_point(job, point) for point in points]


def run_point(job: Job, point: DesignPoint) -> dict[str, Any]:
    start, cpu_start = time.perf_counter(), time.process_time()
    record = point.to_json()
    try:
        with _LOCK:
            report, lowering = simulate_point(job, point)
        record.update(status="ok", metrics=metrics_of(report, job.kind, job.prefill), lowering=lowering)
    except Exception as exc:  # noqa: BLE001  (a failing point is data: recorded, and the sweep goes on)
        message = str(exc).splitlines()[0] if str(exc) else ""
        record.update(status="error", error=f"{type(exc).__name__}: {message}")
    # Wall and CPU seconds of this point on its worker (CPU time is what a busy machine does not inflate).
    record["host_s"] = round(time.perf_counter() - start, 4)
    record["cpu_s"] = round(time.process_time() - cpu_start, 4)
    return record


def point_options(job: Job, point: DesignPoint) -> SimOptions:
    return SimOptions(context=point.context, batch=point.batch, prompt_len=job.prompt_len or point.context,
                      weight_precision=point.precision, kv_precision=point.kv_precision)


def simulate_point(job: Job, point: DesignPoint) -> tuple[SimReport, str]:
    """The point's report, and whether its program was lowered, reused or not applicable."""
    chip = build_description(job.hardware_class, hardware_data(job.base, point.overrides), Path(job.target_path))
    graphs = model_graphs(job, point.model)
    options = point_options(job, point)
    if job.kind == "programmable":
        from simulator.programmable.model import simulate_model

        if not job.reuse_lowering:
            return simulate_model(graphs, chip, options), "lowered"
        hits = _PROGRAMS.hits
        report = simulate_model(graphs, chip, options, lower_step=_PROGRAMS.lower_step(point.model, chip, options))
        return report, "reused" if _PROGRAMS.hits > hits else "lowered"
    if job.kind == "spatial":
        from simulator.spatial import simulate_spatial

        return simulate_spatial(graphs, chip, options), "n/a"
    raise ValueError(f"{job.target_path}: no simulator for kind {job.kind!r}")


def model_graphs(job: Job, model: str) -> ModelGraphs:
    """A model's graphs, imported once per worker process (the prefill graph only when timed)."""
    key = (model, job.prefill)
    if key not in _MODELS:
        _MODELS[key] = _load(job, model)
    return _MODELS[key]


def _load(job: Job, model: str) -> ModelGraphs:
    from compiler.frontend.onnx_import import import_onnx

    if model.endswith(".onnx"):
        from simulator.api import load_model_graphs

        path = Path(job.sweep_dir) / model
        graphs = load_model_graphs(str(path if path.exists() else model))
        return graphs if job.prefill else ModelGraphs(graphs.name, graphs.decode, None)
    import models

    decode = import_onnx(models.build_model(model, "decode"))
    prefill = import_onnx(models.build_model(model, "prefill")) if job.prefill else None
    return ModelGraphs(model, decode, prefill)
