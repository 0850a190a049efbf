"""The hard-wired matrix-vector unit reproduces a real tiny-model layer bit-exactly, at the spatial model's cycles.

The layer is tiny-llama's first MLP gate projection, folded on the taalas-tiny preset (its
bits and lanes come from the spatial compiler). Expected outputs come from the project's
quantized model of the region (`RegionLayer.reference`: int32 matmul + functional.requantize);
expected cycles from the spatial pipeline model (`Pipeline.occupancy` / `Pipeline.latency`).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from rtl.programmable.config import RtlConfigError
from rtl.spatial.layer import RegionLayer, region_layer
from rtl.spatial.mvu import MatrixVectorUnit, design, mvu_for, schedule_for
from simulator.hardware import load_hardware
from testbenches.cycles import CycleRow, check
from testbenches.runner import build, read_outputs, run_cocotb

# A cached build (same weights and folding as an earlier run) never elaborates the unit again.
pytestmark = [pytest.mark.rtl, pytest.mark.filterwarnings("ignore:.*MatrixVectorUnit.*created but never used")]

TOKENS = 6


@pytest.fixture(scope="module")
def layer() -> RegionLayer:
    return region_layer(load_hardware("taalas-tiny"))


def _tokens(layer: RegionLayer, seed: int) -> np.ndarray:
    """Calibration activations of the model (quantized) plus the int8 extremes."""
    x = layer.quantize_inputs(layer.calibration_inputs[:TOKENS - 2])
    extremes = np.stack([np.full(layer.rows, -128), np.where(np.arange(layer.rows) % 2, 127, -128)])
    rng = np.random.default_rng(seed)
    return np.concatenate([x, extremes[rng.permutation(2)]]).astype(np.int8)


def _run(layer: RegionLayer, unit: MatrixVectorUnit, expected: np.ndarray, tokens: np.ndarray, tmp: str, factory):
    key = {"weights": hashlib.sha256(unit.weight.tobytes()).hexdigest(), "bits": unit.bits,
           "schedule": repr(unit.schedule), "requant": repr(unit.requant)}
    built = build("mvu", lambda: unit, key=key)
    test_dir = factory.mktemp(tmp)
    s = unit.schedule
    run_cocotb(built, "testbenches.mvu", test_dir, inputs={
        "tokens": tokens, "expected": expected, "simd": s.simd, "pe": s.pe, "seed": 7,
        "out_bits": 8 if unit.requant is not None else 32, "latency_cycles": unit.latency_cycles})
    return read_outputs(test_dir, "timing")


def _measured(unit: MatrixVectorUnit, timing: dict) -> tuple[int, int]:
    """(cycles between tokens in steady state, latency of the first token) from the transfer edges."""
    s = unit.schedule
    last_out = timing["y_edges"][s.output_beats - 1::s.output_beats]
    last_in = timing["x_edges"][s.input_beats - 1::s.input_beats]
    intervals = set(np.diff(last_out[1:]).tolist())
    assert len(intervals) == 1, f"tokens leave at uneven intervals {sorted(intervals)}"
    # An output transfer at edge e was registered (valid) at edge e - 1.
    return intervals.pop(), last_out[0] - 1 - last_in[0]


def test_mvu_hard_wired_layer_bit_exact_and_cycles(layer, tmp_path_factory):
    unit = mvu_for(layer)
    assert unit.schedule.parallelism == layer.region.parallelism
    tokens = _tokens(layer, seed=1)
    timing = _run(layer, unit, layer.reference(tokens), tokens, "mvu-requant", tmp_path_factory)
    rtl_service, rtl_latency = _measured(unit, timing)
    sim_service, sim_latency = layer.simulator_cycles()
    shape = f"rows={layer.rows} cols={layer.cols} P={unit.schedule.parallelism} int{layer.weight.bits}"
    check(CycleRow("mvu", shape, sim_service, rtl_service))
    check(CycleRow("mvu latency", shape, sim_latency, rtl_latency))
    print(f"mvu {shape}: {timing['cycles']} cycles in {timing['wall_s']:.2f} s of Icarus "
          f"({timing['cycles'] / timing['wall_s']:,.0f} simulated cycles/s)")


def test_mvu_int32_outputs_at_other_parallelism(layer, tmp_path_factory):
    """A second folding of the same region (SIMD 64 x PE 2) with int32 outputs: exact sums, P-scaled cycles."""
    parallelism = 2 * layer.rows
    plan = layer.plan.with_parallelism(layer.region.name, parallelism)
    refolded = RegionLayer(**{**layer.__dict__, "plan": plan, "region": plan.region(layer.region.name)})
    unit = mvu_for(refolded, requantized=False)
    assert (unit.schedule.simd, unit.schedule.pe) == (layer.rows, 2)
    tokens = _tokens(layer, seed=2)
    timing = _run(layer, unit, layer.accumulate(tokens), tokens, "mvu-int32", tmp_path_factory)
    rtl_service, _ = _measured(unit, timing)
    sim_service, _ = refolded.simulator_cycles()
    check(CycleRow("mvu", f"rows={layer.rows} cols={layer.cols} P={parallelism} int32-out", sim_service, rtl_service))


def test_schedule_replays_the_matmul(layer):
    """The ROM layout (word per cycle, lane per SIMD x PE slot) computes x @ W for every supported folding."""
    w = layer.weight.values
    x = layer.quantize_inputs(layer.calibration_inputs[0])
    for p in (1, 4, 16, 64, 128, 512, w.size):
        s = schedule_for(*w.shape, p)
        assert s.cycles_per_token * p == w.size
        np.testing.assert_array_equal(s.replay(w, x), x.astype(np.int64) @ w.astype(np.int64))


def test_quantized_layer_tracks_the_float_model(layer):
    """Dequantized outputs stay within the worst-case rounding of inputs, weights, multiplier and output."""
    x, y = layer.calibration_inputs, layer.calibration_outputs
    x_q = layer.quantize_inputs(x)
    s_x, s_w, s_y = layer.input_scale, layer.weight.scale, layer.output_scale
    w_q = layer.weight.values.astype(np.float64)
    got = layer.reference(x_q).astype(np.float64) * s_y
    acc = x_q.astype(np.float64) @ w_q
    multiplier = s_x * s_w / s_y
    fixed_point = layer.requant.imm / 2.0**layer.requant.shift
    bound = ((np.abs(x) @ np.ones_like(w_q)) * s_w / 2 + (s_x / 2) * (np.ones_like(x) @ np.abs(w_q))
             + x.shape[1] * s_x * s_w / 4 + np.abs(acc) * abs(fixed_point - multiplier) * s_y + s_y / 2)
    assert np.all(np.abs(got - y) <= bound + 1e-9)
    assert np.abs(layer.reference(x_q)).max() > 64, "the calibrated output scale should use the int8 range"


def test_bad_mvu_parameters_fail_before_elaboration(layer):
    w = layer.weight.values
    with pytest.raises(RtlConfigError, match="parallelism 17 .* nearest supported: 16, 32"):
        MatrixVectorUnit(w, 4, 17)
    with pytest.raises(RtlConfigError, match="outside 3-bit"):
        MatrixVectorUnit(w, 3, 16)
    with pytest.raises(RtlConfigError, match="spatial"):
        design(load_hardware("matx-tiny"))
    with pytest.raises(RtlConfigError, match="no weight region 'nope'"):
        region_layer(layer.chip, weight="nope")
