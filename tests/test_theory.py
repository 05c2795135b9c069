"""Diagnostics, certified backward limits and exact stationary moments."""

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given
from hypothesis import strategies as st
from strategies import affine_maps, quadratic_models

import contraction as ct


@given(quadratic_models(), st.floats(0.01, 1.0))
def test_contraction_constant_of_quadratic_is_max_of_eigen_formula(model, h):
    eig = np.linalg.eigvalsh(model.hessians)
    expected = np.max(np.maximum(np.abs(1 - h * eig.min(1)), np.abs(1 - h * eig.max(1))))
    assert np.isclose(ct.contraction_constant(model.sgd_maps(h)), expected)


def test_lyapunov_exponent_of_commuting_diagonal_maps():
    A = np.array([np.diag([0.5, 1.5]), np.diag([1.2, 0.4])])
    maps = ct.AffineMaps(A, np.zeros((2, 2)), probs=[0.3, 0.7])
    exact = max(0.3 * np.log(0.5) + 0.7 * np.log(1.2), 0.3 * np.log(1.5) + 0.7 * np.log(0.4))
    res = ct.lyapunov_exponent(maps, rng=0, n_steps=4000, n_chains=32)
    assert abs(res.exponent - exact) < 4 * res.stderr + 2e-3
    assert not res.exact and res.stderr > 0


def test_lyapunov_exponent_is_deterministic_given_rng():
    maps = ct.AffineMaps(np.random.default_rng(0).normal(size=(3, 2, 2)), np.zeros((3, 2)))
    assert ct.lyapunov_exponent(maps, rng=4) == ct.lyapunov_exponent(maps, rng=4)


@given(affine_maps(max_dim=3))
def test_mean_square_radius_dense_equals_operator(maps):
    dense = ct.mean_square_radius(maps)
    sparse = ct.mean_square_radius(maps, dense_max_dim=0) if maps.dim > 1 else dense
    assert np.isclose(dense, sparse, rtol=1e-6, atol=1e-9)


def test_mean_square_radius_large_d_without_forming_kronecker():
    rng = np.random.default_rng(1)
    d = 21  # just above the default dense_max_dim = 20: ARPACK on the operator
    A = rng.normal(size=(3, d, d)) / np.sqrt(d) * 0.6
    maps = ct.AffineMaps(A, np.zeros((3, d)))
    K = sum(np.kron(a, a) for a in A) / 3
    assert np.isclose(ct.mean_square_radius(maps), np.abs(np.linalg.eigvals(K)).max(), rtol=1e-7)


def test_tail_index_solves_moment_equation_and_is_two_at_threshold():
    e3 = ct.gaussian_least_squares_1d(500)
    alpha = ct.tail_index(e3.sgd_maps(2 / 3))
    assert abs(alpha - 2.0) < 1e-9
    maps = e3.sgd_maps(1.3)
    a = ct.tail_index(maps)
    assert np.isclose(maps.probs @ np.abs(maps.A[:, 0, 0]) ** a, 1.0)
    with pytest.raises(ValueError, match="bounded support"):  # α = ∞ is said, not returned as inf
        ct.tail_index(ct.two_point_quadratic().sgd_maps(0.5))
    with pytest.raises(ValueError, match="maps"):
        ct.tail_index(e3.sgd_maps(2.6))


def test_max_stable_lr_brackets_the_mean_square_threshold():
    model = ct.LinearRegressionModel(np.random.default_rng(2).normal(size=(10, 2)), np.ones(10))
    lr = ct.max_stable_lr(model)
    assert ct.mean_square_radius(model.sgd_maps(lr.mean_square * (1 - 1e-8))) < 1
    assert ct.mean_square_radius(model.sgd_maps(lr.mean_square * (1 + 1e-8))) > 1
    assert not lr.strict and lr.mean_square <= lr.mean


def test_max_stable_lr_edge_cases():
    # every map contracts the mean square up to the mean threshold: mean_square = mean
    quad = ct.QuadraticModel(np.stack([np.eye(2), np.eye(2)]), [[1.0, 0.0], [0.0, 1.0]])
    lr = ct.max_stable_lr(quad)
    assert lr.strict and lr.mean_square == lr.mean == lr.contraction == 2.0
    # a direction no batch ever sees is never contracted: no mean-square stable learning rate
    X = np.random.default_rng(3).normal(size=(6, 2)) * [1.0, 0.0]
    lr = ct.max_stable_lr(ct.LinearRegressionModel(X, np.ones(6)))
    assert lr.mean_square == 0.0 and not lr.strict


@given(affine_maps(contraction=0.9))
def test_stationary_moments_solve_their_equation(maps):
    mom = ct.stationary_moments(maps)
    Abar, bbar = maps.mean_map()
    np.testing.assert_allclose(mom.mean, Abar @ mom.mean + bbar, atol=1e-9)
    S = mom.second_moment
    rhs = sum(p * (A @ S @ A.T + np.outer(A @ mom.mean, b) + np.outer(b, A @ mom.mean) + np.outer(b, b))
              for p, A, b in zip(maps.probs, maps.A, maps.b, strict=True))
    np.testing.assert_allclose(S, rhs, atol=1e-8 * max(1, np.abs(S).max()))
    assert mom.residual < 1e-10
    np.testing.assert_allclose(mom.cov, mom.cov.T)
    assert np.linalg.eigvalsh(mom.cov).min() > -1e-9


def test_moments_agree_with_solve_discrete_lyapunov_for_shared_A():
    rng = np.random.default_rng(3)
    A = rng.normal(size=(3, 3))
    A *= 0.8 / np.abs(np.linalg.eigvals(A)).max()
    b = rng.normal(size=(5, 3))
    maps = ct.AffineMaps(np.broadcast_to(A, (5, 3, 3)), b)
    cov_b = np.cov(b.T, bias=True)
    expected = scipy.linalg.solve_discrete_lyapunov(A, cov_b)  # A X Aᵀ − X + Q = 0
    np.testing.assert_allclose(ct.stationary_moments(maps).cov, expected, atol=1e-12)


def test_direct_and_iterative_solvers_agree():
    rng = np.random.default_rng(4)
    d = 6
    G = rng.normal(size=(4, d, d))
    model = ct.QuadraticModel(G @ G.transpose(0, 2, 1) / d + 0.1 * np.eye(d), rng.normal(size=(4, d)))
    maps = model.sgd_maps(0.1)
    direct = ct.stationary_moments(maps, method="direct")
    iterative = ct.stationary_moments(maps, method="iterative", tol=1e-13)
    assert iterative.method == "iterative" and iterative.residual < 1e-10
    np.testing.assert_allclose(iterative.cov, direct.cov, atol=1e-10)


def test_stationary_moments_form_the_kronecker_matrix_once(monkeypatch):
    import contraction.theory.moments as moments

    calls = []
    real = moments.mean_square_matrix
    monkeypatch.setattr(moments, "mean_square_matrix", lambda maps: calls.append(1) or real(maps))
    maps = ct.mean_estimation(np.array([[0.0, 1.0], [2.0, 1.0], [1.0, 4.0]])).sgd_maps(0.3)
    for method, expected in (("auto", 1), ("direct", 1), ("iterative", 1)):
        calls.clear()
        ct.stationary_moments(maps, method=method)
        assert len(calls) == expected, method
    calls.clear()
    ct.stationary_moments(maps, method="iterative", dense_max_dim=1)  # radius by ARPACK, no matrix
    assert calls == []


def test_covariance_refusal_in_several_dimensions_needs_no_sampling():
    # diagonal maps: γ = max over the axes of Σ p log|a|, bracketed by the deterministic bounds
    heavy = ct.AffineMaps([np.diag([0.1, 0.2]), np.diag([1.8, 1.7])], np.ones((2, 2)))  # E log‖A‖ < 0, ρ > 1
    with pytest.raises(ct.StationaryLawError, match="heavy-tailed"):
        ct.stationary_moments(heavy)
    expanding = ct.AffineMaps([np.diag([2.0, 3.0]), np.diag([1.5, 1.2])], np.ones((2, 2)))
    with pytest.raises(ct.StationaryLawError, match="no stationary law"):
        ct.stationary_moments(expanding)
    # γ = ½ log 1.5 > 0, but E log‖A‖ > 0 > E log|det A| / 2: the bounds do not decide
    mixed = ct.AffineMaps([np.diag([0.1, 3.0]), np.diag([0.1, 0.5])], np.ones((2, 2)))
    with pytest.raises(ct.StationaryLawError, match="estimate it with lyapunov_exponent"):
        ct.stationary_moments(mixed)


def test_covariance_refused_with_reason():
    e3 = ct.gaussian_least_squares_1d(500)
    with pytest.raises(ct.StationaryLawError, match="heavy-tailed"):
        ct.stationary_moments(e3.sgd_maps(2 / 3))
    with pytest.raises(ct.StationaryLawError, match="no stationary law"):
        ct.stationary_moments(e3.sgd_maps(2.6))
    assert np.isfinite(ct.stationary_moments(e3.sgd_maps(0.66)).cov).all()


def test_common_fixed_point_gives_point_mass_even_when_not_mean_square_stable():
    X = np.random.default_rng(5).normal(size=(6, 2))
    model = ct.LinearRegressionModel(X, X @ [1.0, -2.0])
    mom = ct.stationary_moments(model.sgd_maps(0.3))
    np.testing.assert_allclose(mom.mean, [1.0, -2.0], atol=1e-10)
    assert mom.method == "common fixed point" and np.all(mom.cov == 0)
    assert abs(ct.stationary_mean_squared_increment(model.sgd_maps(0.3))) < 1e-12


def test_moments_at_step_tend_to_stationary_moments():
    maps = ct.QuadraticModel(np.stack([np.eye(2), 2 * np.eye(2)]), [[1.0, 0.0], [0.0, 1.0]]).sgd_maps(0.3)
    far = ct.moments_at_step(maps, [5.0, 5.0], 200)
    mom = ct.stationary_moments(maps)
    np.testing.assert_allclose(far.mean, mom.mean, atol=1e-12)
    np.testing.assert_allclose(far.cov, mom.cov, atol=1e-12)
    assert np.all(ct.moments_at_step(maps, [5.0, 5.0], 0).cov == 0)


def test_backward_distance_matches_enumeration():
    maps = ct.AffineMaps([[[0.5]], [[-0.3]]], [[1.0], [0.2]])
    n, theta0 = 3, np.array([2.0])
    # exact: E‖P_n(θ0 − Z)‖² = E[P_n²] (θ0 − μ)² + E[P_n²] Var Z, P_n = product of slopes
    EP2 = np.mean([0.25, 0.09]) ** n
    mom = ct.stationary_moments(maps)
    expected = EP2 * ((theta0[0] - mom.mean[0]) ** 2 + mom.cov[0, 0])
    assert np.isclose(ct.backward_distance_squared(maps, theta0, n)[-1], expected)


def test_backward_fixed_point_bound_and_reuse_of_sequence():
    rng = np.random.default_rng(6)
    A = rng.normal(size=(3, 2, 2))
    A *= 0.7 / np.linalg.norm(A, 2, axis=(1, 2))[:, None, None]
    maps = ct.AffineMaps(A, rng.normal(size=(3, 2)))
    loose = ct.backward_fixed_point(maps, rng=9, tol=1e-3)
    tight = ct.backward_fixed_point(maps, rng=9, tol=1e-13)
    assert loose.bound_kind == "certified" and tight.converged
    assert np.linalg.norm(loose.x - tight.x) <= loose.error_bound + tight.error_bound
    assert tight.n_steps > loose.n_steps


def test_backward_fixed_point_reports_non_convergence():
    maps = ct.AffineMaps([[[0.999]], [[0.999]]], [[1.0], [-1.0]])
    with pytest.warns(ct.NonConvergenceWarning, match="raise max_steps"):
        res = ct.backward_fixed_point(maps, rng=0, tol=1e-12, max_steps=64)
    assert not res.converged and res.error_bound > 1e-12


def test_backward_fixed_point_refuses_expanding_maps():
    maps = ct.AffineMaps([[[1.5]], [[1.2]]], [[1.0], [-1.0]])
    with pytest.raises(ValueError, match="Lyapunov"):
        ct.backward_fixed_point(maps, rng=0)


def test_stationary_samples_forward_and_backward():
    maps = ct.two_point_quadratic().sgd_maps(0.5)
    b = ct.stationary_samples(maps, 3000, rng=1)
    f = ct.stationary_samples(maps, 3000, method="forward", rng=2)
    assert b.method == "backward" and f.method == "forward" and b.error_bound <= 1e-10
    assert f.error_bound is None and f.bound_kind == "none"  # no bound, said as such (not a silent nan)
    assert ct.compare_laws(b.samples[:, 0], f.samples[:, 0]).pvalue > 1e-3
    again = ct.stationary_samples(maps, 3000, rng=1)
    assert np.array_equal(again.samples, b.samples)


def test_hill_estimator_refuses_ties_at_the_top():
    with pytest.raises(ValueError, match=r"^samples:"):  # log(x_(j)/x_(k)) = 0 for all j: no estimate, not inf
        ct.hill_estimator([1.0, 1.0, 1.0, 0.5], 2)
    assert np.isfinite(ct.hill_estimator([4.0, 2.0, 1.0, 0.5], 2))


def test_law_comparisons_detect_differences():
    rng = np.random.default_rng(7)
    u = rng.uniform(-1, 1, 4000)
    assert ct.ks_against_cdf(u, ct.two_point_cdf(0.5)).pvalue > 1e-3
    assert ct.ks_against_cdf(u, ct.two_point_cdf(2 / 3)).pvalue < 1e-6
    assert ct.compare_laws(u, u + 0.2).pvalue < 1e-6
    assert np.isclose(ct.wasserstein_1d(u, u + 0.1), 0.1)


# --- E3's stand-in for Gaussian features: what "exact" means, and the stated error ------------


def test_lyapunov_result_says_which_law_exact_refers_to():
    maps = ct.gaussian_least_squares_1d(500).sgd_maps(2.0)
    res = ct.lyapunov_exponent(maps)
    assert res.exact and "discrete" in res.method and res.method.startswith("exact")
    mc = ct.lyapunov_exponent(ct.AffineMaps(np.random.default_rng(0).normal(size=(2, 2, 2)), np.zeros((2, 2))),
                              rng=1, n_steps=50, n_chains=4)
    assert not mc.exact and mc.method.startswith("Monte Carlo")


@pytest.mark.parametrize("n_nodes", [500, 2000])
def test_e3_log_moments_within_the_stated_error_of_quadrature(n_nodes):
    from contraction.theory.examples import gaussian_feature_nodes

    nodes = gaussian_feature_nodes(n_nodes)
    e3 = ct.gaussian_least_squares_1d(n_nodes)
    grid = np.concatenate([np.arange(1, 26) * 0.1, [0.05, 2 / 3, 2.35, 2.42, 3.0, 5.0]])
    errors, bounds = [], []
    for h in grid:
        discrete = ct.lyapunov_exponent(e3.sgd_maps(h)).exponent  # exact for the discrete family
        errors.append(abs(discrete - ct.gaussian_lyapunov_1d(h)))
        bounds.append(nodes.log_moment_error(h))
    errors, bounds = np.array(errors), np.array(bounds)
    assert np.all(errors <= bounds)
    assert np.median(bounds) < 20 / n_nodes  # the statement is not vacuous
    if n_nodes == 2000:  # the former claim, "within about 1e-3", was false: 7.5e-3 at h = 2
        assert errors[19] > 5e-3 and np.sum(errors > 1e-3) >= 5


def test_gaussian_lyapunov_by_quadrature_matches_an_independent_integral():
    import mpmath

    for h in (0.3, 1.0, 2.0, 2.42, 3.0):
        with mpmath.workdps(25):
            f = lambda x, h=h: 2 * mpmath.log(abs(1 - h * x * x)) * mpmath.npdf(x)
            exact = mpmath.quad(f, [0, 1 / mpmath.sqrt(h), mpmath.inf])
        assert abs(ct.gaussian_lyapunov_1d(h) - float(exact)) < 1e-9


# --- sizes and tolerances refused before any work ------------------------------------------


def test_max_stable_lr_refuses_tolerances_that_never_terminate():
    x = np.array([-1.0, 1.0, 2.0])
    model = ct.LinearRegressionModel(x[:, None], x)
    for bad in (0.0, -1e-3, float("nan"), 1.0):
        with pytest.raises(ValueError, match=r"^rtol:"):
            ct.max_stable_lr(model, rtol=bad)
    assert ct.max_stable_lr(model, rtol=1e-3).mean_square == pytest.approx(2 / 3, rel=1e-3)


def test_huge_sizes_are_refused_before_allocating():
    maps = ct.two_point_quadratic().sgd_maps(0.5)
    with pytest.raises(ValueError, match=r"^n:"):
        ct.moments_at_step(maps, [0.0], 10**7)
    with pytest.raises(ValueError, match=r"^n_steps:"):
        ct.backward_distance_squared(maps, [0.0], 10**9)
    with pytest.raises(ValueError, match=r"^n_chains:"):
        ct.lyapunov_exponent(maps, n_chains=10**12)
    two_d = ct.AffineMaps(np.stack([0.5 * np.eye(2), 0.3 * np.eye(2)]), np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"^n_steps:"):
        ct.lyapunov_exponent(two_d, n_steps=10**9)
    with pytest.raises(ValueError, match=r"^n_chains:"):
        ct.lyapunov_exponent(two_d, n_steps=10**6, n_chains=64)  # 6.4e7 batch draws
    with pytest.raises(ValueError, match=r"^n_samples:"):
        ct.stationary_samples(maps, 10**7, rng=0)


def test_moments_at_large_n_are_cheap_once_the_recursion_settles():
    maps = ct.QuadraticModel(np.stack([np.eye(2), 2 * np.eye(2)]), [[1.0, 0.0], [0.0, 1.0]]).sgd_maps(0.3)
    far = ct.moments_at_step(maps, [5.0, 5.0], 10**6)  # stops at its floating-point fixed point
    mom = ct.stationary_moments(maps)
    np.testing.assert_allclose(far.cov, mom.cov, atol=1e-12)
    assert far.n == 10**6
    dist = ct.backward_distance_squared(maps, [5.0, 5.0], 10**5)
    assert dist.shape == (10**5 + 1,) and dist[-1] == dist[-2] < 1e-300


def test_compare_laws_refuses_an_empty_sample():
    x = np.random.default_rng(0).normal(size=50)
    with pytest.raises(ValueError, match=r"^y:"):
        ct.compare_laws(x, np.array([]))
    with pytest.raises(ValueError, match=r"^x:"):
        ct.compare_laws(np.array([]), x)
    with pytest.raises(ValueError, match=r"^y:"):
        ct.compare_laws(x.reshape(25, 2), np.empty((0, 2)), rng=0)


def test_a_mean_map_radius_rounded_below_one_with_singular_i_minus_abar_is_handled(monkeypatch):
    """ρ(Ā) = 1 exactly (a direction no map moves), computed a rounding below 1: ``I − Ā`` is singular.

    ``stationary_moments`` then answers as for ``ρ(Ā) = 1`` (here: the covariance is infinite), never
    with numpy's ``LinAlgError`` from solving ``(I − Ā) μ = b̄``.
    """
    import contraction.theory.moments as moments

    maps = ct.AffineMaps(np.array([np.diag([0.5, 1.0]), np.diag([0.75, 1.0])]), [[1.0, 0.0], [0.5, 0.0]])
    with pytest.raises(ct.StationaryLawError, match="infinite") as plain:
        ct.stationary_moments(maps)
    exact = moments.spectral_radius
    monkeypatch.setattr(moments, "spectral_radius", lambda M: 1 - 2**-53 if M.shape == (2, 2) else exact(M))
    assert moments.spectral_radius(maps.mean_map().A) < 1
    with pytest.raises(ct.StationaryLawError, match="infinite") as rounded:
        ct.stationary_moments(maps)
    assert str(rounded.value) == str(plain.value)
