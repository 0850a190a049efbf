"""Chips shared by the programmable-simulator tests."""

from __future__ import annotations

import dataclasses

import pytest

from simulator.hardware import load_hardware
from simulator.hardware.programmable import ProgrammableChip


@pytest.fixture(scope="session")
def tiny() -> ProgrammableChip:
    """matx-tiny: 8x8 int8 array, 100 MHz, one DMA channel, 8e8 B/s, 100 ns latency; with ideal issue
    (control.issue_cycles = 0, memory.dma_setup_cycles = 0), the timings these tests work out by
    hand. tests/rtl checks the preset's RTL-measured values against the RTL."""
    chip = load_hardware("matx-tiny")
    return dataclasses.replace(chip, control=dataclasses.replace(chip.control, issue_cycles=0),
                               memory=dataclasses.replace(chip.memory, dma_setup_cycles=0))


@pytest.fixture(scope="session")
def matx() -> ProgrammableChip:
    return load_hardware("matx-one")
