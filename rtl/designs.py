"""The registry of RTL designs that `make rtl DESIGN=...` and `python -m rtl.synth` can build.

Each design is a "module:function" string, imported only when the design is built: the
function takes a hardware description (the preset's ProgrammableChip or SpatialChip) and
returns the `wiring.Component`. An unknown name, or a design whose module does not exist yet,
is a one-line error naming what is available.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass


class DesignError(ValueError):
    """An unknown design, or one whose generator is not there."""


@dataclass(frozen=True)
class Design:
    name: str
    builder: str            # "package.module:function", the function takes a chip and returns a Component
    preset: str             # the hardware description it is built from by default
    description: str

    def generator(self) -> Callable:
        module_name, _, function = self.builder.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name is not None and module_name.startswith(error.name):
                raise DesignError(f"design {self.name!r}: its generator {module_name} is not built yet "
                                  f"(no module {error.name})") from None
            raise
        if not callable(getattr(module, function, None)):
            raise DesignError(f"design {self.name!r}: {module_name} has no function {function}(chip)")
        return getattr(module, function)

    def build(self, chip=None):
        """The component for `chip` (default: this design's preset)."""
        if chip is None:
            from simulator.hardware import load_hardware

            chip = load_hardware(self.preset)
        generator = self.generator()
        try:
            return generator(chip)
        except ModuleNotFoundError as error:
            # A generator that imports a sibling block lazily, before that block is written.
            if error.name is not None and error.name.startswith("rtl."):
                raise DesignError(f"design {self.name!r}: needs {error.name}, which is not built yet") from None
            raise


DESIGNS: dict[str, Design] = {d.name: d for d in (
    Design("systolic", "rtl.programmable.systolic:design", "matx-tiny",
           "weight-stationary int8 systolic array, int32 accumulate"),
    Design("gemm", "rtl.programmable.gemm_unit:design", "matx-tiny",
           "GEMM engine: the systolic array with its scratchpad sequencing and split sub-arrays"),
    Design("vector", "rtl.programmable.vector_unit:design", "matx-tiny",
           "int32 vector unit: add, multiply, max, shift, requantize, row reductions"),
    Design("scratchpad", "rtl.programmable.scratchpad:design", "matx-tiny",
           "on-chip scratchpad on lib.memory with the units' read and write ports"),
    Design("dma", "rtl.programmable.dma:design", "matx-tiny", "DMA engine between external memory and scratchpad"),
    Design("control", "rtl.programmable.control:design", "matx-tiny",
           "instruction fetch, decode, loops and dependency-token queues"),
    Design("core", "rtl.programmable.core:design", "matx-tiny", "the whole programmable core running a program"),
    Design("mvu", "rtl.spatial.mvu:design", "taalas-tiny",
           "model-as-hardware matrix-vector unit: tiny-llama's first MLP gate projection hard-wired"),
)}


def get_design(name: str) -> Design:
    if name not in DESIGNS:
        raise DesignError(f"unknown design {name!r}; designs: {', '.join(DESIGNS)}")
    return DESIGNS[name]


def available_designs() -> list[str]:
    """Designs whose generator module exists now (others are being written)."""
    found = []
    for name, design in DESIGNS.items():
        try:
            design.generator()
        except DesignError:
            continue
        found.append(name)
    return found
