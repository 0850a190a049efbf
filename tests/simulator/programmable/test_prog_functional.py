"""Functional mode: integer programs equal numpy bit for bit; REQUANT rounding is exact."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from compiler.targets.programmable.isa import DmaLoad, DmaStore, Gemm, Loop, Precision, Vector, VectorOp
from compiler.targets.programmable.program import Program
from simulator.programmable import ProgramError, run_functional, simulate_program
from simulator.programmable.functional import DeadlockError, requantize


def reference_requant(acc: np.ndarray, imm: int, shift: int) -> np.ndarray:
    """Python integers: floor(acc * imm / 2**shift + 1/2), clamped."""
    out = [max(-128, min(127, (int(a) * imm + ((1 << shift) >> 1)) >> shift)) for a in acc]
    return np.array(out, dtype=np.int8)


def test_requant_rounds_half_up_for_negatives():
    acc = np.array([5, -5, 7, -7, 3, -3, 1, -1, 0], dtype=np.int32)
    # shift 1 halves: 2.5 -> 3, -2.5 -> -2, 3.5 -> 4, -3.5 -> -3, 1.5 -> 2, -1.5 -> -1, 0.5 -> 1, -0.5 -> 0
    assert requantize(acc, 1, 1).tolist() == [3, -2, 4, -3, 2, -1, 1, 0, 0]
    assert requantize(np.array([1000, -1000], dtype=np.int32), 1, 0).tolist() == [127, -128]


def test_requant_matches_python_integers_at_the_extremes():
    rng = np.random.default_rng(0)
    acc = np.concatenate([rng.integers(-2**31, 2**31, 2000), [2**31 - 1, -2**31, 0, -1, 1]]).astype(np.int32)
    for imm, shift in ((1, 0), (3, 2), (2**31 - 1, 40), (12345, 20), (2**32 - 1, 63), (2**32 - 1, 40), (7, 1)):
        assert np.array_equal(requantize(acc, imm, shift), reference_requant(acc, imm, shift)), (imm, shift)


def _layout(tensors: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, int]]:
    hbm, addrs, offset = bytearray(), {}, 0
    for name, array in tensors.items():
        addrs[name] = offset
        raw = np.ascontiguousarray(array).tobytes()
        hbm += raw + bytes(-len(raw) % 64)
        offset = len(hbm)
    hbm += bytes(4096)
    return np.frombuffer(hbm, dtype=np.uint8).copy(), addrs


def _mlp_program(addrs: dict[str, int], rows: int, d: int, h: int, imm: int, shift: int, looped: bool) -> Program:
    """y = requant(requant(relu(x @ w1)) @ w2): one row of x per loop iteration when `looped`.

    Semaphores: 1 constants loaded, 5 x buffer free, 3 x loaded, 4/6/7/8 stage hand-offs."""
    sx, sw1, sw2, sacc, szero, sq, sacc2, sy = 0, 512, 1024, 2048, 3072, 4096, 5120, 6144
    p = Program()
    p.emit(DmaLoad(hbm_addr=addrs["w1"], sram_addr=sw1, rows=d, row_bytes=h, hbm_row_stride=h, signal=(1,)), "mlp")
    p.emit(DmaLoad(hbm_addr=addrs["w2"], sram_addr=sw2, rows=1, row_bytes=h * d, signal=(1,)), "mlp")
    p.emit(DmaLoad(hbm_addr=addrs["zero"], sram_addr=szero, rows=1, row_bytes=4 * h, signal=(1,)), "mlp")
    p.emit(Vector(op=VectorOp.COPY, length=1, wait=(1, 1)), "mlp")
    p.emit(Vector(op=VectorOp.COPY, length=1, wait=(1,), signal=(5,)), "mlp")   # constants in: x may load
    m, count, step = (1, rows, 1) if looped else (rows, 1, 0)
    p.emit(Loop(body=7, count=count), "mlp")
    p.emit(DmaLoad(hbm_addr=addrs["x"], hbm_loop_stride=d * step, sram_addr=sx, rows=1, row_bytes=m * d,
                   wait=(5,), signal=(3,)), "mlp")
    p.emit(Gemm(a_addr=sx, b_addr=sw1, c_addr=sacc, m=m, n=h, k=d, wait=(3,), signal=(4, 5)), "mlp")
    p.emit(Vector(op=VectorOp.MAX, src_a=sacc, src_b=szero, dst=sacc, length=m * h, wait=(4,)), "mlp")
    p.emit(Vector(op=VectorOp.REQUANT, src_a=sacc, dst=sq, length=m * h, imm=imm, shift=shift, signal=(6,)), "mlp")
    p.emit(Gemm(a_addr=sq, b_addr=sw2, c_addr=sacc2, m=m, n=d, k=h, wait=(6,), signal=(7,)), "mlp")
    p.emit(Vector(op=VectorOp.REQUANT, src_a=sacc2, dst=sy, length=m * d, imm=imm, shift=shift, wait=(7,),
                  signal=(8,)), "mlp")
    p.emit(DmaStore(hbm_addr=addrs["y"], hbm_loop_stride=d * step, sram_addr=sy, rows=1, row_bytes=m * d,
                    wait=(8,)), "mlp")
    p.emit(Vector(op=VectorOp.COPY, length=1, wait=(5,)), "mlp")     # take back the last credit
    return p


@pytest.mark.parametrize("looped", [False, True])
def test_int8_mlp_bit_exact(tiny, looped):
    rng = np.random.default_rng(1)
    rows, d, h, imm, shift = 4, 16, 32, 77, 12
    x = rng.integers(-128, 128, (rows, d), dtype=np.int8)
    w1 = rng.integers(-128, 128, (d, h), dtype=np.int8)
    w2 = rng.integers(-128, 128, (h, d), dtype=np.int8)
    hbm, addrs = _layout({"x": x, "w1": w1, "w2": w2, "zero": np.zeros(h * rows, np.int32),
                          "y": np.zeros((rows, d), np.int8)})
    p = _mlp_program(addrs, rows, d, h, imm, shift, looped)
    result = run_functional(p, tiny, hbm)
    hidden = requantize(np.maximum(x.astype(np.int32) @ w1.astype(np.int32), 0).reshape(-1), imm, shift)
    expected = requantize((hidden.reshape(rows, h).astype(np.int32) @ w2.astype(np.int32)).reshape(-1), imm, shift)
    y = result.hbm[addrs["y"]:addrs["y"] + rows * d].view(np.int8)
    assert np.array_equal(y, expected)
    assert simulate_program(p, tiny).time_s > 0           # the same program also times


def test_strided_dma_and_int32_vector_ops(tiny):
    a = np.arange(-20, 44, dtype=np.int32)
    b = np.full(64, 3, dtype=np.int32)
    table = np.arange(256, dtype=np.uint8)
    hbm, addrs = _layout({"a": a, "b": b, "table": table})
    p = Program()
    p.emit(DmaLoad(hbm_addr=addrs["a"], sram_addr=0, rows=1, row_bytes=256), "v")
    p.emit(DmaLoad(hbm_addr=addrs["b"], sram_addr=256, rows=1, row_bytes=256), "v")
    # every fourth 4-byte group of the table: pitch 16
    p.emit(DmaLoad(hbm_addr=addrs["table"], sram_addr=4096, rows=16, row_bytes=4, hbm_row_stride=16), "v")
    ops = [(VectorOp.ADD, a + b), (VectorOp.SUB, a - b), (VectorOp.MUL, a * b), (VectorOp.MAX, np.maximum(a, b))]
    for i, (op, _) in enumerate(ops):
        p.emit(Vector(op=op, src_a=0, src_b=256, dst=1024 + 256 * i, length=64), "v")
    p.emit(Vector(op=VectorOp.SHIFT, src_a=0, dst=2048, length=64, shift=2), "v")
    p.emit(Vector(op=VectorOp.REDUCE_SUM, src_a=0, dst=2304, length=64, row_len=16), "v")
    p.emit(Vector(op=VectorOp.REDUCE_MAX, src_a=0, dst=2368, length=64, row_len=16), "v")
    sram = run_functional(p, tiny, hbm).sram
    for i, (_, want) in enumerate(ops):
        assert np.array_equal(sram[1024 + 256 * i:1280 + 256 * i].view(np.int32), want)
    assert np.array_equal(sram[2048:2304].view(np.int32), a >> 2)                 # floor for negatives
    assert np.array_equal(sram[2304:2320].view(np.int32), a.reshape(4, 16).sum(axis=1))
    assert np.array_equal(sram[2368:2384].view(np.int32), a.reshape(4, 16).max(axis=1))
    assert np.array_equal(sram[4096:4160], table.reshape(16, 16)[:, :4].reshape(-1))


def test_int32_wraps_like_hardware(tiny):
    big = np.array([2**31 - 1, -2**31], dtype=np.int32)
    hbm, addrs = _layout({"big": big})
    p = Program()
    p.emit(DmaLoad(hbm_addr=addrs["big"], sram_addr=0, rows=1, row_bytes=8), "v")
    p.emit(Vector(op=VectorOp.ADD, src_a=0, src_b=0, dst=64, length=2), "v")
    sram = run_functional(p, tiny, hbm).sram
    assert sram[64:72].view(np.int32).tolist() == [-2, 0]


def test_bf16_gemm_in_float32(matx):
    rng = np.random.default_rng(2)
    a = rng.standard_normal((4, 8)).astype(ml_dtypes.bfloat16)
    b = rng.standard_normal((8, 4)).astype(ml_dtypes.bfloat16)
    hbm, addrs = _layout({"a": a, "b": b})
    p = Program()
    p.emit(DmaLoad(hbm_addr=addrs["a"], sram_addr=0, rows=1, row_bytes=64), "g")
    p.emit(DmaLoad(hbm_addr=addrs["b"], sram_addr=64, rows=1, row_bytes=64), "g")
    p.emit(Gemm(a_addr=0, b_addr=64, c_addr=256, m=4, n=4, k=8, precision=Precision.BF16,
                acc_precision=Precision.FP32), "g")
    sram = run_functional(p, matx, hbm, sram=np.zeros(4096, np.uint8)).sram
    want = a.astype(np.float32) @ b.astype(np.float32)
    assert np.allclose(sram[256:320].view(np.float32).reshape(4, 4), want, rtol=1e-6)


def test_functional_order_follows_semaphores_not_program_order(tiny):
    """The GEMM comes first in program order but waits for the load that follows it."""
    hbm, addrs = _layout({"ones": np.ones(128, np.int8)})
    p = Program()
    p.emit(Gemm(a_addr=0, b_addr=64, c_addr=256, m=8, n=8, k=8, wait=(1,)), "g")
    p.emit(DmaLoad(hbm_addr=addrs["ones"], sram_addr=0, rows=1, row_bytes=128, signal=(1,)), "g")
    sram = run_functional(p, tiny, hbm).sram
    assert np.all(sram[256:512].view(np.int32) == 8)


def test_functional_checks(tiny):
    p = Program()
    p.emit(Vector(op=VectorOp.COPY, length=4, wait=(3,)), "x")
    with pytest.raises(DeadlockError, match="VECTOR queue at instruction 0"):
        run_functional(p, tiny, 1024)
    bad = Program()
    bad.emit(Gemm(m=8, n=8, k=8, precision=Precision.BF16, acc_precision=Precision.FP32), "x")
    with pytest.raises(ProgramError, match="int8 x int8 -> int32"):
        run_functional(bad, tiny, 1024)
    oob = Program()
    oob.emit(DmaLoad(hbm_addr=1000, sram_addr=0, rows=1, row_bytes=64), "x")
    with pytest.raises(ProgramError, match="hbm_addr bytes 1,000..1,064 outside"):
        run_functional(oob, tiny, 1024)


def test_lowered_int8_mlp_equals_the_interpreter(tiny):
    """The ladder's rung: IR interpreter == functional run of the lowered program, bit for bit."""
    lower = pytest.importorskip("compiler.targets.programmable.lower")
    image = pytest.importorskip("compiler.targets.programmable.image")
    int_graphs = pytest.importorskip("compiler.targets.programmable.int_graphs")
    from compiler.interp.run import run_graph
    from compiler.targets.programmable.options import LoweringOptions

    for widths, rows in (([16, 24, 8], 4), ([64, 128, 32], 2), ([96, 40, 72, 16], 3)):
        graph = int_graphs.build_int8_mlp(rows, widths, seed=5)
        x = np.random.default_rng(7).integers(-128, 128, (rows, widths[0])).astype(np.int8)
        program = lower.lower_graph(graph, tiny, LoweringOptions(batch=rows))
        hbm = np.frombuffer(image.hbm_image(program, graph, {"x": x}), dtype=np.uint8).copy()
        sram = np.frombuffer(image.sram_image(program, graph), dtype=np.uint8).copy()
        result = run_functional(program, tiny, hbm, sram=sram)
        got = image.read_outputs(program, result.hbm.tobytes())["y"]
        assert np.array_equal(got, run_graph(graph, {"x": x})["y"]), (widths, rows)
        assert simulate_program(program, tiny).time_s > 0
