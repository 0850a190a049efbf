"""Shared helpers for the spatial tests: the tiny round-number chip and cached model graphs."""

from __future__ import annotations

import functools
from pathlib import Path

from simulator.api import ModelGraphs, SimOptions, load_model_graphs
from simulator.hardware import load_hardware
from simulator.spatial import simulate_spatial

TINY_CHIP = Path(__file__).with_name("tiny-spatial.toml")


@functools.cache
def graphs(name: str) -> ModelGraphs:
    """Import a registered model once per session (an 8B graph takes a fraction of a second)."""
    return load_model_graphs(name)


def tiny_chip():
    return load_hardware(TINY_CHIP)


def sim(model: str, chip, **options):
    return simulate_spatial(graphs(model), chip, SimOptions(**options))
