"""The GEMM unit on Icarus: random GEMMs (both splits, accumulate on and off, partial tiles) end
bit-exact with the functional model and take exactly the simulator's cycles, alone and when two
sub-arrays overlap or a hazard holds one back; bad commands are refused, never hung."""

from __future__ import annotations

import numpy as np
import pytest
from rtl_unit_helpers import placed

from compiler.targets.programmable.isa import Gemm, Precision, encode
from compiler.targets.programmable.program import Program
from rtl.programmable.config import CoreConfig
from rtl.programmable.gemm_unit import GemmUnit, gemm_errors
from simulator.programmable import simulate_program
from simulator.programmable.costs.systolic import gemm_cycles
from simulator.programmable.functional import Machine
from testbenches.cycles import CycleRow, check
from testbenches.runner import build, read_outputs, run_cocotb

pytestmark = pytest.mark.rtl


@pytest.fixture(scope="module")
def built(config):
    return build("gemm_unit", lambda: GemmUnit(config))             # keyed by its Verilog: no stale reuse


def random_gemms(config: CoreConfig, rng: np.random.Generator, count: int) -> list[Gemm]:
    """Random shapes the unit accepts (rejection against gemm_errors), both splits."""
    out = []
    while len(out) < count:
        split = int(rng.integers(0, config.max_split + 1))
        ins = placed(config, len(out) % 4, m=int(rng.integers(1, 20)), n=int(rng.choice([1, 2, 4, 8, 16, 24])),
                     k=int(rng.integers(1, 40)), split=split, subarray=int(rng.integers(0, 1 << split)),
                     accumulate=bool(rng.integers(0, 2)))
        if not gemm_errors(ins, config):
            out.append(ins)
    return out


def test_gemm_unit_values_and_cycles(chip, config, built, tmp_path_factory):
    rng = np.random.default_rng(11)
    hand = [
        placed(config, 0, 8, 8, 8),                                    # one tile, m == R
        placed(config, 1, 3, 16, 24, accumulate=True),                 # m < R: 2 n-tiles x 3 k-tiles
        placed(config, 2, 13, 8, 16),                                  # m > R: streaming hides the loads
        placed(config, 3, 1, 4, 13),                                   # partial k and n tiles
        placed(config, 0, 5, 4, 12, split=1, accumulate=True),
        placed(config, 1, 6, 16, 8, split=1, subarray=1),
    ]
    singles = hand + random_gemms(config, rng, 10)
    for ins in singles:
        assert not gemm_errors(ins, config), (ins, gemm_errors(ins, config))
    # two sub-arrays at once, then a whole-array GEMM that waits for both
    overlap = [placed(config, 0, 4, 16, 12, split=1, subarray=0), placed(config, 1, 9, 8, 8, split=1, subarray=1),
               placed(config, 2, 2, 8, 16)]
    # the second reads (as A) the C the first writes: a hazard holds it until the first is done
    first = placed(config, 0, 4, 8, 8, split=1, subarray=0)
    hazard = [first, placed(config, 1, 4, 8, 16, split=1, subarray=1, a_addr=first.c_addr)]
    batches = [{"commands": singles, "idle": 0.3}, {"commands": overlap, "idle": 0.0},
               {"commands": hazard, "idle": 0.0}]
    refused = [placed(config, 0, 4, 8, 8, precision=Precision.BF16, acc_precision=Precision.FP32),
               placed(config, 0, 4, 8, 8, split=2), placed(config, 0, 0, 8, 8)]

    sram = np.random.default_rng(5).integers(0, 256, config.sram_bytes, dtype=np.uint8)
    test_dir = tmp_path_factory.mktemp("gemm_unit")
    run_cocotb(built, "testbenches.gemm_unit", test_dir, inputs={
        "word_bytes": config.word_bytes, "max_split": config.max_split, "seed": 2, "sram_hex": sram.tobytes().hex(),
        "batches": [{"commands": [encode(i).hex() for i in b["commands"]], "idle": b["idle"]} for b in batches],
        "refused": [encode(i).hex() for i in refused]})
    out = read_outputs(test_dir, "gemm_unit")

    machine = Machine(chip, 0, sram.copy())
    for batch in batches:
        for ins in batch["commands"]:
            machine.execute(0, ins, 0)
    got = np.frombuffer(bytes.fromhex(out["sram_hex"]), dtype=np.uint8)
    differ = np.flatnonzero(got != machine.sram)
    assert differ.size == 0, f"{differ.size} SRAM bytes differ from the functional model, first at {differ[:8]}"

    for ins, (taken, done) in zip(singles, out["timings"][0]):
        check(CycleRow("gemm", f"m={ins.m} n={ins.n} k={ins.k} split={ins.split} acc={int(ins.accumulate)}",
                       gemm_cycles(chip, ins.m, ins.n, ins.k, "int8", ins.split), done - taken))
    for name, batch, timings in (("gemm overlap", overlap, out["timings"][1]), ("gemm hazard", hazard,
                                                                                 out["timings"][2])):
        program = Program()
        for ins in batch:
            program.emit(ins, "gemm")
        simulated = round(simulate_program(program, chip).time_s * chip.clock_hz)
        rtl = max(done for _, done in timings) - timings[0][0]
        check(CycleRow(name, " + ".join(f"{i.m}x{i.n}x{i.k}/s{i.split}" for i in batch), simulated, rtl))

    for ins, seen in zip(refused, out["refused"]):
        assert seen["done"] == [0] and seen["error"] == seen["done_cycles"] == [seen["taken"] + 1], (ins, seen)
        assert gemm_errors(ins, config), ins
