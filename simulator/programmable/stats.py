"""What a timing run counts, kept in one flat list so loop extrapolation can add whole periods.

Layout of `Counters.values`: engine busy seconds (one per queue), then per layer-kind tag its
time, HBM bytes, MACs and instruction count, then chip totals, then MACs by precision.
Each instruction's increments are precomputed (`adds[pc]`), so issuing one is a short loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from simulator.programmable.costs.energy import EnergyCounts, energy_breakdown_j
from simulator.programmable.plan import QUEUE_ENGINES, Plan

if TYPE_CHECKING:
    from simulator.programmable.engine import EventEngine

TOTALS = ("macs", "vector_ops", "sram_bytes", "hbm_bytes", "link_bytes", "dynamic_energy_j", "instructions",
          "gemm_roofline_s", "vector_roofline_s", "link_roofline_s")


@dataclass
class TagCost:
    time_s: float
    hbm_bytes: float
    macs: float
    count: int


@dataclass
class EngineResult:
    time_s: float
    busy_s: dict[str, float]
    tags: dict[str, TagCost]
    totals: dict[str, float]
    macs_by_precision: dict[str, float]
    energy_j: dict[str, float]
    schedule: list[tuple] | None
    schedule_truncated: bool
    ops_simulated: int
    ops_extrapolated: int
    loops_extrapolated: list[dict] = field(default_factory=list)


class Counters:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        n_tags = len(plan.tag_names)
        self.precisions = sorted({c.precision for c in plan.costs if c is not None and c.precision})
        self.tag_time = len(QUEUE_ENGINES)
        self.tag_hbm = self.tag_time + n_tags
        self.tag_macs = self.tag_hbm + n_tags
        self.tag_count = self.tag_macs + n_tags
        self.totals = self.tag_count + n_tags
        self.by_precision = self.totals + len(TOTALS)
        self.values = [0.0] * (self.by_precision + len(self.precisions))
        self.adds: list[tuple[tuple[int, float], ...]] = [self._adds(c) for c in plan.costs]

    def _adds(self, c) -> tuple[tuple[int, float], ...]:
        if c is None:
            return ()
        total = {name: self.totals + i for i, name in enumerate(TOTALS)}
        pairs = [(self.tag_count + c.tag, 1.0), (total["instructions"], 1.0),
                 (total["dynamic_energy_j"], c.energy_j), (total["sram_bytes"], c.sram_bytes)]
        if c.hbm_bytes:
            pairs += [(self.tag_hbm + c.tag, c.hbm_bytes), (total["hbm_bytes"], c.hbm_bytes)]
        if c.macs:
            pairs += [(self.tag_macs + c.tag, float(c.macs)), (total["macs"], float(c.macs)),
                      (self.by_precision + self.precisions.index(c.precision), float(c.macs)),
                      (total["gemm_roofline_s"], c.roofline_s)]
        if c.vector_ops:
            pairs += [(total["vector_ops"], float(c.vector_ops)), (total["vector_roofline_s"], c.roofline_s)]
        if c.link_bytes:
            pairs += [(total["link_bytes"], c.link_bytes), (total["link_roofline_s"], c.roofline_s)]
        return tuple(pairs)

    def result(self, engine: EventEngine) -> EngineResult:
        v, plan = self.values, self.plan
        tags = {name: TagCost(v[self.tag_time + i], v[self.tag_hbm + i], v[self.tag_macs + i],
                              int(round(v[self.tag_count + i]))) for i, name in enumerate(plan.tag_names)}
        totals = {name: v[self.totals + i] for i, name in enumerate(TOTALS)}
        macs = {p: v[self.by_precision + i] for i, p in enumerate(self.precisions)}
        counts = EnergyCounts(macs=macs, vector_ops=totals["vector_ops"], sram_bytes=totals["sram_bytes"],
                              hbm_bytes=totals["hbm_bytes"], link_bytes=totals["link_bytes"])
        return EngineResult(
            time_s=engine.now,
            busy_s={e.name.lower(): v[i] for i, e in enumerate(QUEUE_ENGINES)},
            tags=tags,
            totals=totals,
            macs_by_precision=macs,
            energy_j=energy_breakdown_j(plan.chip, counts, engine.now),
            schedule=engine.schedule,
            schedule_truncated=engine.schedule_truncated,
            ops_simulated=engine.ops_simulated,
            ops_extrapolated=engine.ops_extrapolated,
            loops_extrapolated=engine.detector.extrapolated if engine.detector is not None else [],
        )
