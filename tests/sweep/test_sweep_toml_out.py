"""A design point written as TOML (tomli-w, as sweep fronts are) reads back to the same document and chip."""

from __future__ import annotations

import tomllib

import pytest
import tomli_w

from simulator.hardware import load_hardware
from simulator.hardware.schema import list_presets, read_toml


@pytest.mark.parametrize("preset", list_presets())
def test_every_preset_round_trips(preset, tmp_path):
    document, _ = read_toml(preset)
    text = tomli_w.dumps(document)
    assert tomllib.loads(text) == document
    path = tmp_path / f"{preset}.toml"
    path.write_text(text)
    assert load_hardware(path) == load_hardware(preset)


def test_awkward_keys_and_values():
    document = {"a b": "quote \" and \\ and\nnewline", "t": {"1": 1.5e-7, "x.y": [{"k": 1}, {"k": 2}]},
                "empty": {}, "flag": False}
    assert tomllib.loads(tomli_w.dumps(document)) == document
