"""A claim file: a model, a target, a workload and the published figures, validated field by field."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.hardware.schema import load_toml_file

BOUNDS = ("point", "upper")
FIGURES = ("tokens_per_s_per_user", "tokens_per_s_total")


class ClaimError(ValueError):
    """An invalid claim file; the message names the file and the field."""


@dataclass(frozen=True)
class Claim:
    path: str
    model: str
    target: str
    prompt_len: int
    gen_len: int
    source: str
    batch: int = 1
    tokens_per_s_per_user: float | None = None
    tokens_per_s_total: float | None = None
    power_w: float | None = None
    bound: str = "point"          # "point": an achieved figure; "upper": a bound no run may beat
    tolerance: float = 0.15       # relative gap still called consistent
    weight_precision: str = "bf16"
    kv_precision: str = "bf16"

    @property
    def decode_context(self) -> int:
        """Mean cached tokens over the generation: the mean per-token time when that time is linear."""
        return self.prompt_len + self.gen_len // 2

    @property
    def figures(self) -> dict[str, float]:
        return {f: getattr(self, f) for f in FIGURES if getattr(self, f) is not None}


_FIELDS = {  # name: (type, required)
    "model": (str, True), "target": (str, True), "source": (str, True),
    "context_in": (int, False), "context_out": (int, False), "prompt_len": (int, False), "gen_len": (int, False),
    "batch": (int, False), "tokens_per_s_per_user": (float, False), "tokens_per_s_total": (float, False),
    "power_w": (float, False), "bound": (str, False), "tolerance": (float, False),
    "weight_precision": (str, False), "kv_precision": (str, False),
}


def load_claim(path: str | Path) -> Claim:
    path = Path(path)
    data = load_toml_file(path, ClaimError)
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise ClaimError(f"{path}: unknown field(s) {', '.join(unknown)}; known: {', '.join(_FIELDS)}")
    values: dict[str, Any] = {}
    for name, (kind, required) in _FIELDS.items():
        if name not in data:
            if required:
                raise ClaimError(f"{path}: {name}: missing")
            continue
        values[name] = _check(path, name, data[name], kind)
    for new, old in (("prompt_len", "context_in"), ("gen_len", "context_out")):
        if new in values and old in values:
            raise ClaimError(f"{path}: {old} and {new} say the same thing; give one")
        if new not in values and old not in values:
            raise ClaimError(f"{path}: {old} (or {new}): missing")
        values[new] = values.pop(new, None) or values.pop(old)
    if "tokens_per_s_per_user" not in values and "tokens_per_s_total" not in values:
        raise ClaimError(f"{path}: tokens_per_s_per_user or tokens_per_s_total: give at least one claimed figure")
    if values.get("bound", "point") not in BOUNDS:
        raise ClaimError(f"{path}: bound: {values['bound']!r}; one of {', '.join(BOUNDS)}")
    return Claim(path=str(path), **values)


def _check(path: Path, name: str, value: Any, kind: type) -> Any:
    if kind is str:
        if not isinstance(value, str) or not value:
            raise ClaimError(f"{path}: {name}: expected a non-empty string, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise ClaimError(f"{path}: {name}: expected {'an integer' if kind is int else 'a number'}, got {value!r}")
    if value <= 0:
        raise ClaimError(f"{path}: {name}: must be positive, got {value!r}")
    return kind(value)
