"""Cycle comparison rows, simulator vs RTL, collected across testbenches for `make verify`.

Every RTL test that times a kernel calls `record(...)`; rows go to `build/rtl/cycles.jsonl`
(one JSON object per line, appended). `tools/verify_rtl.py` prints them as the table
kernel | shape | simulator cycles | RTL cycles | error. A row whose error exceeds
`TOLERANCE` fails its test.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from testbenches.runner import BUILD_ROOT

TOLERANCE = 0.02
CYCLES_FILE = BUILD_ROOT / "cycles.jsonl"


@dataclass(frozen=True)
class CycleRow:
    kernel: str           # e.g. "gemm", "vector REQUANT", "dma load", "program tiny-mlp"
    shape: str            # e.g. "m=5 n=8 k=24 split=1"
    simulator_cycles: int
    rtl_cycles: int

    @property
    def error(self) -> float:
        return abs(self.rtl_cycles - self.simulator_cycles) / max(self.simulator_cycles, 1)


def record(row: CycleRow, path: Path = CYCLES_FILE) -> CycleRow:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(asdict(row)) + "\n")
    return row


def check(row: CycleRow) -> None:
    """Record the row and fail when the RTL and the simulator disagree by more than TOLERANCE."""
    record(row)
    assert row.error <= TOLERANCE, (f"{row.kernel} {row.shape}: simulator {row.simulator_cycles} cycles, "
                                    f"RTL {row.rtl_cycles} cycles ({row.error:.1%} apart, limit {TOLERANCE:.0%})")


def load(path: Path = CYCLES_FILE) -> list[CycleRow]:
    if not path.exists():
        return []
    rows = {}
    for line in path.read_text().splitlines():
        row = CycleRow(**json.loads(line))
        rows[(row.kernel, row.shape)] = row          # the latest run of a case wins
    return list(rows.values())
