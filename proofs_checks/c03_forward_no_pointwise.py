"""C3 Forward SGD does not converge pointwise unless the maps share a fixed point.

Claim: in stationarity forward SGD keeps moving, its mean squared increment
E‖θ_{n+1} − θ_n‖² = Σ p_i E‖(A_i − I) Z + b_i‖² is > 0 (Z ~ π); under
interpolation (a common fixed point) it is 0 and both orders converge to that
point.

Method: a least-squares model with noise; the Monte Carlo mean of
‖θ_{n+1} − θ_n‖² over forward chains in stationarity (started from perfect
backward samples) is compared with the formula (``increment`` ingredient, the
mean squared increment)
within four standard errors. Extra conditions: the formula is positive, and
on a noiseless (interpolating) model the formula is 0 and both orders reach
the common point. Each backward sample is within ``SAMPLE_TOL`` = 1e-9 of its
limit, which moves a squared increment by at most about 1e-9: 1e-5 of the
standard error (about 3e-4).
"""

import numpy as np

import contraction as ct

from ._base import Timer, make_result
from ._models import random_regression

STATEMENT = ("forward mean squared increment in stationarity = sum_i p_i E|(A_i - I)Z + b_i|^2 > 0; "
             "0 under interpolation")
KIND = "estimate"
MEASURES = "Monte Carlo mean squared forward increment (theory: the exact value)"
SAMPLE_TOL = 1e-9


def check(quick=False, increment=ct.stationary_mean_squared_increment):
    with Timer() as t:
        model = random_regression(n=12, d=2, batch_size=2, seed=3)
        maps = model.sgd_maps(0.2)
        n_chains = 10000 if quick else 40000
        z = ct.stationary_samples(maps, n_chains, rng=31, tol=SAMPLE_TOL).samples
        idx = ct.sample_batches(maps.n_maps, 1, n_chains, probs=maps.probs, rng=32)
        steps = ct.forward_iterates(maps, z, idx)
        sq = np.sum((steps[:, 1] - steps[:, 0]) ** 2, axis=-1)
        mc, se = sq.mean(), sq.std(ddof=1) / np.sqrt(n_chains)
        exact = increment(maps)
        # interpolation: y = X θ* exactly
        X = model.X
        theta_star = np.array([0.7, -1.3])
        interp = ct.LinearRegressionModel(X, X @ theta_star, batch_size=2).sgd_maps(0.2)
        zero = increment(interp)
        seq = ct.sample_batches(interp.n_maps, 400, 4, rng=33)
        fwd = ct.forward_iterates(interp, [5.0, 5.0], seq, save_steps=[400])[:, 0]
        bwd = ct.backward_iterates(interp, [5.0, 5.0], seq, save_steps=[400])[:, 0]
        converge = max(np.abs(fwd - theta_star).max(), np.abs(bwd - theta_star).max())
    return make_result(
        "C3", STATEMENT, mc, exact, "==", 4 * se, t.seconds,
        extra_conditions={"increment > 0 without interpolation": exact > 10 * se,
                          "increment = 0 under interpolation": abs(zero) < 1e-12,
                          "both orders reach the common point": converge < 1e-8},
        standard_error=se, interpolation_increment=zero, interpolation_error=converge,
    )
