"""Fixtures for the spatial target tests."""

from __future__ import annotations

import pytest
from spatial_helpers import tiny_chip as _tiny_chip

from simulator.hardware import load_hardware


@pytest.fixture
def tiny_chip():
    return _tiny_chip()


@pytest.fixture
def hc1():
    return load_hardware("taalas-hc1")
