"""`make verify`: run the RTL testbenches, then print simulator vs RTL cycles for every kernel.

Clears build/rtl/cycles.jsonl, runs `pytest -m rtl tests/rtl` (every testbench records its cycle
rows there through testbenches/cycles.py), then prints the table

    kernel | shape | simulator cycles | RTL cycles | error

and the simulation speed: clock cycles Icarus simulated (the cocotb results' simulated time over
the clock period) per second of wall time of those runs (runner.py's wall_s.txt). The exit status
is pytest's, so a row beyond the 2% tolerance (its test fails) fails `make verify`.

    python tools/verify_rtl.py [extra pytest arguments]
"""

from __future__ import annotations

import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from testbenches.cycles import CYCLES_FILE, TOLERANCE, load  # noqa: E402
from testbenches.runner import BUILD_ROOT, CLOCK_PERIOD_NS  # noqa: E402

RUNS_DIR = BUILD_ROOT / "verify-runs"


def table(rows) -> str:
    header = ("kernel", "shape", "simulator cycles", "RTL cycles", "error")
    lines = [(r.kernel, r.shape, str(r.simulator_cycles), str(r.rtl_cycles), f"{r.error:.2%}") for r in rows]
    widths = [max(len(x) for x in column) for column in zip(header, *lines)]
    right = (False, False, True, True, True)

    def fmt(cells) -> str:
        return " | ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right))

    return "\n".join([fmt(header), "-+-".join("-" * w for w in widths), *(fmt(line) for line in lines)])


def simulation_speed(runs: Path) -> tuple[float, float, float]:
    """(clock cycles simulated, wall seconds, seconds inside the cocotb tests) over every cocotb
    run under `runs`; the difference is start-up (Icarus, Python imports in the testbench)."""
    cycles, wall, inside = 0.0, 0.0, 0.0
    for wall_file in {f.resolve() for f in runs.rglob("wall_s.txt")}:     # pytest's *current links too
        results = wall_file.parent / "results.xml"
        if not results.exists():
            continue
        wall += float(wall_file.read_text())
        for case in ElementTree.parse(results).getroot().iter("testcase"):
            props = {p.get("name"): p.get("value") for p in case.iter("property")}
            inside += float(case.get("time", 0.0))
            scale = {"ns": 1.0, "ps": 1e-3, "us": 1e3}.get(props.get("sim_time_unit", "ns"), 1.0)
            cycles += float(props.get("sim_time_duration", 0.0)) * scale / CLOCK_PERIOD_NS
    return cycles, wall, inside


def main(argv: list[str]) -> int:
    CYCLES_FILE.unlink(missing_ok=True)
    started = time.perf_counter()
    status = subprocess.call([sys.executable, "-m", "pytest", "-m", "rtl", "tests/rtl", "-q", "-p", "no:cacheprovider",
                              f"--basetemp={RUNS_DIR}", *argv], cwd=ROOT)
    elapsed = time.perf_counter() - started
    rows = sorted(load(), key=lambda r: (r.kernel, r.shape))
    print()
    if rows:
        print(table(rows))
        worst = max(rows, key=lambda r: r.error)
        exact = sum(r.rtl_cycles == r.simulator_cycles for r in rows)
        print(f"\n{len(rows)} rows, {exact} exact; largest error {worst.error:.2%} ({worst.kernel}, {worst.shape}); "
              f"tolerance {TOLERANCE:.0%}")
    else:
        print("no cycle rows were recorded (did the RTL tests run?)")
    cycles, wall, inside = simulation_speed(RUNS_DIR)
    if wall and inside:
        print(f"RTL simulation: {cycles:,.0f} clock cycles in {wall:.1f} s of Icarus runs = {cycles / wall:,.0f} "
              f"simulated cycles per second ({cycles / inside:,.0f} per second inside the tests, without "
              f"start-up); whole RTL suite {elapsed:.0f} s")
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
