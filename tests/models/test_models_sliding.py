"""Sliding-window and hybrid graphs: reference match, window >= seq is full attention, and the
bounded (window-sized) decode cache continues prefill exactly."""

from __future__ import annotations

from dataclasses import replace

import model_refs as ref
import numpy as np
import pytest
from model_helpers import assert_close, carry_state, run, token_feeds, weights

from models import build_from_config, llama, sliding

SWA, HYBRID = sliding.TINY_SWA, sliding.TINY_HYBRID


@pytest.fixture(scope="module")
def tokens():
    return np.random.default_rng(11).integers(0, SWA.vocab_size, size=(2, 10))


@pytest.mark.parametrize("cfg", [SWA, HYBRID], ids=lambda c: c.name)
def test_prefill_matches_reference(cfg, tokens):
    model = build_from_config(cfg, "prefill")
    out = run(model, token_feeds(tokens))
    w = weights(model)
    for b in range(tokens.shape[0]):
        logits, caches = ref.sliding(w, cfg, tokens[b])
        assert_close(out["logits"][b], logits)
        for i, (k, _) in enumerate(caches):
            kept = k if cfg.layer_window(i) is None else k[:, -cfg.sliding_window :]
            assert_close(out[f"present.{i}.key"][b], kept)


def test_window_covering_everything_is_full_attention(tokens):
    """window >= sequence gives tiny-llama's logits (same weights: same names, same seed)."""
    wide = replace(SWA, sliding_window=16)
    dense = run(build_from_config(llama.TINY_LLAMA, "prefill"), token_feeds(tokens))["logits"]
    assert_close(run(build_from_config(wide, "prefill"), token_feeds(tokens))["logits"], dense)
    # ... and decode from a window cache that is still mostly zero padding.
    decode = build_from_config(wide, "decode")
    cache = run(build_from_config(wide, "prefill"), token_feeds(tokens[:, :6]))
    step = run(decode, token_feeds(tokens[:, 6:7], start=6) | carry_state(decode, cache))
    assert_close(step["logits"][:, 0], dense[:, 6])


@pytest.mark.parametrize("cfg", [SWA, HYBRID], ids=lambda c: c.name)
@pytest.mark.parametrize("t", [2, 4, 7])  # cache shorter than, equal to and longer than the window
def test_decode_continues_prefill(cfg, tokens, t):
    prefill, decode = build_from_config(cfg, "prefill"), build_from_config(cfg, "decode")
    expected, _ = ref.sliding(weights(prefill), cfg, tokens[0])
    state = run(prefill, token_feeds(tokens[:, :t]))
    for step in range(t, tokens.shape[1]):
        state = run(decode, token_feeds(tokens[:, step : step + 1], start=step) | carry_state(decode, state))
        assert_close(state["logits"][0, 0], expected[step])


def test_windowed_cache_is_bounded():
    decode = build_from_config(HYBRID, "decode")
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in decode.graph.input}
    assert dims["past_key_values.0.key"] == ["batch", HYBRID.num_kv_heads, HYBRID.sliding_window, HYBRID.head_dim]
    assert dims["past_key_values.1.key"][2] == "past_len"
    assert dims["past_key_values.2.value"][2] == HYBRID.sliding_window


def test_hybrid_bytes():
    cfg = sliding.LLAMA31_8B_HYBRID
    assert cfg.kv_bytes_per_token() == 8 * 4096  # 8 global layers x 2 x 8 heads x 128 x 2 bytes
    assert cfg.state_bytes() == 24 * 4096 * 4096
