"""Config validation: each bad value raises ConfigError whose message names the field."""

from __future__ import annotations

from dataclasses import replace

import pytest

from models import ConfigError, compaction, engram, grumem, llama, mamba2, sliding, sparse

BAD = [
    (llama.TINY_LLAMA, "num_heads", {"num_heads": 5}),  # 64 not divisible by 5
    (llama.TINY_LLAMA, "num_kv_heads", {"num_kv_heads": 3}),
    (llama.TINY_LLAMA, "hidden_size", {"hidden_size": 0}),
    (llama.TINY_LLAMA, "dtype", {"dtype": "float16"}),
    (llama.TINY_LLAMA, "weights", {"weights": "zeros"}),
    (sliding.TINY_SWA, "sliding_window", {"sliding_window": 0}),
    (sliding.TINY_HYBRID, "full_attention_layers", {"full_attention_layers": (3,)}),
    (sparse.TINY_SPARSE, "top_k", {"top_k": 65}),  # max_context 256 / 4-token blocks = 64 blocks
    (sparse.TINY_SPARSE, "block_size", {"block_size": -4}),
    (compaction.TINY_COMPACT, "compaction_ratio", {"compaction_ratio": 0.5}),
    (compaction.TINY_COMPACT, "compacted_len", {"compacted_len": 0}),
    (grumem.TINY_GRUMEM, "memory_slots", {"memory_slots": 0}),
    (grumem.TINY_GRUMEM, "chunk_size", {"chunk_size": 10_000}),
    (engram.TINY_ENGRAM, "ngram_orders", {"ngram_orders": (1, 2)}),
    (engram.TINY_ENGRAM, "engram_layers", {"engram_layers": (2,)}),
    (engram.TINY_ENGRAM, "table_rows", {"table_rows": 1}),
    (mamba2.TINY_MAMBA2, "headdim", {"headdim": 48}),  # d_inner 128
    (mamba2.TINY_MAMBA2, "ngroups", {"ngroups": 3}),  # 8 heads
    (mamba2.TINY_MAMBA2, "chunk_size", {"chunk_size": 0}),
]


@pytest.mark.parametrize(("base", "field", "change"), BAD, ids=[f"{b.name}-{f}" for b, f, _ in BAD])
def test_bad_value_names_its_field(base, field, change):
    with pytest.raises(ConfigError, match=rf"\.{field} = ") as err:
        replace(base, **change)
    assert err.value.field == field
    assert isinstance(err.value, ValueError)


def test_rope_scaling_band_order():
    with pytest.raises(ConfigError, match="high_freq_factor"):
        llama.Llama3RopeScaling(factor=8, low_freq_factor=4, high_freq_factor=1, original_max_position_embeddings=8192)


def test_configs_are_frozen():
    with pytest.raises(AttributeError):
        llama.LLAMA31_8B.num_layers = 2  # type: ignore[misc]
