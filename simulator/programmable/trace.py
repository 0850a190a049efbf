"""The simulated schedule as a Chrome / Perfetto trace (JSON "traceEvents", open in ui.perfetto.dev).

One process per chip, one track per engine. Engines that overlap their own instructions (DMA
channels, GEMM sub-arrays) get one track per lane, so slices on a track never overlap. A loop
span that the engine extrapolated instead of simulating is one slice named after the loop.
With tensor parallelism every chip runs the same program (SPMD), so chips past the first carry
only their name and point at chip 0's tracks.
"""

from __future__ import annotations

import json
from pathlib import Path

from simulator.programmable.plan import QUEUE_ENGINES, Plan
from simulator.programmable.stats import EngineResult

_US = 1e6


def trace_events(plan: Plan, result: EngineResult, chips: int = 1) -> list[dict]:
    instructions = plan.program.instructions
    tags = plan.program.tags
    events: list[dict] = [{"ph": "M", "name": "process_name", "pid": 0,
                           "args": {"name": f"{plan.chip.name} chip 0"}}]
    for chip in range(1, chips):
        events.append({"ph": "M", "name": "process_name", "pid": chip,
                       "args": {"name": f"{plan.chip.name} chip {chip} (same program and schedule as chip 0)"}})
    lanes: dict[tuple[int, int], int] = {}     # (queue, lane) -> tid
    lane_ends: dict[int, list[float]] = {}
    for queue, pc, it, start, end, extrapolated in sorted(result.schedule or (), key=lambda e: (e[0], e[3])):
        ends = lane_ends.setdefault(queue, [])
        lane = next((i for i, t in enumerate(ends) if t <= start), len(ends))
        if lane == len(ends):
            ends.append(end)
        else:
            ends[lane] = end
        tid = lanes.setdefault((queue, lane), 100 * queue + lane)
        if extrapolated:
            loop_pc = -1 - pc
            name = f"LOOP@{loop_pc}: {extrapolated} iterations (extrapolated)"
            cat, args = "extrapolated", {"loop_pc": loop_pc, "from_iteration": it, "iterations": extrapolated}
        else:
            ins = instructions[pc]
            name = ins.comment or type(ins).__name__
            cat = tags[pc] if tags else ""
            args = {"pc": pc, "iteration": it, "tag": cat}
        events.append({"ph": "X", "name": name, "cat": cat or "untagged", "pid": 0, "tid": tid,
                       "ts": start * _US, "dur": max(end - start, 0.0) * _US, "args": args})
    for (queue, lane), tid in sorted(lanes.items()):
        label = QUEUE_ENGINES[queue].name + (f" {lane}" if lane else "")
        events.append({"ph": "M", "name": "thread_name", "pid": 0, "tid": tid, "args": {"name": label}})
        events.append({"ph": "M", "name": "thread_sort_index", "pid": 0, "tid": tid, "args": {"sort_index": tid}})
    return events


def write_trace(path: str | Path, plan: Plan, result: EngineResult, chips: int = 1,
                metadata: dict | None = None) -> Path:
    path = Path(path)
    doc = {"traceEvents": trace_events(plan, result, chips), "displayTimeUnit": "ns",
           "otherData": {"schedule_truncated": result.schedule_truncated, **(metadata or {})}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path
