"""simulate_programmable's report assembly, with a stand-in lowering that returns hand-built
programs (the real lowering has its own end-to-end tests in test_prog_physical.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from compiler.ir.graph import Graph
from compiler.targets.programmable.isa import Collective, DmaLoad, Gemm, Precision
from compiler.targets.programmable.program import Program
from simulator.api import ModelGraphs, SimOptions
from simulator.programmable import model as model_module
from simulator.programmable import simulate_programmable
from simulator.report import format_report


@dataclass(frozen=True)
class FakeOptions:
    batch: int = 1
    bindings: dict = field(default_factory=dict)
    weight_precision: str = "bf16"
    kv_precision: str = "bf16"
    activation_precision: str = "bf16"
    tensor_parallel: int | None = None


def fake_lower(graph: Graph, chip, options: FakeOptions) -> Program:
    """4 MB of weights, 100 kB of KV per 1024 tokens of context, one GEMM, and an all-reduce
    when the chip has links."""
    p = Program(meta={"weight_bytes": 4e6, "kv_bytes": 1e5, "fits": graph.name != "too-big",
                      "fits_reason": "weights 4 MB in HBM" if graph.name != "too-big" else "KV exceeds HBM",
                      "weights_in_sram": False})
    if graph.name == "stand-in":   # as the lowering records an op the ISA has no instruction for
        p.meta["isa_gaps"] = {"ERF": ["gelu_0", "gelu_1", "gelu_2", "gelu_3"]}
    tokens = options.bindings.get("seq", 1) * options.batch
    p.emit(DmaLoad(rows=1, row_bytes=4_000_000, signal=(1,)), "mlp")
    p.emit(DmaLoad(rows=1, row_bytes=100_000 * options.bindings.get("past_len", 1) // 1024, signal=(2,)),
           "attention")
    p.emit(Gemm(m=min(tokens, 4096), n=1024, k=1024, precision=Precision.BF16, acc_precision=Precision.FP32,
                wait=(1, 2)), "mlp")
    if chip.links.chips > 1:
        p.emit(Collective(nbytes=8192, chips=chip.links.chips), "collective")
        p.meta["tensor_parallel"] = chip.links.chips
    return p


@pytest.fixture
def fake_lowering(monkeypatch):
    monkeypatch.setattr(model_module, "_lowering", lambda: (fake_lower, FakeOptions))
    monkeypatch.setattr(model_module, "_recognizer", lambda: ((lambda g: g), ""))


def graphs(name: str = "fake", prefill: bool = True) -> ModelGraphs:
    return ModelGraphs(name, Graph(name), Graph(name) if prefill else None)


def test_report_fields(fake_lowering, matx, tmp_path):
    trace = tmp_path / "t.json"
    report = simulate_programmable(graphs(), matx, SimOptions(context=2048, batch=4, prompt_len=512,
                                                              trace_path=trace))
    chips = 8
    assert report.extra["chips"] == chips
    assert report.tpot_s > 0 and report.tokens_per_s_total == pytest.approx(4 / report.tpot_s)
    assert report.tokens_per_s_per_user == pytest.approx(1 / report.tpot_s)
    assert report.hbm_bytes_per_token == pytest.approx((4_000_000 + 200_000) * chips)
    assert report.peak_bandwidth_bytes_per_s == pytest.approx(matx.memory.hbm_bytes_per_s * chips)
    assert report.achieved_bandwidth_bytes_per_s == pytest.approx(report.hbm_bytes_per_token / report.tpot_s)
    # 14 hops of 1 us in the all-reduce dwarf 0.9 us of HBM traffic: the link engine binds
    assert report.bottleneck == "links"
    assert report.fits and report.weight_bytes == 4e6
    assert set(report.per_layer) == {"mlp", "attention", "collective"}
    assert report.ttft_s > 0 and report.extra["prefill"]["source"] == "simulated prefill program"
    assert report.energy_j_per_token == pytest.approx(report.extra["decode"]["energy_j"]["total"] * chips / 4)
    assert json.loads(trace.read_text())["traceEvents"]
    assert "links" in format_report(report)
    json.dumps(report.to_json())


def test_ttft_estimate_without_prefill_and_not_fitting(fake_lowering, tiny):
    report = simulate_programmable(graphs("too-big", prefill=False), _with_bf16(tiny),
                                   SimOptions(context=1024, prompt_len=100))
    assert report.ttft_s == pytest.approx(100 * report.tpot_s)
    assert "estimate" in report.extra["prefill"]["source"]
    assert not report.fits and report.fits_reason == "KV exceeds HBM"
    assert report.tokens_per_s_per_user > 0


def _with_bf16(chip):
    import dataclasses

    systolic = dataclasses.replace(chip.systolic, macs_per_pe_per_cycle={"int8": 1, "bf16": 1})
    energy = dataclasses.replace(chip.energy, pj_per_mac={"int8": 2.0, "bf16": 4.0})
    memory = dataclasses.replace(chip.memory, sram_bytes=1 << 24)
    return dataclasses.replace(chip, systolic=systolic, energy=energy, memory=memory, isa_subset="full")


def test_missing_lowering_is_a_clear_error(monkeypatch, matx):
    def missing():
        raise model_module.LoweringUnavailableError("the programmable target's lowering ... is not available")

    monkeypatch.setattr(model_module, "_lowering", missing)
    with pytest.raises(model_module.LoweringUnavailableError, match="lowering"):
        simulate_programmable(graphs(), matx, SimOptions())


def test_progress_bar_runs(fake_lowering, matx):
    report = simulate_programmable(graphs(), matx, SimOptions(progress=True))
    assert report.tpot_s > 0


def test_stand_in_timings_are_reported(fake_lowering, matx):
    """Ops timed with a same-cost stand-in (no ISA instruction) are named in the report, never silent."""
    from simulator.api import simulate

    report = simulate_programmable(graphs("stand-in"), matx, SimOptions(context=16, prompt_len=8))
    notes = report.extra["notes"]
    assert any(n.startswith("decode: no ISA instruction for ERF") and "gelu_0, gelu_1, gelu_2, ..." in n
               for n in notes)
    assert any(n.startswith("prefill:") for n in notes)
    assert "note: decode: no ISA instruction" in format_report(report)
    plain = simulate_programmable(graphs(), matx, SimOptions())
    assert not any("no ISA instruction" in n for n in plain.extra["notes"])
    # RoPE's cos/sin are real instructions now: no stand-in note for tiny-llama
    llama = simulate("tiny-llama", "h100-sxm", SimOptions(context=16, prompt_len=8))
    assert not any("no ISA instruction" in n for n in llama.extra["notes"])
