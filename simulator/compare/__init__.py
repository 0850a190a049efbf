"""`tessera compare`: several targets x models x contexts x batches simulated side by side, written as
report.json / report.md / report.html, with a regression gate against a baseline file.

    matrix.py    the run matrix and its input checks (labels key runs: model/target/context/batch)
    run.py       the runs in a process pool, with a progress display
    figures.py   figures derived the same way for every target (power, roofline coordinates)
    gate.py      baseline file format, tolerances, directions, the verdict
    report.py    report.json; markdown.py, html.py and plots.py are views of it
    command.py   the command: inputs checked, runs, reports, gate, exit status
"""

from simulator.compare.command import CompareRequest, run_compare
from simulator.compare.matrix import CompareError, Settings

__all__ = ["CompareError", "CompareRequest", "Settings", "run_compare"]
