"""tiny-llama on the round-number tiny chip, every figure computed by hand from the preset.

tiny-llama: hidden 64, 4 query / 2 KV heads of 16, MLP 128, vocab 256, 2 layers, fp32 cache.
Per layer the weight regions hold q 4096, k 2048, v 2048, o 4096 (6-bit) and gate, up, down
8192 each (3-bit); the head 16384 (6-bit); the embedding is a 256 x 64 table (6-bit lookups).
"""

from __future__ import annotations

import math

import pytest
from spatial_helpers import sim

LAYERS = 2
ATTENTION_W = (4096, 2048, 2048, 4096)    # q, k, v, o
MLP_W = (8192, 8192, 8192)                # gate, up, down
HEAD_W = EMBED_W = 256 * 64
NORM_W = 64


def hand_area_mm2(chip, target: int) -> dict[str, float]:
    """Storage + lanes at `target` cycles per region pass + SRAM + units + fixed other."""
    um2_bit, lane = chip.weights.um2_per_weight_bit, chip.multiplier_um2
    bits = LAYERS * (6 * sum(ATTENTION_W) + 3 * sum(MLP_W) + 6 * 2 * NORM_W) + 6 * (HEAD_W + EMBED_W + NORM_W)
    lanes_um2 = LAYERS * (sum(lane(6) * math.ceil(w / target) for w in ATTENTION_W)
                          + sum(lane(3) * math.ceil(w / target) for w in MLP_W)) \
        + lane(6) * math.ceil(HEAD_W / target)
    sram_mm2 = chip.sram.sram_bytes * 8 / 2**20 / chip.sram.mib_per_mm2
    other = LAYERS * chip.attention.mm2_per_unit + (LAYERS + 1) * chip.vector.mm2_per_unit + chip.other_mm2
    return {"weights_mm2": bits * um2_bit / 1e6, "macs_mm2": lanes_um2 / 1e6, "sram_mm2": sram_mm2, "other_mm2": other}


def hand_critical_path(chip, past_len: int, target: int) -> int:
    """Cycles of one token along the longest path, with every vector op one cycle (<= 256 elements)."""
    region = target + chip.weights.region_overhead_cycles
    seen = past_len + 1
    qk = math.ceil(4 * 16 * seen / chip.attention.macs_per_cycle)              # 4 heads x 16 x seen, as PV
    scale = softmax = math.ceil(4 * seen / chip.attention.elements_per_cycle)
    attention = 2 * qk + scale + softmax
    # norm 7 ops, q|k|v, RoPE (neg, mul, add), attention, o, residual, norm 7, gate|up, SiLU and product 3,
    # down, residual
    layer = 7 + region + 3 + attention + region + 1 + 7 + region + 3 + region + 1
    embed = math.ceil(64 * 6 / chip.weights.lookup_bits_per_cycle)
    sampling = math.ceil(256 / chip.vector.lanes)
    return embed + LAYERS * layer + 7 + region + sampling


def test_die_budget_gives_64_cycle_regions(tiny_chip):
    report = sim("tiny-llama", tiny_chip, context=63, prompt_len=64)
    assert hand_area_mm2(tiny_chip, 64)["macs_mm2"] + sum(
        v for k, v in hand_area_mm2(tiny_chip, 64).items() if k != "macs_mm2") <= tiny_chip.die.die_area_mm2
    assert sum(hand_area_mm2(tiny_chip, 63).values()) > tiny_chip.die.die_area_mm2   # one cycle faster: too big
    assert report.extra["slowest_stage"]["cycles"] == 64


def test_area_matches_hand(tiny_chip):
    area = sim("tiny-llama", tiny_chip, context=63).extra["area_mm2"]
    for key, value in hand_area_mm2(tiny_chip, 64).items():
        assert area[key] == pytest.approx(value, rel=1e-12), key
    assert area["total_mm2"] == pytest.approx(sum(hand_area_mm2(tiny_chip, 64).values()), rel=1e-12)


@pytest.mark.parametrize("past_len", [63, 1000])
def test_decode_rate_matches_hand(tiny_chip, past_len):
    report = sim("tiny-llama", tiny_chip, context=past_len, prompt_len=1)
    cycles = hand_critical_path(tiny_chip, past_len, 64)
    assert report.extra["critical_path_s"] == pytest.approx(cycles / tiny_chip.clock_hz, rel=1e-12)
    assert report.tokens_per_s_per_user == pytest.approx(tiny_chip.clock_hz / cycles, rel=1e-12)
    assert report.tpot_s == pytest.approx(cycles / tiny_chip.clock_hz, rel=1e-12)


def test_interleaved_users_match_hand(tiny_chip):
    cycles = hand_critical_path(tiny_chip, 63, 64)            # 733: latency-bound below 733 / 64 users
    for users in (4, 20):
        report = sim("tiny-llama", tiny_chip, context=63, batch=users, prompt_len=1)
        expected = users / max(cycles, users * 64) * tiny_chip.clock_hz
        assert report.tokens_per_s_total == pytest.approx(expected, rel=1e-12)
        assert report.tokens_per_s_per_user == pytest.approx(expected / users, rel=1e-12)


def test_ttft_is_fill_plus_prompt_times_slowest_stage(tiny_chip):
    # The attention unit stays under 64 cycles for these contexts, so the weight regions set the pace.
    report = sim("tiny-llama", tiny_chip, context=63, prompt_len=64)
    expected = 63 * 64 + hand_critical_path(tiny_chip, 63, 64)
    assert report.ttft_s == pytest.approx(expected / tiny_chip.clock_hz, rel=1e-12)


def test_traffic_matches_hand(tiny_chip):
    past_len = 63
    report = sim("tiny-llama", tiny_chip, context=past_len, kv_precision="bf16")
    kv_read = LAYERS * 2 * (2 * past_len * 16) * 2             # K and V of 2 heads x 16, at 2 bytes
    kv_written = LAYERS * 2 * (2 * 16) * 2                     # the new token's K and V
    assert report.extra["sram_bytes_per_token"] == kv_read + kv_written
    # Activations in and out of each region, 8 bits each: q 64+64, k and v 64+32, o 64+64,
    # gate and up 64+128, down 128+64; head 64+256.
    assert report.extra["activation_bytes_per_token"] == LAYERS * (128 + 96 + 96 + 128 + 3 * 192) + 320
    assert report.kv_bytes == LAYERS * 2 * (2 * past_len * 16) * 2
