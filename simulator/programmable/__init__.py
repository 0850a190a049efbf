"""The programmable target's simulator: lower a model, run its program on the event engine,
and report tokens/s, bandwidth, utilization, energy and the bottleneck.

    simulate_program(program, chip)        one Program's timing (EngineResult)
    run_functional(program, chip, hbm)     one Program's values (functional.py)
    simulate_programmable(graphs, chip, o) a model's decode (TPOT) and prefill (TTFT) -> SimReport
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any

from compiler.targets.programmable.program import Program
from simulator.hardware.programmable import ProgrammableChip
from simulator.programmable.engine import DeadlockError, EventEngine
from simulator.programmable.functional import run_functional
from simulator.programmable.plan import Plan
from simulator.programmable.stats import EngineResult
from simulator.programmable.validate import ProgramError

__all__ = ["DeadlockError", "EngineResult", "ProgramError", "run_functional", "simulate_program",
           "simulate_programmable"]


def simulate_program(program: Program, chip: ProgrammableChip, *, trace_path: str | Path | None = None,
                     chips: int = 1, progress: bool = False, extrapolate: bool = True,
                     description: str = "simulating") -> EngineResult:
    """Time one program on one chip (of `chips` running it SPMD); write a trace when asked."""
    plan = Plan(program, chip)
    with _progress_bar(progress, description) as update:
        engine = EventEngine(plan, record_schedule=trace_path is not None, extrapolate=extrapolate,
                             progress=update)
        result = engine.run()
    if trace_path is not None:
        from simulator.programmable.trace import write_trace

        write_trace(trace_path, plan, result, chips, {"program_meta": _jsonable(program.meta)})
    return result


@contextmanager
def _progress_bar(enabled: bool, description: str):
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _jsonable(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meta.items() if isinstance(v, (bool, int, float, str))}


def simulate_programmable(graphs, chip: ProgrammableChip, options) -> Any:
    from simulator.programmable.model import simulate_model

    return simulate_model(graphs, chip, options)

