"""Sweep speed and agreement: the ~1000-point 8B decode sweep on a 2-worker local dask cluster.

Prints points per second (wall, and CPU seconds per point, which a busy machine inflates less),
how many points reused a lowered program, and for a random sample of points how far the sweep's
figures are from the full `simulate()` path (fresh import, fresh lowering, prefill included) on the
point's hardware written out as a TOML description (decode figures: the sweep simulates decode
only, and `simulate()` runs its prefill at --prompt-len, which they do not depend on). Prints, never
asserts; without --out every run starts from an empty folder, so every point is computed.

    python tools/bench_sweep.py [--sweep sweeps/matx-8b-decode-8k.toml] [--workers 2] [--sample 12]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPARED = ("tokens_per_s_total", "tokens_per_s_per_user", "tpot_s", "energy_j_per_token", "power_w",
            "hbm_bytes_per_token", "compute_utilization", "fits")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", default=str(ROOT / "sweeps" / "matx-8b-decode-8k.toml"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sample", type=int, default=12, help="points re-run through simulate() (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prompt-len", type=int, default=1024,
                        help="prefill length simulate() runs in the check (decode figures do not depend on it)")
    parser.add_argument("--out", help="output folder (default: a fresh temporary one)")
    args = parser.parse_args()

    # Import the lowering and the engine now, as the workers do when they start: the agreement
    # check then runs the code the sweep ran even if the tree is being edited meanwhile.
    import compiler.targets.programmable.lower  # noqa: F401
    import simulator.programmable.engine  # noqa: F401
    from simulator.sweep import format_outcome, load_sweep, plan_sweep, run_sweep

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    t0 = time.perf_counter()
    spec = load_sweep(args.sweep)
    plan = plan_sweep(spec)
    plan_s = time.perf_counter() - t0
    outcome = run_sweep(spec, plan, out, workers=args.workers, progress=False)
    total_s = time.perf_counter() - t0
    print(format_outcome(outcome))
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    cpu = [r["cpu_s"] for r in records]
    print(f"\nbench: {len(plan.points)} points, {args.workers} workers")
    print(f"  load + validate the sweep file: {plan_s:.2f} s")
    print(f"  cluster start:                  {outcome.cluster_start_s:.2f} s")
    print(f"  simulation:                     {outcome.simulate_s:.1f} s -> {outcome.points_per_s:.2f} points/s")
    print(f"  total wall time:                {total_s:.1f} s")
    print(f"  CPU s per point: mean {statistics.mean(cpu):.3f}, median {statistics.median(cpu):.3f}, "
          f"max {max(cpu):.3f}; sum / workers = {sum(cpu) / args.workers:.1f} s")
    for how in ("lowered", "reused"):
        mine = [r["cpu_s"] for r in records if r.get("lowering") == how]
        if mine:
            print(f"  {how:>7}: {len(mine)} points, mean CPU {statistics.mean(mine):.3f} s")
    if args.sample:
        agreement(spec, records, args.sample, args.seed, args.prompt_len, out)


def agreement(spec, records: list[dict], sample: int, seed: int, prompt_len: int, out: Path) -> None:
    """Re-run sampled points through `simulate()` on their written-out hardware; print relative gaps."""
    import tomli_w

    from simulator.api import SimOptions, simulate
    from simulator.sweep.points import hardware_data
    from simulator.sweep.spec import OPTION_PARAMETERS

    ok = [r for r in records if r["status"] == "ok"]
    chosen = random.Random(seed).sample(ok, min(sample, len(ok)))
    worst: dict[str, float] = {}
    failures: list[str] = []
    start = time.perf_counter()
    for record in chosen:
        overrides = {k: v for k, v in record["params"].items() if k not in OPTION_PARAMETERS}
        target = out / "check" / f"{record['id']}.toml"
        target.parent.mkdir(exist_ok=True)
        target.write_text(tomli_w.dumps(hardware_data(spec.base, overrides)))
        options = SimOptions(context=record["context"], batch=record["batch"],
                             prompt_len=prompt_len,
                             weight_precision=record["params"].get("precision", "bf16"),
                             kv_precision=record["params"].get("kv_precision", "bf16"))
        try:
            report = simulate(record["model"], str(target), options)
        except Exception as exc:  # noqa: BLE001  (a point the full path cannot run is reported, not fatal)
            failures.append(f"{record['id']} {record['params']}: {type(exc).__name__}: {exc}")
            continue
        full = {name: getattr(report, name, None) for name in COMPARED}
        if spec.kind == "spatial":
            full["power_w"] = report.extra["power_w"]
        else:
            full["power_w"] = report.energy_j_per_token * report.tokens_per_s_total
        for name in COMPARED:
            worst[name] = max(worst.get(name, 0.0), _gap(record["metrics"][name], full[name]))
    elapsed_s = time.perf_counter() - start
    print(f"\nagreement with simulate() on {len(chosen) - len(failures)} of {len(chosen)} random points "
          f"({elapsed_s:.1f} s): largest relative difference per figure")
    for name, gap in worst.items():
        print(f"  {name:<24} {gap:.3g}")
    for failure in failures:
        print(f"  simulate() failed (the sweep, decode only, did not): {failure}")


def _gap(sweep, full) -> float:
    """Relative difference; 0 when both are missing (JSON null = not finite), inf when one is."""
    missing = (sweep is None, full is None or (isinstance(full, float) and not math.isfinite(full)))
    if any(missing):
        return 0.0 if all(missing) else math.inf
    if isinstance(sweep, bool):
        return float(sweep != full)
    return abs(sweep - full) / max(abs(full), 1e-300)


if __name__ == "__main__":
    main()
