"""Front-end benchmarks: import + fold + verify of the 8B graph, interpreter time on fixtures.

Prints figures (seconds, peak RSS) rather than asserting them: these machines are noisy, so
compare runs by ratio. Each measurement runs in a fresh process so peak RSS is its own.

    python tools/bench_frontend.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HF = ROOT / "tests" / "fixtures" / "hf"

_IMPORT_8B = """
import json, resource, time
t0 = time.perf_counter()
from compiler.frontend import import_onnx
from compiler.ir.verify import verify
t1 = time.perf_counter()
graph = import_onnx({path!r})
verify(graph)
t2 = time.perf_counter()
print(json.dumps({{"startup_s": t1 - t0, "import_fold_verify_s": t2 - t1, "nodes": len(graph),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""

_IMPORT_REGISTERED = """
import json, resource, time
import models
from compiler.frontend import import_onnx
from compiler.ir.verify import verify
proto = models.build_model({name!r}, "prefill")
t = time.perf_counter()
graph = import_onnx(proto)
verify(graph)
print(json.dumps({{"import_fold_verify_s": time.perf_counter() - t, "onnx_nodes": len(proto.graph.node),
                  "nodes": len(graph), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""

_RUN_FIXTURE = """
import json, time
import numpy as np
from compiler.frontend import import_onnx
from compiler.interp import run_graph
graph = import_onnx({path!r})
with np.load({inputs!r}) as f:
    inputs = {{k: f[k] for k in f.files}}
run_graph(graph, inputs)
times = []
for _ in range(5):
    t = time.perf_counter(); run_graph(graph, inputs); times.append(time.perf_counter() - t)
print(json.dumps({{"run_s": min(times), "nodes": len(graph)}}))
"""


def _measure(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    path = HF / "llama3.1-8b-meta" / "model.onnx"
    runs = [_measure(_IMPORT_8B.format(path=str(path))) for _ in range(args.repeat)]
    times = [r["import_fold_verify_s"] for r in runs]
    print(f"llama3.1-8b described-only graph: {runs[0]['nodes']} IR nodes after folding")
    print(f"  import+fold+verify  min {min(times):.2f} s  median {statistics.median(times):.2f} s  "
          f"max {max(times):.2f} s   (target < 5 s; ratio to target {statistics.median(times) / 5:.2f})")
    rss = [r["peak_rss_mb"] for r in runs]
    print(f"  peak RSS            max {max(rss):.0f} MB (target < 1024 MB; ratio {max(rss) / 1024:.2f})")
    print(f"  python start-up + imports {statistics.median(r['startup_s'] for r in runs):.2f} s")

    for name in ("llama3.1-8b", "llama3.1-70b"):
        r = _measure(_IMPORT_REGISTERED.format(name=name))
        print(f"models/{name} prefill: {r['onnx_nodes']} ONNX nodes -> {r['nodes']} IR nodes, "
              f"import+fold+verify {r['import_fold_verify_s']:.2f} s, peak RSS {r['peak_rss_mb']:.0f} MB")

    print("tessera interpreter on the tiny fixtures (best of 5 after a warm-up run):")
    for directory in sorted(p for p in HF.iterdir() if (p / "inputs.npz").exists()):
        r = _measure(_RUN_FIXTURE.format(path=str(directory / "model.onnx"), inputs=str(directory / "inputs.npz")))
        print(f"  {directory.name:<14} {r['nodes']:>5} nodes  {r['run_s'] * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
