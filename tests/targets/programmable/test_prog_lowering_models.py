"""Every registered full-size model lowers on every preset; programs stay small and fast."""

from __future__ import annotations

import time

import pytest
from conftest import PRESETS, chip, full_size_models, model_graph

from compiler.targets.programmable.isa import MAX_SEMAPHORE, decode_program
from compiler.targets.programmable.lower import lower_graph
from compiler.targets.programmable.options import LoweringOptions
from compiler.targets.programmable.tagging import LAYER_KINDS


def _check_program(program) -> None:
    assert decode_program(program.binary()) == program.instructions  # encoding round-trip
    assert len(program.tags) == len(program.instructions)
    assert set(program.tags) <= set(LAYER_KINDS)
    for instruction in program.instructions:
        assert all(1 <= s <= MAX_SEMAPHORE for s in (*instruction.wait, *instruction.signal))


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("name", full_size_models())
def test_full_size_decode_lowers(name, preset):
    graph = model_graph(name, "decode")
    started = time.perf_counter()
    program = lower_graph(graph, chip(preset), LoweringOptions(batch=1, bindings={"past_len": 4096}))
    elapsed = time.perf_counter() - started
    _check_program(program)
    assert program.meta["instructions"] == len(program)
    # generous bounds: raw (unrecognized) graphs of the 70B model are the largest
    assert len(program) < 60_000
    print(f"{name} decode lowering on {preset}: {elapsed:.2f} s")
    assert isinstance(program.meta["fits"], bool) and program.meta["fits_reason"]


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("context", [1024, 32768, 131072])
def test_llama_decode_with_recognized_attention_is_compact(preset, context):
    graph = model_graph("llama3.1-8b", "decode", fused=True)
    started = time.perf_counter()
    program = lower_graph(graph, chip(preset), LoweringOptions(batch=1, bindings={"past_len": context}))
    elapsed = time.perf_counter() - started
    _check_program(program)
    assert program.meta["unrecognized"] == []
    assert len(program) < 10_000  # thousands, whatever the context: KV blocks are a LOOP
    print(f"decode lowering: {elapsed:.2f} s")  # speed: tools/bench_lowering.py


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("preset", PRESETS)
def test_llama_prefill_4096_lowers(preset, fused):
    graph = model_graph("llama3.1-8b", "prefill", fused=fused)
    started = time.perf_counter()
    program = lower_graph(graph, chip(preset), LoweringOptions(batch=1, bindings={"seq": 4096}))
    elapsed = time.perf_counter() - started
    _check_program(program)
    # a 50 MB "SRAM" (the GPUs' L2) forces small tiles; loops do not nest, so row blocks repeat
    assert len(program) < (15_000 if preset == "matx-one" else 80_000)
    assert bool(program.meta["unrecognized"]) != fused
    print(f"{preset} prefill 4096 lowering: {elapsed:.2f} s")  # speed: tools/bench_lowering.py


def test_llama_long_prompt_lowers():
    """A head's query rows are seq * head_dim elements apart: past VECTOR_2D's 20-bit stride at 8192."""
    graph = model_graph("llama3.1-8b", "prefill", fused=True)
    program = lower_graph(graph, chip("matx-one"), LoweringOptions(batch=1, bindings={"seq": 8192}))
    _check_program(program)


def test_batched_decode_lowers():
    graph = model_graph("llama3.1-8b", "decode", fused=True)
    program = lower_graph(graph, chip("matx-one"), LoweringOptions(batch=8, bindings={"past_len": 8192}))
    _check_program(program)
    assert program.meta["kv_bytes"]["total"] == 8 * 8192 * 131072
