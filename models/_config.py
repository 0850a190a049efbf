"""Shared pieces of the model configs: validation errors, dtypes, weight sources, forms."""

from __future__ import annotations

from typing import Any, Literal

Form = Literal["prefill", "decode"]
FORMS: tuple[str, ...] = ("prefill", "decode")

DType = Literal["float32", "bfloat16"]
DTYPE_BYTES: dict[str, int] = {"float32": 4, "bfloat16": 2}

# "random": seeded fp32/bf16 initializers with real bytes (tiny configs, runnable).
# "described": shape + dtype + external-data pointer only, no bytes (full-size configs).
WeightSource = Literal["random", "described"]
WEIGHT_SOURCES: tuple[str, ...] = ("random", "described")


class ConfigError(ValueError):
    """A config field holds a value the architecture cannot use; the message names the field."""

    def __init__(self, config_type: str, field: str, value: Any, reason: str) -> None:
        self.field = field
        self.value = value
        super().__init__(f"{config_type}.{field} = {value!r}: {reason}")


def require(ok: bool, config: object, field: str, reason: str) -> None:
    """Raise ConfigError naming `field` (and its current value on `config`) unless `ok`."""
    if not ok:
        raise ConfigError(type(config).__name__, field, getattr(config, field), reason)


def require_positive(config: object, *fields: str) -> None:
    for field in fields:
        value = getattr(config, field)
        require(isinstance(value, int) and value > 0, config, field, "must be a positive int")


def check_form(form: str) -> None:
    if form not in FORMS:
        raise ValueError(f"unknown form {form!r}; known forms: {', '.join(FORMS)}")
