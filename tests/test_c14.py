"""C14: the exact covariance against the Ornstein–Uhlenbeck approximation; the check fails on wrong ingredients."""

import types

import numpy as np
import pytest
import scipy.linalg

import contraction as ct
from contraction.core.regression_data import load_diabetes_regression
from contraction.theory.ou import (
    OUCovariance,
    batch_gradient_covariance,
    fluctuation_dissipation,
    fluctuation_dissipation_exact,
    mean_square_threshold,
    ou_covariance,
)
from proofs_checks import c14_ou_approximation


def ou_doubled(model, lr):
    """The OU covariance with its coefficient off by a factor 2 (ĤΣ + ΣĤ = 2 h C_b)."""
    right = ou_covariance(model, lr)
    return OUCovariance(2.0 * right.cov, right.mean, right.noise, right.lr, right.residual)


def ou_near_miss(model, lr):
    """The OU covariance 10 % too large."""
    right = ou_covariance(model, lr)
    return OUCovariance(1.1 * right.cov, right.mean, right.noise, right.lr, right.residual)


def moments_without_fourth_moment(maps):
    """The covariance of S = 𝒜'(S) + Σ p c cᵀ with 𝒜'(S) = S − GS − SGᵀ: the h² Σ p H S H part dropped."""
    dense = maps.to_dense() if hasattr(maps, "to_dense") else maps
    Abar, bbar = dense.mean_map()
    G = np.eye(dense.dim) - Abar
    mu = np.linalg.solve(G, bbar)
    c = dense.b + dense.A @ mu - mu
    C = (c * dense.probs[:, None]).T @ c
    cov = scipy.linalg.solve_continuous_lyapunov(G, C)
    return types.SimpleNamespace(mean=mu, cov=0.5 * (cov + cov.T), iterations=0)


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes_regression()
    return ct.LinearRegressionModel(X, y, batch_size=2)


def test_c14_passes_quick():
    res = c14_ou_approximation.check(quick=True)
    assert res.passed, res.details["extra_conditions"]
    assert abs(res.numerical - 1.0) <= c14_ou_approximation.BAND


@pytest.mark.parametrize("ingredient", [
    {"ou": ou_doubled},
    {"ou": ou_near_miss},
    {"moments": moments_without_fourth_moment},
], ids=["ou_coefficient_x2", "ou_x1.1", "fourth_moment_dropped"])
def test_c14_fails_with_a_wrong_ingredient(ingredient):
    res = c14_ou_approximation.check(quick=True, **ingredient)
    assert not res.passed


def test_the_dropped_fourth_moment_is_the_ou_covariance(diabetes):
    """The wrong ingredient is exactly Σ_OU: the claim is about the term the approximation drops."""
    h = 0.3 * mean_square_threshold(diabetes)
    wrong = moments_without_fourth_moment(diabetes.sgd_maps(h)).cov
    np.testing.assert_allclose(wrong, ou_covariance(diabetes, h).cov, rtol=1e-9, atol=1e-14)


def test_ou_covariance_solves_its_lyapunov_equation(diabetes):
    h = 0.05
    ou = ou_covariance(diabetes, h)
    H = diabetes.mean_hessian()
    C = batch_gradient_covariance(diabetes)
    np.testing.assert_allclose(H @ ou.cov + ou.cov @ H, h * C, atol=1e-13 * np.abs(h * C).max())
    assert ou.residual < 1e-12
    np.testing.assert_allclose(ou.cov, scipy.linalg.solve_continuous_lyapunov(H, h * C), rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(ou.mean, diabetes.minimizer())


def test_exact_covariance_is_ou_plus_order_h_squared(diabetes):
    """Σ − Σ_OU = h 𝓛^{-1}(𝓗(Σ)) exactly: the difference over h² tends to 𝓛^{-1}𝓗(Σ_OU(1))."""
    H = diabetes.mean_hessian()
    hess = diabetes.hessians
    ratios = []
    for h in (1e-4, 2e-4):
        exact = ct.stationary_moments(diabetes.sgd_maps(h)).cov
        ratios.append((exact - ou_covariance(diabetes, h).cov) / h**2)
    unit = ou_covariance(diabetes, 1.0).cov
    second = scipy.linalg.solve_continuous_lyapunov(H, np.einsum("mij,jk,mkl->il", hess, unit, hess) / len(hess))
    np.testing.assert_allclose(ratios[0], second, rtol=2e-3, atol=2e-3 * np.abs(second).max())
    np.testing.assert_allclose(ratios[1], second, rtol=4e-3, atol=4e-3 * np.abs(second).max())


def test_batch_gradient_covariance_of_iid_rows_is_the_per_example_one_over_b():
    """Mandt et al.'s (ε/S)·BBᵀ: batches of B i.i.d. rows have 1/B the per-example gradient covariance."""
    rng = np.random.default_rng(0)
    n, d, B = 40000, 3, 8
    X = rng.normal(size=(n, d))
    y = X @ np.array([1.0, -1.0, 0.5]) + rng.normal(size=n)
    per_example = batch_gradient_covariance(ct.LinearRegressionModel(X, y, batch_size=1))
    batched = batch_gradient_covariance(ct.LinearRegressionModel(X, y, batch_size=B))
    np.testing.assert_allclose(batched * B, per_example, rtol=0.08, atol=0.03)


def test_mean_square_threshold_agrees_with_the_root_search(diabetes):
    assert mean_square_threshold(diabetes) == pytest.approx(ct.max_stable_lr(diabetes).mean_square, rel=1e-8)
    model = ct.QuadraticModel(np.stack([np.diag([1.0, 3.0]), np.array([[2.0, 0.5], [0.5, 1.0]])]),
                              [[1.0, 0.0], [0.0, 1.0]])
    assert mean_square_threshold(model) == pytest.approx(ct.max_stable_lr(model).mean_square, rel=1e-8)


def test_mean_square_threshold_is_where_the_covariance_is_refused(diabetes):
    h = mean_square_threshold(diabetes)
    assert np.isfinite(ct.stationary_moments(diabetes.sgd_maps(0.999 * h)).cov).all()
    with pytest.raises(ct.StationaryLawError, match="infinite"):
        ct.stationary_moments(diabetes.sgd_maps(1.001 * h))
    assert np.isfinite(ou_covariance(diabetes, 1.001 * h).cov).all()


def test_yaida_identity_is_exact_for_the_exact_moments_and_not_for_ou(diabetes):
    h = 0.5 * mean_square_threshold(diabetes)
    mom = ct.stationary_moments(diabetes.sgd_maps(h))
    fd = fluctuation_dissipation_exact(diabetes, h, mom.mean, mom.cov)
    assert abs(fd.difference) < 1e-12 * fd.lhs and fd.n_samples == 0 and fd.zscore is None
    ou = ou_covariance(diabetes, h)
    fd_ou = fluctuation_dissipation_exact(diabetes, h, ou.mean, ou.cov)
    Q = np.einsum("mij,mjk->ik", diabetes.hessians, diabetes.hessians) / diabetes.n_batches
    assert fd_ou.difference == pytest.approx(-0.5 * h * np.sum(Q * ou.cov), rel=1e-9)


def test_yaida_sampled_identity_rejects_a_wrong_law():
    """Samples drawn from the OU Gaussian law fail the identity: the test has power at this size."""
    X, y = load_diabetes_regression()
    model = ct.LinearRegressionModel(X[:, :3], y, batch_size=1)
    h = 0.5 * mean_square_threshold(model)
    ou = ou_covariance(model, h)
    samples = np.random.default_rng(5).multivariate_normal(ou.mean, ou.cov, size=20000)
    assert abs(fluctuation_dissipation(model, h, samples).zscore) > 10


@pytest.mark.parametrize("call, match", [
    (lambda m: ou_covariance(m, -1.0), "lr"),
    (lambda m: ou_covariance("model", 0.1), "model"),
    (lambda m: fluctuation_dissipation(m, 0.1, np.zeros((5, 3))), "samples"),
    (lambda m: fluctuation_dissipation(m, 0.1, np.zeros((1, 10))), "samples"),
    (lambda m: fluctuation_dissipation_exact(m, 0.1, np.zeros(3), np.eye(10)), "mean"),
    (lambda m: fluctuation_dissipation_exact(m, 0.1, np.zeros(10), np.eye(3)), "cov"),
    (lambda m: mean_square_threshold(m.sgd_maps(0.1)), "model"),
])
def test_ou_functions_name_their_bad_arguments(diabetes, call, match):
    with pytest.raises((ValueError, TypeError), match=f"^{match}:"):
        call(diabetes)


def test_singular_hessian_ou_is_zero_on_its_kernel_and_the_threshold_is_zero():
    """Collinear columns: the noise X_iᵀ(X_i θ* − y_i)/B never leaves the row space, Σ_OU vanishes off it."""
    X = np.array([[1.0, 1.0], [2.0, 2.0], [1.0, 1.0], [-1.0, -1.0]])
    model = ct.LinearRegressionModel(X, np.array([1.0, 0.0, -1.0, 2.0]))
    cov = ou_covariance(model, 0.1).cov
    kernel = np.array([1.0, -1.0]) / np.sqrt(2)
    assert abs(kernel @ cov @ kernel) < 1e-15 and np.trace(cov) > 0
    assert mean_square_threshold(model) == 0.0
