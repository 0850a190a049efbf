"""The taalas-hc1 preset: published figures cited as claims, every other number a named assumption."""

from __future__ import annotations

import pytest

from simulator.hardware import HardwareError, load_hardware
from simulator.hardware.schema import PRESETS_DIR
from simulator.spatial.hardware import SpatialChip

HC1 = (PRESETS_DIR / "taalas-hc1.toml").read_text()


def write(tmp_path, text: str):
    path = tmp_path / "chip.toml"
    path.write_text(text)
    return path


def test_preset_loads_as_spatial(hc1):
    assert isinstance(hc1, SpatialChip) and hc1.kind == "spatial"
    assert hc1.die.die_area_mm2 == 815.0 and hc1.die.transistors == 53e9 and hc1.die.board_power_w == 200.0


@pytest.mark.parametrize("field", ["die.process", "die.die_area_mm2", "die.transistors", "die.board_power_w"])
def test_published_figures_cite_reference_as_claims(hc1, field):
    assert hc1.sources[field].startswith("claim: REFERENCE.md, Taalas HC1")


@pytest.mark.parametrize("field", [
    "clock_hz", "sram.sram_bytes", "weights.um2_per_weight_bit", "weights.um2_per_multiplier",
    "energy.pj_per_weight_mac", "sram.port_bytes_per_cycle", "attention.macs_per_cycle", "vector.lanes",
    "energy.static_power_w", "other_mm2", "weights.rules",
])
def test_unpublished_figures_are_named_assumptions(hc1, field):
    assert field in hc1.assumed
    assert hc1.assumed[field]["source"].startswith("assumption: ")
    assert len(hc1.assumed[field]["source"]) > 40, "an assumption says why"


def test_every_numeric_field_has_a_source(hc1):
    cited = set(hc1.sources)
    for section in ("die", "weights", "sram", "attention", "vector", "energy"):
        for name, value in vars(getattr(hc1, section)).items():
            if isinstance(value, (int, float)):
                assert f"{section}.{name}" in cited, f"{section}.{name} has no [sources] entry"


def test_precision_policy_follows_the_published_mix(hc1):
    assert hc1.precision_of("model.layers.3.mlp.down_proj.weight") == ("mlp", 3)
    assert hc1.precision_of("model.layers.3.self_attn.q_proj.weight") == ("attention", 6)
    assert hc1.precision_of("model.embed_tokens.weight") == ("embedding", 6)
    assert hc1.precision_of("lm_head.weight") == ("lm_head", 6)


def test_sram_area_and_bandwidth_follow_from_the_macros(hc1):
    assert hc1.sram_area_mm2 == pytest.approx(384 * 8 / 24.7)
    assert hc1.sram_bytes_per_cycle == 384 * 2**20 / 16384 * 32


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.replace("other_mm2 = 60.0", "other_mm2 = 60.0\nbogus = 1"), "unknown field"),
        (lambda t: t.replace("clock_hz = 1.0e9\n", ""), "clock_hz: missing"),
        (lambda t: t.replace("sram_bytes = 402_653_184", "sram_bytes = 0"), "sram.sram_bytes: must be positive"),
        (lambda t: t.replace("macs_per_cycle = 16384", 'macs_per_cycle = "many"'),
         "attention.macs_per_cycle: expected an integer"),
        (lambda t: t.replace('kind = "mlp", bits = 3', 'kind = "mlp", bits = 5'), "um2_per_multiplier lacks 5-bit"),
        (lambda t: t.replace('"3" = 6.0', 'three = 6.0'), "um2_per_multiplier.three: keys are weight bits"),
        (lambda t: t.replace("adapter_bytes = 16_777_216", "adapter_bytes = 402_653_184"), "sram.adapter_bytes"),
        (lambda t: t.replace('"clock_hz" = "assumption', '"clock_mhz" = "assumption'), "cites 'clock_mhz'"),
        (lambda t: t.replace("bits = 3 }", "bits = -3 }"), r"rules\[0\].bits: must be positive"),
    ],
)
def test_bad_descriptions_name_the_field(tmp_path, edit, message):
    with pytest.raises(HardwareError, match=message):
        load_hardware(write(tmp_path, edit(HC1)))
