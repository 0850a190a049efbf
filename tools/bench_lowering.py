"""Programmable-target lowering benchmarks: program size and lowering time per preset.

Llama 3.1 8B decode at 1k / 32k / 128k context and a 4096-token prefill, on each preset, for
the graph as imported ("raw": attention decomposed, lowered as generic GEMMs) and after the
recognition passes ("fused": Op.ATTENTION, the streaming kernel). Prints figures rather than
asserting them.

    python tools/bench_lowering.py [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import models  # noqa: E402
from compiler.frontend import import_onnx  # noqa: E402
from compiler.passes.pipeline import recognize  # noqa: E402
from compiler.targets.programmable.lower import lower_graph  # noqa: E402
from compiler.targets.programmable.options import LoweringOptions  # noqa: E402
from simulator.hardware import load_hardware  # noqa: E402

PRESETS = ("matx-one", "h100-sxm", "h200-sxm")
CASES = (("decode", {"past_len": 1024}), ("decode", {"past_len": 32768}), ("decode", {"past_len": 131072}),
         ("prefill", {"seq": 4096}))


def fused_graph(form: str):
    return recognize(import_onnx(models.build_model("llama3.1-8b", form)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    args = parser.parse_args()
    graphs = {}
    for form in ("decode", "prefill"):
        graphs[(form, "raw")] = import_onnx(models.build_model("llama3.1-8b", form))
        fused = fused_graph(form)
        if fused is not None:
            graphs[(form, "fused")] = fused
    rows = []
    for preset in PRESETS:
        chip = load_hardware(preset)
        for form, bindings in CASES:
            for kind in ("fused", "raw"):
                graph = graphs.get((form, kind))
                if graph is None:
                    continue
                times = []
                for _ in range(args.repeat):
                    started = time.perf_counter()
                    program = lower_graph(graph, chip, LoweringOptions(batch=1, bindings=bindings))
                    times.append(time.perf_counter() - started)
                meta = program.meta
                rows.append({
                    "preset": preset, "form": form, "bindings": bindings, "attention": kind,
                    "instructions": len(program), "lowering_s": round(statistics.median(times), 3),
                    "loops": meta["loops"], "fences": meta["fences"], "semaphores": meta["semaphores_used"],
                    "weights_in_sram": meta["weights_in_sram"], "tensor_parallel": meta["tensor_parallel"],
                    "fits": meta["fits"],
                })
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return
    print(f"{'preset':9} {'form':7} {'size':>13} {'attention':9} {'instr':>7} {'lower s':>8} {'loops':>6} "
          f"{'fences':>6} {'sems':>4} {'TP':>3} sram")
    for row in rows:
        size = ", ".join(f"{k}={v}" for k, v in row["bindings"].items())
        print(f"{row['preset']:9} {row['form']:7} {size:>13} {row['attention']:9} {row['instructions']:7d} "
              f"{row['lowering_s']:8.3f} {row['loops']:6d} {row['fences']:6d} {row['semaphores']:4d} "
              f"{row['tensor_parallel']:3d} {row['weights_in_sram']}")


if __name__ == "__main__":
    main()
