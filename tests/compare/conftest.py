"""Shared runs for the compare tests: the project's CI comparison (gated against the checked-in
baseline) and a tiny real comparison whose baseline the gate tests perturb."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from compare_helpers import CI_BASELINE, TINY_MATRIX, matrix_args

from compiler.cli import main


@pytest.fixture(scope="session")
def ci_compare(tmp_path_factory):
    """The CI gate: the checked-in baseline's comparison, run in the process pool, gated at 5%."""
    out = tmp_path_factory.mktemp("ci-compare")
    baseline = json.loads(CI_BASELINE.read_text())
    code = _main(["compare", *matrix_args(baseline), "--out", str(out), "--baseline", str(CI_BASELINE),
                  "--tolerance", "5%", "--no-progress"], out / "stdout.txt")
    return code, out, baseline


@pytest.fixture(scope="session")
def tiny_baseline(tmp_path_factory):
    """A baseline written by --update-baseline from a tiny real comparison."""
    out = tmp_path_factory.mktemp("tiny-compare")
    path = out / "baseline.json"
    code = _main(["compare", *TINY_MATRIX, "--out", str(out / "first"), "--baseline", str(path),
                  "--update-baseline", "--jobs", "1", "--no-progress"], out / "stdout.txt")
    assert code == 0, (out / "stdout.txt").read_text()
    return path


def _main(argv: list[str], stdout: Path) -> int:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(argv)
    stdout.write_text(buffer.getvalue())
    return code
