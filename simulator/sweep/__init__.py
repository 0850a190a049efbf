"""Design-space sweeps (`tessera sweep SWEEP.toml`): hardware parameters over models and contexts,
run on dask.distributed, resumable, reported as Pareto fronts of throughput against area, power
and cost.

    spec = load_sweep("sweeps/matx-8b-decode-8k.toml")   # spec.py: the file, checked
    plan = plan_sweep(spec)                              # points.py: every point, hardware validated
    outcome = run_sweep(spec, plan, Path("build/sweeps/x"))   # run.py: results.jsonl, pareto.json/.png

Points run through the same `simulate_model` / spatial simulator as `tessera sim`; on the
programmable target one lowered program is shared by points that differ only in fields the
lowering does not read (reuse.py), which leaves the results unchanged.
"""

from __future__ import annotations

from simulator.sweep.points import DesignPoint, SweepPlan, plan_sweep
from simulator.sweep.run import SweepInterrupted, SweepOutcome, format_outcome, run_sweep
from simulator.sweep.spec import SweepError, SweepSpec, load_sweep

__all__ = ["DesignPoint", "SweepError", "SweepInterrupted", "SweepOutcome", "SweepPlan", "SweepSpec",
           "format_outcome", "load_sweep", "plan_sweep", "run_sweep"]
