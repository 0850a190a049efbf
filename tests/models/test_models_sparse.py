"""Block-sparse graphs: reference match (prefill and decode), and top-k = all blocks is dense."""

from __future__ import annotations

from dataclasses import replace

import model_refs as ref
import numpy as np
import pytest
from model_helpers import assert_close, carry_state, run, token_feeds, weights

from models import build_from_config, llama, sparse

CFG = sparse.TINY_SPARSE


@pytest.fixture(scope="module")
def tokens():
    # 15 tokens: three whole 4-token blocks and a partial one
    return np.random.default_rng(5).integers(0, CFG.vocab_size, size=(2, 15))


@pytest.fixture(scope="module")
def graphs():
    return build_from_config(CFG, "prefill"), build_from_config(CFG, "decode")


def test_prefill_matches_reference(graphs, tokens):
    prefill, _ = graphs
    out = run(prefill, token_feeds(tokens))
    w = weights(prefill)
    for b in range(tokens.shape[0]):
        logits, _ = ref.sparse(w, CFG, tokens[b])
        assert_close(out["logits"][b], logits)


def test_selection_is_not_trivial(graphs, tokens):
    """With top-2 of up to 4 blocks the sparse logits differ from dense ones (the mask bites)."""
    prefill, _ = graphs
    sparse_logits = run(prefill, token_feeds(tokens))["logits"]
    dense_logits = run(build_from_config(llama.TINY_LLAMA, "prefill"), token_feeds(tokens))["logits"]
    assert np.allclose(sparse_logits[:, :8], dense_logits[:, :8], atol=1e-4)  # <= 2 blocks: all kept
    assert not np.allclose(sparse_logits[:, 12:], dense_logits[:, 12:], atol=1e-3)


def test_decode_matches_reference(graphs, tokens):
    prefill, decode = graphs
    expected, _ = ref.sparse(weights(prefill), CFG, tokens[1], prefill_len=6)
    state = run(prefill, token_feeds(tokens[:, :6]))
    for t in range(6, tokens.shape[1]):
        state = run(decode, token_feeds(tokens[:, t : t + 1], start=t) | carry_state(decode, state))
        assert_close(state["logits"][1, 0], expected[t])


@pytest.mark.parametrize("form", ["prefill", "decode"])
def test_top_k_all_blocks_is_dense(form, tokens):
    everything = replace(CFG, top_k=CFG.max_blocks)
    dense = run(build_from_config(llama.TINY_LLAMA, "prefill"), token_feeds(tokens))["logits"]
    if form == "prefill":
        got = run(build_from_config(everything, "prefill"), token_feeds(tokens))["logits"]
        assert_close(got, dense)
    else:
        decode = build_from_config(everything, "decode")
        cache = run(build_from_config(llama.TINY_LLAMA, "prefill"), token_feeds(tokens[:, :14]))
        step = run(decode, token_feeds(tokens[:, 14:15], start=14) | carry_state(decode, cache))
        assert_close(step["logits"][:, 0], dense[:, 14])
