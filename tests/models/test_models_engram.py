"""Engram graphs: in-graph n-gram hashing and gated lookups match the reference (hash computed
in Python ints), and decode with the carried token ids equals prefill rows."""

from __future__ import annotations

from dataclasses import replace

import model_refs as ref
import numpy as np
import pytest
from model_helpers import assert_close, carry_state, run, token_feeds, weights

from models import build_from_config, engram, llama

CFG = engram.TINY_ENGRAM


@pytest.fixture(scope="module")
def graphs():
    return build_from_config(CFG, "prefill"), build_from_config(CFG, "decode")


@pytest.fixture(scope="module")
def tokens():
    return np.random.default_rng(6).integers(0, CFG.vocab_size, size=(2, 9))


def test_prefill_matches_reference(graphs, tokens):
    prefill, _ = graphs
    out = run(prefill, token_feeds(tokens))
    w = weights(prefill)
    for b in range(tokens.shape[0]):
        logits, _ = ref.engram(w, CFG, tokens[b], engram.hash_multipliers)
        assert_close(out["logits"][b], logits)
    np.testing.assert_array_equal(out["present_token_ids"], tokens[:, -CFG.context_tokens :])


def test_memory_changes_the_output(graphs, tokens):
    prefill, _ = graphs
    plain = run(build_from_config(llama.TINY_LLAMA, "prefill"), token_feeds(tokens))["logits"]
    assert not np.allclose(run(prefill, token_feeds(tokens))["logits"], plain, atol=1e-3)


@pytest.mark.parametrize("t", [1, 5])
def test_decode_equals_prefill_rows(graphs, tokens, t):
    prefill, decode = graphs
    full = run(prefill, token_feeds(tokens))["logits"]
    state = run(prefill, token_feeds(tokens[:, :t]))
    for step in range(t, tokens.shape[1]):
        state = run(decode, token_feeds(tokens[:, step : step + 1], start=step) | carry_state(decode, state))
        assert_close(state["logits"][:, 0], full[:, step])


def test_large_ids_hash_without_overflow():
    """Full-vocab ids times the multipliers stay far below int64 (the graph has no wraparound)."""
    cfg = engram.LLAMA31_8B_ENGRAM
    worst = max(sum(engram.hash_multipliers(layer, n, h)) for layer in cfg.engram_layers
                for n, h, _ in cfg.tables())
    assert worst * (cfg.vocab_size - 1) < 2**62


def test_tables_are_distinct_primes():
    sizes = [rows for _, _, rows in replace(CFG).tables()]
    assert len(set(sizes)) == len(sizes)
    assert all(all(n % d for d in range(2, int(n**0.5) + 1)) for n in sizes)
