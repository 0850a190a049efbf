"""`tessera sim`: load a model and a hardware description, dispatch to the target's simulator."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from compiler.frontend.onnx_import import import_onnx
from compiler.ir.graph import Graph
from simulator.hardware import HardwareError, load_hardware
from simulator.report import SimReport


@dataclass(frozen=True)
class SimOptions:
    context: int = 1024          # tokens already in the KV cache when a decode step runs
    batch: int = 1               # concurrent users (sequences) decoded together
    prompt_len: int = 1024       # tokens in the prompt (prefill, TTFT)
    gen_len: int = 1024          # tokens generated per user
    weight_precision: str = "bf16"
    kv_precision: str = "bf16"
    trace_path: Path | None = None
    progress: bool = False

    def __post_init__(self) -> None:
        for name in ("context", "batch", "prompt_len", "gen_len"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")


@dataclass
class ModelGraphs:
    """The model's decode graph (one token, cache in/out) and, when available, its prefill graph."""

    name: str
    decode: Graph | None
    prefill: Graph | None


def load_model_graphs(spec: str) -> ModelGraphs:
    path = Path(spec)
    if path.suffix == ".onnx" or path.exists():
        graph = import_onnx(path)
        # A graph with a cache (or state) input of symbolic past length is a decode step.
        is_decode = any("past" in str(t) for t in graph.inputs.values())
        return ModelGraphs(path.stem, graph if is_decode else None, None if is_decode else graph)
    import models

    return ModelGraphs(spec, import_onnx(models.build_model(spec, "decode")),
                       import_onnx(models.build_model(spec, "prefill")))


def simulate(model: str, target: str, options: SimOptions) -> SimReport:
    chip = load_hardware(target)
    graphs = load_model_graphs(model)
    if chip.kind == "programmable":
        from simulator.programmable import simulate_programmable

        return simulate_programmable(graphs, chip, options)
    if chip.kind == "spatial":
        from simulator.spatial import simulate_spatial

        return simulate_spatial(graphs, chip, options)
    raise HardwareError(f"{target}: no simulator for kind {chip.kind!r}")
