"""Hardware descriptions: presets load with their published peaks; bad files name the field."""

from __future__ import annotations

import pytest

from simulator.hardware import HardwareError, list_presets, load_hardware
from simulator.hardware.schema import PRESETS_DIR

H100 = (PRESETS_DIR / "h100-sxm.toml").read_text()


def write(tmp_path, text: str):
    path = tmp_path / "chip.toml"
    path.write_text(text)
    return path


def test_presets_exist():
    assert {"matx-one", "h100-sxm", "h200-sxm", "matx-tiny"} <= set(list_presets())


@pytest.mark.parametrize("name, bf16_tflops, hbm_tb_s", [("h100-sxm", 989, 3.35), ("h200-sxm", 989, 4.8)])
def test_gpu_presets_carry_published_peaks(name, bf16_tflops, hbm_tb_s):
    chip = load_hardware(name)
    assert chip.peak_macs_per_s("bf16") * 2 / 1e12 == pytest.approx(bf16_tflops, rel=2e-3)
    assert chip.peak_macs_per_s("fp8") == 2 * chip.peak_macs_per_s("bf16")
    assert chip.memory.hbm_bytes_per_s / 1e12 == pytest.approx(hbm_tb_s)


def test_matx_one_sizes_are_named_assumptions():
    chip = load_hardware("matx-one")
    for key in ("clock_hz", "systolic.rows", "memory.sram_bytes", "links.link_bytes_per_s"):
        assert key in chip.assumed and chip.assumed[key]["source"].startswith("assumption")
    assert chip.systolic.split_factors == (1, 2, 4, 8)


def test_user_file_by_path(tmp_path):
    chip = load_hardware(write(tmp_path, H100.replace('name = "h100-sxm"', 'name = "my-chip"')))
    assert chip.name == "my-chip"


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.replace("dma_channels = 8", "dma_channels = 8\nbogus_field = 1"), "memory: unknown field"),
        (lambda t: t.replace("lanes = 16896\n", ""), "vector.lanes: missing"),
        (lambda t: t.replace("hbm_bytes_per_s = 3.35e12", "hbm_bytes_per_s = 0"),
         "memory.hbm_bytes_per_s: must be positive"),
        (lambda t: t.replace("split_factors = [1]", "split_factors = [1, 3]"), "split_factors: 3 does not divide"),
        (lambda t: t.replace("bf16 = 1, fp16 = 1", "bf17 = 1, fp16 = 1"), "unknown precision"),
        (lambda t: t.replace("rows = 16", 'rows = "sixteen"'), "systolic.rows: expected an integer"),
        (lambda t: t.replace('"clock_hz" = ', '"clock_mhz" = '), "cites 'clock_mhz'"),
        (lambda t: t.replace('kind = "programmable"', 'kind = "quantum"'), "kind 'quantum' is not known"),
        (lambda t: t + "\n[[[", "not valid TOML"),
    ],
)
def test_bad_descriptions_name_the_field(tmp_path, edit, message):
    with pytest.raises(HardwareError, match=message.replace("[", r"\[")):
        load_hardware(write(tmp_path, edit(H100)))


def test_unknown_preset_lists_presets():
    with pytest.raises(HardwareError, match="presets: .*h100-sxm"):
        load_hardware("h900")


def test_descriptions_are_frozen():
    chip = load_hardware("matx-one")
    with pytest.raises(AttributeError):
        chip.clock_hz = 2e9  # type: ignore[misc]
    with pytest.raises(TypeError):
        chip.systolic.macs_per_pe_per_cycle["bf16"] = 9  # type: ignore[index]
