"""Every registered full-size model, imported by the compiler: the figures `tessera inspect` shows
equal the analytic ones from the model config (parameters, KV bytes per token, fixed state)."""

from __future__ import annotations

import json

import pytest

import models
from compiler.cli import main
from compiler.frontend import import_onnx
from compiler.summary import summarize

FULL_SIZE = [n for n in models.list_models() if not n.startswith("tiny-")]


@pytest.mark.parametrize("name", FULL_SIZE)
def test_inspect_matches_config(name):
    config = models.get_config(name)
    # Parameters from prefill: GRU-Mem's decode step does not read the memory-update weights,
    # and the importer drops what no output depends on.
    assert summarize(import_onnx(models.build_model(name, "prefill"))).parameter_count == (
        models.parameter_count(config)
    )
    summary = summarize(import_onnx(models.build_model(name, "decode")))
    assert summary.kv_bytes_per_token == models.kv_bytes_per_token(config)
    # Decode-graph state inputs; GRU-Mem also keeps slot memory between chunks outside decode.
    if not name.endswith("grumem"):
        float_state = summary.state_bytes or 0
        assert float_state <= models.state_bytes(config)


def test_llama31_8b_published_figures(capsys):
    assert main(["inspect", "llama3.1-8b", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["parameter_count"] == 8_030_261_248
    assert report["kv_bytes_per_token"] == 131_072
    assert report["weight_bytes_by_dtype"] == {"bfloat16": 16_060_522_496}
    # REFERENCE.md: about 15.0 GFLOP per token + 524288 x context for attention.
    assert report["matmul_flops_per_token"] == "524288*past_len+15009841152"


def test_llama31_70b_published_parameter_count():
    summary = summarize(import_onnx(models.build_model("llama3.1-70b", "decode")))
    assert summary.parameter_count == 70_553_706_496


def test_mamba2_state_does_not_grow_with_context():
    graph = import_onnx(models.build_model("mamba2-2.7b", "decode"))
    summary = summarize(graph)
    assert summary.kv_bytes_per_token == 0
    assert summary.state_bytes == models.state_bytes(models.get_config("mamba2-2.7b"))
    assert all("past_len" not in str(t) for t in summary.inputs.values())
