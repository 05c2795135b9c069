"""The bracket-corrected iteration pinned by its order: it tracks the anchored window to O(h³)."""

import numpy as np
import pytest

import contraction as ct


@pytest.mark.parametrize("rng", [0, 1])
def test_bracket_correction_removes_the_h2_gap_to_the_anchored_window(rng):
    """Over one block, forward − anchored is O(h²) and corrected − anchored O(h³): at small h the
    corrected error is far below forward's, and a correction of the wrong sign doubles the gap."""
    seq = ct.sample_batches(3, 5, 4, rng=10 + rng)
    theta0 = np.array([0.3, -0.2])
    hs = np.array([0.005, 0.01, 0.02])
    err_c, err_f = [], []
    for h in hs:
        g = ct.log_cosh_maps(h, rng=rng)
        anchored = ct.windowed_backward_iterates(g, theta0, seq, 5).iterates
        err_c.append(np.abs(ct.bracket_corrected_iterates(g, theta0, seq, 5).iterates - anchored).max())
        err_f.append(np.abs(ct.forward_iterates(g, theta0, seq) - anchored).max())
    assert ct.loglog_slope(hs, err_f) == pytest.approx(2.0, abs=0.2)
    assert ct.loglog_slope(hs, err_c) == pytest.approx(3.0, abs=0.25)
    assert err_c[0] < 0.05 * err_f[0]
