"""`tessera compare`: check the inputs, run the matrix, write the reports, gate against a baseline.

Exit status: 0 when every run ran and the gate (if any) passed; 1 when the gate failed, or when a
run failed and no baseline says that is known; 2 for bad input (raised as CompareError and the
simulator's own input errors, which the command line prints as one line).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from simulator.compare.gate import (
    check,
    check_settings,
    format_gate,
    load_baseline,
    parse_tolerance,
    tolerances_to_keep,
    write_baseline,
)
from simulator.compare.matrix import CompareError, Settings, build_matrix
from simulator.compare.report import comparison_json, write_reports
from simulator.compare.run import describe, run_all


@dataclass(frozen=True)
class CompareRequest:
    targets: list[str]
    models: list[str]
    contexts: list[str]
    batches: list[str]
    out: str
    settings: Settings
    baseline: str | None = None
    tolerance: str = "5%"
    update_baseline: bool = False
    jobs: int = 0
    progress: bool | None = None      # None: a bar when stderr is a terminal


def run_compare(request: CompareRequest) -> int:
    # Everything that can be wrong with the input is found before the first simulation.
    tolerance = parse_tolerance(request.tolerance)
    if request.update_baseline and not request.baseline:
        raise CompareError("--update-baseline needs --baseline PATH (the file to write)")
    matrix = build_matrix(request.targets, request.models, request.contexts, request.batches, request.settings)
    baseline, kept_tolerances = None, {}
    if request.update_baseline:
        kept_tolerances = tolerances_to_keep(request.baseline)
    elif request.baseline:
        baseline = load_baseline(request.baseline)
        check_settings(baseline, matrix.settings)

    runs = matrix.runs
    print(f"tessera compare: {len(runs)} runs ({len(matrix.targets)} targets x {len(matrix.models)} models x "
          f"{len(matrix.contexts)} contexts x {len(matrix.batches)} batches)", file=sys.stderr, flush=True)
    results = run_all(runs, matrix.settings, jobs=request.jobs, progress=request.progress)

    gate = check(baseline, results, tolerance) if baseline is not None else None
    data = comparison_json(matrix, results, gate, request.baseline if gate else None)
    paths = write_reports(request.out, data)
    print(f"wrote {paths['json']}, {paths['md']}, {paths['html']}")

    failed = [r for r in results if r.error]
    for r in failed:
        print(f"tessera compare: run failed: {describe(r)}", file=sys.stderr)
    if request.update_baseline:
        write_baseline(request.baseline, matrix, results, kept_tolerances)
        print(f"baseline written: {request.baseline} ({len(results)} runs"
              + (f", {len(failed)} recorded as failing" if failed else "") + ")")
        return 0
    if gate is not None:
        print(format_gate(gate))
        return 0 if gate.passed else 1
    return 1 if failed else 0
