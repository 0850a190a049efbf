"""The spatial plan: one hard-wired region per weight tensor, its parallelism, and the die's area.

A region stores its weights at the policy's precision and holds `parallelism` multiplier lanes:
it consumes that many weights per cycle, so one token's pass through it takes
ceil(weight-MACs / parallelism) cycles. Its area is storage (weights x bits x area per bit) plus
lanes (parallelism x area per multiplier at that precision).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from compiler.targets.spatial.workload import Workload

UM2_PER_MM2 = 1e6


@dataclass(frozen=True)
class Region:
    name: str                   # the weight tensor (parameter) it hard-wires
    layer: str
    kind: str                   # precision-policy label: mlp, attention, embedding, lm_head, other
    bits: int
    weights: int                # weight elements stored
    macs_per_token: int         # weight multiply-accumulates per token (all uses)
    use_macs: tuple[int, ...]   # per contraction use, in the order of `use_nodes`
    use_nodes: tuple[str, ...]
    lookup_rows_per_token: int
    row_elements: int
    activation_elements: int    # activations entering and leaving the region per token
    parallelism: int            # multiplier lanes = weights consumed per cycle (0: no contraction use)
    storage_um2: float
    lane_um2: float             # area of one lane at this precision

    @property
    def lanes_um2(self) -> float:
        return self.parallelism * self.lane_um2

    def pass_cycles(self, macs: int) -> int:
        """Cycles one use occupies the region's lanes for one token."""
        return math.ceil(macs / self.parallelism) if macs else 0

    def lookup_cycles(self, lookup_bits_per_cycle: int) -> int:
        rows = self.lookup_rows_per_token
        return rows * math.ceil(self.row_elements * self.bits / lookup_bits_per_cycle) if rows else 0

    def occupancy_cycles(self, lookup_bits_per_cycle: int) -> int:
        """Cycles per token the region is busy: the pipeline stage's service time."""
        return sum(self.pass_cycles(m) for m in self.use_macs) + self.lookup_cycles(lookup_bits_per_cycle)


@dataclass(frozen=True)
class AreaBreakdown:
    """Die area by kind, mm^2. `other` groups the per-layer units and the fixed I/O and control."""

    weights_mm2: float
    macs_mm2: float
    sram_mm2: float
    attention_units_mm2: float
    vector_units_mm2: float
    fixed_other_mm2: float

    @property
    def other_mm2(self) -> float:
        return self.attention_units_mm2 + self.vector_units_mm2 + self.fixed_other_mm2

    @property
    def total_mm2(self) -> float:
        return self.weights_mm2 + self.macs_mm2 + self.sram_mm2 + self.other_mm2

    def to_json(self) -> dict[str, float]:
        return {"weights_mm2": self.weights_mm2, "macs_mm2": self.macs_mm2, "sram_mm2": self.sram_mm2,
                "other_mm2": self.other_mm2, "total_mm2": self.total_mm2,
                "other_detail": {"attention_units_mm2": self.attention_units_mm2,
                                 "vector_units_mm2": self.vector_units_mm2,
                                 "io_control_mm2": self.fixed_other_mm2}}


@dataclass(frozen=True)
class SpatialPlan:
    workload: Workload
    regions: tuple[Region, ...]
    area: AreaBreakdown
    die_area_mm2: float
    min_die_area_mm2: float     # the smallest die this design fits with one lane per region
    attention_units: int
    vector_units: int

    @property
    def fits_area(self) -> bool:
        return self.area.total_mm2 <= self.die_area_mm2 * (1 + 1e-12)

    @property
    def compute_regions(self) -> tuple[Region, ...]:
        """Regions with lanes or a lookup port (tensors used only elementwise are storage only)."""
        return tuple(r for r in self.regions if r.macs_per_token or r.lookup_rows_per_token)

    @property
    def weights_per_cycle(self) -> int:
        return sum(r.parallelism for r in self.regions)

    def region(self, name: str) -> Region:
        for r in self.regions:
            if r.name == name:
                return r
        raise KeyError(f"no region for weight {name!r}")

    def with_parallelism(self, name: str, parallelism: int) -> SpatialPlan:
        """The same plan with one region's lanes changed (area follows; the die budget does not)."""
        region = self.region(name)
        if not region.macs_per_token:
            raise ValueError(f"region {name!r} has no contraction use to parallelize")
        if not 1 <= parallelism <= region.macs_per_token:
            raise ValueError(f"region {name!r}: parallelism {parallelism} outside [1, {region.macs_per_token}]")
        changed = dataclasses.replace(region, parallelism=parallelism)
        regions = tuple(changed if r.name == name else r for r in self.regions)
        macs = sum(r.lanes_um2 for r in regions) / UM2_PER_MM2
        return dataclasses.replace(self, regions=regions, area=dataclasses.replace(self.area, macs_mm2=macs))
