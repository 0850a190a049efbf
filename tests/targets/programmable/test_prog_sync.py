"""Semaphores derived from buffer hazards: every queue order they allow is free of deadlock and
respects every read/write hazard the kernels declared."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import PRESETS, chip, model_graph
from program_checks import executions, run_queues

from compiler.targets.programmable.emitter import Buf, Emitter
from compiler.targets.programmable.isa import MAX_SEMAPHORE, DmaLoad, DmaStore, Gemm, Loop, Vector
from compiler.targets.programmable.lower import lower_graph_traced
from compiler.targets.programmable.options import LoweringOptions
from compiler.targets.programmable.program import Program

TINY = ["tiny-llama", "tiny-hybrid", "tiny-sparse", "tiny-compact", "tiny-grumem", "tiny-engram", "tiny-mamba2"]


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("form", ["decode", "prefill"])
@pytest.mark.parametrize("name", TINY)
def test_tiny_models_schedule_safely(name, form, preset):
    bindings = {"past_len": 37} if form == "decode" else {"seq": 29}
    program, accesses = lower_graph_traced(model_graph(name, form), chip(preset),
                                           LoweringOptions(batch=2, bindings=bindings))
    for seed in range(3):
        run_queues(program, accesses, seed)


FULL_SIZE = [("llama3.2-1b", "decode", "matx-one", 3000), ("llama3.2-1b", "decode", "h100-sxm", 3000),
             ("llama3.2-1b", "prefill", "matx-one", 512), ("llama3.1-8b", "decode", "h200-sxm", 5000)]


@pytest.mark.parametrize("case", FULL_SIZE)
def test_full_size_models_schedule_safely(case):
    name, form, preset, size = case
    bindings = {"past_len": size} if form == "decode" else {"seq": size}
    program, accesses = lower_graph_traced(model_graph(name, form, fused=True), chip(preset),
                                           LoweringOptions(bindings=bindings))
    run_queues(program, accesses, seed=1)
    assert program.meta["semaphores_used"] <= MAX_SEMAPHORE


def test_kv_blocks_are_one_loop_per_layer():
    program, _ = lower_graph_traced(model_graph("llama3.1-8b", "decode", fused=True), chip("h100-sxm"),
                                    LoweringOptions(bindings={"past_len": 131072}))
    counts = [i.count for i in program.instructions if isinstance(i, Loop)]
    streams = [c for c in set(counts) if c >= 100 and counts.count(c) >= 32]  # every layer's KV stream
    assert streams, sorted(counts)[-40:]
    assert sum(executions(program)) > 10 * len(program)


def _two_slot_pipeline(emitter: Emitter, chunks: int) -> None:
    hbm = Buf("weights", "hbm", 0, 1 << 20)
    out = Buf("out", "sram", 1 << 16, 4096)
    slots = [Buf(f"slot{i}", "sram", i * 4096, 4096) for i in range(2)]
    act = Buf("act", "sram", 1 << 15, 4096)
    emitter.emit(Vector(length=16, src_a=act.addr, dst=act.addr), "other", writes=[act])

    def body(i: int) -> None:
        for u in range(2):
            chunk = 2 * i + u
            emitter.emit(DmaLoad(hbm_addr=chunk * 4096, sram_addr=slots[u].addr, rows=1, row_bytes=4096),
                         "mlp", reads=[hbm], writes=[slots[u]])
            emitter.emit(Gemm(a_addr=act.addr, b_addr=slots[u].addr, c_addr=out.addr + chunk * 64, m=1, n=16,
                              k=128), "mlp", reads=[act, slots[u]], writes=[out])

    emitter.loop(chunks // 2, body, "mlp")
    emitter.emit(DmaStore(hbm_addr=1 << 21, sram_addr=out.addr, rows=1, row_bytes=64), "mlp", reads=[out],
                 writes=[Buf("result", "hbm", 1 << 21, 64)])


def test_double_buffered_loop_overlaps_and_is_safe():
    emitter = Emitter(Program())
    _two_slot_pipeline(emitter, 16)
    emitter.finish()
    program = emitter.program
    loops = [i for i in program.instructions if isinstance(i, Loop)]
    assert len(loops) == 1 and loops[0].count == 7 and loops[0].body == 4
    body = program.instructions[program.instructions.index(loops[0]) + 1:][:4]
    assert body[0].hbm_loop_stride == 2 * 4096 and body[1].c_loop_stride == 128
    assert body[0].wait and body[1].wait  # loads wait for the slot, GEMMs for the load
    for seed in range(5):
        run_queues(program, emitter.accesses, seed)


def test_more_than_two_waits_go_to_a_fence():
    emitter = Emitter(Program())
    bufs = [Buf(f"b{i}", "sram", i * 64, 64) for i in range(3)]
    emitter.emit(DmaLoad(rows=1, row_bytes=64, sram_addr=0), "other", writes=[bufs[0]])
    emitter.emit(Gemm(m=1, n=1, k=1, c_addr=64), "other", writes=[bufs[1]])
    emitter.emit(DmaStore(rows=0, row_bytes=0), "other", writes=[bufs[2]])
    emitter.emit(Vector(length=1), "other", reads=bufs)
    emitter.finish()
    assert emitter.fence_count == 1
    run_queues(emitter.program, emitter.accesses, 0)


def _small_sram(kib: int):
    base = chip("matx-one")
    return dataclasses.replace(base, memory=dataclasses.replace(base.memory, sram_bytes=kib << 10))


@pytest.mark.parametrize("kib", [64, 1024])
@pytest.mark.parametrize("tp", [1, 2])
@pytest.mark.parametrize("name, form, fused", [("tiny-llama", "decode", True), ("tiny-llama", "prefill", True),
                                               ("tiny-hybrid", "prefill", False), ("tiny-sparse", "decode", False),
                                               ("tiny-mamba2", "prefill", False), ("tiny-compact", "decode", False)])
def test_small_srams_stream_everything_safely(name, form, fused, tp, kib):
    # tiny SRAMs push every operand through HBM staging, with tiles that must be cut to fit
    bindings = {"past_len": 300} if form == "decode" else {"seq": 200}
    program, accesses = lower_graph_traced(model_graph(name, form, fused=fused), _small_sram(kib),
                                           LoweringOptions(batch=2, bindings=bindings, tensor_parallel=tp))
    for seed in range(3):
        run_queues(program, accesses, seed)
