"""KV compaction graphs: identity compaction (ratio 1, zero bias) equals the full cache, and a
fitted prefix with biases matches the reference."""

from __future__ import annotations

from dataclasses import replace

import model_refs as ref
import numpy as np
import pytest
from model_helpers import assert_close, carry_state, run, token_feeds, weights

from models import build_from_config, compaction, llama

CFG = compaction.TINY_COMPACT
T = CFG.compacted_len  # tokens behind the compacted prefix


@pytest.fixture(scope="module")
def tokens():
    return np.random.default_rng(3).integers(0, CFG.vocab_size, size=(2, 13))


def prefix_feeds(keys: list, values: list, biases: list) -> dict[str, np.ndarray]:
    feeds = {}
    for i, (k, v, b) in enumerate(zip(keys, values, biases, strict=True)):
        feeds |= {
            f"compacted_key_values.{i}.key": k.astype(np.float32),
            f"compacted_key_values.{i}.value": v.astype(np.float32),
            f"compacted_key_values.{i}.bias": b.astype(np.float32),
        }
    return feeds


@pytest.fixture(scope="module")
def identity(tokens):
    """The dense cache of the first T tokens as an uncompressed 'compacted' prefix."""
    dense_prefill = build_from_config(llama.TINY_LLAMA, "prefill")
    full = run(dense_prefill, token_feeds(tokens))["logits"]
    head = run(dense_prefill, token_feeds(tokens[:, :T]))
    layers = range(CFG.num_layers)
    keys = [head[f"present.{i}.key"] for i in layers]
    values = [head[f"present.{i}.value"] for i in layers]
    biases = [np.zeros(k.shape[:3]) for k in keys]
    return full, prefix_feeds(keys, values, biases)


def test_identity_compaction_prefill_equals_full_cache(tokens, identity):
    full, prefix = identity
    model = build_from_config(replace(CFG, compaction_ratio=1.0), "prefill")
    out = run(model, token_feeds(tokens[:, T:], start=T) | prefix)
    assert_close(out["logits"], full[:, T:])


def test_identity_compaction_decode_equals_full_cache(tokens, identity):
    full, prefix = identity
    cfg = replace(CFG, compaction_ratio=1.0)
    recent = run(build_from_config(cfg, "prefill"), token_feeds(tokens[:, T:12], start=T) | prefix)
    decode = build_from_config(cfg, "decode")
    step = run(decode, token_feeds(tokens[:, 12:13], start=12) | prefix | carry_state(decode, recent))
    assert_close(step["logits"][:, 0], full[:, 12])


@pytest.mark.parametrize("form", ["prefill", "decode"])
def test_fitted_prefix_matches_reference(tokens, form):
    rng = np.random.default_rng(9)
    t, kv, d = CFG.compacted_slots, CFG.num_kv_heads, CFG.head_dim
    batch = tokens.shape[0]
    layers = range(CFG.num_layers)
    keys = [rng.standard_normal((batch, kv, t, d)) for _ in layers]
    values = [rng.standard_normal((batch, kv, t, d)) for _ in layers]
    biases = [rng.standard_normal((batch, kv, t)) for _ in layers]
    prefix = prefix_feeds(keys, values, biases)
    prefill = build_from_config(CFG, "prefill")
    new = tokens[:, T:]
    if form == "prefill":
        got = run(prefill, token_feeds(new, start=T) | prefix)["logits"]
    else:
        decode = build_from_config(CFG, "decode")
        state = run(prefill, token_feeds(new[:, :-1], start=T) | prefix)
        last = token_feeds(new[:, -1:], start=T + new.shape[1] - 1)
        got = run(decode, last | prefix | carry_state(decode, state))["logits"]
    w = weights(prefill)
    for b in range(batch):
        per_layer = [(keys[i][b], values[i][b], biases[i][b]) for i in layers]
        logits, _ = ref.compacted(w, CFG, new[b], np.arange(T, T + new.shape[1]), per_layer)
        assert_close(got[b], logits[-got.shape[1] :])


def test_compacted_state_bytes():
    cfg = compaction.LLAMA31_8B_COMPACT
    assert cfg.compacted_slots == 4096
    assert cfg.state_bytes() == 32 * 8 * 4096 * (2 * 128 + 1) * 2
    assert cfg.kv_bytes_per_token() == 131072
