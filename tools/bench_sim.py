"""Simulator benchmarks: host time of one llama3.1-8b decode step at 131072 context and of a
4096-token prefill on matx-one, and the event engine's speed in instructions per host second.

Prints min / median / max over a few runs (these machines are noisy: compare runs by ratio).
Lowering time is reported apart from simulation time. Without the programmable lowering, only
the hand-built synthetic programs run.

    python tools/bench_sim.py [--repeat 3] [--target matx-one] [--context 131072] [--prompt 4096]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from compiler.targets.programmable.isa import DmaLoad, Gemm, Loop, Precision, Vector, VectorOp  # noqa: E402
from compiler.targets.programmable.program import Program  # noqa: E402
from simulator.hardware import load_hardware  # noqa: E402
from simulator.programmable import simulate_program  # noqa: E402


def synthetic_attention(blocks: int, heads: int = 8) -> Program:
    """KV blocks streamed through QK, exp and PV with two buffers of credits (like a decode)."""
    bf16, fp32 = Precision.BF16, Precision.FP32
    p = Program()
    for _ in range(2):
        p.emit(Vector(op=VectorOp.COPY, precision=bf16, length=16, signal=(2, 6)), "attention")
    for head in range(heads):
        p.emit(Loop(body=6, count=blocks), "attention")
        p.emit(DmaLoad(hbm_addr=head << 30, hbm_loop_stride=32768, sram_addr=1 << 20, rows=1, row_bytes=32768,
                       wait=(2,), signal=(1,)), "attention")
        p.emit(Gemm(a_addr=0, b_addr=1 << 20, c_addr=2 << 20, m=4, n=128, k=128, precision=bf16,
                    acc_precision=fp32, split=3, subarray=head % 8, wait=(1,), signal=(3, 2)), "attention")
        p.emit(Vector(op=VectorOp.EXP, precision=fp32, length=512, src_a=2 << 20, dst=3 << 20, wait=(3,),
                      signal=(4,)), "attention")
        p.emit(DmaLoad(hbm_addr=(head + 8) << 30, hbm_loop_stride=32768, sram_addr=4 << 20, rows=1,
                       row_bytes=32768, wait=(6,), signal=(5,)), "attention")
        p.emit(Gemm(a_addr=3 << 20, b_addr=4 << 20, c_addr=5 << 20, m=4, n=128, k=128, precision=bf16,
                    acc_precision=fp32, accumulate=True, split=3, subarray=head % 8, wait=(4, 5), signal=(6,)),
               "attention")
        p.emit(Vector(op=VectorOp.ADD, precision=fp32, length=512, src_a=0, src_b=0, dst=0), "attention")
    return p


def timed(fn, repeat: int) -> tuple[list[float], object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def line(label: str, times: list[float], result, extra: str = "") -> None:
    executed = result.ops_simulated + result.ops_extrapolated
    best = min(times)
    print(f"{label:<44} host s min/med/max {min(times):7.3f} {statistics.median(times):7.3f} {max(times):7.3f}"
          f" | simulated {result.time_s * 1e3:9.3f} ms | {result.ops_simulated:>9,} events"
          f" ({result.ops_simulated / best:>9,.0f}/s), {executed:>11,} instructions ({executed / best:>11,.0f}/s)"
          f"{extra}")


def bench_model(chip, args) -> None:
    try:
        from compiler.targets.programmable.lower import lower_graph  # noqa: F401
    except ImportError as exc:
        print(f"model benchmarks skipped: the programmable lowering is not available ({exc})")
        return
    from simulator.api import SimOptions, load_model_graphs
    from simulator.programmable.model import _recognizer, lower

    graphs = load_model_graphs("llama3.1-8b")
    recognize, _ = _recognizer()
    for graph, bindings, label in (
        (graphs.decode, {"batch": 1, "past_len": args.context}, f"decode @ {args.context:,}"),
        (graphs.prefill, {"batch": 1, "seq": args.prompt}, f"prefill {args.prompt:,}"),
    ):
        options = SimOptions(context=args.context, prompt_len=args.prompt)
        start = time.perf_counter()
        program = lower(recognize(graph), chip, options, bindings)
        lower_s = time.perf_counter() - start
        times, result = timed(lambda p=program: simulate_program(p, chip), args.repeat)
        line(f"llama3.1-8b {label} on {chip.name}", times, result,
             f" | lowering {lower_s:.2f} s, {len(program):,} static instructions")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--target", default="matx-one")
    parser.add_argument("--context", type=int, default=131072)
    parser.add_argument("--prompt", type=int, default=4096)
    args = parser.parse_args()
    chip = load_hardware(args.target)
    blocks = args.context // 256
    program = synthetic_attention(blocks)
    times, result = timed(lambda: simulate_program(program, chip, extrapolate=False), args.repeat)
    line(f"synthetic attention, {blocks} blocks, every event", times, result)
    times, result = timed(lambda: simulate_program(program, chip), args.repeat)
    line(f"synthetic attention, {blocks} blocks, extrapolated", times, result)
    bench_model(chip, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
