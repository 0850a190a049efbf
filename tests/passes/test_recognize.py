"""Structure recognition (RMSNorm, RoPE, attention) on real graphs: same results, exact counts.

Every pass is checked by running the graph before and after it on the same inputs: the
torch-exported HF fixtures with their saved inputs, the registry's tiny models with random
inputs of the graph's own types (batch 2, seq 8, past_len 5, positions past_len onwards).
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import pytest

import models
from compiler.frontend import import_onnx
from compiler.interp import run_graph
from compiler.ir.graph import Graph
from compiler.ir.ops import Op
from compiler.ir.printer import format_graph
from compiler.ir.shapes import evaluate
from compiler.ir.verify import verify
from compiler.passes.pipeline import RECOGNIZE_PASSES, recognize, run_passes

HF = Path(__file__).resolve().parent.parent / "fixtures" / "hf"
GOLDEN = Path(__file__).resolve().parent / "golden"
FIXTURES = ["llama", "llama_decode", "qwen2", "mistral", "gpt2", "mamba2"]
TINY = ["tiny-llama", "tiny-swa", "tiny-hybrid", "tiny-sparse", "tiny-compact", "tiny-grumem", "tiny-engram",
        "tiny-mamba2"]
FORMS = ["prefill", "decode"]
PASSES = [p for p in RECOGNIZE_PASSES if p != "dce"]
SIZES = {"batch": 2, "seq": 8, "past_len": 5}
FP32_TOLERANCE = 1e-5  # of the output's scale; the rewrites reassociate a few roundings
BF16_TOLERANCE = 3e-2  # RotaryEmbedding rounds once where the bf16 graph rounds each step


def fixture_graph(name: str) -> tuple[Graph, dict[str, np.ndarray]]:
    with np.load(HF / name / "inputs.npz") as f:
        inputs = {k: f[k] for k in f.files}
    return import_onnx(HF / name / "model.onnx"), inputs


def random_inputs(graph: Graph, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs of the graph's dtypes and shapes; positions continue after the past."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, ttype in graph.inputs.items():
        shape = tuple(int(evaluate(d, SIZES)) for d in ttype.shape)
        if name == "position_ids":
            start = SIZES["past_len"] if any("past_key_values" in n for n in graph.inputs) else 0
            feeds[name] = np.broadcast_to(np.arange(start, start + shape[1]), shape).astype(np.int64)
        elif ttype.dtype.is_float:
            feeds[name] = rng.standard_normal(shape).astype(ttype.dtype.numpy)
        else:  # token ids: below every tiny vocabulary
            feeds[name] = rng.integers(0, 200, shape).astype(ttype.dtype.numpy)
    return feeds


def tiny_graph(name: str, form: str, dtype: str | None = None) -> Graph:
    config = models.get_config(name)
    if dtype is not None:
        config = dataclasses.replace(config, dtype=dtype)
    return import_onnx(models.build_from_config(config, form))


def assert_same_results(graph: Graph, inputs: dict[str, np.ndarray], passes, tolerance: float) -> Graph:
    before = run_graph(graph, inputs)
    after_graph = run_passes(graph, passes)
    after = run_graph(after_graph, inputs, check_types=True)
    assert set(after) == set(before)
    for key, want in before.items():
        want64, got64 = want.astype(np.float64), after[key].astype(np.float64)
        assert after[key].dtype == want.dtype and after[key].shape == want.shape, key
        assert not np.isnan(got64).any() and not np.isnan(want64).any(), key
        scale = max(float(np.max(np.abs(want64))), 1.0)
        error = float(np.max(np.abs(got64 - want64)))
        assert error <= tolerance * scale, f"{key}: max abs error {error:.3g} > {tolerance} x {scale:.3g}"
    return after_graph


def counts(graph: Graph) -> tuple[int, int, int]:
    ops = graph.op_counts()
    return ops.get("RMSNormalization", 0), ops.get("RotaryEmbedding", 0), ops.get("Attention", 0)


def attention_nodes(graph: Graph):
    return [n for n in graph.nodes() if n.op == Op.ATTENTION]


# ---- semantics --------------------------------------------------------------------------------
@pytest.mark.parametrize("passes", [[p] for p in PASSES] + [list(RECOGNIZE_PASSES)], ids=lambda p: "+".join(p))
@pytest.mark.parametrize("fixture", FIXTURES)
def test_fixture_results_unchanged(fixture, passes):
    graph, inputs = fixture_graph(fixture)
    assert_same_results(graph, inputs, passes, FP32_TOLERANCE)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("name", TINY)
def test_tiny_model_results_unchanged(name, form):
    graph = tiny_graph(name, form)
    assert_same_results(graph, random_inputs(graph), RECOGNIZE_PASSES, FP32_TOLERANCE)


@pytest.mark.parametrize("pass_name", PASSES)
@pytest.mark.parametrize("name", ["tiny-llama", "tiny-compact", "tiny-mamba2"])
def test_each_pass_alone_on_tiny_models(name, pass_name):
    graph = tiny_graph(name, "decode")
    assert_same_results(graph, random_inputs(graph), [pass_name], FP32_TOLERANCE)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("name", ["tiny-llama", "tiny-swa", "tiny-sparse", "tiny-compact"])
def test_bf16_models_results_unchanged(name, form):
    """The fp32 upcasts around norms and softmax become stash_type / softmax_precision."""
    graph = tiny_graph(name, form, dtype="bfloat16")
    after = assert_same_results(graph, random_inputs(graph), RECOGNIZE_PASSES, BF16_TOLERANCE)
    assert counts(after) == (5, 4, 2)
    assert all(n.attr("softmax_precision") == 1 for n in attention_nodes(after))
    assert all(n.attr("stash_type") == 1 for n in after.nodes() if n.op == Op.RMS_NORMALIZATION)


# ---- what is recognized -------------------------------------------------------------------------
# (RMSNormalization, RotaryEmbedding, Attention) after recognition. Mamba2's two grouped gated
# norms per graph have no gain of their own (it follows a Reshape) and get a scale of ones.
FIXTURE_COUNTS = {
    "llama": (5, 4, 2), "llama_decode": (5, 4, 2), "qwen2": (5, 4, 2), "mistral": (5, 4, 2),
    "gpt2": (0, 0, 2), "mamba2": (5, 0, 0),
}
# GRU-Mem prefill attends twice per layer (tokens, then memory slots reading the chunk) and
# norms the memory; Engram norms the hidden state and its key per Engram layer.
TINY_COUNTS = {
    "tiny-llama": (5, 4, 2), "tiny-swa": (5, 4, 2), "tiny-hybrid": (7, 6, 3), "tiny-sparse": (5, 4, 2),
    "tiny-compact": (5, 4, 2), "tiny-engram": (9, 4, 2), "tiny-mamba2": (5, 0, 0),
}


@pytest.mark.parametrize("fixture", FIXTURES)
def test_fixture_counts(fixture):
    graph = recognize(fixture_graph(fixture)[0])
    assert counts(graph) == FIXTURE_COUNTS[fixture]
    assert "Softmax" not in graph.op_counts()


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("name", TINY)
def test_tiny_model_counts(name, form):
    graph = recognize(tiny_graph(name, form))
    expected = TINY_COUNTS.get(name) or {"prefill": (7, 4, 4), "decode": (5, 4, 2)}[form]
    assert counts(graph) == expected
    assert "Softmax" not in graph.op_counts()


def test_gqa_stays_visible_and_kv_cache_is_absorbed():
    graph = recognize(tiny_graph("tiny-llama", "decode"))
    for node in attention_nodes(graph):
        q, k, v = (graph.type_of(x) for x in node.inputs[:3])
        assert (q.shape[1], k.shape[1], v.shape[1]) == (4, 2, 2)  # 4 query heads on 2 KV heads
        assert node.inputs[4].startswith("past_key_values.") and node.inputs[5].startswith("past_key_values.")
        assert node.outputs[1:] == (node.inputs[4].replace("past_key_values", "present"),
                                    node.inputs[5].replace("past_key_values", "present"))
        assert node.attr("scale") == 0.25 and node.attr("tessera_mask") == "none"
    assert "Expand" not in graph.op_counts()  # no repeat_kv left


def test_hf_export_tags():
    mistral = recognize(fixture_graph("mistral")[0])
    for node in attention_nodes(mistral):
        assert node.attr("tessera_mask") == "sliding_window" and node.attr("tessera_window") == 3
    for name in ("llama", "llama_decode", "qwen2", "gpt2"):
        for node in attention_nodes(recognize(fixture_graph(name)[0])):
            assert node.attr("tessera_mask_parts") == ("causal", "padding")
            assert node.attr("scale") == 0.25


def test_tiny_model_tags():
    for form in FORMS:
        for node in attention_nodes(recognize(tiny_graph("tiny-swa", form))):
            assert (node.attr("tessera_mask"), node.attr("tessera_window")) == ("sliding_window", 4)
        for node in attention_nodes(recognize(tiny_graph("tiny-sparse", form))):
            assert node.attr("tessera_mask") == "block_sparse"
            assert (node.attr("tessera_kept_blocks"), node.attr("tessera_block_size")) == (2, 4)
        for node in attention_nodes(recognize(tiny_graph("tiny-compact", form))):
            assert node.attr("tessera_mask") == "bias"
            assert node.attr("tessera_mask_parts") == (("bias", "causal") if form == "prefill" else ("bias",))
    hybrid = [n.attr("tessera_mask") for n in attention_nodes(recognize(tiny_graph("tiny-hybrid", "prefill")))]
    assert sorted(hybrid) == ["causal", "sliding_window", "sliding_window"]
    prefill = attention_nodes(recognize(tiny_graph("tiny-llama", "prefill")))
    assert [n.attr("tessera_mask") for n in prefill] == ["causal", "causal"]


# ---- full size ----------------------------------------------------------------------------------
def time_recognition(graph: Graph) -> tuple[Graph, float]:
    start = time.perf_counter()
    graph = recognize(graph)
    return graph, time.perf_counter() - start


def test_llama31_8b_decode_recognized_quickly():
    graph, seconds = time_recognition(import_onnx(models.build_model("llama3.1-8b", "decode")))
    print(f"\nrecognition on llama3.1-8b decode ({len(graph)} nodes after): {seconds * 1e3:.0f} ms")
    assert counts(graph) == (65, 64, 32)
    assert seconds < 1.0
    for node in attention_nodes(graph):
        assert graph.type_of(node.inputs[1]).shape[1] == 8 and len(node.inputs) == 6
        assert node.attr("softmax_precision") == 1


def test_llama31_8b_hf_export_recognized():
    graph, seconds = time_recognition(import_onnx(HF / "llama3.1-8b-meta" / "model.onnx"))
    verify(graph)
    assert counts(graph) == (65, 64, 32)
    assert seconds < 1.0


# ---- golden text --------------------------------------------------------------------------------
def test_golden_tiny_llama_decode():
    text = format_graph(recognize(tiny_graph("tiny-llama", "decode")), constants=False)
    golden = GOLDEN / "tiny_llama_decode.recognized.ir.txt"
    if os.environ.get("TESSERA_UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text(), "IR text changed; rerun with TESSERA_UPDATE_GOLDEN=1 if intended"
