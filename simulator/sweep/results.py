"""The results file: JSON Lines, one record per design point, appended as points finish.

A crash can at worst leave the last line half written; reading ignores such a tail and the next
append cuts it off first, so every complete line survives. When a point appears more than once
(re-run with --retry-errors), its last record counts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from simulator.sweep.spec import SweepError

RESULTS_FILE = "results.jsonl"


def read_results(path: Path) -> dict[str, dict[str, Any]]:
    """Records by point id (the last one wins); a partial final line is skipped."""
    if not path.exists():
        return {}
    records: dict[str, dict[str, Any]] = {}
    lines = path.read_text().split("\n")
    complete = lines[:-1]   # text after the last newline is an unfinished write: not a record
    for number, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SweepError(f"{path}:{number}: not a JSON record ({exc.msg}); remove the line to resume") from None
        if not isinstance(record, dict) or "id" not in record:
            raise SweepError(f"{path}:{number}: a record needs an 'id'")
        records[record["id"]] = record
    return records


class ResultsWriter:
    """Appends records, one line each, flushed to disk as they come."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _cut_partial_tail(path)
        self.path = path
        self.file = path.open("a")

    def write(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            self.file.write(json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n")
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _cut_partial_tail(path: Path) -> None:
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)
