"""Exact values that pin the theory engine against independent computations.

Each quantity is recomputed here by enumerating every batch word of length n
(exact expectations for i.i.d. batches, no recursion shared with the
library), on non-symmetric maps with non-uniform probabilities, so that a
transposed recursion, a dropped factor or ignored probabilities all show.
"""

import itertools

import numpy as np
import pytest

import contraction as ct


def _family(seed, m=3, d=2):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(m, d, d))
    A *= 0.8 / np.linalg.norm(A, 2, axis=(1, 2))[:, None, None]  # non-symmetric strict contractions
    b = rng.normal(size=(m, d))
    p = rng.uniform(0.2, 1.0, size=m)
    return ct.AffineMaps(A, b, p / p.sum())


def _words(maps, n):
    """Every word (ξ_1, …, ξ_n) with its probability."""
    for w in itertools.product(range(maps.n_maps), repeat=n):
        yield w, float(np.prod(maps.probs[list(w)]))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n", [1, 2, 4])
def test_moments_at_step_equal_exact_enumeration(seed, n):
    maps = _family(seed)
    theta0 = np.array([1.5, -0.7])
    mean = np.zeros(2)
    second = np.zeros((2, 2))
    for w, p in _words(maps, n):
        x = theta0
        for i in w:  # forward: ξ_1 acts first
            x = maps.A[i] @ x + maps.b[i]
        mean += p * x
        second += p * np.outer(x, x)
    res = ct.moments_at_step(maps, theta0, n)
    np.testing.assert_allclose(res.mean, mean, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(res.cov, second - np.outer(mean, mean), rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("seed", [0, 3])
def test_backward_distance_equals_exact_enumeration(seed):
    """E‖θ̃_n − θ̃_∞‖² = E tr(P_nᵀ P_n M), P_n = A_{ξ1} ⋯ A_{ξn}, M = (θ0 − μ)(θ0 − μ)ᵀ + Σ_π."""
    maps = _family(seed)
    theta0 = np.array([2.0, 1.0])
    mom = ct.stationary_moments(maps)
    diff = theta0 - mom.mean
    M = np.outer(diff, diff) + mom.cov
    got = ct.backward_distance_squared(maps, theta0, 4)
    for n in range(5):
        exact = 0.0
        for w, p in _words(maps, n):
            P = np.eye(2)
            for i in w:
                P = P @ maps.A[i]
            exact += p * np.trace(P.T @ P @ M)
        assert got[n] == pytest.approx(exact, rel=1e-11, abs=0), n


@pytest.mark.parametrize("theta0", [0.0, 0.3, -2.0])
@pytest.mark.parametrize("lr", [0.5, 0.25])
def test_certified_truncation_bound_is_the_stated_formula(theta0, lr):
    """In 1-D E1, ‖P_n‖ = c^n: the truncation bound is exactly c^n G / (1 − c) (up to upward rounding)."""
    maps = ct.two_point_quadratic().sgd_maps(lr)
    c = 1.0 - lr
    res = ct.backward_fixed_point(maps, theta0=[theta0], rng=7, tol=1e-8)
    G = max(abs(maps.A[i, 0, 0] * theta0 + maps.b[i, 0] - theta0) for i in range(2))
    assert res.converged and res.bound_kind == "certified"
    assert res.truncation_bound == pytest.approx(c**res.n_steps * G / (1.0 - c), rel=1e-12, abs=0)
    assert res.error_bound >= res.truncation_bound
    # and the bound holds: the limit read off the digits of the batch sequence
    idx = ct.sample_batches(2, res.n_steps + 200, rng=7)[0]
    eps = np.where(idx == 0, 1.0, -1.0)
    limit = lr * np.sum(c ** np.arange(idx.size) * eps)
    assert abs(res.x[0] - limit) <= res.error_bound


@pytest.mark.parametrize("seed", [0, 1, 4])
def test_default_start_of_the_samplers_is_the_stationary_mean(seed):
    """The samplers start at μ = (I − Ā)^{-1} b̄: the same vector as the exact moments' mean."""
    from contraction.theory.moments import stationary_mean

    maps = _family(seed)
    Abar, bbar = maps.mean_map()
    mu = stationary_mean(maps)
    np.testing.assert_allclose(mu, Abar @ mu + bbar, rtol=1e-12, atol=1e-13)  # the fixed point of the mean map
    np.testing.assert_allclose(mu, ct.stationary_moments(maps).mean, rtol=1e-12, atol=1e-13)
