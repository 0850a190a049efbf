"""Compile-time check that the RTL core can run a program: a clear error before simulation
instead of a hang or a wrong value in it.

`check_program(program, chip)` first runs the simulator's own validation (plan.py: the ISA subset
of the chip, shapes, SRAM bounds, loop structure), then the RTL's rules, naming the instruction,
its loop iteration and the rule:
  * the units' placement rules: the DMA engine's B-byte beats (dma.py), the GEMM unit's word
    pieces (gemm_unit.gemm_errors), the vector unit's operands (vector_unit.vector_errors), for
    every loop iteration (addresses repeat modulo a word after word_bytes iterations);
  * external memory bounds (HBM addresses the DMA engine generates);
  * capacity of the control: instructions and loops per queue, runs of zero-size instructions
    that fit the in-flight slots, program length for the stall report's program index,
    semaphore counts that fit the counters;
  * semaphores that are waited on more often than they are signalled: the program would hang.
A deadlock of balanced waits and signals (a cycle between queues) is beyond this check; the
event engine reports it, and on the RTL the testbench watchdog names the blocked queues.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from compiler.targets.programmable.isa import DmaLoad, Engine, Gemm, Halt, Instruction, Loop, Vector
from compiler.targets.programmable.program import Program
from rtl.programmable.config import CoreConfig
from rtl.programmable.control import (
    ADDRESS_STRIDES,
    INFLIGHT,
    MAX_LOOPS,
    PC_BITS,
    QUEUE_DEPTH,
    QUEUE_ENGINES,
    SEM_BITS,
)
from rtl.programmable.gemm_unit import gemm_errors
from rtl.programmable.vector_unit import vector_errors
from simulator.hardware.programmable import ProgrammableChip
from simulator.programmable.plan import Plan
from simulator.programmable.validate import where


class RtlProgramError(ValueError):
    """A program the RTL core cannot run; the message names the instruction and the rule."""


def check_program(program: Program, chip: ProgrammableChip) -> None:
    config = CoreConfig.from_chip(chip)
    plan = Plan(program, chip)             # the simulator's validation first (ProgramError)
    instructions = program.instructions
    if len(instructions) > 1 << PC_BITS:
        raise RtlProgramError(f"program of {len(instructions)} instructions: the RTL core numbers at most "
                              f"{1 << PC_BITS}")
    iterations = {pc: 1 for pc in range(len(instructions))}
    for loop_pc, count in plan.loop_counts.items():
        for pc in range(loop_pc + 1, loop_pc + 1 + instructions[loop_pc].body):
            iterations[pc] = count
    for engine in QUEUE_ENGINES:
        segments = plan.queues[engine]
        stored = sum(len(s.pcs) for s in segments)
        loops = sum(1 for s in segments if s.loop_pc >= 0)
        if stored > QUEUE_DEPTH:
            raise RtlProgramError(f"{engine.name} queue: {stored} instructions; the RTL core stores at most "
                                  f"{QUEUE_DEPTH} per queue")
        if loops > MAX_LOOPS:
            raise RtlProgramError(f"{engine.name} queue: instructions in {loops} LOOP bodies; the RTL core's loop "
                                  f"table holds {MAX_LOOPS} per queue")
        # fences behind a running instruction wait in the queue's in-flight slots to retire in order
        running = (1 << config.max_split) if engine == Engine.GEMM else 1
        run, order = 0, [pc for s in segments for pc in s.pcs * min(s.count, 2)]
        for pc in order:
            run = run + 1 if plan.costs[pc].fence else 0
            if run > INFLIGHT - running:
                raise RtlProgramError(f"{where(pc, instructions[pc])}: {run} zero-size instructions in a row on the "
                                      f"{engine.name} queue; the RTL core keeps {INFLIGHT} of a queue's instructions "
                                      "in flight, so they could stall where the event engine does not")
    waits: Counter[int] = Counter()
    signals: Counter[int] = Counter()
    first_wait: dict[int, int] = {}
    for pc, ins in enumerate(instructions):
        if isinstance(ins, Halt):
            break
        if isinstance(ins, Loop) or plan.costs[pc] is None:
            continue
        count = iterations[pc]
        for s in ins.wait:
            waits[s] += count
            first_wait.setdefault(s, pc)
        for s in ins.signal:
            signals[s] += count
        if plan.costs[pc].fence:
            continue
        for it in range(min(count, config.word_bytes)):
            errors = _unit_errors(ins, it, config)
            if errors:
                at = where(pc, ins) + (f", loop iteration {it}" if count > 1 else "")
                raise RtlProgramError(f"{at}: {errors[0]}")
        if isinstance(ins, DmaLoad):
            last = (ins.hbm_addr + (count - 1) * ins.hbm_loop_stride + (ins.rows - 1) * ins.hbm_row_stride
                    + ins.row_bytes)
            if last > config.hbm_bytes:
                raise RtlProgramError(f"{where(pc, ins)}: reaches external memory byte {last:,}, beyond "
                                      f"memory.hbm_bytes {config.hbm_bytes:,}")
    for s in sorted(waits):
        if waits[s] > signals[s]:
            raise RtlProgramError(f"semaphore {s} is waited on {waits[s]} times but signalled {signals[s]} times "
                                  f"(first wait: {where(first_wait[s], instructions[first_wait[s]])}): the "
                                  "program would hang")
    for s, total in signals.items():
        if total >= 1 << SEM_BITS:
            raise RtlProgramError(f"semaphore {s} is signalled {total} times; the RTL core's {SEM_BITS}-bit "
                                  "counters cannot prove it stays in range")


def _moved(ins: Instruction, it: int) -> Instruction:
    """`ins` in loop iteration `it` (every address advanced by its loop stride)."""
    if not it:
        return ins
    return replace(ins, **{a: getattr(ins, a) + it * getattr(ins, s) for a, s in ADDRESS_STRIDES[ins.engine]})


def _unit_errors(ins: Instruction, it: int, config: CoreConfig) -> list[str]:
    moved = _moved(ins, it)
    if isinstance(moved, Gemm):
        return gemm_errors(moved, config)
    if isinstance(moved, Vector):
        return vector_errors(moved, config)
    if isinstance(moved, DmaLoad):         # DmaStore too
        return dma_errors(moved, config)
    return [f"{type(ins).__name__} is outside the integer subset the RTL core runs"]


def dma_errors(ins: DmaLoad, config: CoreConfig) -> list[str]:
    """Why the DMA engine cannot move `ins` in whole beats (empty when it can)."""
    beat = config.ext_bytes_per_cycle
    errors = []
    for name in ("hbm_addr", "hbm_row_stride", "row_bytes", "sram_addr"):
        value = getattr(ins, name)
        if value % beat and not (name == "hbm_row_stride" and ins.rows == 1):
            errors.append(f"{name} = {value} is not a multiple of the external port's {beat}-byte beat "
                          "(memory.hbm_bytes_per_s / clock_hz)")
    return errors
