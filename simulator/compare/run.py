"""Run a comparison's simulations: independent runs in a process pool, with a progress display.

A run that raises is recorded with its error (type and first line) rather than stopping the
others: the report shows it, and the gate treats a baseline run that now fails as a regression.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from simulator.compare.matrix import Run, Settings


@dataclass(frozen=True)
class RunResult:
    run: Run
    report: dict[str, Any] | None     # SimReport.to_json() (non-finite numbers are None)
    error: str | None
    seconds: float                    # host time the simulation took


def simulate_run(run: Run, settings: Settings) -> RunResult:
    """One simulation; the worker function of the pool (module level so that it pickles)."""
    from simulator.api import SimOptions, simulate

    start = time.perf_counter()
    try:
        options = SimOptions(context=run.context, batch=run.batch, prompt_len=settings.prompt_len or run.context,
                             gen_len=settings.gen_len, weight_precision=settings.precision,
                             kv_precision=settings.kv_precision)
        report = simulate(run.model_spec, run.target_spec, options).to_json()
    except Exception as exc:  # noqa: BLE001  (one failing run must not hide the others' results)
        first = str(exc).splitlines()[0] if str(exc) else ""
        return RunResult(run, None, f"{type(exc).__name__}: {first}", time.perf_counter() - start)
    return RunResult(run, report, None, time.perf_counter() - start)


def default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run_all(runs: list[Run], settings: Settings, jobs: int = 0, progress: bool | None = None) -> list[RunResult]:
    """Results in the order of `runs`. `jobs` <= 0: one worker per CPU; 1: in this process."""
    jobs = min(jobs if jobs > 0 else default_jobs(), len(runs)) or 1
    show_bar = sys.stderr.isatty() if progress is None else progress
    with _Progress(len(runs), show_bar) as bar:
        if jobs == 1:
            results = []
            for run in runs:
                results.append(simulate_run(run, settings))
                bar.done(results[-1])
            return results
        return _run_pool(runs, settings, jobs, bar)


def _run_pool(runs: list[Run], settings: Settings, jobs: int, bar: _Progress) -> list[RunResult]:
    # Longest first (largest context x batch) so the last runs to finish are short ones.
    order = sorted(range(len(runs)), key=lambda i: -runs[i].context * runs[i].batch)
    results: list[RunResult | None] = [None] * len(runs)
    # spawn: workers start clean (no inherited threads or locks from the progress display)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending: dict[Future, int] = {pool.submit(simulate_run, runs[i], settings): i for i in order}
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    index = pending.pop(future)
                    results[index] = future.result()
                    bar.done(results[index])
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return [r for r in results if r is not None]


class _Progress:
    """A rich progress bar on a terminal; one line per finished run otherwise (CI logs)."""

    def __init__(self, total: int, bar: bool) -> None:
        self.total, self.bar, self.count = total, bar, 0
        self._progress = None

    def __enter__(self) -> _Progress:
        if self.bar:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            self._progress = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), console=Console(stderr=True), transient=True)
            self._progress.__enter__()
            self._task = self._progress.add_task("simulating", total=self.total)
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def done(self, result: RunResult) -> None:
        self.count += 1
        line = f"[{self.count}/{self.total}] {describe(result)}"
        if self._progress is not None:
            self._progress.update(self._task, advance=1, description=result.run.key)
            self._progress.console.print(line, highlight=False)
        else:
            print(line, file=sys.stderr, flush=True)


def describe(result: RunResult) -> str:
    run = result.run
    head = f"{run.model} on {run.target} at context {run.context:,}, batch {run.batch}"
    if result.error:
        return f"{head}: error: {result.error} ({result.seconds:.1f} s)"
    rate = result.report.get("tokens_per_s_per_user") if result.report else None
    what = f"{rate:,.1f} tokens/s per user" if rate is not None else "no rate (does not fit)"
    return f"{head}: {what} ({result.seconds:.1f} s)"
