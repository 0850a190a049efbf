"""Chips shared by the programmable-simulator tests."""

from __future__ import annotations

import pytest

from simulator.hardware import load_hardware
from simulator.hardware.programmable import ProgrammableChip


@pytest.fixture(scope="session")
def tiny() -> ProgrammableChip:
    """matx-tiny: 8x8 int8 array, 100 MHz, one DMA channel, 8e8 B/s, 100 ns latency."""
    return load_hardware("matx-tiny")


@pytest.fixture(scope="session")
def matx() -> ProgrammableChip:
    return load_hardware("matx-one")
