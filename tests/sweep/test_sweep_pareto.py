"""Pareto fronts against a brute-force numpy check of dominance."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.sweep.pareto import non_dominated


def brute_force(costs: np.ndarray) -> np.ndarray:
    """Row i is kept unless some row j is <= in every column and < in one (all pairs at once)."""
    finite = np.isfinite(costs).all(axis=1)
    c = np.where(finite[:, None], costs, np.inf)
    le = (c[:, None, :] <= c[None, :, :]).all(axis=2)     # le[j, i]: row j <= row i everywhere
    lt = (c[:, None, :] < c[None, :, :]).any(axis=2)
    dominated = ((le & lt) & finite[:, None]).any(axis=0)
    return finite & ~dominated


@pytest.mark.parametrize("objectives", [2, 3, 4])
@pytest.mark.parametrize("seed", range(6))
def test_matches_brute_force(objectives, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    # coarse integer values make ties and duplicates common
    costs = rng.integers(0, 12, size=(n, objectives)).astype(float)
    costs[rng.random(n) < 0.05, rng.integers(0, objectives)] = np.nan
    np.testing.assert_array_equal(non_dominated(costs), brute_force(costs))


def test_continuous_values_and_known_front():
    rng = np.random.default_rng(7)
    costs = rng.random((500, 2))
    mask = non_dominated(costs)
    np.testing.assert_array_equal(mask, brute_force(costs))
    front = costs[mask][np.argsort(costs[mask][:, 0])]
    assert np.all(np.diff(front[:, 1]) < 0)   # a 2-D front is a staircase: better x, worse y


def test_duplicates_both_stay_and_nan_rows_never_do():
    costs = np.array([[1.0, 2.0], [1.0, 2.0], [2.0, 1.0], [2.0, 2.0], [np.nan, 0.0]])
    assert non_dominated(costs).tolist() == [True, True, True, False, False]
