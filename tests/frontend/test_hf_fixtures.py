"""Real torch-exported Hugging Face graphs (tools/export_fixtures.py) through import + interpreter.

Each fixture holds torch's own outputs; Tessera must reproduce them (fp32: max abs error at
most 1e-4 of the output's scale), and onnxruntime must agree as an independent check.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from compiler.cli import main
from compiler.frontend import import_onnx
from compiler.interp import run_graph
from compiler.ir.printer import format_graph
from compiler.ir.verify import verify
from compiler.summary import summarize

HF = Path(__file__).resolve().parent.parent / "fixtures" / "hf"
GOLDEN = Path(__file__).resolve().parent / "golden"
RUNNABLE = sorted(p.name for p in HF.iterdir() if (p / "inputs.npz").exists()) if HF.exists() else []
TOLERANCE = 1e-4


def load_fixture(name: str):
    directory = HF / name
    with np.load(directory / "inputs.npz") as f:
        inputs = {k: f[k] for k in f.files}
    with np.load(directory / "outputs.npz") as f:
        outputs = {k: f[k] for k in f.files}
    meta = json.loads((directory / "meta.json").read_text())
    return directory / "model.onnx", inputs, outputs, meta


def assert_close_to_scale(got: np.ndarray, want: np.ndarray, what: str) -> None:
    scale = max(float(np.max(np.abs(want))), 1.0)
    error = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
    assert error <= TOLERANCE * scale, f"{what}: max abs error {error:.3g} > {TOLERANCE} x scale {scale:.3g}"


def test_all_expected_fixtures_exist():
    assert {"llama", "llama_decode", "qwen2", "mistral", "gpt2"} <= set(RUNNABLE)


@pytest.mark.parametrize("name", RUNNABLE)
def test_interpreter_reproduces_torch(name):
    path, inputs, expected, _ = load_fixture(name)
    graph = import_onnx(path)
    verify(graph)
    outputs = run_graph(graph, inputs, check_types=True)
    assert set(outputs) == set(expected)
    for key, want in expected.items():
        assert outputs[key].shape == want.shape, key
        assert_close_to_scale(outputs[key], want, f"{name}:{key}")


@pytest.mark.parametrize("name", RUNNABLE)
def test_onnxruntime_agrees_with_torch(name):
    path, inputs, expected, _ = load_fixture(name)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    for key, got in zip(names, session.run(names, inputs)):
        assert_close_to_scale(got, expected[key], f"onnxruntime {name}:{key}")


@pytest.mark.parametrize("name", RUNNABLE)
def test_parameter_count_matches_torch(name):
    path, _, _, meta = load_fixture(name)
    assert summarize(import_onnx(path)).parameter_count == meta["torch_parameter_count"]


def test_cli_run_on_fixture(tmp_path):
    path, inputs, expected, _ = load_fixture("llama_decode")
    np.savez(tmp_path / "in.npz", **inputs)
    assert main(["run", str(path), "--inputs", str(tmp_path / "in.npz"), "--output", str(tmp_path / "out.npz")]) == 0
    with np.load(tmp_path / "out.npz") as out:
        assert set(out.files) == set(expected)
        assert_close_to_scale(out["logits"], expected["logits"], "cli logits")


def test_decode_fixture_reports_kv_bytes_per_token():
    path, _, _, meta = load_fixture("llama_decode")
    cfg = meta["config"]
    summary = summarize(import_onnx(path))
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    expected = cfg["num_hidden_layers"] * 2 * cfg["num_key_value_heads"] * head_dim * 4
    assert summary.kv_bytes_per_token == expected


def test_imported_llama_decode_matches_golden_text():
    """Deterministic IR text of a real export: a change in import or folding shows up here."""
    text = format_graph(import_onnx(HF / "llama_decode" / "model.onnx"), constants=False)
    golden = GOLDEN / "llama_decode.ir.txt"
    if os.environ.get("TESSERA_UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text(), "IR text changed; rerun with TESSERA_UPDATE_GOLDEN=1 if intended"


def test_llama31_8b_described_only_graph():
    path = HF / "llama3.1-8b-meta" / "model.onnx"
    graph = import_onnx(path)
    verify(graph)
    summary = summarize(graph)
    assert summary.parameter_count == 8_030_261_248
    assert summary.weight_bytes_by_dtype == {"bfloat16": 2 * 8_030_261_248}
    assert all(not c.is_materialized for c in graph.constants.values() if c.is_parameter)
    assert summary.described_only_bytes == 2 * 8_030_261_248
    assert not (path.parent / "model.onnx.data").exists()
