"""A deliberately naive functional model of the integer ISA subset, for end-to-end checks of
the integer lowering: queues run in a random order their semaphores allow, values are exact.
(The simulator engineer's event simulator is the real one; this one only has to be right.)"""

from __future__ import annotations

import random

import numpy as np

from compiler.targets.programmable.isa import (
    Collective,
    DmaLoad,
    DmaStore,
    Gemm,
    Halt,
    Loop,
    Precision,
    Vector,
    VectorOp,
)
from compiler.targets.programmable.program import Program

_NUMPY = {Precision.INT8: np.int8, Precision.INT32: np.int32}


def run_functional(program: Program, hbm: bytearray, sram: bytearray, seed: int = 0) -> None:
    queues: dict[int, list] = {}
    index = 0
    instructions = program.instructions
    while index < len(instructions):
        instruction = instructions[index]
        if isinstance(instruction, Loop):
            for i in range(instruction.count):
                for body in instructions[index + 1:index + 1 + instruction.body]:
                    queues.setdefault(int(body.ENGINE), []).append((body, i))
            index += instruction.body + 1
        else:
            if not isinstance(instruction, Halt):
                queues.setdefault(int(instruction.ENGINE), []).append((instruction, 0))
            index += 1
    rng = random.Random(seed)
    sems = [0] * 16
    heads = {engine: 0 for engine in queues}
    while any(heads[e] < len(q) for e, q in queues.items()):
        ready = [e for e, q in queues.items() if heads[e] < len(q) and all(
            sems[s] >= list(q[heads[e]][0].wait).count(s) for s in q[heads[e]][0].wait)]
        assert ready, "deadlock"
        engine = rng.choice(ready)
        instruction, iteration = queues[engine][heads[engine]]
        heads[engine] += 1
        for s in instruction.wait:
            sems[s] -= 1
        _execute(instruction, iteration, hbm, sram)
        for s in instruction.signal:
            sems[s] += 1


def _execute(ins, i: int, hbm: bytearray, sram: bytearray) -> None:
    if isinstance(ins, (DmaLoad, DmaStore)):
        h, s = ins.hbm_addr + i * ins.hbm_loop_stride, ins.sram_addr + i * ins.sram_loop_stride
        for row in range(ins.rows):
            src = h + row * ins.hbm_row_stride
            dst = s + row * ins.row_bytes
            if isinstance(ins, DmaStore):
                hbm[src:src + ins.row_bytes] = sram[dst:dst + ins.row_bytes]
            else:
                sram[dst:dst + ins.row_bytes] = hbm[src:src + ins.row_bytes]
    elif isinstance(ins, Gemm):
        if ins.m * ins.n * ins.k == 0:
            return
        assert ins.precision == Precision.INT8 and ins.acc_precision == Precision.INT32
        a = _read(sram, ins.a_addr + i * ins.a_loop_stride, ins.m * ins.k, np.int8).reshape(ins.m, ins.k)
        b = _read(sram, ins.b_addr + i * ins.b_loop_stride, ins.k * ins.n, np.int8).reshape(ins.k, ins.n)
        c_addr = ins.c_addr + i * ins.c_loop_stride
        c = a.astype(np.int64) @ b.astype(np.int64)
        if ins.accumulate:
            c += _read(sram, c_addr, ins.m * ins.n, np.int32).reshape(ins.m, ins.n)
        _write(sram, c_addr, c.astype(np.int32))
    elif isinstance(ins, Vector):
        _vector(ins, i, sram)
    elif isinstance(ins, Collective):
        assert ins.nbytes == 0 or ins.chips == 1


def _vector(ins: Vector, i: int, sram: bytearray) -> None:
    if ins.length == 0:
        return
    step = i * ins.loop_stride
    kind = _NUMPY[ins.precision]
    a = _read(sram, ins.src_a + step, ins.length, kind).astype(np.int64)
    b = _read(sram, ins.src_b + step, ins.length, kind).astype(np.int64)
    op = ins.op
    if op == VectorOp.REQUANT:
        wide = a * ins.imm + (1 << (ins.shift - 1))
        _write(sram, ins.dst + step, np.clip(wide >> ins.shift, -128, 127).astype(np.int8))
        return
    if op in (VectorOp.REDUCE_SUM, VectorOp.REDUCE_MAX):
        rows = a.reshape(-1, ins.row_len)
        out = rows.sum(axis=1) if op == VectorOp.REDUCE_SUM else rows.max(axis=1)
    else:
        out = {VectorOp.COPY: lambda: a, VectorOp.ADD: lambda: a + b, VectorOp.SUB: lambda: a - b,
               VectorOp.MUL: lambda: a * b, VectorOp.MAX: lambda: np.maximum(a, b),
               VectorOp.SHIFT: lambda: a >> ins.shift}[op]()
    _write(sram, ins.dst + step, out.astype(kind))


def _read(memory: bytearray, addr: int, count: int, kind) -> np.ndarray:
    size = count * np.dtype(kind).itemsize
    return np.frombuffer(bytes(memory[addr:addr + size]), dtype=kind)


def _write(memory: bytearray, addr: int, array: np.ndarray) -> None:
    data = np.ascontiguousarray(array).tobytes()
    memory[addr:addr + len(data)] = data
