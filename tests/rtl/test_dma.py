"""The DMA engine on Icarus with the real scratchpad: random strided loads and stores end
bit-exact with the simulator's functional model under random back-pressure, and every transfer
takes the event engine's cycles (latency + setup + bytes / bandwidth) when the memory never stalls."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from compiler.targets.programmable.isa import DmaLoad, DmaStore, Halt, encode
from compiler.targets.programmable.program import Program
from rtl.programmable.config import CoreConfig
from simulator.programmable import simulate_program
from simulator.programmable.functional import Machine
from testbenches.cycles import CycleRow, check
from testbenches.dma import DmaHarness
from testbenches.runner import build, read_outputs, run_cocotb

pytestmark = pytest.mark.rtl

HBM_BYTES = 1 << 15


@pytest.fixture(scope="module")
def built(config):
    return build("dma", lambda: DmaHarness(config), key={"config": repr(config)})


def random_transfers(config: CoreConfig, rng: np.random.Generator, count: int) -> list[DmaLoad]:
    beat = config.ext_bytes_per_cycle
    out = []
    for _ in range(count):
        rows = int(rng.integers(1, 7))
        row_bytes = beat * int(rng.integers(1, 13))
        stride = row_bytes + beat * int(rng.integers(0, 5)) if rows > 1 else row_bytes
        hbm = beat * int(rng.integers(0, (HBM_BYTES - rows * stride) // beat))
        sram = beat * int(rng.integers(0, (config.sram_bytes - rows * row_bytes) // beat))
        cls = DmaStore if rng.integers(0, 2) else DmaLoad
        out.append(cls(hbm_addr=hbm, sram_addr=sram, rows=rows, row_bytes=row_bytes, hbm_row_stride=stride))
    return out


def run(built, config, tmp_path_factory, name: str, commands, sram, hbm, *, stall: float, gap: float, idle: bool,
        seed: int = 1) -> dict:
    test_dir = tmp_path_factory.mktemp(name)
    run_cocotb(built, "testbenches.dma", test_dir, inputs={
        "config": dataclasses.asdict(config), "latency": config.ext_latency_cycles,
        "commands": [encode(c).hex() for c in commands], "sram_hex": sram.tobytes().hex(),
        "hbm_hex": hbm.tobytes().hex(), "stall_probability": stall, "gap_probability": gap, "idle": idle,
        "seed": seed})
    return read_outputs(test_dir, "dma")


def test_dma_values_under_back_pressure(chip, config, built, tmp_path_factory):
    rng = np.random.default_rng(7)
    commands = random_transfers(config, rng, 24)
    sram = rng.integers(0, 256, config.sram_bytes).astype(np.uint8)
    hbm = rng.integers(0, 256, HBM_BYTES).astype(np.uint8)
    out = run(built, config, tmp_path_factory, "dma_values", commands, sram, hbm, stall=0.3, gap=0.3, idle=True)
    model = Machine(chip, hbm.copy(), sram.copy())
    for pc, ins in enumerate(commands):
        model.execute(pc, ins, 0)
    assert out["errors"] == 0
    assert np.array_equal(np.frombuffer(bytes.fromhex(out["sram_hex"]), np.uint8), model.sram)
    assert np.array_equal(np.frombuffer(bytes.fromhex(out["hbm_hex"]), np.uint8), model.hbm)


SHAPES = [  # rows, row_bytes, hbm_row_stride
    (1, 8, 8), (1, 64, 64), (4, 32, 64), (16, 8, 256), (3, 96, 128), (1, 256, 256),
]


def test_dma_cycles_match_the_event_engine(chip, config, built, tmp_path_factory):
    commands = []
    for rows, row_bytes, stride in SHAPES:
        for cls in (DmaLoad, DmaStore):
            commands.append(cls(hbm_addr=1024, sram_addr=2048, rows=rows, row_bytes=row_bytes, hbm_row_stride=stride))
    rng = np.random.default_rng(3)
    sram = rng.integers(0, 256, config.sram_bytes).astype(np.uint8)
    hbm = rng.integers(0, 256, HBM_BYTES).astype(np.uint8)
    out = run(built, config, tmp_path_factory, "dma_cycles", commands, sram, hbm, stall=0.0, gap=0.0, idle=False)
    assert out["errors"] == 0
    for ins, (taken, done) in zip(commands, out["timings"]):
        program = Program()
        program.emit(ins, "dma")
        program.emit(Halt(), "dma")
        simulated = simulate_program(program, chip).time_s * chip.clock_hz
        kind = "dma load" if type(ins) is DmaLoad else "dma store"
        check(CycleRow(kind, f"rows={ins.rows} row_bytes={ins.row_bytes} stride={ins.hbm_row_stride}",
                       round(simulated), done - taken))
