"""The systolic array on Icarus: tiles through the whole array and through concurrent sub-arrays,
random idle cycles and back-pressure on every stream, values against functional.gemm_int8."""

from __future__ import annotations

import numpy as np
import pytest

from rtl.programmable.config import CoreConfig
from rtl.programmable.systolic import SystolicArray, chain_for_split
from simulator.hardware import load_hardware
from testbenches.runner import build, read_outputs, run_cocotb

pytestmark = pytest.mark.rtl


@pytest.fixture(scope="module")
def tiny() -> CoreConfig:
    return CoreConfig.from_chip(load_hardware("matx-tiny"))


@pytest.fixture(scope="module")
def built(tiny):
    return build("systolic", lambda: SystolicArray(tiny))            # keyed by its Verilog: no stale reuse


def _tiles(rng: np.random.Generator, r: int, cols: int, count: int, m_choices=(1, 2, 3, 5, 9, 12)) -> list[dict]:
    out = []
    for _ in range(count):
        m = int(rng.choice(m_choices))
        out.append({"a": rng.integers(-128, 128, (m, r)).tolist(), "b": rng.integers(-128, 128, (r, cols)).tolist()})
    return out


def test_systolic_tiles_whole_and_split(tiny, built, tmp_path_factory):
    rng = np.random.default_rng(7)
    half = tiny.rows >> tiny.max_split
    cases = [
        {"chain": chain_for_split(0, tiny.max_split), "ports": {0: _tiles(rng, tiny.rows, tiny.cols, 4)}},
        {"chain": chain_for_split(1, tiny.max_split), "ports": {c: _tiles(rng, half, tiny.cols, 5) for c in (0, 1)}},
        # extremes: int8 -128 * -128 summed over K wraps nothing yet; saturating patterns check the sign paths
        {"chain": chain_for_split(0, tiny.max_split), "ports": {0: [
            {"a": [[-128] * tiny.rows, [127] * tiny.rows], "b": [[-128] * tiny.cols] * tiny.rows}]}},
        # no idle cycles or back-pressure: every row comes out R + cols - 1 cycles after it went in
        {"chain": chain_for_split(0, tiny.max_split), "stall": False,
         "ports": {0: _tiles(rng, tiny.rows, tiny.cols, 3, m_choices=(1, 8, 11))}},
        {"chain": chain_for_split(1, tiny.max_split), "stall": False,
         "ports": {c: _tiles(rng, half, tiny.cols, 3, m_choices=(2, 4, 7)) for c in (0, 1)}},
    ]
    test_dir = tmp_path_factory.mktemp("systolic")
    run_cocotb(built, "testbenches.systolic", test_dir, inputs={
        "rows": tiny.rows, "cols": tiny.cols, "max_split": tiny.max_split, "seed": 3, "cases": cases})
    latencies = read_outputs(test_dir, "systolic")["latencies"]
    assert latencies, "the no-stall cases produced no timed rows"
    for r, cycles in latencies:
        assert cycles == r + tiny.cols - 1, (r, cycles)
