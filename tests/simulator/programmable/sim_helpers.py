"""Helpers shared by the programmable-simulator tests (a unique module name: test directories
have no __init__.py, so every `conftest` is the same top-level name)."""

from __future__ import annotations

import dataclasses

from simulator.hardware.programmable import ProgrammableChip


def with_memory(chip: ProgrammableChip, **changes) -> ProgrammableChip:
    """`chip` with some memory fields changed (e.g. more DMA channels, faster HBM)."""
    return dataclasses.replace(chip, memory=dataclasses.replace(chip.memory, **changes))
