"""Certified means certified: the error bound covers every error of the returned number, rounding included.

The reference limits are computed here in extended precision (``mpmath``, a
dependency of sympy) over the same batch sequence, extended far enough that
its own truncation is below 1e-30: the *actual* error of what
:func:`contraction.backward_fixed_point` returns is then known to about
1e-30 and must never exceed the returned bound.
"""

import math
import warnings

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import contraction as ct
from contraction.theory.fixed_point import backward_limits

DIGITS = 40
U = 2.0**-53


def _exact_backward(maps, theta0, seq):
    """``T_{ξ_1} ∘ … ∘ T_{ξ_N}(θ_0)`` in ``DIGITS``-digit arithmetic (maps and start taken exactly)."""
    with mpmath.workdps(DIGITS):
        d = maps.dim
        A = [[[mpmath.mpf(float(v)) for v in row] for row in a] for a in maps.A]
        b = [[mpmath.mpf(float(v)) for v in row] for row in maps.b]
        y = [mpmath.mpf(float(v)) for v in theta0]
        for k in seq[::-1]:
            Ak, bk = A[k], b[k]
            y = [mpmath.fsum(Ak[i][j] * y[j] for j in range(d)) + bk[i] for i in range(d)]
        return y


def _actual_error(maps, theta0, x, seq):
    with mpmath.workdps(DIGITS):
        ref = _exact_backward(maps, theta0, seq)
        return float(mpmath.sqrt(mpmath.fsum((r - mpmath.mpf(float(v))) ** 2 for r, v in zip(ref, x, strict=True))))


def _extended_sequence(maps, n_steps, rng, chain=0, n_chains=1):
    """Chain ``chain``'s batches (the sequence ``backward_limits`` used), extended until ``c^N G/(1 − c) < 1e-32``."""
    c = ct.contraction_constant(maps)
    extra = math.ceil(np.log(1e-32 / (10.0 + 10 * np.abs(maps.b).max())) / np.log(c)) + 10
    return ct.sample_batches(maps.n_maps, n_steps + extra, n_chains, probs=maps.probs, rng=rng)[chain]


@st.composite
def contractive_families(draw):
    """Strictly contractive affine maps (each ‖A_i‖₂ = c ∈ [0.2, 0.85]), offsets up to 10³, a start and a seed."""
    d = draw(st.integers(1, 4))
    m = draw(st.integers(2, 4))
    A = draw(hnp.arrays(np.float64, (m, d, d), elements=st.floats(-1, 1)))
    norms = np.linalg.norm(A, 2, axis=(1, 2))
    A = np.where((norms < 1e-3)[:, None, None], np.eye(d), A)
    c = draw(st.floats(0.2, 0.85))
    A = A * (c / np.linalg.norm(A, 2, axis=(1, 2)))[:, None, None]
    scale = 10.0 ** draw(st.integers(0, 3))
    b = scale * draw(hnp.arrays(np.float64, (m, d), elements=st.floats(-1, 1)))
    theta0 = draw(hnp.arrays(np.float64, d, elements=st.floats(-5, 5)))
    return ct.AffineMaps(A, b), theta0, draw(st.integers(0, 2**32 - 1))


@settings(max_examples=25)
@given(contractive_families())
def test_certified_bound_covers_the_actual_error(family):
    maps, theta0, seed = family
    for tol in (1e-10, 1e-13):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ct.NonConvergenceWarning)  # a tol below rounding is reported, not met
            res = ct.backward_fixed_point(maps, theta0, rng=seed, tol=tol)
        assert res.bound_kind == "certified"
        err = _actual_error(maps, theta0, res.x, _extended_sequence(maps, res.n_steps, seed))
        assert err <= res.error_bound + 1e-30, (tol, err, res.error_bound)
        assert res.error_bound >= U * np.abs(res.x).max()  # half an ulp of the answer, at least
        assert res.error_bound == pytest.approx(res.truncation_bound + res.rounding_bound, rel=1e-12)
        assert res.converged == (res.error_bound <= tol)
        if not res.converged:
            assert res.rounding_limited and "rounding limits the accuracy" in res.message


def test_many_chains_each_bound_covers_its_error():
    rng = np.random.default_rng(3)
    A = rng.normal(size=(3, 3, 3))
    A *= 0.75 / np.linalg.norm(A, 2, axis=(1, 2))[:, None, None]
    maps = ct.AffineMaps(A, 100 * rng.normal(size=(3, 3)))
    theta0 = np.array([1.0, -2.0, 0.5])
    res = backward_limits(maps, theta0, 12, rng=21, tol=1e-11)
    assert res.converged.all() and res.bound_kind == "certified"
    for i in range(12):
        seq = _extended_sequence(maps, int(res.n_steps[i]), 21, chain=i, n_chains=12)
        assert _actual_error(maps, theta0, res.x[i], seq) <= res.error_bound[i]


def test_tolerance_below_rounding_is_reported_not_claimed():
    maps = ct.AffineMaps([[[0.5]], [[0.5]]], [[1e8], [-1e8]])  # limits of order 1e8: an ulp is 1.5e-8
    with pytest.warns(ct.NonConvergenceWarning, match="rounding limits the accuracy to about"):
        res = ct.backward_fixed_point(maps, rng=4, tol=1e-10)
    assert not res.converged and res.rounding_limited and res.error_bound > 1e-10
    assert res.n_steps < 1000  # stops once more steps cannot help, instead of running to max_steps
    err = _actual_error(maps, [0.0], res.x, _extended_sequence(maps, res.n_steps, 4))
    assert err <= res.error_bound
    with pytest.raises(ct.StationaryLawError, match=r"^tol: rounding limits"):
        ct.stationary_samples(maps, 5, rng=4, tol=1e-10)
    assert ct.backward_fixed_point(maps, rng=4, tol=1e-6).converged  # reachable tolerances still are


def test_heavy_tailed_limit_is_not_claimed_below_the_spacing_of_doubles():
    # E3 at h = 2.3: γ < 0 but heavy tails; this sequence's limit is about −4.7e13, where doubles are 0.0078 apart
    maps = ct.gaussian_least_squares_1d().sgd_maps(2.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ct.NonConvergenceWarning)
        res = ct.backward_fixed_point(maps, rng=0, tol=1e-10)
    x = res.x[0]
    assert abs(x) > 1e13
    assert res.error_bound >= np.spacing(x) / 2
    assert not res.converged and res.rounding_limited
    seq = ct.sample_batches(maps.n_maps, res.n_steps + 20000, probs=maps.probs, rng=0)[0]
    a, b = maps.A[:, 0, 0], maps.b[:, 0]
    with mpmath.workdps(DIGITS):
        y, prod = mpmath.mpf(0), mpmath.mpf(1)
        for k in seq[::-1]:
            y = mpmath.mpf(float(a[k])) * y + mpmath.mpf(float(b[k]))
        for k in seq:
            prod *= mpmath.mpf(float(a[k]))
        assert abs(prod) < 1e-40  # the reference's own truncation is negligible
        err = float(abs(y - mpmath.mpf(float(x))))
    assert 1e-3 < err <= res.error_bound  # the real error is far above the old bound (4e-11), and covered


def test_stationary_samples_bound_includes_rounding():
    maps = ct.two_point_quadratic().sgd_maps(0.5)
    res = ct.stationary_samples(maps, 200, rng=1, tol=1e-12)
    assert res.bound_kind == "certified" and 2 * U * 0.5 <= res.error_bound <= 1e-12
    lim = backward_limits(maps, ct.stationary_moments(maps).mean, 200, rng=1, tol=1e-12)
    assert np.array_equal(lim.x, res.samples) and np.all(lim.rounding_bound > 0)
    for i in (0, 7, 199):
        seq = _extended_sequence(maps, int(lim.n_steps[i]), 1, chain=i, n_chains=200)
        assert _actual_error(maps, [0.0], res.samples[i], seq) <= lim.error_bound[i]
