"""The event engine on hand-built programs: timings that can be worked out on paper."""

from __future__ import annotations

import pytest
from sim_helpers import with_memory

from compiler.targets.programmable.isa import (
    Collective,
    CollectiveKind,
    DmaLoad,
    DmaStore,
    Gemm,
    Loop,
    Precision,
    Vector,
    VectorOp,
)
from compiler.targets.programmable.program import Program
from simulator.programmable import DeadlockError, ProgramError, simulate_program
from simulator.programmable.costs import link, systolic

NS = 1e-9


def program(*items: tuple) -> Program:
    p = Program()
    for ins, tag in items:
        p.emit(ins, tag)
    return p


def load(nbytes: int, sram: int = 0, **kw) -> DmaLoad:
    return DmaLoad(hbm_addr=0, sram_addr=sram, rows=1, row_bytes=nbytes, **kw)


def gemm8(**kw) -> Gemm:
    return Gemm(a_addr=0, b_addr=1024, c_addr=4096, m=8, n=8, k=8, **kw)


def test_single_gemm(tiny):
    result = simulate_program(program((gemm8(), "mlp")), tiny)
    assert result.time_s == pytest.approx(32 * 10 * NS)           # 8 + 8 + 16 cycles at 100 MHz
    assert result.totals["macs"] == 512
    assert result.tags["mlp"].time_s == pytest.approx(result.time_s)
    assert result.busy_s["gemm"] == pytest.approx(result.time_s)


def _double_buffered(n_tiles: int, tile_bytes: int, credits: int) -> Program:
    """Loads of tile i + credits wait for GEMM i to free its buffer (LOOP over the middle tiles)."""
    p = Program()
    for i in range(credits):
        p.emit(load(tile_bytes, sram=1024 + 2048 * i, signal=(1,)), "mlp")
    p.emit(Loop(body=2, count=n_tiles - credits), "mlp")
    p.emit(gemm8(wait=(1,), signal=(2,)), "mlp")
    p.emit(load(tile_bytes, sram=1024, wait=(2,), signal=(1,)), "mlp")
    for _ in range(credits):
        p.emit(gemm8(wait=(1,)), "mlp")
    return p


@pytest.mark.parametrize("extrapolate", [True, False])
def test_double_buffered_pipeline(tiny, extrapolate):
    n = 40
    gemm_s = 320 * NS                                              # 32 cycles
    # compute bound: 64-byte tiles load in 100 + 80 ns, hidden behind the GEMMs
    compute = simulate_program(_double_buffered(n, 64, 2), tiny, extrapolate=extrapolate)
    assert compute.time_s == pytest.approx(180 * NS + n * gemm_s)
    # memory bound: 512-byte tiles take 100 + 640 ns; GEMMs hide behind the loads
    memory = simulate_program(_double_buffered(n, 512, 2), tiny, extrapolate=extrapolate)
    assert memory.time_s == pytest.approx(n * 740 * NS + gemm_s)
    # one buffer: nothing overlaps
    serial = simulate_program(_double_buffered(n, 512, 1), tiny, extrapolate=extrapolate)
    assert serial.time_s == pytest.approx(n * (740 * NS + gemm_s))


def test_concurrent_dmas_share_bandwidth(tiny):
    chip = with_memory(tiny, dma_channels=4)
    latency, bw = 100 * NS, 8e8
    two = simulate_program(program((load(800), "kv"), (load(800, sram=800), "kv")), chip)
    assert two.time_s == pytest.approx(latency + 1600 / bw)        # each at half bandwidth
    uneven = simulate_program(program((load(800), "kv"), (load(2400, sram=800), "kv")), chip)
    assert uneven.time_s == pytest.approx(latency + 3200 / bw)     # work-conserving: all bytes at peak
    # one channel: strictly one after the other, each paying the latency
    serial = simulate_program(program((load(800), "kv"), (load(800, sram=800), "kv")), tiny)
    assert serial.time_s == pytest.approx(2 * (latency + 800 / bw))
    # a store on the STORE queue shares the same HBM bandwidth
    mixed = simulate_program(program((load(800), "kv"), (DmaStore(sram_addr=0, rows=1, row_bytes=800), "kv")), chip)
    assert mixed.time_s == pytest.approx(latency + 1600 / bw)


def test_signals_retire_in_order(tiny):
    """A small load that finishes before a big one issued earlier does not signal first."""
    chip = with_memory(tiny, dma_channels=2)
    p = program((load(4000, signal=(1,)), "a"), (load(8, sram=4096, signal=(2,)), "a"), (gemm8(wait=(1,)), "a"),
                (Vector(op=VectorOp.COPY, length=1, wait=(2,)), "a"))
    result = simulate_program(p, chip, trace_path=None)
    big_alone = 100 * NS + (8 + 4000) / 8e8   # shares with the 8-byte load for its first 16 bytes
    assert result.time_s == pytest.approx(big_alone + 320 * NS)


def test_gemm_subarrays_overlap(tiny):
    half = dict(split=1, m=8, n=8, k=4, a_addr=0, b_addr=64)
    one = systolic.gemm_cycles(tiny, 8, 8, 4, "int8", 1) * 10 * NS
    apart = program((Gemm(subarray=0, c_addr=1024, **half), "x"), (Gemm(subarray=1, c_addr=2048, **half), "x"))
    assert simulate_program(apart, tiny).time_s == pytest.approx(one)
    same = program((Gemm(subarray=0, c_addr=1024, **half), "x"), (Gemm(subarray=0, c_addr=2048, **half), "x"))
    assert simulate_program(same, tiny).time_s == pytest.approx(2 * one)
    whole_after = program((Gemm(subarray=1, c_addr=1024, **half), "x"), (gemm8(), "x"))
    assert simulate_program(whole_after, tiny).time_s == pytest.approx(one + 320 * NS)


def test_gemm_hazards_serialize_and_free_arrays_overlap(matx):
    """On 4 arrays, GEMMs of one tile each overlap unless one reads or writes what another writes."""
    one = systolic.gemm_cycles(matx, 4, 128, 128, "bf16", 0) / matx.clock_hz
    def g(c_addr: int, a_addr: int = 0, accumulate: bool = False) -> tuple:
        return (Gemm(a_addr=a_addr, b_addr=4096, c_addr=c_addr, m=4, n=128, k=128, precision=Precision.BF16,
                     acc_precision=Precision.FP32, accumulate=accumulate), "attention")
    independent = program(*(g(1 << 20 | i << 12) for i in range(4)))
    assert simulate_program(independent, matx).time_s == pytest.approx(one)
    five = program(*(g(1 << 20 | i << 12) for i in range(5)))         # a fifth waits for a free array
    assert simulate_program(five, matx).time_s == pytest.approx(2 * one)
    chain = program(g(1 << 20), g(1 << 20, accumulate=True))           # accumulates into the same C
    assert simulate_program(chain, matx).time_s == pytest.approx(2 * one)
    raw = program(g(1 << 20), g(2 << 20, a_addr=1 << 20))              # reads the C the first writes
    assert simulate_program(raw, matx).time_s == pytest.approx(2 * one)


def _attention_like(blocks: int) -> Program:
    """Per KV block: load K, scores GEMM, exp, load V, PV GEMM; two buffers of credits."""
    bf16, fp32 = Precision.BF16, Precision.FP32
    p = Program()
    for _ in range(2):
        p.emit(Vector(op=VectorOp.COPY, precision=bf16, length=16, signal=(2, 6)), "attention")
    for head in range(3):
        p.emit(Loop(body=6, count=blocks), "attention")
        p.emit(DmaLoad(hbm_addr=head << 28, hbm_loop_stride=16384, sram_addr=1 << 20, rows=128, row_bytes=128,
                       hbm_row_stride=256, wait=(2,), signal=(1,)), "attention")
        p.emit(Gemm(a_addr=0, b_addr=1 << 20, c_addr=2 << 20, m=1, n=64, k=128, precision=bf16,
                    acc_precision=fp32, split=3, subarray=head, wait=(1,), signal=(3, 2)), "attention")
        p.emit(Vector(op=VectorOp.EXP, precision=fp32, length=64, src_a=2 << 20, dst=3 << 20, wait=(3,),
                      signal=(4,)), "softmax")
        p.emit(DmaLoad(hbm_addr=1 << 30, hbm_loop_stride=16384, sram_addr=4 << 20, rows=1, row_bytes=16384,
                       wait=(6,), signal=(5,)), "attention")
        p.emit(Gemm(a_addr=3 << 20, b_addr=4 << 20, c_addr=5 << 20, m=1, n=128, k=64, precision=bf16,
                    acc_precision=fp32, accumulate=True, wait=(4, 5), signal=(6,)), "attention")
        p.emit(Vector(op=VectorOp.ADD, precision=fp32, length=128, src_a=0, src_b=0, dst=0), "attention")
    return p


def test_loop_extrapolation_is_exact(matx):
    p = _attention_like(3000)
    fast = simulate_program(p, matx, extrapolate=True)
    slow = simulate_program(p, matx, extrapolate=False)
    assert fast.ops_simulated < slow.ops_simulated / 20
    assert fast.ops_simulated + fast.ops_extrapolated == slow.ops_simulated
    assert fast.time_s == pytest.approx(slow.time_s, rel=1e-9)
    for key, value in slow.totals.items():
        assert fast.totals[key] == pytest.approx(value, rel=1e-9), key
    for engine, busy in slow.busy_s.items():
        assert fast.busy_s[engine] == pytest.approx(busy, rel=1e-9, abs=1e-15), engine
    for tag, cost in slow.tags.items():
        assert fast.tags[tag].time_s == pytest.approx(cost.time_s, rel=1e-9)
        assert fast.tags[tag].count == cost.count


def test_deadlock_names_the_stuck_queue(tiny):
    p = program((load(64, signal=(1,)), "a"), (gemm8(wait=(1, 3), comment="qk"), "a"),
                (Vector(op=VectorOp.COPY, length=8, wait=(2,)), "a"))
    with pytest.raises(DeadlockError) as info:
        simulate_program(p, tiny)
    message = str(info.value)
    assert "GEMM queue at instruction 1 (Gemm 'qk')" in message and "semaphore 3 (count 0)" in message
    assert "VECTOR queue at instruction 2" in message and "semaphore 2 (count 0)" in message
    assert "LOAD" not in message


def test_all_reduce(matx):
    nbytes = 4096 * 2
    p = program((Collective(kind=CollectiveKind.ALL_REDUCE, nbytes=nbytes, chips=8), "collective"))
    result = simulate_program(p, matx)
    assert result.time_s == pytest.approx(link.collective_time_s(matx, CollectiveKind.ALL_REDUCE, nbytes, 8))
    assert result.totals["link_bytes"] == pytest.approx(7 * nbytes)   # small: the direct algorithm
    with pytest.raises(ProgramError, match="links 8"):
        simulate_program(program((Collective(nbytes=8, chips=16), "c")), matx)


def test_program_errors_name_the_instruction(tiny):
    with pytest.raises(ProgramError, match="instruction 0 Vector.*integer ISA subset"):
        simulate_program(program((Vector(op=VectorOp.EXP, length=8), "x")), tiny)
    with pytest.raises(ProgramError, match="instruction 0 DmaLoad.*beyond memory.sram_bytes"):
        simulate_program(program((load(64, sram=16384 - 32), "x")), tiny)
    looped = program((Loop(body=1, count=300), "x"), (DmaLoad(sram_addr=0, sram_loop_stride=64, rows=1, row_bytes=64),
                                                     "x"))
    with pytest.raises(ProgramError, match="loop stride 64 x 299"):
        simulate_program(looped, tiny)
    with pytest.raises(ProgramError, match="loops do not nest"):
        simulate_program(program((Loop(body=2, count=2), "x"), (Loop(body=1, count=2), "x"), (gemm8(), "x")), tiny)


def test_zero_size_fences_cost_nothing_and_keep_order(tiny):
    """The lowering's fences (zero-size instructions) carry semaphores without a resource."""
    chip = with_memory(tiny, dma_channels=2)
    p = program((load(800, signal=(1,)), "a"),
                (DmaLoad(rows=0, row_bytes=0, signal=(2,)), "a"),           # fence behind the load
                (load(800, sram=800), "a"),                                 # still overlaps the first
                (Gemm(m=0, n=0, k=0, wait=(2,), signal=(3,)), "a"),         # GEMM fence: waits for the load
                (Vector(length=0, wait=(3,)), "a"))
    result = simulate_program(p, chip)
    assert result.time_s == pytest.approx(100 * NS + 1600 / 8e8)
    assert result.totals["macs"] == 0 and result.busy_s["gemm"] == 0
