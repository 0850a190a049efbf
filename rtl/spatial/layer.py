"""One weight region of a real (tiny) model, planned by the spatial compiler and quantized for RTL.

    layer = region_layer(chip)                    # tiny-llama's first MLP gate projection
    layer.region.parallelism, layer.weight.values # the lanes the folding pass chose, int codes

The model's decode graph is imported and folded on `chip` (`compiler.targets.spatial.fold`), so
the region's bits come from the preset's precision policy and its parallelism from the die
budget. The weight is quantized symmetrically at those bits (`rtl.spatial.quantize`).
Activation scales are calibrated on the model itself: the decode graph runs in the IR
interpreter for `users` random tokens against a random KV cache of `past_len` positions, and
the largest magnitudes of the region's float input and output set the int8 input and output
scales. The int8 output is requantize(x_q @ W_q, imm, shift) with imm / 2**shift ~= s_x s_w / s_y.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compiler.ir.graph import Graph
from compiler.ir.ops import Op
from compiler.ir.shapes import evaluate
from compiler.summary import BATCH_SYMBOLS, CONTEXT_SYMBOLS
from compiler.targets.programmable.int_graphs import Requant
from compiler.targets.spatial import Region, SpatialPlan, extract_workload, fold
from rtl.programmable.config import RtlConfigError
from rtl.spatial.quantize import QuantizedTensor, quantize_symmetric, requant_for
from simulator.programmable.functional import requantize
from simulator.spatial.hardware import SpatialChip
from simulator.spatial.pipeline import Pipeline

DEFAULT_MODEL = "tiny-llama"
DEFAULT_WEIGHT = "model.layers.0.mlp.gate_proj.weight"
ACTIVATION_BITS = 8


@dataclass(frozen=True)
class RegionLayer:
    model: str
    chip: SpatialChip
    plan: SpatialPlan
    region: Region
    weight: QuantizedTensor             # (rows, cols): y = x @ W, rows = inputs, cols = outputs
    input_scale: float                  # x = input_scale * x_q, x_q int8
    output_scale: float                 # y = output_scale * y_q, y_q int8
    requant: Requant
    calibration_inputs: np.ndarray      # float (samples, rows): what the model fed this region
    calibration_outputs: np.ndarray     # float (samples, cols): the model's float result

    @property
    def rows(self) -> int:
        return self.weight.values.shape[0]

    @property
    def cols(self) -> int:
        return self.weight.values.shape[1]

    @property
    def parallelism(self) -> int:
        return self.region.parallelism

    def quantize_inputs(self, x: np.ndarray) -> np.ndarray:
        return quantize_symmetric(x, ACTIVATION_BITS, max_abs=self.input_scale * 127).values

    def accumulate(self, x_q: np.ndarray) -> np.ndarray:
        """int32 x_q @ W_q (wrapping modulo 2**32, as the GEMM semantics do)."""
        wide = np.asarray(x_q, dtype=np.int64) @ self.weight.values.astype(np.int64)
        return wide.astype(np.int32)

    def reference(self, x_q: np.ndarray) -> np.ndarray:
        """The quantized region's int8 output: VECTOR REQUANT of the int32 accumulation."""
        return requantize(self.accumulate(x_q), self.requant.imm, self.requant.shift)

    def simulator_cycles(self) -> tuple[int, int]:
        """(service cycles per token, latency cycles) of this region in the spatial pipeline model."""
        pipe = Pipeline(self.plan, self.chip, kv_bits=16)
        past = np.array([0.0])
        unit = f"region:{self.region.name}"
        service = float(np.asarray(pipe.occupancy(past)[unit]).reshape(-1)[0])
        work = next(w for w in self.plan.workload.works if w.unit == "region" and w.weight == self.region.name)
        latency = float(pipe.latency(work, past, pipe.layer_bytes_per_cycle(past))[0])
        return int(service), int(latency)


def region_layer(chip: SpatialChip, model: str = DEFAULT_MODEL, weight: str = DEFAULT_WEIGHT, users: int = 16,
                 past_len: int = 8, seed: int = 0) -> RegionLayer:
    """Plan `model` on `chip`, take region `weight`, quantize it and calibrate its activation scales."""
    import models
    from compiler.frontend.onnx_import import import_onnx

    graph = import_onnx(models.build_model(model, "decode"))
    plan = fold(extract_workload(graph), chip)
    try:
        region = plan.region(weight)
    except KeyError:
        names = ", ".join(r.name for r in plan.regions if r.macs_per_token)
        raise RtlConfigError(f"{model}: no weight region {weight!r}; regions with lanes: {names}") from None
    if len(region.use_nodes) != 1:
        raise RtlConfigError(f"{model}: region {weight!r} has {len(region.use_nodes)} contraction uses; the MVU "
                             "hard-wires a region with exactly one")
    node = graph.node(region.use_nodes[0])
    if node.op != Op.MATMUL or node.inputs[1] != weight:
        raise RtlConfigError(f"{node.describe()}: the MVU takes MatMul(activations, {weight}) with the weight "
                             "stored [inputs, outputs]")
    w = np.asarray(graph.constants[weight].value(), dtype=np.float64)
    if w.ndim != 2 or region.use_macs[0] != w.size:
        raise RtlConfigError(f"{node.describe()}: the MVU needs one {w.shape} matrix-vector product per token, "
                             f"not {region.use_macs[0]} MACs")
    x, y = _calibrate(graph, node.inputs[0], node.outputs[0], users, past_len, seed)
    q = quantize_symmetric(w, region.bits)
    input_scale = float(np.max(np.abs(x))) / 127
    output_scale = float(np.max(np.abs(y))) / 127
    return RegionLayer(
        model=model, chip=chip, plan=plan, region=region, weight=q,
        input_scale=input_scale, output_scale=output_scale,
        requant=requant_for(input_scale * q.scale / output_scale),
        calibration_inputs=x.reshape(-1, w.shape[0]), calibration_outputs=y.reshape(-1, w.shape[1]),
    )


def _calibrate(graph: Graph, x_value: str, y_value: str, users: int, past_len: int, seed: int):
    """The region's float input and output in `users` decode steps of the model (random tokens and cache)."""
    from compiler.interp import run_graph

    rng = np.random.default_rng(seed)
    bindings = {**{s: users for s in BATCH_SYMBOLS}, **{s: past_len for s in CONTEXT_SYMBOLS}}
    vocab = graph.type_of(graph.outputs[0]).shape[-1]
    inputs = {}
    for name, ttype in graph.inputs.items():
        shape = tuple(evaluate(d, bindings) for d in ttype.shape)
        if not all(isinstance(d, int) for d in shape):
            raise RtlConfigError(f"{graph.name}: input {name} {ttype}: calibration binds only batch and past length")
        if ttype.dtype.is_float:
            inputs[name] = rng.standard_normal(shape).astype(ttype.dtype.numpy)
        elif "position" in name:
            inputs[name] = np.full(shape, past_len, dtype=ttype.dtype.numpy)
        else:
            inputs[name] = rng.integers(0, int(vocab), shape).astype(ttype.dtype.numpy)
    outputs = graph.outputs
    graph.outputs = [*outputs, x_value, y_value]
    try:
        values = run_graph(graph, inputs)
    finally:
        graph.outputs = outputs
    return np.asarray(values[x_value], dtype=np.float64), np.asarray(values[y_value], dtype=np.float64)
