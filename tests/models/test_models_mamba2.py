"""Mamba-2 graphs: the chunked SSD prefill and the recurrent decode both equal a token-by-token
numpy recurrence, and decode continues prefill with a constant-size state."""

from __future__ import annotations

import model_refs as ref
import numpy as np
import pytest
from model_helpers import assert_close, carry_state, run, token_feeds, weights

from models import build_from_config, mamba2

CFG = mamba2.TINY_MAMBA2


@pytest.fixture(scope="module")
def graphs():
    return build_from_config(CFG, "prefill"), build_from_config(CFG, "decode")


@pytest.fixture(scope="module")
def tokens():
    return np.random.default_rng(2).integers(0, CFG.vocab_size, size=(2, 12))


def zero_state(decode, batch: int) -> dict[str, np.ndarray]:
    feeds = {}
    for value in decode.graph.input:
        if value.name.startswith("past_"):
            dims = [d.dim_value for d in value.type.tensor_type.shape.dim[1:]]
            feeds[value.name] = np.zeros([batch, *dims], dtype=np.float32)
    return feeds


@pytest.mark.parametrize("seq", [1, 4, 6, 12])  # under, exactly and over one chunk; three chunks
def test_chunked_prefill_matches_recurrence(graphs, tokens, seq):
    prefill, _ = graphs
    out = run(prefill, token_feeds(tokens[:, :seq], positions=False))
    w = weights(prefill)
    for b in range(tokens.shape[0]):
        logits, ssm, conv = ref.mamba2(w, CFG, tokens[b, :seq])
        assert_close(out["logits"][b], logits)
        for i in range(CFG.n_layer):
            assert_close(out[f"present_ssm_state.{i}"][b], ssm[i])
            assert_close(out[f"present_conv_state.{i}"][b], conv[i])


def test_decode_from_zero_state_equals_prefill(graphs, tokens):
    prefill, decode = graphs
    full = run(prefill, token_feeds(tokens[:, :8], positions=False))
    state = zero_state(decode, tokens.shape[0])
    for t in range(8):
        out = run(decode, token_feeds(tokens[:, t : t + 1], positions=False) | state)
        assert_close(out["logits"][:, 0], full["logits"][:, t])
        state = carry_state(decode, out)
    for i in range(CFG.n_layer):
        assert_close(out[f"present_ssm_state.{i}"], full[f"present_ssm_state.{i}"])


def test_decode_continues_prefill(graphs, tokens):
    prefill, decode = graphs
    head = run(prefill, token_feeds(tokens[:, :8], positions=False))
    full = run(prefill, token_feeds(tokens[:, :12], positions=False))
    step = run(decode, token_feeds(tokens[:, 8:9], positions=False) | carry_state(decode, head))
    assert_close(step["logits"][:, 0], full["logits"][:, 8])


def test_decode_state_has_no_past_len():
    decode = build_from_config(mamba2.MAMBA2_2_7B, "decode")
    states = [i for i in decode.graph.input if i.name.startswith("past_")]
    assert len(states) == 2 * mamba2.MAMBA2_2_7B.n_layer
    for value in states:
        dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
        assert dims[0] == "batch" and all(isinstance(d, int) for d in dims[1:]), (value.name, dims)


def test_published_size():
    cfg = mamba2.MAMBA2_2_7B
    assert cfg.padded_vocab == 50288 and cfg.nheads == 80 and cfg.conv_dim == 5376
    assert cfg.parameter_count() == 2_702_599_680
    assert cfg.state_bytes() == 64 * (80 * 64 * 128 + 5376 * 4) * 2
