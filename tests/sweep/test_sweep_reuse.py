"""Sharing one lowered program across chips that differ only in timing fields is exact."""

from __future__ import annotations

import dataclasses

import pytest

from simulator.api import ModelGraphs, SimOptions, load_model_graphs
from simulator.hardware import load_hardware
from simulator.programmable.model import simulate_model
from simulator.sweep import reuse
from simulator.sweep.reuse import (
    DECODE_LOWERING_FIELDS,
    LoweringReuseError,
    ProgramCache,
    fields_read_by_lowering,
    lowering_fields,
)


@pytest.fixture(scope="module")
def tiny():
    return load_model_graphs("tiny-llama")


def _chip(**changes):
    """matx-one with dotted fields changed (sections replaced as frozen copies)."""
    chip = load_hardware("matx-one")
    for dotted, value in changes.items():
        head, _, leaf = dotted.rpartition(".")
        if head:
            chip = dataclasses.replace(chip, **{head: dataclasses.replace(getattr(chip, head), **{leaf: value})})
        else:
            chip = dataclasses.replace(chip, **{leaf: value})
    return chip


def _report(report) -> dict:
    data = report.to_json()
    for step in ("decode", "prefill"):
        data["extra"].get(step, {}).pop("host_s", None)   # host wall time of the run itself
    return data


@pytest.mark.parametrize("changes, batch, precision", [
    ({}, 1, "bf16"), ({"links.chips": 1}, 2, "fp8"), ({"links.chips": 2, "memory.sram_bytes": 65536}, 1, "int4"),
    ({"systolic.rows": 64, "systolic.cols": 32, "systolic.arrays_per_chip": 2}, 3, "bf16"),
])
def test_lowering_reads_only_the_keyed_fields(tiny, changes, batch, precision):
    chip = _chip(**changes)
    options = SimOptions(context=64, batch=batch, prompt_len=16, weight_precision=precision)
    from compiler.passes.pipeline import recognize

    decode = fields_read_by_lowering(recognize(tiny.decode), chip, options, {"batch": batch, "past_len": 64})
    prefill = fields_read_by_lowering(recognize(tiny.prefill), chip, options, {"batch": batch, "seq": 16})
    assert {"systolic.rows", "memory.sram_bytes", "links.chips"} <= decode   # the recorder sees reads
    assert decode <= set(DECODE_LOWERING_FIELDS), decode - set(DECODE_LOWERING_FIELDS)
    assert prefill <= set(lowering_fields("prefill", chip)), prefill - set(lowering_fields("prefill", chip))
    assert "clock_hz" not in decode and "memory.hbm_bytes_per_s" not in decode


def test_reused_programs_give_the_reports_of_fresh_lowerings(tiny):
    decode_only = ModelGraphs(tiny.name, tiny.decode, None)   # what a sweep simulates by default
    options = SimOptions(context=96, batch=2)
    cache = ProgramCache()
    chips = [_chip(), _chip(**{"memory.hbm_bytes_per_s": 1.2e12, "memory.hbm_latency_s": 2e-6}),
             _chip(clock_hz=0.7e9, **{"energy.pj_per_hbm_byte": 30.0}), _chip(**{"links.chips": 2})]
    fresh = [_report(simulate_model(decode_only, chip, options)) for chip in chips]
    assert len({r["tpot_s"] for r in fresh}) == len(chips)   # the variants really are different designs
    for chip, expected in zip(chips, fresh):
        lower_step = cache.lower_step("tiny-llama", chip, options)
        assert _report(simulate_model(decode_only, chip, options, lower_step=lower_step)) == expected
    # lowered for the first chip, reused by its two timing variants, lowered again for 2 chips
    assert (cache.hits, cache.misses) == (2, 2)


def test_prefill_programs_are_keyed_on_the_timing_they_read():
    options = SimOptions(context=96, prompt_len=32)
    base, faster = _chip(), _chip(clock_hz=2.0e9)
    key = ProgramCache.key
    assert key("m", "decode", base, options, {"past_len": 96}) == key("m", "decode", faster, options, {"past_len": 96})
    assert key("m", "prefill", base, options, {"seq": 32}) != key("m", "prefill", faster, options, {"seq": 32})
    cheaper = _chip(**{"energy.pj_per_hbm_byte": 1.0})
    assert key("m", "prefill", base, options, {"seq": 32}) == key("m", "prefill", cheaper, options, {"seq": 32})
    assert key("m", "decode", base, options, {"past_len": 96}) != key("m", "decode", base, options, {"past_len": 97})


def test_a_field_missing_from_the_key_is_caught(tiny, monkeypatch):
    partial = tuple(f for f in DECODE_LOWERING_FIELDS if f != "memory.sram_bytes")
    monkeypatch.setattr(reuse, "DECODE_LOWERING_FIELDS", partial)
    options = SimOptions(context=64)
    chip = _chip()
    with pytest.raises(LoweringReuseError, match="memory.sram_bytes"):
        simulate_model(tiny, chip, options, lower_step=ProgramCache().lower_step("tiny-llama", chip, options))
