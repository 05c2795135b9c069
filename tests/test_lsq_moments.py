"""Least squares at scale: matrix-free stationary moments of low-rank maps, and the regression data sets."""

import sys

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import contraction as ct
from contraction.core import regression_data as rd
from contraction.core.lowrank import LowRankAffineMaps
from contraction.theory.ou import mean_square_threshold

floats = st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False, allow_subnormal=False)


@st.composite
def symmetric_low_rank_maps(draw, max_dim=6):
    """``A_i = I − s V_i V_iᵀ`` with ``s ≤ 1.5 / max ‖V_i‖²``: every map non-expansive, ``m r >= 2 d`` rows."""
    d = draw(st.integers(1, max_dim))
    r = draw(st.integers(1, 2))
    m = draw(st.integers(-(-2 * d // r), 2 * d + 2))
    V = draw(hnp.arrays(np.float64, (m, d, r), elements=floats))
    V = V + 0.05 * np.eye(d, r)[None]  # never all zero
    b = draw(hnp.arrays(np.float64, (m, d), elements=floats))
    top = float(np.linalg.norm(V, 2, axis=(1, 2)).max() ** 2)
    c = draw(st.floats(0.05, 1.5))
    w = draw(hnp.arrays(np.float64, m, elements=st.floats(0.1, 1.0)))
    return LowRankAffineMaps(V, V, b, w / w.sum(), scale=c / top)


@st.composite
def general_low_rank_maps(draw, max_dim=5):
    """``A_i = I − s U_i V_iᵀ`` with ``U_i`` a perturbation of ``V_i`` (not symmetric)."""
    d = draw(st.integers(1, max_dim))
    m = draw(st.integers(2 * d, 2 * d + 3))
    V = draw(hnp.arrays(np.float64, (m, d, 1), elements=floats)) + 0.05 * np.eye(d, 1)[None]
    W = draw(hnp.arrays(np.float64, (m, d, 1), elements=floats))
    U = V + draw(st.floats(0.01, 0.3)) * W
    b = draw(hnp.arrays(np.float64, (m, d), elements=floats))
    top = float(np.linalg.norm(V, 2, axis=(1, 2)).max() ** 2)
    return LowRankAffineMaps(U, V, b, scale=draw(st.floats(0.05, 1.0)) / top)


def _relative(a, b):
    return float(np.abs(a - b).max() / max(1.0, np.abs(b).max()))


def _dense_or_none(maps):
    try:
        return ct.stationary_moments(maps.to_dense())
    except ct.StationaryLawError:
        return None


@given(symmetric_low_rank_maps())
def test_matrix_free_moments_agree_with_the_dense_path(maps):
    dense = _dense_or_none(maps)
    assume(dense is not None and dense.mean_square_radius < 1 - 1e-6)
    mom = ct.stationary_moments(maps, dense_max_dim=0)  # matrix-free decision, bounds instead of the radius
    assert mom.method in ("matrix-free cg", "common fixed point")
    assert _relative(mom.mean, dense.mean) < 1e-10
    assert _relative(mom.cov, dense.cov) < 1e-10
    assert mom.covariance_residual <= 1e-8 and mom.residual <= 1e-8
    if mom.radius_bounds is not None:
        lower, upper = mom.radius_bounds
        assert lower - 1e-9 <= dense.mean_square_radius <= upper + 1e-9


@given(general_low_rank_maps())
def test_matrix_free_gmres_agrees_with_the_dense_path(maps):
    dense = _dense_or_none(maps)
    assume(dense is not None and dense.reachable_dim == maps.dim and dense.mean_square_radius < 1 - 1e-6)
    mom = ct.stationary_moments(maps, dense_max_dim=0)
    assert mom.method == "matrix-free gmres"
    assert _relative(mom.cov, dense.cov) < 1e-10 and _relative(mom.mean, dense.mean) < 1e-10
    assert mom.covariance_residual <= 1e-8


@given(symmetric_low_rank_maps(max_dim=4), st.integers(0, 30))
def test_moments_at_step_agree_with_the_dense_path(maps, n):
    theta0 = np.linspace(-1.0, 2.0, maps.dim)
    low = ct.moments_at_step(maps, theta0, n)
    dense = ct.moments_at_step(maps.to_dense(), theta0, n)
    assert low.n == n
    assert _relative(low.mean, dense.mean) < 1e-10
    assert _relative(low.cov, dense.cov) < 1e-10 * max(1.0, float(np.abs(dense.mean).max()) ** 2)


def _regression(n=240, d=12, batch_size=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * np.linspace(0.5, 1.5, d)
    return ct.LinearRegressionModel(X, X @ rng.normal(size=d) + rng.normal(size=n), batch_size=batch_size)


def test_least_squares_moments_report_iterations_and_residuals():
    model = _regression()
    maps = model.sgd_maps(0.5 * mean_square_threshold(model))
    assert isinstance(maps, LowRankAffineMaps)
    mom = ct.stationary_moments(maps)
    dense = ct.stationary_moments(maps.to_dense(), method="direct")
    assert mom.method == "matrix-free cg" and 1 <= mom.iterations < 100
    assert mom.covariance_residual <= 1e-10 and mom.residual <= 1e-10
    np.testing.assert_allclose(mom.cov, dense.cov, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(mom.mean, model.minimizer(), rtol=1e-9)
    assert mom.mean_square_radius == pytest.approx(dense.mean_square_radius, rel=1e-9)  # d <= dense_max_dim
    assert ct.stationary_moments(maps, method="direct").method == "direct"  # the dense path on request


def test_matrix_free_path_never_forms_the_dense_maps(monkeypatch):
    model = _regression(d=30, batch_size=4)
    maps = model.sgd_maps(0.3 * mean_square_threshold(model))

    def refuse(self, name="maps"):
        raise AssertionError("the dense maps were formed")

    monkeypatch.setattr(LowRankAffineMaps, "to_dense", refuse)
    mom = ct.stationary_moments(maps)  # d = 30 > dense_max_dim: radius bounds, no dense radius
    lower, upper = mom.radius_bounds
    assert lower <= mom.mean_square_radius == upper < 1
    assert mom.covariance_residual <= 1e-10
    at = ct.moments_at_step(maps, np.zeros(30), 5)
    assert np.all(np.linalg.eigvalsh(at.cov) >= -1e-14)


@pytest.mark.parametrize("dense_max_dim", [20, 0], ids=["dense-decides", "matrix-free-decides"])
def test_covariance_refused_past_the_mean_square_threshold(dense_max_dim):
    model = _regression()
    h = mean_square_threshold(model)
    assert np.isfinite(ct.stationary_moments(model.sgd_maps(0.99 * h), dense_max_dim=dense_max_dim).cov).all()
    for factor in (1.01, 1.5, 3.0):
        with pytest.raises(ct.StationaryLawError, match=r"^maps: the stationary covariance is infinite"):
            ct.stationary_moments(model.sgd_maps(factor * h), dense_max_dim=dense_max_dim)


def test_refusals_say_why_on_the_whole_space():
    model = _regression()
    h = mean_square_threshold(model)
    with pytest.raises(ct.StationaryLawError, match=r"met a direction S|not positive"):
        ct.stationary_moments(model.sgd_maps(1.2 * h), dense_max_dim=0)
    mean_limit = 2 / np.linalg.eigvalsh(model.mean_hessian()).max()
    with pytest.raises(ct.StationaryLawError, match="mean map"):
        ct.stationary_moments(model.sgd_maps(1.01 * mean_limit), dense_max_dim=0)
    with pytest.raises(ct.StationaryLawError, match="infinite"):  # the dense path decides for small d
        ct.stationary_moments(model.sgd_maps(1.01 * mean_limit))


def test_general_family_refused_past_its_threshold():
    rng = np.random.default_rng(2)
    V = rng.normal(size=(12, 4, 1))
    U = V + 0.2 * rng.normal(size=(12, 4, 1))
    refused = 0
    for s in (0.05, 0.8, 2.0):
        maps = LowRankAffineMaps(U, V, rng.normal(size=(12, 4)), scale=s)
        dense = _dense_or_none(maps)
        try:
            low = ct.stationary_moments(maps, dense_max_dim=0)
        except ct.StationaryLawError:
            low = None
        assert (low is None) == (dense is None)
        refused += low is None
        if low is not None:
            assert _relative(low.cov, dense.cov) < 1e-10
    assert refused >= 1


def test_common_fixed_point_of_low_rank_maps_is_a_point_mass():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 6))
    model = ct.LinearRegressionModel(X, X @ np.arange(6.0), batch_size=2)  # interpolation: every map fixes w
    mom = ct.stationary_moments(model.sgd_maps(0.1))
    assert mom.method == "common fixed point" and np.all(mom.cov == 0)
    np.testing.assert_allclose(mom.mean, np.arange(6.0), atol=1e-10)


def test_moments_at_step_overflow_is_reported():
    model = _regression()
    maps = model.sgd_maps(4 / np.linalg.eigvalsh(model.mean_hessian()).max())
    with pytest.raises(ct.StationaryLawError, match=r"^n: the moments overflow"):
        ct.moments_at_step(maps, np.ones(12), 100000)


# --- data sets ------------------------------------------------------------------------------------------------


def _standardised(X, y):
    return (np.allclose(X.mean(axis=0), 0.0, atol=1e-10) and np.allclose(y.mean(), 0.0, atol=1e-10)
            and np.isclose(y.std(), 1.0))


def test_diabetes_and_digits_shapes_and_standardisation():
    X, y = rd.load_diabetes_regression()
    assert X.shape == (442, 10) and y.shape == (442,) and _standardised(X, y)
    assert np.allclose(X.std(axis=0), 1.0)
    X, y = rd.load_digits_regression()
    assert X.shape == (1797, 61) and _standardised(X, y) and np.allclose(X.std(axis=0), 1.0)
    X, y = rd.load_digits_regression(n_rows=1792)
    assert X.shape[0] == 1792 and ct.LinearRegressionModel(X, y, batch_size=64).n_batches == 28


@pytest.mark.parametrize("kind", ["relu", "fourier"])
def test_random_features_are_deterministic_given_rng(kind):
    X, y = rd.digits_random_features(300, kind=kind, rng=7)
    assert X.shape == (1797, 300) and _standardised(X, y) and np.allclose(X.std(axis=0), 1.0)
    assert np.array_equal(X, rd.digits_random_features(300, kind=kind, rng=7)[0])
    assert not np.array_equal(X, rd.digits_random_features(300, kind=kind, rng=8)[0])
    assert rd.digits_random_features(rd.MAX_RANDOM_FEATURES, kind=kind, n_rows=64, rng=0)[0].shape == (64, 2000)


def test_power_law_design_spectrum_and_determinism():
    X, y = rd.power_law_regression(20000, 16, exponent=1.5, rng=3)
    assert X.shape == (20000, 16) and y.shape == (20000,)
    assert np.isclose(np.mean(X * X), 1.0) and np.allclose(X.mean(axis=0), 0.0, atol=1e-12)
    ev = np.linalg.eigvalsh(X.T @ X / len(X))[::-1]
    slope = ct.loglog_slope(np.arange(1, 17), ev)
    assert abs(slope + 1.5) < 0.15  # λ_k ∝ k^{−1.5}
    assert np.array_equal(X, rd.power_law_regression(20000, 16, exponent=1.5, rng=3)[0])
    flat = rd.power_law_regression(20000, 16, exponent=0.0, rng=3)[0]
    ev0 = np.linalg.eigvalsh(flat.T @ flat / len(flat))
    assert ev0.max() / ev0.min() < 1.2


@pytest.mark.parametrize("call, match, error", [
    (lambda: rd.load_diabetes_regression(n_rows=1), "n_rows", ValueError),
    (lambda: rd.load_diabetes_regression(n_rows=443), "n_rows", ValueError),
    (lambda: rd.load_digits_regression(n_rows=2.5), "n_rows", TypeError),
    (lambda: rd.load_digits_regression(drop_constant=False), "n_rows", ValueError),
    (lambda: rd.load_digits_regression(drop_constant="yes"), "drop_constant", TypeError),
    (lambda: rd.digits_random_features(0), "n_features", ValueError),
    (lambda: rd.digits_random_features(2001), "n_features", ValueError),
    (lambda: rd.digits_random_features(10, kind="tanh"), "kind", ValueError),
    (lambda: rd.digits_random_features(10, rng="seed"), "rng", TypeError),
    (lambda: rd.power_law_regression(1, 4), "n_rows", ValueError),
    (lambda: rd.power_law_regression(10, 0), "n_features", ValueError),
    (lambda: rd.power_law_regression(10, 4, exponent=-1.0), "exponent", ValueError),
    (lambda: rd.power_law_regression(10, 4, noise=-0.5), "noise", ValueError),
    (lambda: rd.power_law_regression(10**6, 1000), "n_rows", ValueError),  # 8 GB refused before allocating
])
def test_data_functions_name_their_bad_arguments(call, match, error):
    with pytest.raises(error, match=f"^{match}:"):
        call()


def test_data_functions_say_to_install_the_data_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # import fails as if scikit-learn were missing
    for call in (rd.load_diabetes_regression, rd.load_digits_regression, lambda: rd.digits_random_features(8)):
        with pytest.raises(ImportError, match=r'contraction\[data\]'):
            call()
