"""The folding pass: lanes per region that balance the pipeline under the die-area budget.

As FINN sets PE/SIMD for a target rate, the pass picks one target service time L (cycles per
token) for every weight region and gives region i ceil(macs_i / L) lanes, so no region is slower
than L. The smallest L whose lanes fit beside storage, SRAM and the fixed units is the fastest
balanced pipeline the die allows; it is found by bisection because area(L) only falls as L grows.
If even one lane per region does not fit, the plan keeps one lane each, reports it does not fit,
and says the smallest die that would.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from compiler.targets.spatial.plan import UM2_PER_MM2, AreaBreakdown, Region, SpatialPlan
from compiler.targets.spatial.workload import WeightTensor, Workload

if TYPE_CHECKING:
    from simulator.spatial.hardware import SpatialChip

name = "spatial-fold"


def fold(workload: Workload, chip: SpatialChip, die_area_mm2: float | None = None) -> SpatialPlan:
    """Plan `workload` on `chip` (a SpatialChip); `die_area_mm2` overrides the preset's budget."""
    die = chip.die.die_area_mm2 if die_area_mm2 is None else die_area_mm2
    regions = [_region(t, chip) for t in workload.weights]
    attention_units = len({w.layer for w in workload.works if w.unit == "attention"})
    # Every layer has a vector unit for its norms and residuals, plus one for embedding and head.
    vector_units = len({w.layer for w in workload.works if w.unit in ("vector", "region", "attention")})
    fixed = AreaBreakdown(
        weights_mm2=sum(r.storage_um2 for r in regions) / UM2_PER_MM2,
        macs_mm2=0.0,
        sram_mm2=chip.sram_area_mm2,
        attention_units_mm2=attention_units * chip.attention.mm2_per_unit,
        vector_units_mm2=vector_units * chip.vector.mm2_per_unit,
        fixed_other_mm2=chip.other_mm2,
    )
    lane_regions = [r for r in regions if r.macs_per_token]
    budget_um2 = (die - fixed.total_mm2) * UM2_PER_MM2
    target = balanced_target_cycles(lane_regions, budget_um2)
    placed = [_with_lanes(r, target) for r in regions]
    one_lane_um2 = sum(r.lane_um2 for r in lane_regions)
    area = replace(fixed, macs_mm2=sum(r.lanes_um2 for r in placed) / UM2_PER_MM2)
    return SpatialPlan(
        workload=workload,
        regions=tuple(placed),
        area=area,
        die_area_mm2=die,
        min_die_area_mm2=fixed.total_mm2 + one_lane_um2 / UM2_PER_MM2,
        attention_units=attention_units,
        vector_units=vector_units,
    )


def balanced_target_cycles(regions: Sequence[Region], budget_um2: float) -> int:
    """Smallest service time L whose lanes fit `budget_um2`; the slowest region's MACs if none fits."""
    if not regions:
        return 1
    slowest = max(r.macs_per_token for r in regions)

    def lanes_um2(target: int) -> float:
        return sum(r.lane_um2 * math.ceil(r.macs_per_token / target) for r in regions)

    # A relative slack absorbs float rounding when the budget was computed from the same sum.
    limit = budget_um2 * (1 + 1e-12)
    if lanes_um2(slowest) > limit:
        return slowest
    lo, hi = 1, slowest          # invariant: lanes_um2(hi) fits
    if lanes_um2(lo) <= limit:
        return lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if lanes_um2(mid) <= limit:
            hi = mid
        else:
            lo = mid
    return hi


def _region(tensor: WeightTensor, chip: SpatialChip) -> Region:
    kind, bits = chip.precision_of(tensor.name)
    contractions = [u for u in tensor.uses if u.macs]
    return Region(
        name=tensor.name,
        layer=tensor.layer,
        kind=kind,
        bits=bits,
        weights=tensor.elements,
        macs_per_token=tensor.macs_per_token,
        use_macs=tuple(u.macs for u in contractions),
        use_nodes=tuple(u.node for u in contractions),
        lookup_rows_per_token=tensor.lookup_rows_per_token,
        row_elements=tensor.row_elements,
        activation_elements=sum(u.activation_elements for u in tensor.uses),
        parallelism=0,
        storage_um2=tensor.elements * bits * chip.weights.um2_per_weight_bit,
        lane_um2=chip.multiplier_um2(bits),
    )


def _with_lanes(region: Region, target: int) -> Region:
    if not region.macs_per_token:
        return region
    return replace(region, parallelism=math.ceil(region.macs_per_token / target))
