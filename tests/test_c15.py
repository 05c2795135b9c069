"""C15: the heavy-tail phase diagram passes, and fails when the grid's axes are swapped."""

import numpy as np
import pytest

from proofs_checks import c15_heavy_tail_phase as c15


def transposed_table(X, y, lrs, batch_sizes, **kwargs):
    """The α table with h and B exchanged: rows indexed by h, columns by B."""
    alpha, stderr = c15.alpha_table(X, y, lrs, batch_sizes, **kwargs)
    return alpha.T, stderr.T


@pytest.mark.slow  # about 6 s on one core
def test_c15_passes_quick():
    res = c15.check(quick=True)
    assert res.passed, res.details
    alpha = np.asarray(res.details["alpha"])
    assert alpha.shape == (3, 3) and np.all(alpha > 0)


@pytest.mark.slow  # about 6 s on one core
def test_c15_fails_with_grid_axes_swapped():
    res = c15.check(quick=True, table=transposed_table)
    assert not res.passed
    assert res.numerical < -c15.Z_TREND  # the trends are reversed, not merely weak


def test_trend_scores_read_rows_as_batch_sizes():
    alpha = np.array([[3.0, 2.0], [4.0, 3.0]])  # falls along h (columns), rises along B (rows)
    trend_h, trend_b, worst = c15.trend_scores(alpha, np.full((2, 2), 0.1))
    assert np.all(trend_h > 0) and np.all(trend_b > 0) and worst < 0
    trend_h, trend_b, worst = c15.trend_scores(alpha.T, np.full((2, 2), 0.1))
    assert np.all(trend_h < 0) and np.all(trend_b < 0) and worst > 0
