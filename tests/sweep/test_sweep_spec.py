"""Sweep files: every kind of bad input is an error naming the file and key, before any work."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from simulator.hardware import load_hardware
from simulator.hardware.schema import PRESETS_DIR
from simulator.sweep import SweepError, load_sweep, plan_sweep

HEADER = """
[sweep]
target = "matx-one"
models = ["tiny-llama"]
contexts = [256]
"""


def _error(write_sweep, body: str, *, plan: bool = False) -> str:
    path = write_sweep(body)
    with pytest.raises(SweepError) as info:
        spec = load_sweep(path)
        if plan:
            plan_sweep(spec)
    message = str(info.value)
    assert str(path) in message, message
    return message


@pytest.mark.parametrize("key", ["systolic.rowz", "memory.hbm_bandwidth", "clock", "systolic.rows.x", "name"])
def test_unknown_parameter_names_the_key(write_sweep, key):
    message = _error(write_sweep, HEADER + f'[parameters]\n"{key}" = [1, 2]\n')
    assert key in message and "unknown parameter" in message


def test_a_table_is_not_a_parameter(write_sweep):
    message = _error(write_sweep, HEADER + '[parameters]\n"systolic" = [1]\n')
    assert "is a table" in message and "rows" in message


@pytest.mark.parametrize("values", ["[]", "{ start = 4, stop = 2, step = 1 }", "{ start = 1e9, stop = 2e9, num = 0 }"])
def test_empty_range(write_sweep, values):
    message = _error(write_sweep, HEADER + f'[parameters]\n"clock_hz" = {values}\n')
    assert "clock_hz" in message and "empty range" in message


def test_unknown_sections_and_keys(write_sweep):
    assert "paramters" in _error(write_sweep, HEADER + "[paramters]\nclock_hz = [1e9]\n")
    assert "contxts" in _error(write_sweep, HEADER.replace("contexts", "contxts"))
    assert "unknown model" in _error(write_sweep, HEADER.replace("tiny-llama", "tiny-llama-9000"))


def test_split_that_does_not_divide_the_rows_is_an_invalid_combination(write_sweep):
    # matx-one splits arrays 1/2/4/8 ways: 12 rows do not divide by 8
    message = _error(write_sweep, HEADER + '[parameters]\n"systolic.rows" = [256, 12]\n', plan=True)
    assert "systolic.rows = 12" in message and "split_factors" in message


def test_precision_without_an_array_rate(write_sweep):
    assert "int4" not in load_hardware("h100-sxm").systolic.macs_per_pe_per_cycle
    body = HEADER.replace("matx-one", "h100-sxm") + '[parameters]\nprecision = ["bf16", "int4"]\n'
    message = _error(write_sweep, body, plan=True)
    assert "precision = 'int4'" in message and "macs_per_pe_per_cycle" in message


def test_precision_is_not_a_spatial_parameter(write_sweep):
    body = HEADER.replace("matx-one", "taalas-hc1") + '[parameters]\nprecision = ["bf16"]\n'
    assert "hard-wires" in _error(write_sweep, body)


def test_linked_keys_need_equal_lengths(write_sweep):
    body = HEADER + '[[linked]]\n"systolic.rows" = [128, 256]\n"systolic.cols" = [128]\n'
    assert "systolic.cols 1" in _error(write_sweep, body)


def test_formulas_and_objectives_are_checked(write_sweep):
    assert "links.chipz" in _error(write_sweep, HEADER + '[formulas]\ncost = "links.chipz * 2"\n')
    assert "calls are limited" in _error(write_sweep, HEADER + "[formulas]\ncost = \"__import__('os').getcwd()\"\n")
    assert "not allowed" in _error(write_sweep, HEADER + '[formulas]\ncost = "[1, 2][0]"\n')
    assert "bogus" in _error(write_sweep, HEADER + '[objectives]\nminimize = ["bogus"]\n')
    body = HEADER.replace("matx-one", "taalas-hc1") + '[formulas]\narea_mm2 = "die.die_area_mm2"\n'
    assert "reports area_mm2" in _error(write_sweep, body)


def test_ranges_expand_like_numpy(write_sweep):
    spec = load_sweep(write_sweep(HEADER + """
        [parameters]
        "memory.hbm_bytes_per_s" = { start = 1e12, stop = 8e12, num = 4, scale = "log" }
        clock_hz = { start = 1e9, stop = 2e9, num = 5 }
        "systolic.arrays_per_chip" = { start = 2, stop = 9, step = 3 }
        "memory.sram_bytes" = { start = 1e8, stop = 1e9, num = 3, scale = "log" }
        """))
    values = {axis.keys[0]: [v for (v,) in axis.values] for axis in spec.axes}
    np.testing.assert_allclose(values["memory.hbm_bytes_per_s"], np.geomspace(1e12, 8e12, 4), rtol=1e-5)
    np.testing.assert_allclose(values["clock_hz"], np.linspace(1e9, 2e9, 5), rtol=1e-5)
    assert values["systolic.arrays_per_chip"] == list(range(2, 10, 3))
    assert values["memory.sram_bytes"] == [round(v) for v in np.geomspace(1e8, 1e9, 3)]
    assert all(isinstance(v, int) for v in values["memory.sram_bytes"])


def test_expansion_counts_linked_and_constraints(write_sweep):
    spec = load_sweep(write_sweep(HEADER.replace("[256]", "[256, 512]") + """
        batches = [1, 2]
        [parameters]
        "links.chips" = [1, 2, 4]
        clock_hz = [1e9, 1.5e9]
        [[linked]]
        "systolic.rows" = [128, 256, 512]
        "systolic.cols" = [128, 256, 512]
        [constraints]
        "few small arrays" = "links.chips * systolic.rows >= 256"
        """))
    plan = plan_sweep(spec)
    every = list(itertools.product([256, 512], [1, 2], [1, 2, 4], [1e9, 1.5e9], [128, 256, 512]))
    assert spec.size == plan.total == len(every)
    kept = [c for c in every if c[2] * c[4] >= 256]
    assert len(plan.points) == len(kept)
    assert plan.excluded == {"few small arrays": len(every) - len(kept)}
    assert all(dict(p.params)["systolic.rows"] == dict(p.params)["systolic.cols"] for p in plan.points)
    assert len({p.id for p in plan.points}) == len(plan.points)


def test_point_ids_are_stable_and_follow_the_design(write_sweep, tmp_path):
    body = HEADER + '[parameters]\nclock_hz = [1e9, 2e9]\n'
    ids = [p.id for p in plan_sweep(load_sweep(write_sweep(body))).points]
    assert ids == [p.id for p in plan_sweep(load_sweep(write_sweep(body, "again.toml"))).points]
    # the same design written another way (a range) has the same ids
    ranged = HEADER + '[parameters]\nclock_hz = { start = 1e9, stop = 2e9, num = 2 }\n'
    assert ids == [p.id for p in plan_sweep(load_sweep(write_sweep(ranged, "ranged.toml"))).points]
    # a different base (another HBM bandwidth in the target file) changes every id
    text = (PRESETS_DIR / "matx-one.toml").read_text()
    assert "hbm_bytes_per_s = 4.8e12" in text
    (tmp_path / "my-chip.toml").write_text(text.replace("hbm_bytes_per_s = 4.8e12", "hbm_bytes_per_s = 4.0e12"))
    other = body.replace('"matx-one"', '"my-chip.toml"')
    assert not set(ids) & {p.id for p in plan_sweep(load_sweep(write_sweep(other, "other.toml"))).points}
