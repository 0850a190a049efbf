"""Long context on a chip with no HBM: the context and users the SRAM holds, and the rate there."""

from __future__ import annotations

import math

import pytest
from spatial_helpers import TINY_CHIP

import models
from compiler.cli import main
from simulator.spatial.long_context import LONG_CONTEXT_MODELS, format_table, long_context_table


@pytest.fixture(scope="module")
def hc1_table():
    return {row.model: row for row in long_context_table("taalas-hc1")}


def test_table_covers_the_long_context_family(hc1_table):
    assert set(LONG_CONTEXT_MODELS) == set(hc1_table)
    assert set(LONG_CONTEXT_MODELS) <= set(models.list_models())


def test_dense_llama_fits_what_the_sram_holds(hc1_table, hc1):
    row = hc1_table["llama3.1-8b"]
    capacity = hc1.sram.sram_bytes - hc1.sram.adapter_bytes
    kv = models.kv_bytes_per_token(models.get_config("llama3.1-8b"))
    assert row.max_context == capacity // kv
    assert row.users_at[131072] == 0 and row.bytes_per_user_at_reference == 131072 * kv
    assert row.rate_users == 1 and row.tokens_per_s_per_user > 0


def test_ssm_state_does_not_grow(hc1_table, hc1):
    row = hc1_table["mamba2-2.7b"]
    state = models.state_bytes(models.get_config("mamba2-2.7b"))
    assert row.max_context is None
    assert row.users_at[8192] == row.users_at[131072] == (hc1.sram.sram_bytes - hc1.sram.adapter_bytes) // state
    assert row.tokens_per_s_total == pytest.approx(row.rate_users * row.tokens_per_s_per_user)


def test_gru_mem_holds_its_slot_memory_and_open_chunk(hc1_table):
    config = models.get_config("llama3.1-8b-grumem")
    chunk = (config.chunk_size - 1) * models.kv_bytes_per_token(config)
    assert hc1_table["llama3.1-8b-grumem"].bytes_per_user_at_reference == chunk + models.state_bytes(config)


def test_windowed_layers_fill_up_to_the_window(hc1_table):
    # Below the 4096-token window a hybrid model caches every token in every layer, as dense does.
    assert hc1_table["llama3.1-8b-hybrid"].max_context == hc1_table["llama3.1-8b"].max_context


def test_nothing_fits_reads_as_such(hc1_table):
    text = format_table(list(hc1_table.values()), "taalas-hc1", "bf16")
    for name, row in hc1_table.items():
        if row.rate_users == 0:
            assert math.isnan(row.tokens_per_s_per_user)
            assert any(line.startswith(name) and "nothing fits" in line for line in text.splitlines())


def test_tiny_models_on_the_tiny_chip():
    rows = long_context_table(str(TINY_CHIP), "bf16", models=("tiny-llama", "tiny-mamba2"), contexts=(64, 256))
    dense, ssm = rows
    per_token = models.kv_bytes_per_token(models.get_config("tiny-llama")) // 2     # fp32 cache stored at bf16
    assert dense.max_context == 2**20 // per_token and dense.users_at == {64: 2**20 // (64 * per_token),
                                                                          256: 2**20 // (256 * per_token)}
    assert ssm.max_context is None and ssm.users_at[64] == ssm.users_at[256]


def test_cli_long_context(capsys):
    assert main(["claim", "--long-context", "--target", str(TINY_CHIP), "--no-solve"]) == 0
    out = capsys.readouterr().out
    assert "Long context on" in out and "mamba2-2.7b" in out and "max context" in out


def test_cli_claim_needs_something_to_do(capsys):
    assert main(["claim"]) == 2
    assert "give a claim file" in capsys.readouterr().err


def test_hybrid_prompt_has_a_finite_ttft():
    """At the first prompt token the windowed layers hold nothing yet but read the token they
    write: they need a share of the SRAM ports (an empty share once gave TTFT = inf)."""
    from simulator.api import SimOptions, simulate

    hybrid = simulate("llama3.1-8b-hybrid", "taalas-hc1", SimOptions(context=1024, prompt_len=1024))
    assert hybrid.fits and math.isfinite(hybrid.ttft_s)
    # the prompt streams through the pipeline: longer than one token, shorter than 1024 serial ones
    assert hybrid.tpot_s < hybrid.ttft_s < 1024 * hybrid.tpot_s
