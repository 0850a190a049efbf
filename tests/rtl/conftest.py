"""The hardware description every programmable-core RTL test builds from (matx-tiny)."""

from __future__ import annotations

import pytest

from rtl.programmable.config import CoreConfig
from simulator.hardware import load_hardware


@pytest.fixture(scope="session")
def chip():
    return load_hardware("matx-tiny")


@pytest.fixture(scope="session")
def config(chip) -> CoreConfig:
    return CoreConfig.from_chip(chip)
