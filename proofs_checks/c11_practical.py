"""C11 Practical approximations: anchored window, sliding window, bracket correction.

Claims:
(a) the anchored windowed backward iterates settle inside each block: at block
    position j the increment is at most c^{j−1} times the first one (C1 applied
    to the block);
(b) the sliding reversed window has forward SGD's law, so it does not settle:
    its law at a fixed step equals forward's, and its late increments are as
    large as forward's;
(c) bracket-corrected forward SGD tracks the anchored window to O(h³) per block
    (fitted log-log slope 3), while plain forward differs at O(h²) (slope 2).
Costs (gradient and Hessian-vector evaluations per chain) are reported.

Method: (a), (b) on E1 (two-point quadratic, h = ½) with many chains; (c) on a
non-quadratic loss f_i(θ) = Σ_k log cosh(a_ikᵀ θ − y_ik) in d = 2 over one block
of W = 6 steps and h from 0.01 to 0.04. Numerical value: the slope of (c);
theory 3 within 0.2. The approximations come from ingredients.
"""

import numpy as np
import scipy.stats

import contraction as ct

from ._base import Timer, make_result

STATEMENT = "anchored window settles per block; sliding window has forward's law; bracket correction O(h^3)"
ALPHA = 1e-3
LOSS_SEED = 0  # draws the log-cosh loss of (c)
KIND = "slope"
MEASURES = "log-log slope of the bracket-corrected error in h (theory: 3)"


def check(quick=False, windowed=ct.windowed_backward_iterates, sliding=ct.sliding_backward_iterates,
          corrected=ct.bracket_corrected_iterates):
    with Timer() as t:
        maps = ct.two_point_quadratic().sgd_maps(0.5)
        c = ct.contraction_constant(maps)
        W, n = 16, 64
        n_chains = 4000 if quick else 40000
        idx = ct.sample_batches(2, n, n_chains, rng=111)
        win = windowed(maps, [0.0], idx, W)
        inc = np.abs(np.diff(win.iterates[:, :, 0], axis=1))  # step k -> k+1
        pos = np.arange(n) % W  # block position j - 1 of step k + 1
        first = np.abs(maps.A[idx, 0, 0] * win.iterates[:, (np.arange(n) // W) * W, 0] + maps.b[idx, 0]
                       - win.iterates[:, (np.arange(n) // W) * W, 0])
        ratio_a = float((inc / (c**pos * first + 1e-300)).max())
        settle_ok = bool(np.median(inc[:, pos == W - 1]) < 1e-3 * np.median(inc[:, pos == 0]))
        # (b) sliding window: law at a step equals forward's; increments do not settle
        sl = sliding(maps, [0.0], idx, W)
        other = ct.sample_batches(2, n, n_chains, rng=112)
        fwd = ct.forward_iterates(maps, [0.0], other)
        p_law = float(scipy.stats.ks_2samp(sl.iterates[:, 40, 0], fwd[:, 40, 0]).pvalue)
        late_sl = np.abs(np.diff(sl.iterates[:, -W:, 0], axis=1)).mean()
        late_fw = np.abs(np.diff(fwd[:, -W:, 0], axis=1)).mean()
        no_settle = bool(late_sl > 0.5 * late_fw)
        # (c) bracket correction, non-quadratic loss, one block
        hs = np.array([0.01, 0.014, 0.02, 0.028, 0.04])
        Wc = 6
        seq = ct.sample_batches(3, Wc, 8, rng=113)
        theta0 = np.array([0.3, -0.2])
        err_c, err_f = [], []
        for h in hs:
            g = ct.log_cosh_maps(h, rng=LOSS_SEED)  # the same loss at every h
            anchored = windowed(g, theta0, seq, Wc).iterates
            err_c.append(np.abs(corrected(g, theta0, seq, Wc).iterates - anchored).max())
            err_f.append(np.abs(ct.forward_iterates(g, theta0, seq) - anchored).max())
        slope_c, slope_f = ct.loglog_slope(hs, err_c), ct.loglog_slope(hs, err_f)
        cost_c = corrected(ct.log_cosh_maps(0.01, rng=LOSS_SEED), theta0, seq, Wc)
    return make_result(
        "C11", STATEMENT, slope_c, 3.0, "==", 0.2, t.seconds,
        extra_conditions={
            "(a) block increments <= c^(j-1) x first": ratio_a <= 1 + 1e-6,
            "(a) anchored window settles inside blocks": settle_ok,
            "(b) sliding window has forward's law (KS p >= 1e-3)": p_law >= ALPHA,
            "(b) sliding window does not settle": no_settle,
            "(c) forward vs anchored slope 2 +- 0.2": abs(slope_f - 2) <= 0.2,
        },
        anchored_increment_ratio=ratio_a, sliding_law_pvalue=p_law, late_increment_sliding=late_sl,
        late_increment_forward=late_fw, slope_forward=slope_f, slope_corrected=slope_c,
        cost_per_chain={"forward": {"gradient": n, "hvp": 0},
                        "backward": {"gradient": n * (n + 1) // 2, "hvp": 0},
                        "windowed": {"gradient": win.gradient_evals, "hvp": 0},
                        "sliding": {"gradient": sl.gradient_evals, "hvp": 0},
                        "bracket_corrected (W=6, 6 steps)": {"gradient": cost_c.gradient_evals,
                                                             "hvp": cost_c.hvp_evals}},
    )
