"""Hardware descriptions: TOML presets (or a user's file) loaded into frozen dataclasses."""

from __future__ import annotations

from pathlib import Path

from simulator.hardware.programmable import PRECISION_BITS, PRECISIONS, ProgrammableChip
from simulator.hardware.schema import HardwareError, build_description, list_presets, read_toml

_KINDS: dict[str, type] = {"programmable": ProgrammableChip}


def register_kind(kind: str, description_class: type) -> None:
    """Targets add their description class here (the spatial target registers 'spatial')."""
    _KINDS[kind] = description_class


def load_hardware(name_or_path: str | Path):
    """Load a preset by name or a TOML path; the `kind` field picks the description class."""
    _load_optional_kinds()
    data, path = read_toml(name_or_path)
    kind = data.get("kind")
    if kind not in _KINDS:
        what = "missing field 'kind'" if kind is None else f"kind {kind!r} is not known"
        raise HardwareError(f"{path}: {what}; one of: {', '.join(sorted(_KINDS))}")
    return build_description(_KINDS[kind], data, path)


def _load_optional_kinds() -> None:
    try:
        import simulator.spatial.hardware  # noqa: F401  (registers 'spatial')
    except ImportError:
        pass


__all__ = [
    "HardwareError",
    "PRECISIONS",
    "PRECISION_BITS",
    "ProgrammableChip",
    "list_presets",
    "load_hardware",
    "register_kind",
]
