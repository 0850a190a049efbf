"""Pareto fronts of a sweep: throughput maximised against each cost (area, power, cost, ...).

A point is on the front when no other point is at least as good in every objective and better
in one. Only points that simulated, fit, and have a finite value for every objective of the
front take part. Fronts are computed within groups of equal workload (`[objectives] group_by`),
once per minimised objective (2-D) and once over all available objectives together ("joint").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from simulator.sweep.expr import ExpressionError, flatten
from simulator.sweep.metrics import UNAVAILABLE, metric_names
from simulator.sweep.points import hardware_data
from simulator.sweep.spec import OPTION_PARAMETERS, SweepSpec

JOINT = "joint"


def non_dominated(costs: np.ndarray) -> np.ndarray:
    """Mask of the rows no other row dominates; every column is minimised. Rows with a NaN never
    belong. After a lexicographic sort no later row can dominate an earlier one, so one pass that
    compares each row with the front kept so far is enough (O(n x front))."""
    costs = np.asarray(costs, dtype=float)
    if costs.ndim != 2:
        raise ValueError(f"costs must be a 2-D array (points x objectives), got shape {costs.shape}")
    keep = np.zeros(len(costs), dtype=bool)
    candidates = np.flatnonzero(np.isfinite(costs).all(axis=1))
    order = candidates[np.lexsort(costs[candidates].T[::-1])]
    front: list[int] = []
    for i in order:
        row = costs[i]
        if front:
            kept = costs[front]
            if np.any(np.all(kept <= row, axis=1) & np.any(kept < row, axis=1)):
                continue
        front.append(i)
    keep[front] = True
    return keep


def objective_sources(spec: SweepSpec) -> tuple[dict[str, str], dict[str, str]]:
    """(available objective -> where its values come from, unavailable objective -> why)."""
    available, unavailable = {}, {}
    for name in spec.minimize:
        if name in spec.formulas:
            available[name] = f"formula from {spec.path.name}: {spec.formulas[name].source}"
        elif name in metric_names(spec.kind):
            available[name] = f"simulator report ({spec.kind} target)"
        else:
            unavailable[name] = UNAVAILABLE[(spec.kind, name)]
    return available, unavailable


def point_values(spec: SweepSpec, record: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """A simulated point's figures with the sweep's formulas evaluated; errors by formula name."""
    values = dict(record.get("metrics", {}))
    errors = {}
    if spec.formulas:
        overrides = {k: v for k, v in record["params"].items() if k not in OPTION_PARAMETERS}
        names = flatten(hardware_data(spec.base, overrides))
        names.update(context=record["context"], batch=record["batch"])
        names.update({k: v for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
        for name, expression in spec.formulas.items():
            try:
                values[name] = float(expression.evaluate(names))
            except (ExpressionError, TypeError) as exc:
                values[name] = None
                errors[name] = str(exc)
    return values, errors


def compute_fronts(spec: SweepSpec, records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The JSON document written to pareto.json (without the run summary)."""
    available, unavailable = objective_sources(spec)
    groups: dict[tuple, list[dict[str, Any]]] = {}
    formula_errors = []
    for record in records:
        if record.get("status") != "ok" or not record.get("metrics", {}).get("fits"):
            continue
        values, errors = point_values(spec, record)
        formula_errors += [{"id": record["id"], "formula": k, "error": e} for k, e in errors.items()]
        entry = {"id": record["id"], "model": record["model"], "context": record["context"],
                 "batch": record["batch"], "params": record["params"], spec.throughput: values.get(spec.throughput),
                 **{name: values.get(name) for name in available}}
        groups.setdefault(tuple(record[g] for g in spec.group_by), []).append(entry)
    out_groups = []
    for key, entries in groups.items():
        fronts = {name: _front(entries, spec.throughput, (name,)) for name in available}
        if len(available) > 1:
            fronts[JOINT] = _front(entries, spec.throughput, tuple(available))
        out_groups.append({**dict(zip(spec.group_by, key)), "points": len(entries), "fronts": fronts})
    return {
        "throughput": spec.throughput,
        "objectives": {name: {"minimized": True, "source": source} for name, source in available.items()},
        "unavailable_objectives": unavailable,
        "group_by": list(spec.group_by),
        "groups": out_groups,
        "formula_errors": formula_errors,
    }


def _front(entries: list[dict[str, Any]], throughput: str, objectives: tuple[str, ...]) -> list[dict[str, Any]]:
    if not entries:
        return []
    costs = np.array([[-_number(e[throughput])] + [_number(e[name]) for name in objectives] for e in entries])
    mask = non_dominated(costs)
    chosen = [e for e, keep in zip(entries, mask) if keep]
    return sorted(chosen, key=lambda e: (e[objectives[0]], -e[throughput]))


def _number(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return math.nan
    return float(value)
