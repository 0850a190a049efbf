"""The whole RTL core on Icarus runs compiled int8 MLPs: the output region of external memory
equals the simulator's functional run and the IR interpreter bit for bit, and the core's cycles
equal the event engine's. Also a hand-written LOOP program, a deadlock the watchdog must name,
and programs the compile-time check must refuse before any simulation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from compiler.interp.run import run_graph
from compiler.targets.programmable.image import hbm_image, read_outputs, sram_image
from compiler.targets.programmable.int_graphs import build_int8_mlp
from compiler.targets.programmable.isa import (
    DmaLoad,
    DmaStore,
    Gemm,
    Halt,
    Loop,
    Precision,
    Vector,
    Vector2D,
    VectorOp,
    encode_program,
)
from compiler.targets.programmable.lower import lower_graph
from compiler.targets.programmable.options import LoweringOptions
from compiler.targets.programmable.program import Program
from rtl.programmable.check import RtlProgramError, check_program
from rtl.programmable.config import CoreConfig
from rtl.programmable.core import Core
from simulator.programmable import ProgramError, run_functional, simulate_program
from testbenches.control import DEADLOCK, PROGRAMS
from testbenches.cycles import CycleRow, check
from testbenches.runner import build, run_cocotb
from testbenches.runner import read_outputs as read_tb_outputs

MLPS = [  # batch, widths, what it covers
    (2, [32, 16], "one layer, weights in SRAM"),
    (4, [16, 24, 8], "two layers, both sub-arrays, a ragged piece"),
    (3, [24, 40, 8], "two layers, batch 3"),
    (8, [128, 64, 32], "weights streamed from HBM, batch 8"),
]


def padded(image: bytes | bytearray, beat: int) -> np.ndarray:
    size = -(-max(len(image), beat) // 64) * 64
    out = np.zeros(size, dtype=np.uint8)
    out[:len(image)] = np.frombuffer(bytes(image), dtype=np.uint8)
    return out


@dataclasses.dataclass
class Case:
    name: str
    program: Program
    hbm: np.ndarray
    sram: bytes
    expected: dict | None = None          # graph outputs from the IR interpreter


def mlp_case(chip, batch: int, widths: list[int], seed: int) -> Case:
    graph = build_int8_mlp(batch, widths, seed=seed)
    program = lower_graph(graph, chip, LoweringOptions(batch=batch))
    x = np.random.default_rng(seed).integers(-128, 128, (batch, widths[0])).astype(np.int8)
    expected = run_graph(graph, {"x": x})
    hbm = padded(hbm_image(program, graph, {"x": x}), 8)
    return Case(f"int8-mlp b={batch} widths={widths}", program, hbm, bytes(sram_image(program, graph)), expected)


def looped_case(chip, seed: int = 9) -> Case:
    """y = requant(relu(x @ W + b)) for 16 rows in 4 LOOP iterations of 4 rows: per iteration a
    load, a GEMM, four bias adds, ReLU, requantize and a store, every address strided. The
    vector ops share one loop stride, so bias copies and zeros are laid out 256 bytes apart."""
    rows, k, n, block = 16, 32, 16, 4
    graph = build_int8_mlp(rows, [k, n], seed=seed)
    reference = lower_graph(graph, chip, LoweringOptions(batch=rows))
    requant = next(i for i in reference.instructions if isinstance(i, Vector) and i.op is VectorOp.REQUANT)
    x_hbm, y_hbm = reference.regions["x"].addr, reference.regions["y"].addr
    weight = graph.constants["layer0.weight"].value()
    bias = graph.constants["layer0.bias"].value().astype("<i4")
    w_at, x_at, bias_at, zeros_at, c_at, y_at, step = 0, 1024, 2048, 4096, 6144, 8192, 256
    sram = bytearray(chip.memory.sram_bytes)
    sram[w_at:w_at + k * n] = weight.astype(np.int8).tobytes()
    for i in range(rows // block):
        sram[bias_at + i * step:bias_at + i * step + 4 * n] = bias.tobytes()
    vec = dict(precision=Precision.INT32, loop_stride=step)
    body = [
        DmaLoad(hbm_addr=x_hbm, hbm_loop_stride=block * k, sram_addr=x_at, sram_loop_stride=block * k, rows=1,
                row_bytes=block * k, hbm_row_stride=block * k, signal=(1,)),
        Gemm(a_addr=x_at, a_loop_stride=block * k, b_addr=w_at, c_addr=c_at, c_loop_stride=step, m=block, n=n,
             k=k, wait=(1,), signal=(2,)),
        *(Vector(op=VectorOp.ADD, src_a=c_at + 4 * n * r, src_b=bias_at, dst=c_at + 4 * n * r, length=n,
                 wait=(2,) if r == 0 else (), **vec) for r in range(block)),
        Vector(op=VectorOp.MAX, src_a=c_at, src_b=zeros_at, dst=c_at, length=block * n, **vec),
        Vector(op=VectorOp.REQUANT, src_a=c_at, src_b=c_at, dst=y_at, length=block * n, imm=requant.imm,
               shift=requant.shift, signal=(3,), **vec),
        DmaStore(hbm_addr=y_hbm, hbm_loop_stride=block * n, sram_addr=y_at, sram_loop_stride=step, rows=1,
                 row_bytes=block * n, hbm_row_stride=block * n, wait=(3,)),
    ]
    program = Program()
    program.emit(Vector(op=VectorOp.SUB, precision=Precision.INT32, src_a=zeros_at, src_b=zeros_at, dst=zeros_at,
                        length=rows // block * step // 4), "mlp")
    program.emit(Loop(body=len(body), count=rows // block), "mlp")
    for ins in body:
        program.emit(ins, "mlp")
    program.emit(Halt(), "mlp")
    program.regions, program.meta = reference.regions, reference.meta
    x = np.random.default_rng(seed).integers(-128, 128, (rows, k)).astype(np.int8)
    hbm = padded(hbm_image(reference, graph, {"x": x}), 8)
    return Case(f"loop 4 x (load, gemm, 6 vector, store) rows={rows} k={k} n={n}", program, hbm, bytes(sram),
                run_graph(graph, {"x": x}))


@pytest.mark.rtl
def test_core_runs_int8_mlps_bit_exact_in_the_simulators_cycles(chip, config, tmp_path_factory):
    cases = [mlp_case(chip, batch, widths, seed) for seed, (batch, widths, _) in enumerate(MLPS, start=1)]
    cases.append(looped_case(chip))
    rng = np.random.default_rng(4)
    for name, p in PROGRAMS.items():    # the control test's semaphore programs, now on the real units
        sram = rng.integers(-8, 8, chip.memory.sram_bytes).astype(np.int8).view(np.uint8)
        cases.append(Case(f"control {name}", p, rng.integers(0, 256, 1 << 17).astype(np.uint8), sram.tobytes()))
    for case in cases:
        check_program(case.program, chip)
    check_program(DEADLOCK, chip)
    built = build("core", lambda: Core(config), key={"config": repr(config)})
    test_dir = tmp_path_factory.mktemp("core")
    entries = [{"name": c.name, "program_hex": encode_program(c.program.instructions).hex(),
                "hbm_hex": c.hbm.tobytes().hex(), "sram_hex": c.sram.hex(), "limit_cycles": 100_000} for c in cases]
    entries.append({"name": "deadlock", "program_hex": encode_program(DEADLOCK.instructions).hex(),
                    "hbm_hex": np.zeros(1024, np.uint8).tobytes().hex(), "sram_hex": "", "limit_cycles": 10_000})
    run_cocotb(built, "testbenches.core", test_dir, inputs={"config": dataclasses.asdict(config), "cases": entries})
    results = read_tb_outputs(test_dir, "core")
    for case in cases:
        result = results[case.name]
        assert "watchdog" not in result, result["watchdog"]
        assert result["error"] == 0, f"{case.name}: a unit or the control raised error"
        rtl_hbm = np.frombuffer(bytes.fromhex(result["hbm_hex"]), dtype=np.uint8)
        functional = run_functional(case.program, chip, case.hbm.copy(),
                                    np.frombuffer(case.sram, dtype=np.uint8).copy())
        assert np.array_equal(rtl_hbm, functional.hbm), f"{case.name}: external memory differs from run_functional"
        if case.expected is not None:
            got = read_outputs(case.program, bytes(rtl_hbm))
            for name, value in case.expected.items():
                assert np.array_equal(got[name], value), f"{case.name}: {name} differs from the IR interpreter"
        simulated = simulate_program(case.program, chip).time_s * chip.clock_hz
        check(CycleRow("program", f"{case.name} (core)" if case.expected is None else case.name, round(simulated),
                       result["cycles"]))
    message = results["deadlock"].get("watchdog", "")
    assert "LOAD queue at instruction 0 waits on semaphore 13 (count 0)" in message, message
    assert "VECTOR queue at instruction 1 waits on semaphore 14 (count 0)" in message, message


def test_programs_the_core_cannot_run_fail_before_simulation(chip):
    def one(*instructions) -> Program:
        return Program(instructions=[*instructions, Halt()], tags=["t"] * (len(instructions) + 1))

    with pytest.raises(ProgramError, match="integer ISA subset"):
        check_program(one(Vector2D(op=VectorOp.ADD, precision=Precision.FP32, rows=2, cols=8)), chip)
    with pytest.raises(ProgramError, match="integer ISA subset"):
        check_program(one(Vector(op=VectorOp.EXP, precision=Precision.FP32, length=8)), chip)
    with pytest.raises(RtlProgramError, match=r"instruction 0 Gemm.*B: .*crosses it"):
        check_program(one(Gemm(a_addr=0, b_addr=1028, c_addr=4096, m=4, n=8, k=8)), chip)
    with pytest.raises(RtlProgramError, match=r"instruction 0 DmaLoad.*row_bytes = 12 is not a multiple of the "
                                              r"external port's 8-byte beat"):
        check_program(one(DmaLoad(hbm_addr=0, sram_addr=0, rows=2, row_bytes=12, hbm_row_stride=16)), chip)
    with pytest.raises(RtlProgramError, match=r"loop iteration 1: hbm_addr = 4 is not a multiple"):
        check_program(Program(instructions=[
            Loop(body=1, count=3),
            DmaLoad(hbm_addr=0, hbm_loop_stride=4, sram_addr=0, sram_loop_stride=64, rows=1, row_bytes=64),
            Halt()], tags=["t"] * 3), chip)
    with pytest.raises(RtlProgramError, match=r"semaphore 3 is waited on 2 times but signalled 1 times"):
        check_program(one(Vector(op=VectorOp.COPY, length=8, signal=(3,)),
                          Vector(op=VectorOp.COPY, length=8, wait=(3, 3))), chip)
    with pytest.raises(RtlProgramError, match=r"VECTOR queue: 300 instructions"):
        check_program(one(*[Vector(op=VectorOp.COPY, length=8)] * 300), chip)


def test_descriptions_the_rtl_cannot_build_fail_before_elaboration(chip):
    from rtl.programmable.config import RtlConfigError

    wide = dataclasses.replace(chip, systolic=dataclasses.replace(chip.systolic, rows=64, cols=64))
    with pytest.raises(RtlConfigError, match="systolic.rows: 64 is not a power of two up to 32"):
        Core(CoreConfig.from_chip(wide))
    two = dataclasses.replace(chip, memory=dataclasses.replace(chip.memory, dma_channels=2))
    with pytest.raises(RtlConfigError, match="dma_channels"):
        CoreConfig.from_chip(two)
