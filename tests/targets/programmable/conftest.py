"""Shared fixtures for the programmable target: imported model graphs (cached), presets."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # the helpers beside the tests (program_checks, ...)

import models  # noqa: E402
from compiler.frontend import import_onnx  # noqa: E402
from compiler.passes.pipeline import recognize  # noqa: E402
from simulator.hardware import load_hardware  # noqa: E402

PRESETS = ("matx-one", "h100-sxm", "h200-sxm")


@functools.cache
def model_graph(name: str, form: str, fused: bool = False):
    """The imported graph, with the recognition passes run when `fused` (cached across tests:
    lowering never mutates it)."""
    graph = import_onnx(models.build_model(name, form))
    return recognize(graph) if fused else graph


@functools.cache
def chip(name: str):
    return load_hardware(name)


def full_size_models() -> list[str]:
    return [name for name in models.list_models() if not name.startswith("tiny")]


@pytest.fixture
def graph_of():
    return model_graph
