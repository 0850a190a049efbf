"""The `tessera` command line: inspect and run models (simulation lands with the targets)."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from compiler.frontend.onnx_import import OnnxImportError, import_onnx
from compiler.interp.run import InterpreterError, run_graph
from compiler.ir.graph import Graph, GraphError
from compiler.ir.printer import format_graph
from compiler.ir.tensor import MissingWeightsError
from compiler.ops.registry import OpError, UnsupportedOpError
from compiler.passes.pipeline import PASSES, run_passes
from compiler.summary import GraphSummary, summarize
from simulator.hardware.schema import HardwareError

USER_ERRORS = (OnnxImportError, HardwareError, InterpreterError, GraphError, MissingWeightsError, OpError,
               UnsupportedOpError, ValueError, FileNotFoundError)


class CliError(Exception):
    pass


def load_graph(spec: str, form: str = "decode") -> Graph:
    """An `.onnx` path, or the name of a model in the `models/` registry built in `form`."""
    path = Path(spec)
    if path.suffix == ".onnx" or path.exists():
        return import_onnx(path)
    try:
        import models
    except ImportError as exc:
        raise CliError(f"{spec}: no such file, and the model registry could not be loaded ({exc})") from None
    return import_onnx(models.build_model(spec, form))


def _parse_bindings(items: Sequence[str]) -> dict[str, int]:
    bindings = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not value.isdigit():
            raise CliError(f"--bind {item!r}: expected NAME=INTEGER, e.g. past_len=1024")
        bindings[key] = int(value)
    return bindings


def cmd_inspect(args: argparse.Namespace) -> int:
    graph = load_graph(args.model, args.form)
    summary = summarize(graph, _parse_bindings(args.bind))
    if args.json:
        print(json.dumps(summary.to_json(), indent=2))
    else:
        print(format_summary(summary))
    return 0


def format_summary(summary: GraphSummary) -> str:
    data = summary.to_json()
    rows = [
        ("graph", f"{data['name']} (opset {data['opset']}, {data['node_count']} nodes)"),
        ("parameters", f"{summary.parameter_count:,}"),
        ("weight bytes", ", ".join(f"{k}: {v:,}" for k, v in data["weight_bytes_by_dtype"].items()) or "0"),
        ("described-only bytes", f"{summary.described_only_bytes:,}"),
        ("symbolic dims", ", ".join(summary.symbols) or "none"),
        ("tokens per step", data["tokens_per_step"]),
        ("matmul FLOPs per step", data["matmul_flops"]),
        ("matmul FLOPs per token", data["matmul_flops_per_token"]),
        ("vector ops per step", data["vector_ops"]),
        ("weight bytes read per step", data["weight_bytes_per_step"]),
        ("KV bytes per token", data["kv_bytes_per_token"]),
        ("state bytes per sequence", data["state_bytes"]),
    ]
    if summary.bindings:
        rows.append(("bound", ", ".join(f"{k}={v}" for k, v in summary.bindings.items())))
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {'-' if v is None else v}" for k, v in rows]
    lines.append("inputs:")
    lines += [f"  {n}: {t}" for n, t in _group_per_layer(summary.inputs)]
    lines.append("outputs:")
    lines += [f"  {n}: {t}" for n, t in _group_per_layer(summary.outputs)]
    lines.append("ops: " + ", ".join(f"{op} {count}" for op, count in summary.op_counts.items()))
    return "\n".join(lines)


def _group_per_layer(values: dict[str, str]) -> list[tuple[str, str]]:
    """Collapse per-layer values (`past_key_values.7.key`) into one line with a count."""
    groups: dict[tuple[str, str], list[str]] = {}
    for name, ttype in values.items():
        groups.setdefault((re.sub(r"\.\d+(?=\.|$)", ".{i}", name), ttype), []).append(name)
    rows = []
    for (pattern, ttype), names in groups.items():
        rows.append((names[0] if len(names) == 1 else f"{pattern} (x{len(names)})", ttype))
    return rows


def cmd_ir(args: argparse.Namespace) -> int:
    graph = load_graph(args.model, args.form)
    passes = [p for p in args.passes.split(",") if p] if args.passes else []
    print(format_graph(run_passes(graph, passes), constants=args.constants), end="")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    graph = load_graph(args.model, args.form)
    inputs_path = Path(args.inputs)
    if not inputs_path.exists():
        raise CliError(f"{inputs_path}: no such file")
    try:
        with np.load(inputs_path, allow_pickle=False) as data:
            inputs = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CliError(f"{inputs_path}: not a readable .npz file ({exc})") from None
    outputs = run_graph(graph, inputs)
    np.savez(args.output, **outputs)
    for name, array in outputs.items():
        print(f"{name}: {array.dtype}{list(array.shape)}")
    return 0


def cmd_sim(args: argparse.Namespace) -> int:
    from simulator.api import SimOptions, simulate
    from simulator.report import format_report

    options = SimOptions(
        context=args.context, batch=args.batch, prompt_len=args.prompt_len or args.context,
        gen_len=args.gen_len, weight_precision=args.precision, kv_precision=args.kv_precision,
        trace_path=Path(args.trace) if args.trace else None, progress=sys.stderr.isatty(),
    )
    report = simulate(args.model, args.target, options)
    if args.json:
        report.write_json(args.json)
    print(format_report(report))
    return 0


def cmd_claim(args: argparse.Namespace) -> int:
    from simulator.claims import TargetUnavailableError, check_claim, format_result, load_claim
    from simulator.spatial.long_context import format_table, long_context_table, rows_to_json

    if not args.files and not args.long_context:
        raise CliError("claim: give a claim file (e.g. claims/taalas-hc1-llama3.1-8b.toml) or --long-context")
    claims = [load_claim(path) for path in args.files]   # every file is validated before any runs
    results, status = [], 0
    for claim in claims:
        try:
            results.append(check_claim(claim, solve=not args.no_solve))
        except TargetUnavailableError as exc:
            # One claim whose target cannot be simulated here must not hide the others' results.
            print(f"tessera: error: {claim.path}: {exc}", file=sys.stderr)
            status = 2
    table = long_context_table(args.target, args.kv_precision) if args.long_context else None
    if args.json:
        data: dict = {"claims": [r.to_json() for r in results]}
        if table is not None:
            data["long_context"] = {"target": args.target, "kv_precision": args.kv_precision,
                                    "rows": rows_to_json(table)}
        print(json.dumps(data, indent=2))
        return status
    blocks = [format_result(r) for r in results]
    if table is not None:
        blocks.append(format_table(table, args.target, args.kv_precision))
    print("\n\n".join(blocks))
    return status


def cmd_sweep(args: argparse.Namespace) -> int:
    from simulator.sweep import SweepInterrupted, format_outcome, load_sweep, plan_sweep, run_sweep

    if args.workers < 1:
        raise CliError(f"--workers {args.workers}: give at least 1")
    spec = load_sweep(args.file)
    plan = plan_sweep(spec)   # every point's hardware is validated before any work starts
    excluded = sum(plan.excluded.values())
    print(f"sweep {spec.path}: {len(plan.points)} points on {spec.target}"
          + (f" ({excluded} of {plan.total} left out by [constraints])" if excluded else ""))
    if args.dry_run:
        return 0
    out = Path(args.out) if args.out else Path("build") / "sweeps" / spec.path.stem
    try:
        outcome = run_sweep(spec, plan, out, scheduler=args.scheduler, workers=args.workers,
                            progress=not args.no_progress and sys.stderr.isatty(), retry_errors=args.retry_errors)
    except SweepInterrupted as exc:
        print(f"tessera: {exc}", file=sys.stderr)
        return 130
    print(format_outcome(outcome))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from simulator.compare import CompareRequest, Settings, run_compare

    settings = Settings(prompt_len=args.prompt_len, gen_len=args.gen_len, precision=args.precision,
                        kv_precision=args.kv_precision)
    return run_compare(CompareRequest(
        targets=args.targets, models=args.models, contexts=args.contexts, batches=args.batches, out=args.out,
        settings=settings, baseline=args.baseline, tolerance=args.tolerance, update_baseline=args.update_baseline,
        jobs=args.jobs, progress=False if args.no_progress else None))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tessera", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    inspect = sub.add_parser("inspect", help="op counts, parameters, weight bytes, FLOPs and KV bytes of a model")
    inspect.add_argument("model", help="an .onnx file or a registered model name")
    inspect.add_argument("--form", choices=("prefill", "decode"), default="decode",
                         help="which graph to build for a registered model name (default decode)")
    inspect.add_argument("--bind", action="append", default=[], metavar="NAME=N",
                         help="evaluate symbolic figures with a symbol bound, e.g. --bind past_len=1024")
    inspect.add_argument("--json", action="store_true", help="print JSON instead of a table")
    inspect.set_defaults(func=cmd_inspect)

    ir = sub.add_parser("ir", help="print the imported IR as text, optionally after named passes")
    ir.add_argument("model", help="an .onnx file or a registered model name")
    ir.add_argument("--passes", default="", help=f"comma-separated passes to run: {', '.join(PASSES)}")
    ir.add_argument("--constants", action="store_true", help="also list constants")
    ir.add_argument("--form", choices=("prefill", "decode"), default="decode")
    ir.set_defaults(func=cmd_ir)

    sim = sub.add_parser("sim", help="simulate a model on a hardware target: tokens/s, bandwidth, energy, fit")
    sim.add_argument("--model", required=True, help="a registered model name or an .onnx file")
    sim.add_argument("--target", required=True, help="a preset name (matx-one, h100-sxm, ...) or a .toml path")
    sim.add_argument("--context", type=int, default=1024, help="tokens in the KV cache at decode (default 1024)")
    sim.add_argument("--batch", type=int, default=1, help="concurrent users decoded together (default 1)")
    sim.add_argument("--prompt-len", type=int, default=None, help="prompt tokens for TTFT (default: --context)")
    sim.add_argument("--gen-len", type=int, default=1024, help="generated tokens per user (default 1024)")
    sim.add_argument("--precision", default="bf16", help="weight precision: bf16, fp8, int8, int4 (default bf16)")
    sim.add_argument("--kv-precision", default="bf16", help="KV-cache precision (default bf16)")
    sim.add_argument("--json", metavar="OUT.json", help="write the report as JSON")
    sim.add_argument("--trace", metavar="OUT.json", help="write a Chrome/Perfetto trace of the simulated schedule")
    sim.set_defaults(func=cmd_sim)

    claim = sub.add_parser("claim", help="check a published performance claim (TOML) against the simulator")
    claim.add_argument("files", nargs="*", metavar="CLAIM.toml", help="claim files (see claims/)")
    claim.add_argument("--json", action="store_true", help="print JSON instead of text")
    claim.add_argument("--no-solve", action="store_true",
                       help="skip solving for the parameter values each claim needs (faster)")
    claim.add_argument("--long-context", action="store_true",
                       help="also print, per long-context model, the context and users a no-HBM chip's SRAM holds")
    claim.add_argument("--target", default="taalas-hc1", help="spatial target for --long-context (default taalas-hc1)")
    claim.add_argument("--kv-precision", default="bf16", help="KV / state precision for --long-context (default bf16)")
    claim.set_defaults(func=cmd_claim)

    run = sub.add_parser("run", help="run a model on inputs with the numpy interpreter")
    run.add_argument("model", help="an .onnx file or a registered model name")
    run.add_argument("--inputs", required=True, help=".npz with one array per graph input, keyed by input name")
    run.add_argument("--output", required=True, help=".npz to write, one array per graph output")
    run.add_argument("--form", choices=("prefill", "decode"), default="decode")
    run.set_defaults(func=cmd_run)

    sweep = sub.add_parser("sweep", help="design-space sweep on dask.distributed: results.jsonl, Pareto fronts")
    sweep.add_argument("file", metavar="SWEEP.toml", help="sweep file (see sweeps/)")
    sweep.add_argument("--out", metavar="DIR", help="output folder (default build/sweeps/NAME); re-running resumes")
    sweep.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="use a running dask scheduler")
    sweep.add_argument("--workers", type=int, default=2, help="local cluster: worker processes (default 2)")
    sweep.add_argument("--retry-errors", action="store_true", help="re-run points recorded with an error")
    sweep.add_argument("--no-progress", action="store_true", help="no progress bar")
    sweep.add_argument("--dry-run", action="store_true", help="check the file and count the points, run nothing")
    sweep.set_defaults(func=cmd_sweep)

    compare = sub.add_parser("compare", help="targets x models x contexts side by side: report.json/.md/.html, "
                                             "regression gate against a baseline")
    compare.add_argument("--targets", nargs="+", required=True, metavar="T",
                         help="preset names or .toml paths (comma- or space-separated)")
    compare.add_argument("--models", nargs="+", required=True, metavar="M",
                         help="registered model names or .onnx paths (comma- or space-separated)")
    compare.add_argument("--contexts", nargs="+", default=["1024"], metavar="N", help="contexts (default 1024)")
    compare.add_argument("--batches", nargs="+", default=["1"], metavar="B", help="batch sizes (default 1)")
    compare.add_argument("--prompt-len", type=int, default=None, help="prompt tokens for TTFT (default: the context)")
    compare.add_argument("--gen-len", type=int, default=1024, help="generated tokens per user (default 1024)")
    compare.add_argument("--precision", default="bf16", help="weight precision (default bf16)")
    compare.add_argument("--kv-precision", default="bf16", help="KV-cache precision (default bf16)")
    compare.add_argument("--out", default="build/compare", metavar="DIR",
                         help="where report.json, report.md and report.html go (default build/compare)")
    compare.add_argument("--baseline", metavar="BASELINE.json", help="gate every figure against this baseline")
    compare.add_argument("--tolerance", default="5%",
                         help="how far a figure may move the bad way before the gate fails (default 5%%)")
    compare.add_argument("--update-baseline", action="store_true",
                         help="write the results to --baseline instead of gating (keeps its per-figure tolerances)")
    compare.add_argument("--jobs", type=int, default=0, help="worker processes (default: one per CPU; 1: no pool)")
    compare.add_argument("--no-progress", action="store_true", help="one line per finished run, no progress bar")
    compare.set_defaults(func=cmd_compare)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # e.g. `tessera sim ... | head`: the reader left, nothing to report
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (keep Python's exit flush quiet)
        return 0
    except (CliError, *USER_ERRORS) as exc:
        if os.environ.get("TESSERA_DEBUG"):
            raise
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"tessera: error: {message}", file=sys.stderr)
        return 2


__all__ = ["main", "load_graph"]
