"""Loading hardware descriptions: TOML tables into frozen dataclasses, validated field by field.

A description is data. Every numeric field carries its unit in its name (`clock_hz`,
`hbm_bytes_per_s`) and may be cited in a `[sources]` table: `"memory.hbm_bytes_per_s" =
"spec: REFERENCE.md, Reference GPUs, H100 SXM HBM"`. Sources that start with "assumption"
are reported with every result, so a reader sees which numbers nobody has published.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets"

T = TypeVar("T")


class HardwareError(ValueError):
    """An invalid hardware description; the message names the file and the field."""


def doc(text: str, *, positive: bool = True, default: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with a description (gem5 `Param` style) and a positivity check."""
    kwargs: dict[str, Any] = {"metadata": {"doc": text, "positive": positive}}
    if default is not dataclasses.MISSING:
        kwargs["default"] = default
    return dataclasses.field(**kwargs)


def parse_section(cls: type[T], table: Mapping[str, Any], where: str) -> T:
    """Build dataclass `cls` from a TOML table: no unknown, missing or non-positive fields."""
    if not isinstance(table, Mapping):
        raise HardwareError(f"{where}: expected a table, got {type(table).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise HardwareError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(fields)}")
    values: dict[str, Any] = {}
    for name, field in fields.items():
        path = f"{where}.{name}" if where else name
        if name not in table:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise HardwareError(f"{path}: missing ({field.metadata.get('doc', 'required')})")
            continue
        values[name] = _convert(hints[name], table[name], path, field)
    return cls(**values)


def _convert(hint: Any, value: Any, path: str, field: dataclasses.Field) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return parse_section(hint, value, path)
    if origin in (dict, Mapping) or hint is dict:
        key_t, value_t = typing.get_args(hint) or (str, Any)
        if not isinstance(value, Mapping):
            raise HardwareError(f"{path}: expected a table of {value_t}")
        return types.MappingProxyType(
            {str(k): _convert(value_t, v, f"{path}.{k}", field) for k, v in value.items()}
        )
    if origin is tuple:
        (item_t, *_rest) = typing.get_args(hint)
        if not isinstance(value, list):
            raise HardwareError(f"{path}: expected a list, got {value!r}")
        return tuple(_convert(item_t, v, f"{path}[{i}]", field) for i, v in enumerate(value))
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise HardwareError(f"{path}: expected a number, got {value!r}")
        value = float(value)
    elif hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise HardwareError(f"{path}: expected an integer, got {value!r}")
    elif hint is str:
        if not isinstance(value, str):
            raise HardwareError(f"{path}: expected a string, got {value!r}")
        return value
    elif hint is bool:
        if not isinstance(value, bool):
            raise HardwareError(f"{path}: expected true or false, got {value!r}")
        return value
    if field.metadata.get("positive", True) and isinstance(value, (int, float)) and value <= 0:
        raise HardwareError(f"{path}: must be positive, got {value!r}")
    if isinstance(value, (int, float)) and value < 0:
        raise HardwareError(f"{path}: must not be negative, got {value!r}")
    return value


def read_toml(name_or_path: str | Path) -> tuple[dict[str, Any], Path]:
    """A preset name (`matx-one`) or a path to a user's TOML file."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        candidate = PRESETS_DIR / f"{name_or_path}.toml"
        if not candidate.exists():
            raise HardwareError(f"unknown hardware {str(name_or_path)!r}; presets: {', '.join(list_presets())} "
                                "(or give a path to a .toml file)")
        path = candidate
    return load_toml_file(path, HardwareError), path


def load_toml_file(path: Path, error: type[Exception], what: str = "file") -> dict[str, Any]:
    """A TOML file's document; a missing or malformed file raises `error` naming the path."""
    if not path.exists():
        raise error(f"{path}: no such {what}")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML ({exc})") from None


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.toml"))


def check_sources(sources: Mapping[str, str], data: Mapping[str, Any], where: str) -> dict[str, str]:
    """Every cited field must exist in the description (catches typos in citations)."""
    for key in sources:
        node: Any = data
        for part in key.split("."):
            if not isinstance(node, Mapping) or part not in node:
                raise HardwareError(f"{where}: [sources] cites {key!r}, which is not a field of this description")
            node = node[part]
    return dict(sources)


def assumptions(sources: Mapping[str, str], data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Fields whose source is an assumption, with their values: reported with every result."""
    result = {}
    for key, text in sorted(sources.items()):
        if text.lower().startswith("assumption"):
            node: Any = data
            for part in key.split("."):
                node = node[part]
            result[key] = {"value": node, "source": text}
    return result


def build_description(cls: type[T], data: Mapping[str, Any], path: Path) -> T:
    """A description of class `cls` from a TOML document: the body parsed and validated, the
    `[sources]` citations checked against it, and the assumed values collected."""
    sources = data.get("sources", {})
    body = {k: v for k, v in data.items() if k != "sources"}
    chip = parse_section(cls, body, "")
    checked = check_sources(sources, body, str(path))
    return dataclasses.replace(chip, sources=checked, assumed=assumptions(checked, body))
