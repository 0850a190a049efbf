"""Gated-memory graphs: the chunk step (tokens + memory update) matches the reference over two
chunks, and decode inside a chunk equals the chunk step's rows."""

from __future__ import annotations

import model_refs as ref
import numpy as np
import pytest
from model_helpers import assert_close, carry_state, run, token_feeds, weights

from models import build_from_config, grumem

CFG = grumem.TINY_GRUMEM


@pytest.fixture(scope="module")
def graphs():
    return build_from_config(CFG, "prefill"), build_from_config(CFG, "decode")


@pytest.fixture(scope="module")
def chunks():
    rng = np.random.default_rng(4)
    return [rng.integers(0, CFG.vocab_size, size=(2, CFG.chunk_size)) for _ in range(2)]


def memory_feeds(memory: list[np.ndarray]) -> dict[str, np.ndarray]:
    return {f"past_memory.{i}": m.astype(np.float32) for i, m in enumerate(memory)}


def test_two_chunk_steps_match_reference(graphs, chunks):
    prefill, _ = graphs
    batch = chunks[0].shape[0]
    memory = [np.random.default_rng(8).standard_normal((batch, CFG.memory_slots, CFG.hidden_size))] * CFG.num_layers
    w = weights(prefill)
    expected_memory = [[m[b] for m in memory] for b in range(batch)]
    for chunk in chunks:
        out = run(prefill, token_feeds(chunk) | memory_feeds(memory))
        for b in range(batch):
            logits, expected_memory[b], memory_kv = ref.grumem_chunk(w, CFG, chunk[b], expected_memory[b])
            assert_close(out["logits"][b], logits)
            for i in range(CFG.num_layers):
                assert_close(out[f"present_memory.{i}"][b], expected_memory[b][i])
                assert_close(out[f"present_memory.{i}.key"][b], memory_kv[i][0])
        memory = [out[f"present_memory.{i}"] for i in range(CFG.num_layers)]


def test_memory_changes_the_output(graphs, chunks):
    prefill, _ = graphs
    shape = (2, CFG.memory_slots, CFG.hidden_size)
    zeros = run(prefill, token_feeds(chunks[0]) | memory_feeds([np.zeros(shape)] * CFG.num_layers))
    ones = run(prefill, token_feeds(chunks[0]) | memory_feeds([np.ones(shape)] * CFG.num_layers))
    assert not np.allclose(zeros["logits"], ones["logits"], atol=1e-3)


@pytest.mark.parametrize("t", [1, 5])
def test_decode_inside_chunk_equals_chunk_rows(graphs, chunks, t):
    prefill, decode = graphs
    memory = memory_feeds([np.random.default_rng(i).standard_normal((2, CFG.memory_slots, CFG.hidden_size))
                           for i in range(CFG.num_layers)])
    chunk = chunks[1]
    full = run(prefill, token_feeds(chunk) | memory)
    state = run(prefill, token_feeds(chunk[:, :t]) | memory)
    memory_kv = carry_state(decode, state)  # read-only during the chunk: decode does not re-emit it
    for step in range(t, CFG.chunk_size):
        feeds = token_feeds(chunk[:, step : step + 1], start=step) | memory_kv | carry_state(decode, state)
        state = run(decode, feeds)
        assert_close(state["logits"][:, 0], full["logits"][:, step])
