"""The vector unit on Icarus: every integer op, unaligned operands, in-place ops, reductions with
any row length, requantization edge cases; memory bit-exact with the functional model and
cycles exactly vector_cycles; bad commands refused, never hung."""

from __future__ import annotations

import numpy as np
import pytest

from compiler.targets.programmable.isa import INTEGER_VECTOR_OPS, Precision, Vector, VectorOp, encode
from rtl.programmable.config import CoreConfig
from rtl.programmable.vector_unit import VectorUnit, vector_errors
from simulator.programmable.costs.vector import REDUCTIONS, vector_cycles
from simulator.programmable.functional import Machine
from testbenches.cycles import CycleRow, check
from testbenches.runner import build, read_outputs, run_cocotb

pytestmark = pytest.mark.rtl

INT32 = Precision.INT32


@pytest.fixture(scope="module")
def built(config):
    return build("vector_unit", lambda: VectorUnit(config))         # keyed by its Verilog: no stale reuse


def random_vectors(rng: np.random.Generator, config: CoreConfig) -> list[Vector]:
    """Every integer op a few times, operands at random 4-byte offsets (REQUANT's dst at any
    byte), some in place, reductions over rows shorter and longer than the lanes."""
    out = []
    ops = sorted(INTEGER_VECTOR_OPS, key=int)
    for i in range(3 * len(ops)):
        op = ops[i % len(ops)]
        length = int(rng.integers(1, 41))
        row_len = 1
        if op in REDUCTIONS:
            row_len = int(rng.choice([1, 3, 5, 8, 12, 16]))
            length = row_len * int(rng.integers(1, 6))
        src_a = 4 * int(rng.integers(0, 1000))
        src_b = 4096 + 4 * int(rng.integers(0, 1000))
        dst = 8192 + (int(rng.integers(0, 4000)) if op is VectorOp.REQUANT else 4 * int(rng.integers(0, 1000)))
        if i % 5 == 4 and op not in REDUCTIONS:
            dst = src_a                                   # in place, as the lowering's bias and ReLU ops
        out.append(Vector(op=op, precision=INT32, src_a=src_a, src_b=src_b, dst=dst, length=length, row_len=row_len,
                          imm=int(rng.integers(0, 1 << 32)), shift=int(rng.integers(0, 64))))
    # requantization at its edges: shift 0 (saturating product), round-half-up, small scales
    out += [Vector(op=VectorOp.REQUANT, precision=INT32, src_a=12000, dst=15001, length=17, imm=1, shift=0),
            Vector(op=VectorOp.REQUANT, precision=INT32, src_a=12100, dst=15031, length=9, imm=5, shift=7),
            Vector(op=VectorOp.REQUANT, precision=INT32, src_a=12200, dst=15100, length=8, imm=(1 << 32) - 1,
                   shift=40),
            Vector(op=VectorOp.SHIFT, precision=INT32, src_a=12300, dst=12300, length=8, shift=63),
            # longer: many groups, every operand at a different offset in its word
            Vector(op=VectorOp.ADD, precision=INT32, src_a=12404, src_b=12812, dst=13220, length=100),
            Vector(op=VectorOp.REDUCE_SUM, precision=INT32, src_a=13700, dst=14104, length=70, row_len=7)]
    return out


def test_vector_unit_values_and_cycles(chip, config, built, tmp_path_factory):
    rng = np.random.default_rng(21)
    commands = random_vectors(rng, config)
    for ins in commands:
        assert not vector_errors(ins, config), (ins, vector_errors(ins, config))
    refused = [Vector(op=VectorOp.EXP, precision=Precision.FP32, length=8),
               Vector(op=VectorOp.ADD, precision=Precision.FP32, length=8),
               Vector(op=VectorOp.ADD, precision=INT32, length=0),
               Vector(op=VectorOp.ADD, precision=INT32, src_a=2, length=8)]
    sram = rng.integers(0, 256, config.sram_bytes, dtype=np.uint8)
    sram[12000:12400] = np.array([0, -1, 1, 2**31 - 1, -2**31, 63, 64, -64, -65, 127, 128, -128, -129, 191, 192, -191,
                                  -192] * 6, dtype=np.int32)[:100].view(np.uint8)
    test_dir = tmp_path_factory.mktemp("vector_unit")
    run_cocotb(built, "testbenches.vector_unit", test_dir, inputs={
        "word_bytes": config.word_bytes, "seed": 4, "idle": 0.3, "sram_hex": sram.tobytes().hex(),
        "commands": [encode(i).hex() for i in commands], "refused": [encode(i).hex() for i in refused]})
    out = read_outputs(test_dir, "vector_unit")

    machine = Machine(chip, 0, sram.copy())
    for ins in commands:
        machine.execute(0, ins, 0)
    got = np.frombuffer(bytes.fromhex(out["sram_hex"]), dtype=np.uint8)
    differ = np.flatnonzero(got != machine.sram)
    assert differ.size == 0, f"{differ.size} SRAM bytes differ from the functional model, first at {differ[:8]}"

    for ins, (taken, done) in zip(commands, out["timings"]):
        shape = f"length={ins.length}" + (f" row_len={ins.row_len}" if ins.op in REDUCTIONS else "")
        check(CycleRow(f"vector {ins.op.name}", shape, vector_cycles(chip, ins.op, ins.length), done - taken))
    for ins, seen in zip(refused, out["refused"]):
        assert seen["done"] == seen["error"] == [seen["taken"] + 1], (ins, seen)
        assert vector_errors(ins, config), ins
