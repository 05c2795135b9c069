"""C15 Heavy-tail phase diagram of least squares (Gürbüzbalaban, Şimşekli and Zhu, ICML 2021, at reduced size).

Claim: for SGD on least squares, A_i = I − h H_i with H_i = X_iᵀX_i/B, the tail
index α of the stationary law (the positive root of the moment Lyapunov
exponent Λ(s) = lim (1/n) log E‖A_{ξn}⋯A_{ξ1}x‖^s, Kesten–Goldie) falls as
the learning rate h grows at fixed batch size B and rises as B grows at fixed h.

Method: four random ReLU features of the digits (1,680 rows, standardised),
a square grid of h × B inside the heavy-tail region (every cell has γ < 0, a
stationary law, and some ‖A_i‖ > 1, a finite α); α per cell from
``ct.tail_index`` (population Monte Carlo with a standard error), each cell's
randomness from a stream keyed by its coordinates. Numerical value: the
smallest z-score of the trend over the lines of the grid, (α(first) −
α(last))/SE along h at fixed B and (α(last) − α(first))/SE along B at fixed
h; theory: >= 3. Extra condition: no consecutive difference contradicts
monotonicity by more than 3 standard errors.
Ingredients: ``tail`` (the tail-index estimator), ``table`` (builds the
α table, rows B, columns h).
"""

import numpy as np

import contraction as ct

from ._base import Timer, make_result

STATEMENT = ("least-squares tail index α falls as h grows at fixed B and rises as B grows at fixed h "
             "(heavy-tail phase diagram)")
KIND = "z-score"
MEASURES = "smallest trend z-score of α over the lines of the h × B grid (theory: >= 3)"
Z_TREND = 3.0
Z_STEP = 3.0
N_FEATURES = 4
N_ROWS = 1680  # divisible by every batch size used
QUICK = {"lrs": (0.1, 0.14, 0.2), "batch_sizes": (2, 4, 8), "n_steps": 80, "n_chains": 96}
FULL = {"lrs": (0.09, 0.12, 0.15, 0.2), "batch_sizes": (2, 3, 4, 6), "n_steps": 150, "n_chains": 128}
SEED = 15


def design():
    """The small real design: four random ReLU features of the digits (standardised), and the target."""
    return ct.digits_random_features(N_FEATURES, n_rows=N_ROWS, rng=0)


def alpha_table(X, y, lrs, batch_sizes, tail=ct.tail_index, n_steps=100, n_chains=128, seed=SEED):
    """α and its standard error over the grid: arrays of shape (len(batch_sizes), len(lrs)), rows B, columns h.

    Cell (i, j) draws from ``SeedSequence([seed, i, j])``, so a cell does not depend on the grid around it.
    """
    alpha = np.empty((len(batch_sizes), len(lrs)))
    stderr = np.empty_like(alpha)
    for i, b in enumerate(batch_sizes):
        model = ct.LinearRegressionModel(X, y, batch_size=b)
        for j, h in enumerate(lrs):
            res = tail(model.sgd_maps(h), rng=np.random.SeedSequence([seed, i, j]), n_steps=n_steps,
                       n_chains=n_chains)
            alpha[i, j], stderr[i, j] = float(res), float(getattr(res, "stderr", 0.0))
    return alpha, stderr


def trend_scores(alpha, stderr):
    """Trend z-scores of every line and the worst consecutive contradiction of monotonicity, in standard errors.

    Along h (rows: fixed B) α should fall, along B (columns: fixed h) rise.
    Returns ``(trend_h, trend_b, worst_step)``.
    """
    se = np.maximum(stderr, 1e-300)
    trend_h = (alpha[:, 0] - alpha[:, -1]) / np.hypot(se[:, 0], se[:, -1])
    trend_b = (alpha[-1, :] - alpha[0, :]) / np.hypot(se[-1, :], se[0, :])
    step_h = (alpha[:, 1:] - alpha[:, :-1]) / np.hypot(se[:, 1:], se[:, :-1])  # should be < 0
    step_b = (alpha[1:, :] - alpha[:-1, :]) / np.hypot(se[1:, :], se[:-1, :])  # should be > 0
    worst = max(float(step_h.max()), float(-step_b.min()))
    return trend_h, trend_b, worst


def check(quick=False, tail=ct.tail_index, table=alpha_table):
    size = QUICK if quick else FULL
    with Timer() as t:
        X, y = design()
        lrs, batch_sizes = size["lrs"], size["batch_sizes"]
        alpha, stderr = table(X, y, lrs, batch_sizes, tail=tail, n_steps=size["n_steps"], n_chains=size["n_chains"])
        alpha, stderr = np.asarray(alpha, dtype=float), np.asarray(stderr, dtype=float)
        shape_ok = alpha.shape == stderr.shape == (len(batch_sizes), len(lrs))
        if shape_ok:
            trend_h, trend_b, worst = trend_scores(alpha, stderr)
            z = float(min(trend_h.min(), trend_b.min()))
        else:
            trend_h = trend_b = np.array([np.nan])
            worst = z = float("nan")
        heavy = [ct.contraction_constant(ct.LinearRegressionModel(X, y, batch_size=b).sgd_maps(min(lrs))) > 1
                 for b in batch_sizes]
    return make_result(
        "C15", STATEMENT, z, Z_TREND, ">=", 0.0, t.seconds,
        extra_conditions={
            "table of shape (batch sizes, learning rates)": shape_ok,
            f"no consecutive difference against monotonicity by more than {Z_STEP:g} SE": worst <= Z_STEP,
            "every cell heavy-tailed (some ‖A_i‖ > 1) and finite α": all(heavy) and bool(np.all(np.isfinite(alpha))),
        },
        lrs=list(lrs), batch_sizes=list(batch_sizes), alpha=alpha, stderr=stderr, trend_h=trend_h,
        trend_b=trend_b, worst_step=worst,
    )
