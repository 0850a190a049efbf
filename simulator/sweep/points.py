"""Design points: the cartesian product of a sweep's dimensions, each with a stable id.

A point's hardware is the target's TOML document with the swept dotted keys overridden, loaded
by the same `build_description` as a preset file, so an impossible combination fails exactly as
a bad preset would. Every distinct hardware combination is loaded here, before any point runs.

A point's id is a hash of everything that determines its result: the full hardware document
(citations and description excluded), model, context, batch, precisions and simulation options.
The same design reached from another sweep file gets the same id, and editing the base preset
gives every point a new id, so resuming never mixes results of different designs.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from simulator.hardware.schema import HardwareError, build_description
from simulator.sweep.expr import ExpressionError, flatten
from simulator.sweep.spec import OPTION_PARAMETERS, SweepError, SweepSpec

ID_VERSION = 1
ID_HEX_DIGITS = 16
NOT_HASHED = ("sources", "description")


@dataclass(frozen=True)
class DesignPoint:
    id: str
    model: str
    context: int
    batch: int
    params: tuple[tuple[str, Any], ...]      # swept keys and their values, in the sweep file's order

    @property
    def overrides(self) -> dict[str, Any]:
        return {k: v for k, v in self.params if k not in OPTION_PARAMETERS}

    @property
    def precision(self) -> str:
        return dict(self.params).get("precision", "bf16")

    @property
    def kv_precision(self) -> str:
        return dict(self.params).get("kv_precision", "bf16")

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "model": self.model, "context": self.context, "batch": self.batch,
                "params": dict(self.params)}


@dataclass
class SweepPlan:
    points: list[DesignPoint]
    total: int                                     # points before constraints
    excluded: dict[str, int] = field(default_factory=dict)   # constraint name -> points it left out


def hardware_data(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The target's document with dotted keys replaced (tables created where the base has none)."""
    data = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        node = data
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = copy.deepcopy(value)
    return data


def point_id(spec: SweepSpec, hardware: Mapping[str, Any], model: str, context: int, batch: int,
             precision: str, kv_precision: str) -> str:
    content = {
        "version": ID_VERSION,
        "hardware": {k: v for k, v in hardware.items() if k not in NOT_HASHED},
        "model": model, "context": context, "batch": batch,
        "precision": precision, "kv_precision": kv_precision,
        "prefill": spec.prefill, "prompt_len": spec.prompt_len,
    }
    text = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:ID_HEX_DIGITS]


def plan_sweep(spec: SweepSpec) -> SweepPlan:
    """Every point that passes the constraints, with every hardware combination validated."""
    points: list[DesignPoint] = []
    excluded: dict[str, int] = {}
    for combo in itertools.product(*(axis.values for axis in spec.axes)):
        params = tuple((k, v) for axis, values in zip(spec.axes, combo) for k, v in zip(axis.keys, values))
        overrides = {k: v for k, v in params if k not in OPTION_PARAMETERS}
        hardware = hardware_data(spec.base, overrides)
        values = flatten(hardware)
        validated = False
        for model, context, batch in itertools.product(spec.models, spec.contexts, spec.batches):
            failed = _failed_constraint(spec, {**values, "context": context, "batch": batch}, params)
            if failed is not None:
                excluded[failed] = excluded.get(failed, 0) + 1
                continue
            if not validated:
                _validate(spec, hardware, params)
                validated = True
            options = dict(params)
            points.append(DesignPoint(
                id=point_id(spec, hardware, model, context, batch, options.get("precision", "bf16"),
                            options.get("kv_precision", "bf16")),
                model=model, context=context, batch=batch, params=params))
    if not points:
        raise SweepError(f"{spec.path}: no design points left"
                         + (f" (the constraints exclude all {spec.size})" if excluded else ""))
    return SweepPlan(points=points, total=spec.size, excluded=excluded)


def _failed_constraint(spec: SweepSpec, values: Mapping[str, Any], params) -> str | None:
    for name, expression in spec.constraints.items():
        try:
            if not expression.evaluate(values):
                return name
        except ExpressionError as exc:
            raise SweepError(f"{spec.path}: [constraints] {name}: {exc} at {_assignments(params)}") from None
    return None


def _validate(spec: SweepSpec, hardware: Mapping[str, Any], params) -> None:
    try:
        chip = build_description(spec.hardware_class, hardware, spec.target_path)
    except HardwareError as exc:
        raise SweepError(f"{spec.path}: invalid combination {_assignments(params)}: {exc}") from None
    options = dict(params)
    if spec.kind == "programmable":
        from simulator.hardware.programmable import PRECISION_BITS
        from simulator.programmable.model import activation_precision

        precision = options.get("precision", "bf16")
        for label, wanted in (("precision", precision), ("activation precision",
                                                         activation_precision(chip, precision))):
            if not chip.supports(wanted):
                raise SweepError(f"{spec.path}: invalid combination {_assignments(params)}: {label} {wanted!r} "
                                 f"has no rate in systolic.macs_per_pe_per_cycle "
                                 f"({', '.join(chip.systolic.macs_per_pe_per_cycle)})")
        kv = options.get("kv_precision", "bf16")
        if PRECISION_BITS[kv] < 8:
            raise SweepError(f"{spec.path}: kv_precision {kv!r}: the programmable target stores the KV cache in "
                             "whole bytes (int8, fp8, bf16, fp16, fp32)")


def _assignments(params) -> str:
    text = ", ".join(f"{k} = {v!r}" for k, v in params)
    return f"({text})" if text else "(the target as it is)"
