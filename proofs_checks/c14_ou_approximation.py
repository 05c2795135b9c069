"""C14 Exact stationary covariance vs the continuous-time (Ornstein–Uhlenbeck) approximation.

Claims, for least squares (A_i = I − h H_i, H_i = X_iᵀX_i/B, b_i = (h/B) X_iᵀ y_i):
(a) the OU covariance Σ_OU of Mandt, Hoffman and Blei, solving ĤΣ + ΣĤ = h C_b
    (C_b the covariance over batches of the batch gradients at the minimiser),
    has relative error ‖Σ_OU − Σ‖/‖Σ‖ = O(h) against the exact stationary
    covariance Σ (Σ = Σ_OU + O(h²): the OU equation drops h Σ p_i H_i Σ H_i);
(b) the error grows as h nears the mean-square threshold h* = 1/ρ(𝓛^{-1}𝓗),
    where Σ diverges (trace → ∞, refused past h*) while Σ_OU stays finite;
(c) in stationarity, with φ = θ − θ*, Yaida's fluctuation–dissipation identity
    E[φ·∇L(θ)] = (h/2) E‖∇f_ξ(θ)‖² holds: exactly for the exact moments, and
    on perfect backward samples; it fails on forward samples taken before
    stationarity.

Method: (a), (b) and the exact part of (c) on scikit-learn's diabetes data
(442 × 10, standardised, batches of 2: low-rank maps, matrix-free moments),
h = h*·10^{-4} … h*·10^{-2} for the slope; h* is checked against
max_stable_lr's root search. The samples of (c) come from four well-conditioned
diabetes columns (age, sex, bmi, s2; batch size 1) so that backward samples
are cheap: a z-test of the mean difference of the two sides at h = h*/2,
whose sample resolves the fourth-moment term (4 standard errors below it), and
forward samples 5 steps from θ_0 = (1, …, 1) that must be rejected (|z| > 4;
their exact expected difference, from moments_at_step, is reported).
Numerical value: the fitted log-log slope of (a); theory 1 within 0.1.
Ingredients: ``moments`` (exact covariance), ``ou`` (OU covariance),
``fluctuation`` (the sampled identity).
"""

import numpy as np

import contraction as ct
from contraction.core.regression_data import load_diabetes_regression
from contraction.theory.ou import (
    batch_gradient_covariance,
    fluctuation_dissipation,
    fluctuation_dissipation_exact,
    mean_square_threshold,
    ou_covariance,
)

from ._base import Timer, make_result

STATEMENT = ("OU covariance error O(h) vs the exact one, growing to the mean-square threshold where only the exact "
             "one diverges; Yaida's identity holds in stationarity, not before")
KIND = "slope"
MEASURES = "log-log slope of ‖Σ_OU − Σ‖/‖Σ‖ in h on diabetes (theory: 1)"
BAND = 0.1
Z_MAX = 4.0
SAMPLE_COLUMNS = [0, 1, 2, 5]  # age, sex, bmi, s2: condition number about 2
EARLY_STEPS = 5


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def check(quick=False, moments=ct.stationary_moments, ou=ou_covariance, fluctuation=fluctuation_dissipation):
    with Timer() as t:
        X, y = load_diabetes_regression()
        model = ct.LinearRegressionModel(X, y, batch_size=2)
        h_star = mean_square_threshold(model)
        h_root = ct.max_stable_lr(model).mean_square
        # (a) small h: the order of the error
        hs = h_star * np.geomspace(1e-4, 1e-2, 5)
        small = [_rel(ou(model, h).cov, moments(model.sgd_maps(h)).cov) for h in hs]
        slope = ct.loglog_slope(hs, small) if min(small) > 0 else float("nan")
        # (b) towards the threshold
        fractions = np.array([0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 0.999])
        exact = [moments(model.sgd_maps(f * h_star)) for f in fractions]
        grow = [_rel(ou(model, f * h_star).cov, m.cov) for f, m in zip(fractions, exact, strict=True)]
        traces = np.array([np.trace(m.cov) for m in exact])
        try:
            moments(model.sgd_maps(1.01 * h_star))
            refused = False
        except ct.StationaryLawError:
            refused = True
        ou_traces = np.array([np.trace(ou(model, f * h_star).cov) for f in (0.5, 1.01)])
        # (c) Yaida: exact moments, then samples
        h = 0.5 * h_star
        mid = exact[2]
        fd_exact = fluctuation_dissipation_exact(model, h, mid.mean, mid.cov)
        small_model = ct.LinearRegressionModel(X[:, SAMPLE_COLUMNS], y, batch_size=1)
        hs_small = 0.5 * mean_square_threshold(small_model)
        maps = small_model.sgd_maps(hs_small)
        n = 2000 if quick else 20000
        back = ct.stationary_samples(maps, n, method="backward", rng=141, tol=1e-8)
        fd_back = fluctuation(small_model, hs_small, back.samples)
        mom_small = moments(maps)
        fd_exact_small = fluctuation_dissipation_exact(small_model, hs_small, mom_small.mean, mom_small.cov)
        # the term Ornstein–Uhlenbeck drops: (h/2) Σ p_i tr(H_i Σ H_i) = rhs − (h/2) tr C_b
        fourth = fd_exact_small.rhs - 0.5 * hs_small * float(np.trace(batch_gradient_covariance(small_model)))
        start = np.ones(small_model.dim)
        early = ct.stationary_samples(maps, n, method="forward", rng=142, burn_in=EARLY_STEPS, theta0=start).samples
        fd_early = fluctuation(small_model, hs_small, early)
        at_step = ct.moments_at_step(maps, start, EARLY_STEPS)
        early_exact = fluctuation_dissipation_exact(small_model, hs_small, at_step.mean, at_step.cov).difference
    return make_result(
        "C14", STATEMENT, slope, 1.0, "==", BAND, t.seconds,
        extra_conditions={
            "threshold 1/ρ(𝓛⁻¹𝓗) equals max_stable_lr's root (rtol 1e-8)": abs(h_star - h_root) <= 1e-8 * h_root,
            "(b) the OU error grows with h up to 0.999 h*": bool(np.all(np.diff(grow) > 0)) and grow[-1] > 0.9,
            "(b) tr Σ diverges: tr Σ(0.999 h*) > 100 tr Σ(h*/2)": bool(traces[-1] > 100 * traces[2]),
            "(b) exact covariance refused at 1.01 h*": refused,
            "(b) Σ_OU finite and linear in h at 1.01 h*": bool(np.all(np.isfinite(ou_traces)))
            and abs(ou_traces[1] / ou_traces[0] - 1.01 / 0.5) < 1e-8,
            "(c) exact moments satisfy Yaida's identity (rtol 1e-9)":
                abs(fd_exact.difference) <= 1e-9 * abs(fd_exact.lhs),
            "(c) backward samples satisfy it (|z| <= 4)": abs(fd_back.zscore) <= Z_MAX,
            "(c) the sample resolves the fourth-moment term (4 SE < it)": Z_MAX * fd_back.stderr < abs(fourth),
            "(c) forward samples 5 steps from θ_0 = (1, …, 1) violate it (|z| > 4)": abs(fd_early.zscore) > Z_MAX,
        },
        threshold=h_star, threshold_root=h_root, lrs_small=hs, errors_small=small, fractions=fractions,
        errors_to_threshold=grow, traces_exact=traces, traces_ou=ou_traces,
        yaida_exact={"lhs": fd_exact.lhs, "rhs": fd_exact.rhs},
        yaida_backward={"lhs": fd_back.lhs, "rhs": fd_back.rhs, "z": fd_back.zscore, "stderr": fd_back.stderr},
        yaida_forward_early={"lhs": fd_early.lhs, "rhs": fd_early.rhs, "z": fd_early.zscore,
                             "exact difference": early_exact},
        yaida_exact_small={"lhs": fd_exact_small.lhs, "rhs": fd_exact_small.rhs}, fourth_moment_term=fourth,
        solver_iterations=[m.iterations for m in exact], n_samples=n,
    )
