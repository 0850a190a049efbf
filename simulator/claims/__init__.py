"""Checking published performance claims against the simulator, for any target kind.

    result = check_claim(load_claim("claims/taalas-hc1-llama3.1-8b.toml"))
    print(format_result(result))

A claim file names a model, a target, the workload and the claimed figures. The check simulates
the same workload, gives the ratio and a verdict, and says what the claim requires of the
target's unpublished parameters, each found by bisection on the simulator. Nothing here knows a
claimed number in advance: the verdict follows from the preset.
"""

from __future__ import annotations

from simulator.claims.check import (
    ClaimResult,
    FigureCheck,
    Requirement,
    TargetUnavailableError,
    check_claim,
    run_target,
)
from simulator.claims.claim import Claim, ClaimError, load_claim
from simulator.claims.report import format_result

__all__ = [
    "Claim",
    "ClaimError",
    "ClaimResult",
    "FigureCheck",
    "Requirement",
    "TargetUnavailableError",
    "check_claim",
    "format_result",
    "load_claim",
    "run_target",
]
