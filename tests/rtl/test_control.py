"""The control block on Icarus with Python unit models: hand-written programs that exercise the
semaphores between queues (double waits, double signals, LOAD and STORE contending for the DMA
channel, GEMMs retiring in order after finishing out of order, fences, loops) take exactly the
event engine's cycles, every unit receives its queue's instructions in order with loop addresses
advanced, and a deadlock the compile-time check cannot see is reported by the watchdog naming
the blocked queues and semaphores."""

from __future__ import annotations

import dataclasses

import pytest

from compiler.targets.programmable.emitter import _STRIDES
from compiler.targets.programmable.isa import DmaLoad, DmaStore, Engine, Gemm, Halt, decode, encode_program
from compiler.targets.programmable.program import Program
from rtl.programmable.check import check_program
from rtl.programmable.config import CoreConfig
from rtl.programmable.control import Control
from simulator.hardware import load_hardware
from simulator.programmable import DeadlockError, simulate_program
from simulator.programmable.plan import Plan
from testbenches.control import DEADLOCK, PROGRAMS
from testbenches.cycles import CycleRow, check
from testbenches.runner import build, read_outputs, run_cocotb


@pytest.fixture(scope="module")
def chip():
    return load_hardware("matx-tiny")


@pytest.fixture(scope="module")
def built(chip):
    config = CoreConfig.from_chip(chip)
    return build("control", lambda: Control(config), key={"config": repr(config)})


def expected_commands(p: Program, chip) -> dict[str, list]:
    """Each unit's instructions in queue order, loops expanded with addresses advanced (fences
    stay in the control)."""
    plan = Plan(p, chip)
    out: dict[str, list] = {"load": [], "store": [], "gemm": [], "vector": []}
    for engine, name in ((Engine.LOAD, "load"), (Engine.STORE, "store"), (Engine.GEMM, "gemm"),
                         (Engine.VECTOR, "vector")):
        for segment in plan.queues[engine]:
            for it in range(segment.count):
                for pc in segment.pcs:
                    if plan.costs[pc].fence:
                        continue
                    ins = p.instructions[pc]
                    moved = {a: getattr(ins, a) + it * getattr(ins, s) for a, s in _STRIDES[type(ins)]}
                    out[name].append(dataclasses.replace(ins, **moved, comment=""))
    return out


@pytest.mark.rtl
def test_control_timing_matches_the_event_engine(chip, built, tmp_path_factory):
    config = CoreConfig.from_chip(chip)
    for p in PROGRAMS.values():
        check_program(p, chip)
    check_program(DEADLOCK, chip)              # balanced waits and signals: the check lets it through
    with pytest.raises(DeadlockError):
        simulate_program(DEADLOCK, chip)
    test_dir = tmp_path_factory.mktemp("control")
    programs = {name: encode_program(p.instructions).hex() for name, p in PROGRAMS.items()}
    programs["deadlock"] = encode_program(DEADLOCK.instructions).hex()
    run_cocotb(built, "testbenches.control", test_dir, inputs={
        "preset": "matx-tiny", "programs": programs, "limit_cycles": 20000, "config": repr(config)})
    results = read_outputs(test_dir, "control")
    for name, p in PROGRAMS.items():
        result = results[name]
        assert "watchdog" not in result, f"{name}: {result['watchdog']}"
        assert result["error"] == 0
        taken = {unit: [decode(bytes.fromhex(h)) for h in hexes] for unit, hexes in result["taken"].items()}
        expected = expected_commands(p, chip)
        assert [i for i in taken["dma"] if type(i) is DmaLoad] == expected["load"], name
        assert [i for i in taken["dma"] if type(i) is DmaStore] == expected["store"], name
        assert taken["gemm"] == expected["gemm"], name
        assert taken["vector"] == expected["vector"], name
        simulated = simulate_program(p, chip).time_s * chip.clock_hz
        check(CycleRow("program", f"control {name}", round(simulated), result["cycles"]))
    message = results["deadlock"].get("watchdog", "")
    assert "LOAD queue at instruction 0 waits on semaphore 13 (count 0)" in message, message
    assert "VECTOR queue at instruction 1 waits on semaphore 14 (count 0)" in message, message


def test_issue_spacing_and_fences_in_the_event_engine(chip):
    """control.issue_cycles (1 on matx-tiny, as measured on the RTL): two GEMMs free to start at
    one instant go one cycle apart, and a fence passes its signal on a cycle after it issues."""
    ideal = dataclasses.replace(chip, control=dataclasses.replace(chip.control, issue_cycles=0))
    gemms = Program()
    gemms.emit(Gemm(a_addr=0, b_addr=1024, c_addr=4096, m=8, n=8, k=8, split=1, subarray=0), "t")
    gemms.emit(Gemm(a_addr=0, b_addr=2048, c_addr=6144, m=8, n=8, k=8, split=1, subarray=1), "t")
    gemms.emit(Halt(), "t")
    cycles = {c.control.issue_cycles: simulate_program(gemms, c).time_s * c.clock_hz for c in (chip, ideal)}
    assert round(cycles[1] - cycles[0]) == 1
    fenced = Program()
    fenced.emit(Gemm(m=0, n=0, k=0, signal=(1,)), "t")
    fenced.emit(DmaLoad(hbm_addr=0, sram_addr=0, rows=1, row_bytes=64, wait=(1,)), "t")
    fenced.emit(Halt(), "t")
    cycles = {c.control.issue_cycles: simulate_program(fenced, c).time_s * c.clock_hz for c in (chip, ideal)}
    assert round(cycles[1] - cycles[0]) == 1
