"""Dense Llama graphs against the numpy reference; decode equals prefill row by row."""

from __future__ import annotations

from dataclasses import replace

import model_refs as ref
import numpy as np
import pytest
from model_helpers import assert_close, carry_state, run, token_feeds, weights

from models import build_from_config, llama

CFG = llama.TINY_LLAMA


@pytest.fixture(scope="module")
def graphs():
    return build_from_config(CFG, "prefill"), build_from_config(CFG, "decode")


@pytest.fixture(scope="module")
def tokens():
    return np.random.default_rng(7).integers(0, CFG.vocab_size, size=(2, 9))


def test_prefill_matches_reference(graphs, tokens):
    prefill, _ = graphs
    out = run(prefill, token_feeds(tokens))
    w = weights(prefill)
    for b in range(tokens.shape[0]):
        logits, caches = ref.dense(w, CFG, tokens[b])
        assert_close(out["logits"][b], logits)
        for i, (k, v) in enumerate(caches):
            assert_close(out[f"present.{i}.key"][b], k)
            assert_close(out[f"present.{i}.value"][b], v)


@pytest.mark.parametrize("t", [1, 4, 8])
def test_decode_step_equals_prefill_row(graphs, tokens, t):
    prefill, decode = graphs
    cache = run(prefill, token_feeds(tokens[:, :t]))
    step = run(decode, token_feeds(tokens[:, t : t + 1], start=t) | carry_state(decode, cache))
    full = run(prefill, token_feeds(tokens[:, : t + 1]))
    assert_close(step["logits"][:, 0], full["logits"][:, t])
    for i in range(CFG.num_layers):
        assert_close(step[f"present.{i}.key"], full[f"present.{i}.key"])


def test_decode_chain(graphs, tokens):
    """Feeding present back for several steps keeps matching the reference."""
    prefill, decode = graphs
    state = run(prefill, token_feeds(tokens[:, :3]))
    expected, _ = ref.dense(weights(prefill), CFG, tokens[0])
    for t in range(3, tokens.shape[1]):
        state = run(decode, token_feeds(tokens[:, t : t + 1], start=t) | carry_state(decode, state))
        assert_close(state["logits"][0, 0], expected[t])


def test_rope_bands_are_all_exercised():
    """The tiny config keeps some frequencies, smooths some and divides some (llama3 rule)."""
    scaling = CFG.rope_scaling
    unscaled = ref.llama3_frequencies(CFG.head_dim, CFG.rope_theta, None)
    scaled = ref.llama3_frequencies(CFG.head_dim, CFG.rope_theta, scaling)
    ratio = unscaled / scaled
    assert np.isclose(ratio, 1).any() and np.isclose(ratio, scaling.factor).any()
    assert ((ratio > 1.001) & (ratio < scaling.factor - 0.001)).any()


def test_tied_embeddings_match_reference(tokens):
    cfg = replace(CFG, tie_embeddings=True)
    model = build_from_config(cfg, "prefill")
    assert "lm_head.weight" not in {t.name for t in model.graph.initializer}
    logits, _ = ref.dense(weights(model), cfg, tokens[1])
    assert_close(run(model, token_feeds(tokens))["logits"][1], logits)
