"""The sweep file (TOML): what to vary, over which workloads, and what to optimise.

    [sweep]
    target = "matx-one"              # a preset name, or a hardware .toml (relative to this file or cwd)
    models = ["llama3.1-8b"]
    contexts = [8192]
    batches = [1, 8]
    prefill = false                  # programmable: also lower and time the prefill graph (TTFT)

    [parameters]                     # dotted hardware fields (or precision / kv_precision) -> values
    "links.chips" = [1, 2, 4, 8]
    "memory.hbm_bytes_per_s" = { start = 2.4e12, stop = 9.6e12, num = 4, scale = "log" }
    "systolic.arrays_per_chip" = { start = 2, stop = 8, step = 2 }

    [[linked]]                       # fields that move together (zipped, not crossed): one dimension
    "systolic.rows" = [128, 256]
    "systolic.cols" = [128, 256]

    [formulas]                       # per-point figures the simulator does not model (expr.py syntax)
    cost = "links.chips * 25000"

    [objectives]
    throughput = "tokens_per_s_total"            # maximised
    minimize = ["power_w", "area_mm2", "cost"]   # one Pareto front per objective, plus a joint one
    group_by = ["model", "context", "batch"]     # fronts are computed within each group

    [constraints]                    # points where an expression is false are left out
    "square arrays" = "systolic.rows == systolic.cols"

Everything here is checked when the file is loaded, before any point runs; errors name the
file and the key. Range values are rounded to 6 significant digits (integers for integer
fields) so that point ids, which hash the values, are stable from run to run.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.hardware import load_hardware
from simulator.hardware.programmable import PRECISION_BITS, PRECISIONS
from simulator.hardware.schema import HardwareError, load_toml_file, read_toml
from simulator.sweep.expr import Expression, ExpressionError, parse_expression
from simulator.sweep.metrics import DEFAULT_MINIMIZE, THROUGHPUTS, UNAVAILABLE, metric_names


class SweepError(ValueError):
    """An invalid sweep file; the message names the file and the key."""


SECTIONS = ("sweep", "parameters", "linked", "formulas", "objectives", "constraints")
SWEEP_KEYS = ("target", "models", "contexts", "batches", "prefill", "prompt_len", "reuse_lowering")
OBJECTIVE_KEYS = ("throughput", "minimize", "group_by")
GROUP_KEYS = ("model", "context", "batch")
# Simulation options that a sweep may vary like hardware fields.
OPTION_PARAMETERS = {"precision": "weight precision (programmable target)", "kv_precision": "KV-cache precision"}
# Description fields that are names and citations, not design parameters.
NOT_PARAMETERS = ("name", "description", "kind", "sources", "assumed", "isa_subset")
SIGNIFICANT_DIGITS = 6


@dataclass(frozen=True)
class Axis:
    """One sweep dimension: one key, or several linked keys; `values[i]` holds one value per key."""

    keys: tuple[str, ...]
    values: tuple[tuple[Any, ...], ...]


@dataclass(frozen=True)
class SweepSpec:
    path: Path
    target: str
    target_path: Path
    kind: str
    hardware_class: type
    base: Mapping[str, Any]          # the target's TOML document, before overrides
    models: tuple[str, ...]
    contexts: tuple[int, ...]
    batches: tuple[int, ...]
    axes: tuple[Axis, ...]
    prefill: bool
    prompt_len: int | None
    reuse_lowering: bool
    throughput: str
    minimize: tuple[str, ...]
    group_by: tuple[str, ...]
    formulas: Mapping[str, Expression]
    constraints: Mapping[str, Expression]

    @property
    def parameter_keys(self) -> tuple[str, ...]:
        return tuple(k for axis in self.axes for k in axis.keys)

    @property
    def size(self) -> int:
        """Points before constraints: the product of every dimension."""
        n = len(self.models) * len(self.contexts) * len(self.batches)
        return n * math.prod(len(a.values) for a in self.axes)


def load_sweep(path: str | Path) -> SweepSpec:
    path = Path(path)
    doc = load_toml_file(path, SweepError, "sweep file")
    unknown = sorted(set(doc) - set(SECTIONS))
    if unknown:
        raise SweepError(f"{path}: unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    sweep = _table(doc, "sweep", path, required=True)
    _no_unknown(sweep, SWEEP_KEYS, path, "[sweep]")
    target, target_path, base, hw_class, kind = _target(sweep, path)
    models = tuple(_list(sweep, "models", path, str, required=True))
    for model in models:
        _check_model(model, path)
    contexts = tuple(_positive_ints(sweep, "contexts", path, required=True))
    batches = tuple(_positive_ints(sweep, "batches", path, required=False) or [1])
    prefill = _bool(sweep, "prefill", path, default=False)
    if prefill and kind != "programmable":
        raise SweepError(f"{path}: [sweep] prefill: only the programmable target lowers a prefill graph; the "
                         f"{kind} target always reports its pipeline TTFT")
    prompt_len = sweep.get("prompt_len")
    if prompt_len is not None and (isinstance(prompt_len, bool) or not isinstance(prompt_len, int)
                                   or prompt_len <= 0):
        raise SweepError(f"{path}: [sweep] prompt_len: expected a positive integer, got {prompt_len!r}")
    axes = _axes(doc, path, hw_class, kind)
    formulas = _expressions(doc, "formulas", path)
    constraints = _expressions(doc, "constraints", path)
    for name in formulas:
        if name in metric_names(kind):
            raise SweepError(f"{path}: [formulas] {name}: the {kind} simulator reports {name}; "
                             "give the formula another name")
    throughput, minimize, group_by = _objectives(doc, path, kind, formulas)
    spec = SweepSpec(path=path, target=target, target_path=target_path, kind=kind, hardware_class=hw_class,
                     base=base, models=models, contexts=contexts, batches=batches, axes=axes, prefill=prefill,
                     prompt_len=prompt_len, reuse_lowering=_bool(sweep, "reuse_lowering", path, default=True),
                     throughput=throughput, minimize=minimize, group_by=group_by, formulas=formulas,
                     constraints=constraints)
    _check_expression_names(spec)
    return spec


# ---- sections ----------------------------------------------------------------------------
def _table(doc: Mapping[str, Any], name: str, path: Path, required: bool = False) -> Mapping[str, Any]:
    if name not in doc:
        if required:
            raise SweepError(f"{path}: missing section [{name}]")
        return {}
    if not isinstance(doc[name], Mapping):
        raise SweepError(f"{path}: [{name}] must be a table")
    return doc[name]


def _no_unknown(table: Mapping[str, Any], known: tuple[str, ...], path: Path, where: str) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise SweepError(f"{path}: {where} unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}")


def _list(table: Mapping[str, Any], key: str, path: Path, item: type, required: bool) -> list[Any]:
    if key not in table:
        if required:
            raise SweepError(f"{path}: [sweep] {key}: missing")
        return []
    value = table[key]
    if not isinstance(value, list):
        value = [value]
    if not value:
        raise SweepError(f"{path}: [sweep] {key}: empty list")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, item):
            raise SweepError(f"{path}: [sweep] {key}: expected {item.__name__} values, got {v!r}")
    if len(set(value)) != len(value):
        raise SweepError(f"{path}: [sweep] {key}: repeated values in {value!r}")
    return value


def _positive_ints(table: Mapping[str, Any], key: str, path: Path, required: bool) -> list[int]:
    values = _list(table, key, path, int, required)
    for v in values:
        if v <= 0:
            raise SweepError(f"{path}: [sweep] {key}: values must be positive, got {v}")
    return values


def _bool(table: Mapping[str, Any], key: str, path: Path, default: bool) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise SweepError(f"{path}: [sweep] {key}: expected true or false, got {value!r}")
    return value


def _target(sweep: Mapping[str, Any], path: Path) -> tuple[str, Path, dict[str, Any], type, str]:
    target = sweep.get("target")
    if not isinstance(target, str):
        raise SweepError(f"{path}: [sweep] target: expected a preset name or a .toml path, got {target!r}")
    spec = target
    if target.endswith(".toml") and (path.parent / target).exists():
        spec = str(path.parent / target)   # relative to the sweep file first, then to the working folder
    try:
        chip = load_hardware(spec)   # the unmodified target must load on its own
        base, target_path = read_toml(spec)
    except HardwareError as exc:
        raise SweepError(f"{path}: [sweep] target: {exc}") from None
    return target, target_path, base, type(chip), chip.kind


def _check_model(model: str, path: Path) -> None:
    if model.endswith(".onnx"):
        if not (path.parent / model).exists() and not Path(model).exists():
            raise SweepError(f"{path}: [sweep] models: {model}: no such file")
        return
    import models

    try:
        models.get_config(model)
    except models.UnknownModelError as exc:
        raise SweepError(f"{path}: [sweep] models: {exc}") from None


# ---- parameters --------------------------------------------------------------------------
def _axes(doc: Mapping[str, Any], path: Path, hw_class: type, kind: str) -> tuple[Axis, ...]:
    axes = []
    for key, raw in _table(doc, "parameters", path).items():
        where = f"[parameters] {key}"
        axes.append(Axis((key,), tuple((v,) for v in _values(key, raw, path, where, hw_class, kind))))
    linked = doc.get("linked", [])
    if not isinstance(linked, list) or not all(isinstance(t, Mapping) for t in linked):
        raise SweepError(f"{path}: [[linked]] must be an array of tables")
    for i, table in enumerate(linked):
        if len(table) < 1:
            raise SweepError(f"{path}: [[linked]] #{i + 1}: empty table")
        columns = {key: _values(key, raw, path, f"[[linked]] #{i + 1} {key}", hw_class, kind)
                   for key, raw in table.items()}
        lengths = {key: len(v) for key, v in columns.items()}
        if len(set(lengths.values())) != 1:
            raise SweepError(f"{path}: [[linked]] #{i + 1}: linked keys need equal numbers of values, got "
                             + ", ".join(f"{k} {n}" for k, n in lengths.items()))
        axes.append(Axis(tuple(columns), tuple(zip(*columns.values()))))
    seen: set[str] = set()
    for axis in axes:
        for key in axis.keys:
            if key in seen:
                raise SweepError(f"{path}: parameter {key} is swept twice ([parameters] and [[linked]])")
            seen.add(key)
    return tuple(axes)


def _values(key: str, raw: Any, path: Path, where: str, hw_class: type, kind: str) -> list[Any]:
    hint = _parameter_hint(key, path, where, hw_class, kind)
    if isinstance(raw, Mapping):
        values = _range(raw, path, where, hint)
    elif isinstance(raw, list):
        values = list(raw)
    else:
        raise SweepError(f"{path}: {where}: expected a list of values or a range table "
                         f"{{start, stop, num[, scale]}} / {{start, stop, step}}, got {raw!r}")
    if not values:
        raise SweepError(f"{path}: {where}: empty range (no values)")
    if key in OPTION_PARAMETERS:
        allowed = PRECISIONS if key == "precision" else tuple(PRECISION_BITS)
        for v in values:
            if v not in allowed:
                raise SweepError(f"{path}: {where}: {v!r} is not a precision; one of {', '.join(allowed)}")
    if len({repr(v) for v in values}) != len(values):
        raise SweepError(f"{path}: {where}: repeated values {values!r}")
    return values


def _range(raw: Mapping[str, Any], path: Path, where: str, hint: Any) -> list[Any]:
    if hint not in (int, float):
        raise SweepError(f"{path}: {where}: ranges are for numeric fields; give a list of values")
    keys = set(raw)
    if keys <= {"start", "stop", "num", "scale"} and {"start", "stop", "num"} <= keys:
        start, stop, num = (_number(raw, k, path, where) for k in ("start", "stop", "num"))
        scale = raw.get("scale", "linear")
        if scale not in ("linear", "log"):
            raise SweepError(f"{path}: {where}: scale {scale!r}; one of linear, log")
        if num != int(num) or num < 1:
            raise SweepError(f"{path}: {where}: num must be a positive integer, got {num!r} (empty range)")
        num = int(num)
        if scale == "log":
            if start <= 0 or stop <= 0:
                raise SweepError(f"{path}: {where}: a log range needs positive start and stop")
            values = [start * (stop / start) ** (i / (num - 1)) if num > 1 else start for i in range(num)]
        else:
            values = [start + (stop - start) * i / (num - 1) if num > 1 else start for i in range(num)]
    elif keys == {"start", "stop", "step"}:
        start, stop, step = (_number(raw, k, path, where) for k in ("start", "stop", "step"))
        if step <= 0:
            raise SweepError(f"{path}: {where}: step must be positive, got {step!r}")
        if start > stop:
            raise SweepError(f"{path}: {where}: empty range (start {start} > stop {stop})")
        count = math.floor((stop - start) / step * (1 + 1e-12)) + 1
        values = [start + i * step for i in range(count)]
    else:
        raise SweepError(f"{path}: {where}: a range table has keys start, stop, num[, scale] or start, stop, "
                         f"step; got {', '.join(sorted(keys))}")
    if hint is int:
        rounded = [round(v) for v in values]
        if len(set(rounded)) != len(rounded):
            raise SweepError(f"{path}: {where}: integer field; the range rounds to repeated values {rounded}")
        return rounded
    return [float(f"{v:.{SIGNIFICANT_DIGITS}g}") for v in values]


def _number(raw: Mapping[str, Any], key: str, path: Path, where: str) -> float:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SweepError(f"{path}: {where}: {key} must be a number, got {value!r}")
    return value


def _parameter_hint(key: str, path: Path, where: str, hw_class: type, kind: str) -> Any:
    """The declared type of a swept key; unknown keys are errors listing the known ones."""
    if key in OPTION_PARAMETERS:
        if key == "precision" and kind != "programmable":
            raise SweepError(f"{path}: {where}: the {kind} target hard-wires its weight precision in the "
                             "description (sweep weights.rules or weights.default_bits instead)")
        return str
    node: Any = hw_class
    parts = key.split(".")
    for i, part in enumerate(parts):
        here = ".".join(parts[:i]) or "the top level"
        if dataclasses.is_dataclass(node):
            fields = [f.name for f in dataclasses.fields(node) if f.init and f.name not in NOT_PARAMETERS]
            if part not in fields:
                extra = f", or {', '.join(OPTION_PARAMETERS)}" if i == 0 else ""
                raise SweepError(f"{path}: {where}: unknown parameter; {kind} hardware fields at {here}: "
                                 f"{', '.join(fields)}{extra}")
            node = typing.get_type_hints(node)[part]
        elif typing.get_origin(node) in (dict, Mapping):
            node = typing.get_args(node)[1]
        else:
            raise SweepError(f"{path}: {where}: unknown parameter; {'.'.join(parts[:i])} is a value, not a table")
    if dataclasses.is_dataclass(node):
        fields = [f.name for f in dataclasses.fields(node) if f.init]
        raise SweepError(f"{path}: {where}: is a table; sweep one of its fields: {', '.join(fields)}")
    return node


# ---- formulas, constraints, objectives ---------------------------------------------------
def _expressions(doc: Mapping[str, Any], section: str, path: Path) -> dict[str, Expression]:
    out = {}
    for name, source in _table(doc, section, path).items():
        try:
            out[name] = parse_expression(source)
        except ExpressionError as exc:
            raise SweepError(f"{path}: [{section}] {name}: {exc}") from None
    return out


def _objectives(doc: Mapping[str, Any], path: Path, kind: str,
                formulas: Mapping[str, Expression]) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    table = _table(doc, "objectives", path)
    _no_unknown(table, OBJECTIVE_KEYS, path, "[objectives]")
    throughput = table.get("throughput", THROUGHPUTS[0])
    if throughput not in THROUGHPUTS:
        raise SweepError(f"{path}: [objectives] throughput: {throughput!r}; one of {', '.join(THROUGHPUTS)}")
    minimize = table.get("minimize", list(DEFAULT_MINIMIZE))
    if not isinstance(minimize, list) or not minimize or not all(isinstance(m, str) for m in minimize):
        raise SweepError(f"{path}: [objectives] minimize: expected a non-empty list of names")
    known = set(metric_names(kind)) - set(THROUGHPUTS) - {"ttft_s"} | set(formulas) | {
        name for (k, name) in UNAVAILABLE if k == kind}
    for name in minimize:
        if name not in known:
            raise SweepError(f"{path}: [objectives] minimize: {name!r} is neither a recorded figure nor a "
                             f"formula; known: {', '.join(sorted(known))}")
    group_by = table.get("group_by", list(GROUP_KEYS))
    if not isinstance(group_by, list) or not set(group_by) <= set(GROUP_KEYS):
        raise SweepError(f"{path}: [objectives] group_by: a list drawn from {', '.join(GROUP_KEYS)}")
    return throughput, tuple(dict.fromkeys(minimize)), tuple(group_by)


def _check_expression_names(spec: SweepSpec) -> None:
    """Formulas and constraints may only name hardware fields, context, batch (and metrics, for formulas)."""
    from simulator.sweep.expr import flatten

    hardware = set(flatten(spec.base)) | set(spec.parameter_keys)
    for section, table, extra in (("constraints", spec.constraints, set()),
                                  ("formulas", spec.formulas, set(metric_names(spec.kind)))):
        for name, expression in table.items():
            unknown = sorted(expression.names - hardware - {"context", "batch"} - extra)
            if unknown:
                raise SweepError(f"{spec.path}: [{section}] {name}: unknown name(s) {', '.join(unknown)}; names "
                                 "are dotted numeric hardware fields, context, batch"
                                 + (" and recorded figures" if extra else ""))
