"""Independent readers of a Program: loop-expanded counts, MACs, DMA bytes per region, and an
untimed scheduler that runs the queues against their semaphores (no deadlock, no hazard)."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator

from compiler.targets.programmable.isa import DmaLoad, DmaStore, Engine, Gemm, Instruction, Loop
from compiler.targets.programmable.program import Program


def executions(program: Program) -> list[int]:
    """How many times each instruction runs (LOOP bodies run `count` times)."""
    counts = [1] * len(program.instructions)
    index = 0
    while index < len(program.instructions):
        instruction = program.instructions[index]
        if isinstance(instruction, Loop):
            for body in range(index + 1, index + 1 + instruction.body):
                counts[body] = instruction.count
            index += instruction.body + 1
        else:
            index += 1
    return counts


def dynamic(program: Program) -> Iterator[tuple[int, int]]:
    """(instruction index, iteration) in program order, loops unrolled."""
    index = 0
    instructions = program.instructions
    while index < len(instructions):
        instruction = instructions[index]
        if isinstance(instruction, Loop):
            for iteration in range(instruction.count):
                for body in range(index + 1, index + 1 + instruction.body):
                    yield body, iteration
            index += instruction.body + 1
        else:
            yield index, 0
            index += 1


def gemm_macs(program: Program) -> int:
    return sum(i.m * i.n * i.k * c for i, c in zip(program.instructions, executions(program)) if isinstance(i, Gemm))


def dma_bytes(program: Program, regions: Iterable[str], kind: type = DmaLoad) -> int:
    """Bytes moved by `kind` DMAs whose HBM side starts inside one of the named regions."""
    spans = [(program.regions[n].addr, program.regions[n].addr + program.regions[n].nbytes) for n in regions
             if program.regions[n].space == "hbm"]
    spans.sort()
    total = 0
    for instruction, count in zip(program.instructions, executions(program)):
        if type(instruction) is not kind or instruction.rows * instruction.row_bytes == 0:
            continue
        for iteration in range(count):
            address = instruction.hbm_addr + iteration * instruction.hbm_loop_stride
            if any(lo <= address < hi for lo, hi in spans):
                total += instruction.rows * instruction.row_bytes
            elif iteration == 0:
                break  # a loop's DMA stays in one region
    return total


def run_queues(program: Program, accesses: list[tuple[tuple[int, ...], tuple[int, ...]]] | None = None,
               seed: int = 0) -> None:
    """Run every queue in order, picking a ready engine at random; fail on deadlock, and (with
    the emitter's per-instruction (reads, writes) buffer ids) on any unordered hazard."""
    rng = random.Random(seed)
    queues: dict[int, list[tuple[int, int, int]]] = {}
    for order, (index, iteration) in enumerate(dynamic(program)):
        engine = int(program.instructions[index].ENGINE)
        queues.setdefault(engine, []).append((order, index, iteration))
    heads = {engine: 0 for engine in queues}
    sems = [0] * 16
    done: set[int] = set()
    writer: dict[int, int] = {}
    readers: dict[int, set[int]] = {}
    pending_order: dict[int, list[int]] = {}
    if accesses is not None:
        # hazards in program order: an instruction must follow the conflicting earlier ones
        for order, (index, _iteration) in enumerate(dynamic(program)):
            reads, writes = accesses[index]
            needs: set[int] = set()
            for buf in reads:
                if buf in writer:
                    needs.add(writer[buf])
            for buf in writes:
                if buf in writer:
                    needs.add(writer[buf])
                needs |= readers.get(buf, set())
            for buf in reads:
                readers.setdefault(buf, set()).add(order)
            for buf in writes:
                writer[buf] = order
                readers[buf] = set()
            pending_order[order] = sorted(needs)
    total = sum(len(q) for q in queues.values())
    executed = 0
    while executed < total:
        ready = [e for e, q in queues.items() if heads[e] < len(q) and _can_run(program, q[heads[e]][1], sems)]
        if not ready:
            stuck = {Engine(e).name: program.instructions[q[heads[e]][1]] for e, q in queues.items()
                     if heads[e] < len(q)}
            raise AssertionError(f"deadlock after {executed} of {total}: {stuck}")
        engine = rng.choice(ready)
        order, index, _ = queues[engine][heads[engine]]
        instruction: Instruction = program.instructions[index]
        for sem in instruction.wait:
            sems[sem] -= 1
        if accesses is not None:
            missing = [o for o in pending_order[order] if o not in done]
            assert not missing, f"instruction {index} ({instruction}) ran before hazard predecessors {missing[:3]}"
        for sem in instruction.signal:
            sems[sem] += 1
        done.add(order)
        heads[engine] += 1
        executed += 1


def _can_run(program: Program, index: int, sems: list[int]) -> bool:
    need: dict[int, int] = {}
    for sem in program.instructions[index].wait:
        need[sem] = need.get(sem, 0) + 1
    return all(sems[s] >= n for s, n in need.items())


__all__ = ["DmaLoad", "DmaStore", "dma_bytes", "dynamic", "executions", "gemm_macs", "run_queues"]
