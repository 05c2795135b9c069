"""Low-rank affine maps ``T_i(θ) = θ − s_i U_i V_iᵀ θ + b_i``: every engine agrees with the dense form.

Each engine is run on a low-rank family and on ``to_dense()`` of the same
family, and the two results must agree to 1e-12 relative to the size of the
output (hypothesis draws the families, the starts, the batch sequences and the
saved steps). Chain ``i`` must be the same bit for bit whatever the number of
chains, the saved steps, the grouping of the rows and the threads.
"""

import mpmath
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import floats

import contraction as ct
import contraction.core._kernels as kernels
import contraction.core.models as models
from contraction.core.maps import check_affine_maps
from contraction.theory.diagnostics import lyapunov_bounds, mean_square_operator
from contraction.theory.fixed_point import backward_limits

RTOL = 1e-12


@st.composite
def low_rank_maps(draw, max_dim=6, max_rank=4, max_maps=4):
    """A family with ``‖s_i U_i V_iᵀ‖₂ = t_i`` drawn in (0, 1.9] (symmetric) or (0, 0.6] (general)."""
    d = draw(st.integers(1, max_dim))
    r = draw(st.integers(1, max_rank))
    m = draw(st.integers(1, max_maps))
    V = draw(hnp.arrays(np.float64, (m, d, r), elements=floats))
    symmetric = draw(st.booleans())
    U = V if symmetric else draw(hnp.arrays(np.float64, (m, d, r), elements=floats))
    t = draw(hnp.arrays(np.float64, m, elements=st.floats(0.05, 1.9 if symmetric else 0.6)))
    size = np.linalg.norm(np.swapaxes(U, 1, 2), 2, axis=(1, 2)) * np.linalg.norm(V, 2, axis=(1, 2))
    b = draw(hnp.arrays(np.float64, (m, d), elements=floats))
    w = draw(hnp.arrays(np.float64, m, elements=st.floats(0.1, 1.0)))
    return ct.LowRankAffineMaps(U, V, b, probs=w / w.sum(), scale=t / np.maximum(size, 1e-3))


@st.composite
def family_starts_sequences(draw, max_steps=30, max_chains=4):
    maps = draw(low_rank_maps())
    chains = draw(st.integers(1, max_chains))
    n = draw(st.integers(0, max_steps))
    idx = draw(hnp.arrays(np.int64, (chains, n), elements=st.integers(0, maps.n_maps - 1)))
    theta0 = draw(hnp.arrays(np.float64, (chains, maps.dim), elements=floats))
    chosen = draw(hnp.arrays(np.bool_, n + 1, elements=st.booleans()))
    chosen[n] |= not chosen.any()
    return maps, theta0, idx, np.flatnonzero(chosen)


def assert_close(low_rank, dense):
    scale = max(1.0, float(np.abs(dense).max()))
    np.testing.assert_allclose(low_rank, dense, rtol=RTOL, atol=RTOL * scale)


def random_family(m=5, d=12, r=3, seed=0, symmetric=True, t=0.9):
    rng = np.random.default_rng(seed)
    V = rng.normal(size=(m, d, r))
    U = V if symmetric else rng.normal(size=(m, d, r))
    size = np.linalg.norm(np.swapaxes(U, 1, 2), 2, axis=(1, 2)) * np.linalg.norm(V, 2, axis=(1, 2))
    return ct.LowRankAffineMaps(U, V, rng.normal(size=(m, d)), scale=t / size)


# --- every engine: the low-rank family and its dense form agree -------------------------------------------


@pytest.mark.parametrize("fn", [ct.forward_iterates, ct.backward_iterates], ids=lambda f: f.__name__)
@given(case=family_starts_sequences())
def test_iterates_equal_those_of_the_dense_form(fn, case):
    maps, theta0, idx, steps = case
    dense = maps.to_dense()
    full = fn(maps, theta0, idx)
    assert_close(full, fn(dense, theta0, idx))
    assert_close(fn(maps, theta0, idx, save_steps=steps), fn(dense, theta0, idx, save_steps=steps))
    assert np.array_equal(fn(maps, theta0, idx, save_steps=steps), full[:, steps])


@pytest.mark.parametrize("fn", [ct.windowed_backward_iterates, ct.sliding_backward_iterates],
                         ids=lambda f: f.__name__)
@given(case=family_starts_sequences(max_steps=20), window=st.integers(1, 6))
def test_windows_equal_those_of_the_dense_form(fn, case, window):
    maps, theta0, idx, steps = case
    low, dense = fn(maps, theta0, idx, window, save_steps=steps), fn(maps.to_dense(), theta0, idx, window,
                                                                    save_steps=steps)
    assert_close(low.iterates, dense.iterates)
    assert (low.gradient_evals, low.hvp_evals) == (dense.gradient_evals, dense.hvp_evals)


@given(maps=low_rank_maps(), data=st.data())
def test_maps_products_and_mean_equal_the_dense_form(maps, data):
    dense = maps.to_dense()
    x = data.draw(hnp.arrays(np.float64, (3, maps.dim), elements=floats))
    i = data.draw(hnp.arrays(np.int64, 3, elements=st.integers(0, maps.n_maps - 1)))
    assert_close(maps.apply(x, i), dense.apply(x, i))
    assert_close(maps.apply(x[:, None, :], np.arange(maps.n_maps)), dense.apply(x[:, None, :],
                                                                               np.arange(maps.n_maps)))
    word = data.draw(hnp.arrays(np.int64, (2, 5), elements=st.integers(0, maps.n_maps - 1)))
    for got, want in zip(maps.word(word), dense.word(word), strict=True):
        assert_close(got, want)
    for got, want in zip(maps.mean_map(), dense.mean_map(), strict=True):
        assert_close(got, want)
    S = data.draw(hnp.arrays(np.float64, (maps.dim, maps.dim), elements=floats)).ravel()
    assert_close(mean_square_operator(maps) @ S, mean_square_operator(dense) @ S)


@given(maps=low_rank_maps())
def test_norms_and_determinants_equal_those_of_the_dense_form(maps):
    dense = maps.to_dense()
    norms = np.linalg.norm(dense.A, 2, axis=(1, 2))
    np.testing.assert_allclose(ct.contraction_constant(maps), norms.max(), rtol=1e-12)
    if maps.rank < maps.dim:  # the identity on the complement of the span of U_i, V_i
        assert ct.contraction_constant(maps) >= 1.0
    np.testing.assert_allclose(np.exp(maps._log_abs_det()), np.abs(np.linalg.det(dense.A)), rtol=1e-9,
                               atol=1e-12 * max(1.0, float(norms.max())) ** maps.dim)
    np.testing.assert_allclose(lyapunov_bounds(maps).upper, lyapunov_bounds(dense).upper, rtol=1e-9, atol=1e-12)


@given(maps=low_rank_maps(max_dim=4))
def test_mean_square_radius_equals_that_of_the_dense_form(maps):
    assert ct.mean_square_radius(maps) == ct.mean_square_radius(maps.to_dense())
    if maps.dim > 1:
        np.testing.assert_allclose(ct.mean_square_radius(maps, dense_max_dim=0), ct.mean_square_radius(maps),
                                   rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("d", [1, 7])
def test_lyapunov_exponent_equals_that_of_the_dense_form(d):
    maps = random_family(m=3, d=d, r=2, seed=d, symmetric=False, t=0.5)
    ours, theirs = ct.lyapunov_exponent(maps, rng=3), ct.lyapunov_exponent(maps.to_dense(), rng=3)
    assert ours.exact == theirs.exact == (d == 1)
    np.testing.assert_allclose([ours.exponent, ours.stderr], [theirs.exponent, theirs.stderr], rtol=1e-10)


def test_backward_fixed_point_agrees_with_the_dense_form_within_both_bounds():
    maps = random_family(m=4, d=6, r=2, seed=1, t=1.2)
    ours = ct.backward_fixed_point(maps, rng=5, tol=1e-9)
    theirs = ct.backward_fixed_point(maps.to_dense(), rng=5, tol=1e-9)
    assert ours.converged and theirs.converged and ours.bound_kind == theirs.bound_kind == "estimate"
    assert np.abs(ours.x - theirs.x).max() <= ours.error_bound + theirs.error_bound


def test_full_rank_updates_get_the_certified_bound_of_the_dense_form():
    maps = random_family(m=3, d=3, r=3, seed=2, t=0.6)  # r >= d: ‖A_i‖₂ < 1 is possible
    ours = ct.backward_fixed_point(maps, rng=5, tol=1e-11)
    theirs = ct.backward_fixed_point(maps.to_dense(), rng=5, tol=1e-11)
    assert ours.bound_kind == theirs.bound_kind == "certified"
    assert np.array_equal(ours.x, theirs.x) and ours.error_bound == theirs.error_bound


def _exact_low_rank_backward(maps, theta0, seq, digits=40):
    """``T_{ξ_1} ∘ … ∘ T_{ξ_N}(θ_0)`` in ``digits``-digit arithmetic, the factors taken exactly."""
    with mpmath.workdps(digits):
        U = [[[mpmath.mpf(float(v)) for v in row] for row in u] for u in maps.U]
        V = [[[mpmath.mpf(float(v)) for v in row] for row in v] for v in maps.V]
        y = [mpmath.mpf(float(v)) for v in theta0]
        d, r = maps.dim, maps.rank
        for k in seq[::-1]:
            s = mpmath.mpf(float(maps.scale[k]))
            z = [mpmath.fsum(V[k][i][j] * y[i] for i in range(d)) for j in range(r)]
            y = [y[i] - s * mpmath.fsum(U[k][i][j] * z[j] for j in range(r)) + mpmath.mpf(float(maps.b[k][i]))
                 for i in range(d)]
        return np.array([float(v) for v in y]), y


def test_rounding_part_of_the_low_rank_bound_covers_the_actual_rounding_error():
    """The rounding bound of the low-rank products covers |x − θ̃_n| for the exact θ̃_n of the same n."""
    rng = np.random.default_rng(4)
    V = rng.normal(size=(3, 5, 2))
    U = V @ (np.eye(2) + 0.3 * rng.normal(size=(3, 2, 2)))  # A_i = I − s V_i M_i V_iᵀ, not symmetric
    maps = ct.LowRankAffineMaps(U, V, rng.normal(size=(3, 5)), scale=0.5 / np.linalg.norm(V, 2, axis=(1, 2)) ** 2)
    theta0 = np.linspace(-1.0, 2.0, 5)
    res = backward_limits(maps, theta0, 2, rng=9, tol=1e-12, max_steps=300)
    seqs = ct.sample_batches(maps.n_maps, int(res.n_steps.max()), n_chains=2, probs=maps.probs, rng=9)
    for c in range(2):
        _, exact = _exact_low_rank_backward(maps, theta0, seqs[c, :res.n_steps[c]])
        with mpmath.workdps(40):
            diff = [mpmath.mpf(float(x)) - e for x, e in zip(res.x[c], exact, strict=True)]
            err = float(mpmath.sqrt(mpmath.fsum(v * v for v in diff)))
        assert err <= res.rounding_bound[c] < 1e-10


def test_stationary_laws_of_small_families_agree_with_the_dense_form():
    maps = random_family(m=8, d=5, r=1, seed=3, t=1.0)
    dense = maps.to_dense()
    ours, theirs = ct.stationary_moments(maps), ct.stationary_moments(dense)
    np.testing.assert_allclose(ours.mean, theirs.mean, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ours.cov, theirs.cov, rtol=1e-6, atol=1e-8 * np.abs(theirs.cov).max())
    at = ct.moments_at_step(maps, np.zeros(5), 7)
    np.testing.assert_allclose(at.cov, ct.moments_at_step(dense, np.zeros(5), 7).cov, rtol=1e-10, atol=1e-12)
    samples = ct.stationary_samples(maps, 3, rng=1, tol=1e-8)
    np.testing.assert_allclose(samples.samples, ct.stationary_samples(dense, 3, rng=1, tol=1e-8).samples,
                               atol=1e-7)


def test_a_family_too_large_to_densify_is_refused_where_the_matrices_are_needed():
    maps = ct.LowRankAffineMaps(np.ones((2, 20000, 1)), np.ones((2, 20000, 1)), np.zeros((2, 20000)), scale=1e-5)
    for call in (maps.to_dense, lambda: check_affine_maps(maps), lambda: maps.A):
        with pytest.raises(ValueError, match=r"^maps: expected the dense linear parts .* at most 1 GiB"):
            call()
    assert ct.contraction_constant(maps) == 1.0  # the norm needs no dense matrix
    assert ct.forward_iterates(maps, np.ones(20000), [0, 1]).shape == (1, 3, 20000)


# --- chain i is the same bit for bit --------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [ct.forward_iterates, ct.backward_iterates], ids=lambda f: f.__name__)
@pytest.mark.parametrize("n_steps", [5, 40])  # backward: recomputation, then the scan
def test_chain_alone_equals_chain_among_many(fn, n_steps):
    maps = random_family(m=7, d=64, r=4, seed=5)  # 600 chains x 4 x 64 > 2^17: rows grouped by map
    rng = np.random.default_rng(6)
    n_chains = 600 if fn is ct.forward_iterates else 8
    idx = ct.sample_batches(maps.n_maps, n_steps, n_chains, rng=7)
    theta0 = rng.normal(size=(n_chains, 64))
    full = fn(maps, theta0, idx)
    for c in (0, n_chains // 2, n_chains - 1):
        assert np.array_equal(full[c], fn(maps, theta0[c], idx[c])[0])
    assert np.array_equal(fn(maps, theta0[:3], idx[:3], save_steps=[1, n_steps]), full[:3, [1, n_steps]])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(kernels, "_THREAD_MIN_WORK", 1)
        assert kernels.work_workers(n_chains, 1) >= 2 or (kernels.os.cpu_count() or 1) == 1
        assert np.array_equal(fn(maps, theta0, idx), full)


@pytest.mark.parametrize("m", [3, 200])  # the offsets subtracted per map, or gathered for many small groups
def test_a_point_is_mapped_alike_grouped_by_map_or_gathered(m):
    maps = random_family(m=m, d=40, r=2, seed=8)
    x = np.random.default_rng(9).normal(size=(2000, 40))  # 2000 x 2 x 40 > 2^17: grouped
    index = np.arange(2000) % m
    many = maps.step(x, index)
    assert all(np.array_equal(many[k], maps.step(x[k:k + 1], index[k:k + 1])[0]) for k in (0, 1, 1000, 1999))


# --- least squares ----------------------------------------------------------------------------------------------


def _regression(n=48, d=10, batch_size=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * np.linspace(1.0, 0.2, d)
    return ct.LinearRegressionModel(X, X @ rng.normal(size=d) + 0.1 * rng.normal(size=n), batch_size=batch_size)


@pytest.mark.parametrize("d, batch_size, low_rank", [(10, 3, True), (10, 4, True), (10, 5, False), (3, 1, True),
                                                     (2, 1, False), (4, 4, False)])
def test_sgd_maps_are_low_rank_when_the_batch_is_below_half_the_dimension(d, batch_size, low_rank):
    model = _regression(n=8 * batch_size, d=d, batch_size=batch_size)
    maps = model.sgd_maps(0.05)
    assert isinstance(maps, ct.LowRankAffineMaps) == low_rank
    if low_rank:
        assert maps.rank == batch_size and maps.U is maps.V and np.shares_memory(maps.V, model.X)
        assert not (maps.V.flags.writeable or maps.b.flags.writeable or maps.scale.flags.writeable)
        dense = maps.to_dense()
        np.testing.assert_allclose(dense.A, np.eye(d) - 0.05 * model.hessians, rtol=0, atol=1e-15)
        np.testing.assert_allclose(dense.b, 0.05 * model.linear_terms, rtol=0, atol=1e-15)


def test_sgd_maps_are_low_rank_whenever_the_dense_maps_would_not_fit(monkeypatch):
    model = _regression(n=40, d=6, batch_size=4)  # 2 B >= d: dense by default
    assert isinstance(model.sgd_maps(0.1), ct.AffineMaps)
    monkeypatch.setattr(models, "MAX_OUTPUT_BYTES", 10 * 6 * 6 * 8 - 1)  # m d² doubles just above the limit
    assert isinstance(model.sgd_maps(0.1), ct.LowRankAffineMaps)


def test_regression_model_forms_its_hessians_only_when_asked():
    model = _regression()
    maps = model.sgd_maps(0.1)
    rng = np.random.default_rng(1)
    theta, v = rng.normal(size=(2, 4, 10))
    index = np.array([0, 3, 15, 7])
    model.gradient(theta, index), model.loss(theta), model.hvp(theta, v, index), model.minimizer()
    ct.max_stable_lr(model)
    assert "hessians" not in vars(model)  # nothing above formed the (m, d, d) Hessians
    H, r = model.hessians, model.linear_terms
    np.testing.assert_allclose(model.gradient(theta, index), np.einsum("kij,kj->ki", H[index], theta) - r[index],
                               atol=1e-13)
    np.testing.assert_allclose(model.hvp(theta, v, index), np.einsum("kij,kj->ki", H[index], v), atol=1e-13)
    np.testing.assert_allclose(model.mean_hessian(), np.tensordot(model.probs, H, axes=1), atol=1e-14)
    np.testing.assert_allclose(model.hessian_eigenvalues(), np.linalg.eigvalsh(H), atol=1e-13)
    np.testing.assert_allclose(maps.apply(theta, index), theta - 0.1 * model.gradient(theta, index), atol=1e-14)
    rows = model.X.reshape(16, 3, 10)[index]
    res = np.einsum("kbd,kd->kb", rows, theta) - model.y.reshape(16, 3)[index]
    np.testing.assert_allclose(model.batch_loss(theta, index), 0.5 * np.sum(res**2, axis=1) / 3)


def test_max_stable_lr_of_a_low_rank_model_equals_that_of_its_dense_hessians():
    model = _regression(n=36, d=8, batch_size=2)
    assert isinstance(model.sgd_maps(0.1), ct.LowRankAffineMaps)
    ours = ct.max_stable_lr(model)
    theirs = ct.max_stable_lr(ct.QuadraticModel(model.hessians, np.zeros((18, 8))))
    np.testing.assert_allclose([ours.contraction, ours.mean, ours.mean_square],
                               [theirs.contraction, theirs.mean, theirs.mean_square], rtol=1e-9)
    assert ours.strict == theirs.strict is False


def test_regression_iterates_are_gradient_steps():
    model = _regression(n=60, d=12, batch_size=2)
    idx = ct.sample_batches(model.n_batches, 25, n_chains=3, rng=2)
    for fn in (ct.forward_iterates, ct.backward_iterates):
        np.testing.assert_allclose(fn(model.sgd_maps(0.05), np.zeros(12), idx),
                                   fn(model.gradient_maps(0.05), np.zeros(12), idx), atol=1e-12)


# --- the family as a value -----------------------------------------------------------------------------------


def test_family_is_read_only_and_stores_a_symmetric_factor_once():
    V = np.ones((2, 3, 1))
    maps = ct.LowRankAffineMaps(V, V, np.zeros((2, 3)), scale=[0.1, 0.2])
    V[:] = 5.0  # a copy was taken
    assert maps.U is maps.V and maps.symmetric and np.all(maps.V == 1.0)
    for arr in (maps.U, maps.V, maps.b, maps.probs, maps.scale):
        with pytest.raises(ValueError, match="read-only"):
            arr[...] = 0.0
    other = ct.LowRankAffineMaps(V.copy(), V, np.zeros((2, 3)))
    assert not other.symmetric and np.array_equal(other.scale, [1.0, 1.0])
    assert repr(maps) == "LowRankAffineMaps(n_maps=2, dim=3, rank=1)"
    assert "A" not in vars(maps)  # the dense linear parts only when asked for
    assert np.array_equal(maps.A, maps.to_dense().A) and not maps.A.flags.writeable


@pytest.mark.parametrize("kwargs, name", [
    ({"U": np.ones((2, 3, 2))}, "U"),
    ({"V": np.ones((2, 3))}, "V"),
    ({"V": np.ones((2, 3, 0)), "U": np.ones((2, 3, 0))}, "V"),
    ({"b": np.ones((2, 4))}, "b"),
    ({"b": np.full((2, 3), np.nan)}, "b"),
    ({"probs": [1.0, 1.0]}, "probs"),
    ({"scale": [1.0, 2.0, 3.0]}, "scale"),
    ({"scale": np.inf}, "scale"),
    ({"scale": "big"}, "scale"),
])
def test_bad_arguments_are_refused_naming_them(kwargs, name):
    args = {"U": np.ones((2, 3, 1)), "V": np.ones((2, 3, 1)), "b": np.zeros((2, 3)), **kwargs}
    with pytest.raises((ValueError, TypeError), match=f"^{name}: expected"):
        ct.LowRankAffineMaps(**args)


def test_apply_checks_its_arguments_and_reports_overflow():
    maps = ct.LowRankAffineMaps(np.ones((1, 2, 1)), np.ones((1, 2, 1)), np.zeros((1, 2)), scale=-1e300)
    with pytest.raises(ValueError, match=r"^theta: expected shape"):
        maps.apply([1.0, 2.0, 3.0], 0)
    with pytest.raises(ValueError, match=r"^index: expected batch indices"):
        maps.apply([1.0, 2.0], 1)
    with pytest.raises(ct.DivergenceError, match=r"^theta: "):
        maps.apply([1e10, 1e10], 0)
    with pytest.raises(ct.DivergenceError, match="overflowed"):
        ct.forward_iterates(maps, [1.0, 1.0], [0, 0, 0])
    with pytest.raises(TypeError, match=r"^maps: expected AffineMaps or LowRankAffineMaps"):
        ct.contraction_constant("maps")


def test_backward_limits_of_average_contraction_agree_with_the_dense_form():
    # Non-expansive rank-one maps (c = 1, γ < 0): the rounding estimate of the low-rank products must not
    # turn negative (it once gave nan and refused as "overflowed" where the dense form converges).
    from contraction.theory.fixed_point import backward_limits

    rng = np.random.default_rng(9)
    model = ct.LinearRegressionModel(rng.normal(size=(8, 3)), rng.normal(size=8), batch_size=1)
    h = 1.0 / np.max(np.sum(model.X**2, axis=1))
    low = model.sgd_maps(h)
    assert isinstance(low, ct.LowRankAffineMaps)
    r_low = backward_limits(low, np.zeros(3), 20, rng=5, tol=1e-9)
    r_dense = backward_limits(low.to_dense(), np.zeros(3), 20, rng=5, tol=1e-9)
    assert r_low.converged.all() and r_dense.converged.all()
    np.testing.assert_array_equal(r_low.n_steps, r_dense.n_steps)
    np.testing.assert_allclose(r_low.x, r_dense.x, rtol=0, atol=1e-12)
