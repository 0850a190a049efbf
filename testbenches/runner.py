"""Build Amaranth designs to Verilog and run cocotb testbenches on them with Icarus Verilog.

One build per configuration: the Verilog text is hashed, and `build/rtl/<design>/<hash>/` holds
the `.v` file and Icarus's compiled `sim.vvp`, so every test of the same configuration (and
every later `make test`) reuses it. pytest calls `run_cocotb`; a cocotb test module reads its
inputs from the JSON/npz files the pytest side writes into the test directory
(`TESSERA_TB_DIR` in the environment) and the result is a pytest failure when any cocotb test
fails, with the path of the log.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUILD_ROOT = REPO / "build" / "rtl"
TIMESCALE = ("1ns", "1ps")
CLOCK_PERIOD_NS = 10


class RtlToolError(RuntimeError):
    """Icarus Verilog (or yosys) is missing or failed."""


class TestbenchFailure(AssertionError):
    """A cocotb test failed; the message names the tests and the log file."""


@dataclass(frozen=True)
class BuiltDesign:
    name: str
    verilog: Path
    build_dir: Path
    toplevel: str


def verilog_of(component, name: str = "top") -> str:
    """Verilog text of an Amaranth component (ports from its signature, plus `clk` and `rst`)."""
    from amaranth.back import verilog

    return _trigger_at_time_zero(verilog.convert(component, name=name, emit_src=False))


_TRIGGER = re.compile(r"^(\s*)reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+) += 0;$", re.MULTILINE)


def _trigger_at_time_zero(text: str) -> str:
    """Make yosys's `always @*` trigger register change at time 0.

    yosys puts `if (trigger) begin end` into every `always @*` so that simulators run the block
    once, but declares `reg trigger = 0;`, which under Icarus's -g2012 semantics is no event: a
    comb block whose inputs never change after time 0 (a mux on configuration registers) keeps
    X forever. `initial #0 trigger = 1;` runs after every process waits, so each block runs
    once. Synthesis ignores it (the register drives nothing).
    """
    return _TRIGGER.sub(lambda m: f"{m.group(0)}\n{m.group(1)}initial #0 {m.group(2)} = 1'h1;", text)


def build(design: str, make_component: Callable[[], object], toplevel: str = "top",
          key: Mapping[str, object] | None = None) -> BuiltDesign:
    """Elaborate (unless a build for `key` exists), write Verilog and compile it with Icarus.

    `key` identifies the configuration (e.g. the hardware description's fields); without it the
    component is always elaborated and the Verilog text itself is the key.
    """
    if shutil.which("iverilog") is None:
        raise RtlToolError("iverilog not found: install Icarus Verilog (`make setup` does it as root, "
                           "or: sudo apt-get install iverilog)")
    cached = _cached(design, key)
    if cached is not None:
        return cached
    text = verilog_of(make_component(), toplevel)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    build_dir = BUILD_ROOT / design / digest
    build_dir.mkdir(parents=True, exist_ok=True)
    source = build_dir / f"{design}.v"
    if not source.exists() or source.read_text() != text:
        source.write_text(text)
    built = BuiltDesign(design, source, build_dir, toplevel)
    if not (build_dir / "sim.vvp").exists():
        from cocotb_tools.runner import get_runner

        runner = get_runner("icarus")
        runner.build(sources=[source], hdl_toplevel=toplevel, build_dir=build_dir, timescale=TIMESCALE,
                     log_file=build_dir / "build.log")
    if key is not None:
        (BUILD_ROOT / design / f"key-{_key_digest(key)}.json").write_text(json.dumps({"dir": digest}))
    return built


def _key_digest(key: Mapping[str, object]) -> str:
    from rtl import __version__ as rtl_version

    text = json.dumps({"key": key, "rtl": rtl_version}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _cached(design: str, key: Mapping[str, object] | None) -> BuiltDesign | None:
    """A build made earlier for the same key, when the generator sources have not changed since."""
    if key is None:
        return None
    index = BUILD_ROOT / design / f"key-{_key_digest(key)}.json"
    if not index.exists():
        return None
    build_dir = BUILD_ROOT / design / json.loads(index.read_text())["dir"]
    vvp = build_dir / "sim.vvp"
    if not vvp.exists() or vvp.stat().st_mtime < _newest_generator_source():
        return None
    return BuiltDesign(design, build_dir / f"{design}.v", build_dir, "top")


def _newest_generator_source() -> float:
    sources = [*(REPO / "rtl").rglob("*.py"), REPO / "compiler" / "targets" / "programmable" / "isa.py",
               Path(__file__)]
    return max(p.stat().st_mtime for p in sources)


def run_cocotb(built: BuiltDesign, test_module: str, test_dir: Path, *, inputs: Mapping[str, object] | None = None,
               testcase: str | None = None, seed: int = 1, extra_env: Mapping[str, str] | None = None) -> Path:
    """Run the cocotb tests of `test_module` (a module path such as `testbenches.systolic`) on a build.

    `inputs` are written to `test_dir/inputs.json` for the testbench (`load_inputs()` reads them).
    Raises TestbenchFailure naming the failed tests and the log; returns the results XML path.
    """
    from cocotb_tools.runner import get_results, get_runner

    test_dir.mkdir(parents=True, exist_ok=True)
    if inputs is not None:
        (test_dir / "inputs.json").write_text(json.dumps(inputs, default=_json_default))
    env = {"TESSERA_TB_DIR": str(test_dir), "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get(
        "PYTHONPATH", "")]))}
    env.update(extra_env or {})
    log = test_dir / "sim.log"
    started = time.perf_counter()
    results = test_dir / "results.xml"
    results.unlink(missing_ok=True)         # never read a previous run's verdict
    try:
        results = get_runner("icarus").test(
            test_module=test_module, hdl_toplevel=built.toplevel, hdl_toplevel_lang="verilog",
            build_dir=built.build_dir, test_dir=test_dir,
            testcase=testcase, seed=seed, extra_env=env, timescale=TIMESCALE, log_file=log,
            results_xml=str(results))
    except SystemExit:          # cocotb_tools exits when a test fails; results.xml says which
        pass
    (test_dir / "wall_s.txt").write_text(f"{time.perf_counter() - started:.3f}\n")
    try:
        total, failed = get_results(results)
    except RuntimeError as error:       # the simulator died before writing results
        raise TestbenchFailure(f"{built.name}: {error}; log: {log}\n" + _tail(log)) from None
    if total == 0 or failed:
        raise TestbenchFailure(f"{built.name}: {failed} of {total} cocotb tests in {test_module} failed; "
                               f"log: {log}\n" + _tail(log))
    return results


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _json_default(value):
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to the testbench inputs")


def load_inputs() -> dict:
    """In a cocotb test: the inputs the pytest side wrote (see `run_cocotb`)."""
    return json.loads((Path(os.environ["TESSERA_TB_DIR"]) / "inputs.json").read_text())


def write_outputs(name: str, data: Mapping[str, object]) -> None:
    """In a cocotb test: results for the pytest side (e.g. measured cycles) as `<name>.json`."""
    (Path(os.environ["TESSERA_TB_DIR"]) / f"{name}.json").write_text(json.dumps(data, default=_json_default))


def read_outputs(test_dir: Path, name: str) -> dict:
    return json.loads((test_dir / f"{name}.json").read_text())
