"""Time the graph build of every full-size model: `python -m models.bench_build [--repeat N]`.

Full-size weights are described-only, so a build allocates no weight bytes; this prints the
best-of-N wall time per model and form with the graph's node count and proto size.
"""

from __future__ import annotations

import argparse
import time

from . import build_model, get_config, list_models, parameter_count


def bench(repeat: int) -> list[tuple[str, str, float, int, int]]:
    rows = []
    for name in list_models():
        if get_config(name).weights != "described":
            continue
        for form in ("prefill", "decode"):
            best = float("inf")
            for _ in range(repeat):
                start = time.perf_counter()
                model = build_model(name, form)
                best = min(best, time.perf_counter() - start)
            rows.append((name, form, best, len(model.graph.node), model.ByteSize()))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3, help="builds per model and form; the best is shown")
    args = parser.parse_args()
    print(f"{'model':22} {'form':8} {'build_s':>8} {'nodes':>6} {'proto_KiB':>9} {'parameters':>16}")
    for name, form, seconds, nodes, size in bench(args.repeat):
        params = parameter_count(get_config(name))
        print(f"{name:22} {form:8} {seconds:8.3f} {nodes:6d} {size / 1024:9.0f} {params:16,}")


if __name__ == "__main__":
    main()
