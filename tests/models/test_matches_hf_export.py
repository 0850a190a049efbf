"""Our Llama builder against torch's own export of the same tiny HF LlamaForCausalLM.

The fixtures (tools/export_fixtures.py) hold the torch parameters under HF names; built with
those weights and the fixture's HF config, our graph must give the exporter's logits, in
onnxruntime and in Tessera's interpreter (max abs error at most 1e-4 of the output's scale).
Our graphs take no attention_mask, so the references are the fixture graph run with an
all-ones mask, plus torch's stored outputs where the stored mask hides nothing that matters.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from model_helpers import run
from onnx import numpy_helper

from compiler.frontend import import_onnx
from compiler.interp import run_graph
from models import ConfigError, hf, llama

HF_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hf"
TOLERANCE = 1e-4


class Fixture:
    """One exported HF model: its graph, config, inputs and torch's outputs."""

    def __init__(self, name: str) -> None:
        directory = HF_FIXTURES / name
        self.model = onnx.load(directory / "model.onnx")
        self.hf_config = json.loads((directory / "meta.json").read_text())["config"]
        with np.load(directory / "inputs.npz") as f:
            self.inputs = {k: f[k] for k in f.files}
        with np.load(directory / "outputs.npz") as f:
            self.outputs = {k: f[k] for k in f.files}

    def state_dict(self) -> dict[str, np.ndarray]:
        return {t.name: numpy_helper.to_array(t) for t in self.model.graph.initializer}

    def ours(self, form: str) -> onnx.ModelProto:
        """Our graph in `form` with the fixture's config and weights."""
        config = hf.llama_config_from_hf(self.hf_config, name=f"hf-{form}")
        return llama.build(config, form, weights=hf.llama_weights_from_hf(self.state_dict()))

    def unmasked_reference(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The fixture graph on `feeds` (ours: no mask input) with nothing masked."""
        batch, total = feeds["input_ids"].shape[0], feeds["input_ids"].shape[1]
        if "past_key_values.0.key" in feeds:
            total += feeds["past_key_values.0.key"].shape[2]
        wanted = {i.name for i in self.model.graph.input}
        mask = {"attention_mask": np.ones((batch, total), dtype=np.int64)}
        return run(self.model, {k: v for k, v in feeds.items() if k in wanted} | mask)


def max_abs_diff(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))


def assert_within_scale(got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    scale = max(float(np.max(np.abs(want))), 1.0)
    error = max_abs_diff(got, want)
    assert error <= TOLERANCE * scale, f"{what}: max abs diff {error:.3g} > {TOLERANCE} x scale {scale:.3g}"


def run_both(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """Outputs by runner: onnxruntime and Tessera's interpreter."""
    return {"onnxruntime": run(model, feeds), "interpreter": run_graph(import_onnx(model), feeds, check_types=True)}


@pytest.fixture(scope="module")
def prefill() -> Fixture:
    return Fixture("llama")


@pytest.fixture(scope="module")
def decode() -> Fixture:
    return Fixture("llama_decode")


def prefill_feeds(input_ids: np.ndarray) -> dict[str, np.ndarray]:
    # HF numbers positions 0..seq-1 when it is given no position_ids, padded or not.
    positions = np.broadcast_to(np.arange(input_ids.shape[1], dtype=np.int64), input_ids.shape)
    return {"input_ids": input_ids, "position_ids": positions.copy()}


# ---- the mapping itself ------------------------------------------------------------------------
def test_fixture_config_maps_to_a_tiny_llama(prefill):
    config = hf.llama_config_from_hf(prefill.hf_config, name="hf-tiny")
    assert (config.vocab_size, config.hidden_size, config.num_layers) == (128, 64, 2)
    assert (config.num_heads, config.num_kv_heads, config.head_dim) == (4, 2, 16)
    assert config.rope_scaling == llama.Llama3RopeScaling(
        factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=32
    )
    assert config.parameter_count() == sum(a.size for a in prefill.state_dict().values())


def test_transformers4_rope_keys_map_the_same(prefill):
    """transformers 4 keeps rope_theta at top level and the llama3 fields in rope_scaling."""
    theta = 20000.0  # not HF's default, so a theta that is not read shows
    v5 = prefill.hf_config | {"rope_parameters": prefill.hf_config["rope_parameters"] | {"rope_theta": theta}}
    scaling = {k: v for k, v in v5["rope_parameters"].items() if k != "rope_theta"}
    v4 = {k: v for k, v in v5.items() if k != "rope_parameters"} | {"rope_theta": theta, "rope_scaling": scaling}
    config = hf.llama_config_from_hf(v4, name="hf-tiny")
    assert config == hf.llama_config_from_hf(v5, name="hf-tiny")
    assert config.rope_theta == theta and config.rope_scaling is not None


def test_llama31_8b_config_maps_to_the_preset():
    meta = json.loads((HF_FIXTURES / "llama3.1-8b-meta" / "meta.json").read_text())
    config = hf.llama_config_from_hf(
        meta["config"], name="llama3.1-8b", source=llama.LLAMA31_8B.source, dtype="bfloat16", weights="described"
    )
    assert config == llama.LLAMA31_8B


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("head_dim", {"head_dim": 32}),
        ("attention_bias", {"attention_bias": True}),
        ("hidden_act", {"hidden_act": "gelu"}),
        ("rope_type", {"rope_parameters": {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0}}),
    ],
)
def test_unbuildable_hf_config_names_its_field(prefill, field, change):
    with pytest.raises(ConfigError, match=rf"\.{field} = "):
        hf.llama_config_from_hf(prefill.hf_config | change, name="bad")


def test_weights_must_cover_the_parameters_exactly(prefill):
    config = hf.llama_config_from_hf(prefill.hf_config, name="hf-tiny")
    weights = hf.llama_weights_from_hf(prefill.state_dict())
    with pytest.raises(ValueError, match="no weight given for parameter lm_head.weight"):
        llama.build(config, "prefill", weights={k: v for k, v in weights.items() if k != "lm_head.weight"})
    with pytest.raises(ValueError, match="no parameter for: extra"):
        llama.build(config, "prefill", weights=weights | {"extra": np.zeros(1)})
    with pytest.raises(ValueError, match=r"q_proj.weight given with shape \[64, 32\]"):
        llama.build(config, "prefill", weights=weights | {"model.layers.0.self_attn.q_proj.weight": np.zeros((64, 32))})


# ---- prefill ---------------------------------------------------------------------------------
def test_prefill_matches_the_export_unmasked(prefill):
    feeds = prefill_feeds(prefill.inputs["input_ids"])
    want = prefill.unmasked_reference(feeds)["logits"]
    for runner, outputs in run_both(prefill.ours("prefill"), feeds).items():
        assert_within_scale(outputs["logits"], want, f"prefill logits ({runner})")


def test_prefill_matches_torch_on_unpadded_tokens(prefill):
    """Stored torch logits: the full row 0 and the real tokens of right-padded row 1 (causal,
    so padding at the end cannot reach them)."""
    mask = prefill.inputs["attention_mask"]
    got = run(prefill.ours("prefill"), prefill_feeds(prefill.inputs["input_ids"]))["logits"]
    for row in range(mask.shape[0]):
        real = int(mask[row].sum())
        assert mask[row, :real].all(), "the fixture pads on the right"
        assert_within_scale(got[row, :real], prefill.outputs["logits"][row, :real], f"row {row}")


# ---- decode ------------------------------------------------------------------------------------
def test_decode_matches_the_export_unmasked(decode):
    """One step over the fixture's (random) past K/V with every past slot visible."""
    past_len = decode.inputs["past_key_values.0.key"].shape[2]
    feeds = {k: v for k, v in decode.inputs.items() if k != "attention_mask"}
    feeds["position_ids"] = np.full_like(decode.inputs["position_ids"], past_len)
    want = decode.unmasked_reference(feeds)
    for runner, outputs in run_both(decode.ours("decode"), feeds).items():
        assert set(outputs) == set(want)
        for name, value in want.items():
            assert_within_scale(outputs[name], value, f"decode {name} ({runner})")


def test_decode_matches_torch_with_the_padded_slot_dropped(decode):
    """Stored torch outputs. A left-padded row attends to its unmasked past slots only, at its
    own position_ids: the same as our unmasked step on just those slots."""
    mask = decode.inputs["attention_mask"]
    model = decode.ours("decode")
    for row in range(mask.shape[0]):
        pad = int((mask[row] == 0).sum())
        assert mask[row, pad:].all(), "the fixture pads on the left"
        feeds = {
            name: value[row : row + 1, :, pad:] if name.startswith("past_") else value[row : row + 1]
            for name, value in decode.inputs.items()
            if name != "attention_mask"
        }
        got = run(model, feeds)
        for name, value in decode.outputs.items():
            want = value[row : row + 1, :, pad:] if name.startswith("present.") else value[row : row + 1]
            assert_within_scale(got[name], want, f"decode row {row} {name}")
