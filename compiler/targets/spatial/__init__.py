"""Model-as-hardware target (Taalas HC1 style): a hard-wired region per weight tensor, folded to the die.

    plan = compile_spatial(graph, chip)   # chip: simulator.spatial.hardware.SpatialChip

The pipeline: read the decode step's demand off the IR (`workload`), then give each weight
region its lanes so the pipeline stages balance under the die-area budget (`folding`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from compiler.ir.graph import Graph
from compiler.targets.spatial.folding import balanced_target_cycles, fold
from compiler.targets.spatial.plan import AreaBreakdown, Region, SpatialPlan
from compiler.targets.spatial.workload import SpatialCompileError, Workload, extract_workload

if TYPE_CHECKING:
    from simulator.spatial.hardware import SpatialChip


def compile_spatial(graph: Graph, chip: SpatialChip, die_area_mm2: float | None = None) -> SpatialPlan:
    # Demand first (chip-independent, reusable across presets), then the chip-dependent folding.
    return fold(extract_workload(graph), chip, die_area_mm2)


__all__ = [
    "AreaBreakdown",
    "Region",
    "SpatialCompileError",
    "SpatialPlan",
    "Workload",
    "balanced_target_cycles",
    "compile_spatial",
    "extract_workload",
    "fold",
]
