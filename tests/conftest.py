"""Shared pytest set-up: repo root on sys.path, fixture locations, and the node-case tally."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FIXTURES = ROOT / "tests" / "fixtures"

NODE_CASE_RESULTS: dict[str, str] = {}


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and "test_onnx_node_case[" in report.nodeid:
        case = report.nodeid.split("[", 1)[1].rstrip("]")
        NODE_CASE_RESULTS[case] = "xfail" if hasattr(report, "wasxfail") else report.outcome


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not NODE_CASE_RESULTS:
        return
    passed = sum(1 for v in NODE_CASE_RESULTS.values() if v == "passed")
    known = sum(1 for v in NODE_CASE_RESULTS.values() if v == "xfail")
    failed = sum(1 for v in NODE_CASE_RESULTS.values() if v == "failed")
    terminalreporter.write_sep("=", "ONNX node test cases through import + interpreter")
    terminalreporter.write_line(
        f"ONNX node cases: {passed} passed, {known} known failures (listed in tests/test_onnx_node_cases.py), "
        f"{failed} failed, of {len(NODE_CASE_RESULTS)} run"
    )
