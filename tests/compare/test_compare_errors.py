"""Bad input to `tessera compare`: one line naming what is wrong, exit status 2, before any simulation."""

from __future__ import annotations

import json

import pytest
from compare_helpers import TINY_MATRIX

from compiler.cli import main
from simulator.compare.gate import parse_tolerance
from simulator.compare.matrix import CompareError
from simulator.hardware.schema import PRESETS_DIR


def run(tmp_path, capsys, *args: str) -> tuple[int, str]:
    code = main(["compare", *args, "--out", str(tmp_path / "out"), "--jobs", "1", "--no-progress"])
    return code, capsys.readouterr().err


def one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    assert err.startswith("tessera: error: ") and err.count("\n") == 1 and "Traceback" not in err
    for needle in needles:
        assert needle in err


def baseline_file(tmp_path, data) -> str:
    path = tmp_path / "baseline.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


@pytest.mark.parametrize("args, needles", [
    (["--targets", "h100-sxm,no-such-chip", "--models", "tiny-llama"], ["no-such-chip", "presets: "]),
    (["--targets", "missing.toml", "--models", "tiny-llama"], ["missing.toml: no such file"]),
    (["--targets", "h100-sxm", "--models", "tiny-llama,no-such-model"], ["unknown model 'no-such-model'"]),
    (["--targets", "h100-sxm", "--models", "absent.onnx"], ["--models absent.onnx: no such file"]),
    (["--targets", "h100-sxm", "--models", "tiny-llama", "--contexts", "1k"], ["--contexts '1k'"]),
    (["--targets", "h100-sxm", "--models", "tiny-llama", "--batches", "0"], ["--batches '0'"]),
    (["--targets", "h100-sxm", "--models", "tiny-llama", "--tolerance", "five"], ["--tolerance 'five'"]),
    (["--targets", "h100-sxm", "--models", "tiny-llama", "--tolerance=-5%"], ["--tolerance '-5%'"]),
    (["--targets", "h100-sxm", "--models", "tiny-llama", "--tolerance", "5"], ["ambiguous", "5%"]),
    (["--targets", "h100-sxm", "--models", "tiny-llama", "--update-baseline"], ["--update-baseline needs --baseline"]),
    (["--targets", "h100-sxm", "--models", "tiny-llama", "--precision", "fp7"], ["--precision 'fp7'", "bf16"]),
    (["--targets", "h100-sxm", "--models", "tiny-llama", "--prompt-len", "0"], ["--prompt-len 0: must be positive"]),
])
def test_bad_arguments(tmp_path, capsys, args, needles):
    code, err = run(tmp_path, capsys, *args)
    one_line_error(code, err, *needles)
    assert not (tmp_path / "out").exists()   # nothing ran, nothing was written


def test_two_targets_with_one_label(tmp_path, capsys):
    copy = tmp_path / "h100-sxm.toml"   # a copy of a preset under the preset's own name
    copy.write_text((PRESETS_DIR / "h100-sxm.toml").read_text())
    code, err = run(tmp_path, capsys, "--targets", "h100-sxm", str(copy), "--models", "tiny-llama")
    one_line_error(code, err, "share the label 'h100-sxm'")


@pytest.fixture
def good_baseline(tiny_baseline):
    return json.loads(tiny_baseline.read_text())


@pytest.mark.parametrize("mutate, needles", [
    (lambda b: "not json {", ["not valid JSON"]),
    (lambda b: {**b, "format": "something-else"}, ["not a tessera compare baseline"]),
    (lambda b: {**b, "version": 99}, ["baseline version 99", "--update-baseline"]),
    (lambda b: {**b, "runs": []}, ["'runs' must be an object"]),
    (lambda b: {**b, "tolerances": {"watts": "5%"}}, ["tolerances.watts: not a gated figure"]),
    (lambda b: {**b, "tolerances": {"tpot_s": "lots"}}, ["tolerances.tpot_s 'lots'"]),
    (lambda b: {**b, "runs": {"tiny-llama/h100-sxm/64/1": {"fits": True}}},
     ["missing figure(s) tokens_per_s_per_user"]),
    (lambda b: {**b, "runs": {"k": {**b["runs"]["tiny-llama/h100-sxm/64/1"], "tpot_s": "fast"}}},
     ["runs.k.tpot_s: expected a number or null"]),
    (lambda b: {**b, "settings": {**b["settings"], "gen_len": 7}}, ["other settings", "gen_len: baseline 7, now 1024"]),
])
def test_bad_baseline(tmp_path, capsys, good_baseline, mutate, needles):
    path = baseline_file(tmp_path, mutate(good_baseline))
    code, err = run(tmp_path, capsys, *TINY_MATRIX, "--baseline", path)
    one_line_error(code, err, path, *needles)
    assert not (tmp_path / "out").exists()


def test_update_baseline_never_overwrites_other_files(tmp_path, capsys):
    other = tmp_path / "notes.json"
    other.write_text('{"mine": true}')
    code, err = run(tmp_path, capsys, *TINY_MATRIX, "--baseline", str(other), "--update-baseline")
    one_line_error(code, err, "not a tessera compare baseline; refusing to overwrite")
    assert other.read_text() == '{"mine": true}'


def test_missing_baseline_file(tmp_path, capsys):
    code, err = run(tmp_path, capsys, *TINY_MATRIX, "--baseline", str(tmp_path / "nope.json"))
    one_line_error(code, err, "no such baseline file", "--update-baseline")


@pytest.mark.parametrize("text, value", [("5%", 0.05), ("12.5%", 0.125), ("0.05", 0.05), ("0%", 0.0), ("1", 1.0)])
def test_parse_tolerance(text, value):
    assert parse_tolerance(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "%", "5%%", "nan", "inf", "1e-2", "-0.1", "7"])
def test_parse_tolerance_rejects(text):
    with pytest.raises(CompareError):
        parse_tolerance(text)
