"""C7 Exact stationary moments.

Claim: the mean μ = (I − Ā)^{-1} b̄ and covariance Σ_π = S − μμᵀ (S from the
linear equation of SPEC §2) agree with Monte Carlo, for quadratic and
least-squares models.

Method: perfect backward samples (independent), a z-score per entry of the
mean and covariance, with standard errors from the samples (for a covariance
entry, the standard deviation of (X_i − μ_i)(X_j − μ_j) over √N).
Numerical value: the largest |z| over both models; theory 0 within 4.
With 100000 samples per model a covariance 10 % off gives |z| near 30.
Extra condition: the residual of the moment equation is below 1e-10.
Moments come from the ``moments`` ingredient. Each sample is within
``SAMPLE_TOL`` = 1e-9 of its backward limit: the largest shift this can give
a mean or covariance entry is below 1e-4 of its smallest standard error
(about 1e-5), so the z-scores are those of exact samples.
"""

import numpy as np

import contraction as ct

from ._base import Timer, make_result
from ._models import random_quadratic, random_regression

STATEMENT = "exact stationary mean and covariance agree with Monte Carlo (quadratic, least squares)"
KIND = "z-score"
MEASURES = "largest |z| of Monte Carlo moments against the exact ones (pass: |z| <= 4)"
SAMPLE_TOL = 1e-9


def _zscores(samples, mean, cov):
    n = len(samples)
    z = [(samples.mean(0) - mean) / (samples.std(0, ddof=1) / np.sqrt(n))]
    centered = samples - samples.mean(0)
    prod = centered[:, :, None] * centered[:, None, :]
    se = prod.std(0, ddof=1) / np.sqrt(n)
    iu = np.triu_indices(samples.shape[1])
    z.append(((prod.mean(0) - cov) / se)[iu])
    return np.concatenate(z)


def check(quick=False, moments=ct.stationary_moments):
    with Timer() as t:
        n = 20000 if quick else 100000
        zs, residuals = [], []
        for k, maps in enumerate([random_quadratic(m=4, d=3, seed=7).sgd_maps(0.3),
                                  random_regression(n=20, d=3, batch_size=2, seed=8).sgd_maps(0.15)]):
            mom = moments(maps)
            samples = ct.stationary_samples(maps, n, rng=70 + k, tol=SAMPLE_TOL).samples
            zs.append(_zscores(samples, mom.mean, mom.cov))
            residuals.append(mom.residual)
        zmax = float(np.abs(np.concatenate(zs)).max())
    return make_result(
        "C7", STATEMENT, zmax, 0.0, "==", 4.0, t.seconds,
        extra_conditions={"moment equation residual < 1e-10": max(residuals) < 1e-10},
        residuals=residuals, n_samples=n,
    )
