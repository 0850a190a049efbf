"""Weights in SRAM or streamed, and whether a model fits, with the sizes that decide it."""

from __future__ import annotations

import pytest
from conftest import chip, model_graph

from compiler.targets.programmable.lower import lower_graph
from compiler.targets.programmable.options import LoweringError, LoweringOptions


def lower(name: str, preset: str, context: int = 1024, **options):
    graph = model_graph(name, "decode", fused=name.startswith("llama"))
    return lower_graph(graph, chip(preset), LoweringOptions(bindings={"past_len": context}, **options))


def test_llama_8b_bf16_on_h100_streams_weights_and_fits():
    program = lower("llama3.1-8b", "h100-sxm", 131072)
    meta = program.meta
    assert not meta["weights_in_sram"]
    assert meta["weight_bytes"]["per_chip"] == meta["weight_bytes"]["total"] == 16_060_522_496
    assert meta["kv_bytes"]["per_chip"] == 16 * 2**30  # 16 GiB at 128k (REFERENCE.md)
    assert meta["fits"] and "<= 80.0 GB HBM" in meta["fits_reason"] and "weights 16.06 GB" in meta["fits_reason"]
    assert meta["hbm_capacity_bytes"] == 80_000_000_000


def test_llama_8b_on_eight_matx_chips_int4_fits_sram():
    meta = lower("llama3.1-8b", "matx-one", weight_precision="int4").meta
    assert meta["tensor_parallel"] == 8 and meta["weights_in_sram"]
    assert "in SRAM" in meta["fits_reason"]
    # matrices split 8 ways at 4 bits, plus the replicated embedding table (kept in HBM)
    assert meta["weight_bytes"]["per_chip"] < meta["weight_bytes"]["total"] / 4


def test_llama_8b_fp8_does_not_fit_eight_matx_srams():
    # 8.03 GB at fp8 / 8 chips is about 0.94 GB of matrices per chip, more than 512 MiB of SRAM
    meta = lower("llama3.1-8b", "matx-one", weight_precision="fp8").meta
    assert not meta["weights_in_sram"]
    assert lower("llama3.2-1b", "matx-one", weight_precision="fp8").meta["weights_in_sram"]


def test_llama_70b_bf16_does_not_fit_one_h100():
    meta = lower("llama3.1-70b", "h100-sxm").meta
    assert not meta["fits"]
    assert "weights 141.1" in meta["fits_reason"] and "exceeds 80.0 GB HBM by" in meta["fits_reason"]


def test_fits_on_eight_matx_chips():
    meta = lower("llama3.1-70b", "matx-one", 131072).meta
    assert meta["fits"] and meta["kv_bytes"]["per_chip"] * 8 == meta["kv_bytes"]["total"]


def test_unsupported_precision_is_an_error_listing_what_the_chip_has():
    with pytest.raises(LoweringError, match="h100-sxm has no int4 matrix path; it supports bf16, fp16, fp8, int8"):
        lower("llama3.2-1b", "h100-sxm", weight_precision="int4")


def test_fp8_kv_halves_kv_bytes():
    bf16 = lower("llama3.1-8b", "h100-sxm", 32768).meta["kv_bytes"]["per_chip"]
    fp8 = lower("llama3.1-8b", "h100-sxm", 32768, kv_precision="fp8").meta["kv_bytes"]["per_chip"]
    assert fp8 * 2 == bf16
