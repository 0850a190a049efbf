"""Pipeline simulator of the spatial (model-as-hardware) target.

`simulate_spatial` is imported lazily so that loading the hardware description (which the
spatial compiler also needs) never pulls in the compiler.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulator.api import ModelGraphs, SimOptions
    from simulator.report import SimReport
    from simulator.spatial.hardware import SpatialChip


def simulate_spatial(graphs: ModelGraphs, chip: SpatialChip, options: SimOptions) -> SimReport:
    from simulator.spatial.simulate import simulate

    return simulate(graphs, chip, options)


__all__ = ["simulate_spatial"]
