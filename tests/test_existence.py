"""Existence of the stationary covariance, decided on the subspace that the noise reaches.

The covariance of ``π`` is finite when ``Σ p_i A_i ⊗ A_i`` is stable on the
smallest subspace ``V`` invariant under every ``A_i`` that contains the offsets
``c_i = A_i μ + b_i − μ`` (SPEC §5), not necessarily on the whole space. The
references here are independent of the solver: the closed form of diagonal
maps, and Monte Carlo over perfect backward samples.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import contraction as ct

# A₁ = diag(0.5, 0.1), A₂ = diag(0.3, 1.8), b = (±1, 0): ρ(Σ p A⊗A) = ½ (0.1² + 1.8²) = 1.625 on the
# second axis, which the noise never reaches; on the first, Var = E b² / (1 − E a²) = 1 / (1 − 0.17).
UNREACHED = ct.AffineMaps([np.diag([0.5, 0.1]), np.diag([0.3, 1.8])], [[1.0, 0.0], [-1.0, 0.0]])


def _full_space_residual(maps, mom):
    """Relative residual of SPEC §2's second-moment equation, computed here independently."""
    mu, S = mom.mean, mom.second_moment
    source = sum(p * (np.outer(A @ mu, b) + np.outer(b, A @ mu) + np.outer(b, b))
                 for p, A, b in zip(maps.probs, maps.A, maps.b, strict=True))
    rhs = sum(p * A @ S @ A.T for p, A in zip(maps.probs, maps.A, strict=True)) + source
    return np.abs(S - rhs).max() / max(np.abs(source).max(), 1e-300)


def _diagonal_covariance(a, b, p):
    """Closed form for diagonal maps ``θ_j ↦ a_ij θ_j + b_ij``: ``Σ_jk = Σ_i p_i c_ij c_ik / (1 − Σ_i p_i a_ij a_ik)``.

    Also returns which axes the noise reaches (some ``c_ij`` not a rounding error).
    """
    mu = (p @ b) / (1.0 - p @ a)
    c = a * mu + b - mu  # (m, d)
    reached = np.abs(c).max(axis=0) > 1e-8 * (np.abs(a * mu).max() + np.abs(b).max() + np.abs(mu).max())
    c = np.where(reached, c, 0.0)
    num = np.einsum("i,ij,ik->jk", p, c, c)
    den = 1.0 - np.einsum("i,ij,ik->jk", p, a, a)
    return mu, np.where(num == 0, 0.0, num / np.where(num == 0, 1.0, den)), reached


def test_unreached_unstable_direction_does_not_refuse_the_covariance():
    mom = ct.stationary_moments(UNREACHED)
    assert mom.mean_square_radius == pytest.approx(1.625)  # unstable on the whole space ...
    assert mom.reachable_dim == 1 and mom.reachable_radius == pytest.approx(0.17)  # ... stable where it matters
    np.testing.assert_allclose(mom.cov, [[1 / 0.83, 0.0], [0.0, 0.0]], rtol=1e-13, atol=1e-15)
    assert mom.cov[0, 0] == pytest.approx(1.2048192771084338, rel=1e-14)
    np.testing.assert_allclose(mom.mean, [0.0, 0.0], atol=1e-15)
    assert mom.residual < 1e-14 and _full_space_residual(UNREACHED, mom) < 1e-14


def test_iterative_solver_on_the_reachable_subspace_agrees():
    direct = ct.stationary_moments(UNREACHED, method="direct")
    iterative = ct.stationary_moments(UNREACHED, method="iterative", dense_max_dim=0)
    assert iterative.method == "iterative" and iterative.reachable_dim == 1
    np.testing.assert_allclose(iterative.cov, direct.cov, atol=1e-12)


def test_moments_that_depend_on_the_covariance_follow():
    inc = ct.stationary_mean_squared_increment(UNREACHED)
    # E‖θ' − θ‖² = Σ p_i E((a_i − 1) Z + b_i)² on the first axis, Z ~ (0, 1/0.83)
    expected = 0.5 * ((0.5 - 1) ** 2 + (0.3 - 1) ** 2) / 0.83 + 1.0
    assert inc == pytest.approx(expected, rel=1e-13)
    dist = ct.backward_distance_squared(UNREACHED, [0.0, 0.0], 2)
    np.testing.assert_allclose(dist, (1 / 0.83) * 0.17 ** np.arange(3), rtol=1e-12)


@st.composite
def diagonal_families(draw):
    """Diagonal maps on ``d`` axes, some of them silent (no offset at all, any slope up to 1.9 in size).

    The noisy axes have slopes in [−0.9, 0.9] (mean-square stable); a silent
    axis may expand in mean square (E a² up to 3.6) while its mean slope stays
    below 1 in size. A random rotation hides the axes.
    """
    d = draw(st.integers(2, 4))
    m = draw(st.integers(2, 4))
    silent = draw(hnp.arrays(np.bool_, d, elements=st.booleans()))
    noisy_a = draw(hnp.arrays(np.float64, (m, d), elements=st.floats(-0.9, 0.9)))
    silent_a = draw(hnp.arrays(np.float64, (m, d), elements=st.floats(-1.9, 1.9)))
    # offsets zero or clearly not: an offset of 1e-10 reaches its axis, which is a question of rank tolerance
    b = draw(hnp.arrays(np.float64, (m, d), elements=st.one_of(st.just(0.0), st.floats(0.01, 2), st.floats(-2, -0.01))))
    w = draw(hnp.arrays(np.float64, m, elements=st.floats(0.1, 1.0)))
    rot = draw(hnp.arrays(np.float64, (d, d), elements=st.floats(-1, 1)))
    p = w / w.sum()
    a = np.where(silent, silent_a, noisy_a)
    abar = p @ a
    a = np.where(silent & (np.abs(abar) >= 0.95), a - abar + 0.5 * np.sign(abar), a)  # mean slope inside (−1, 1)
    b = np.where(silent, 0.0, b)
    U, _ = np.linalg.qr(rot + 3 * np.eye(d))
    return a, b, p, U


@given(diagonal_families())
def test_diagonal_maps_match_the_closed_form_in_any_basis(family):
    a, b, p, U = family
    mu, cov, reached = _diagonal_covariance(a, b, p)
    A = np.einsum("ij,mj,kj->mik", U, a, U)  # U diag(a_m) Uᵀ
    maps = ct.AffineMaps(A, b @ U.T, p)
    mom = ct.stationary_moments(maps)
    scale = max(1.0, np.abs(cov).max())
    np.testing.assert_allclose(mom.mean, U @ mu, atol=1e-11 * max(1.0, np.abs(mu).max()))
    np.testing.assert_allclose(mom.cov, U @ cov @ U.T, atol=1e-10 * scale)
    rank = np.linalg.matrix_rank(cov, tol=1e-8 * scale)  # V is the range of the covariance
    assert rank <= mom.reachable_dim <= reached.sum()
    assert _full_space_residual(maps, mom) < 1e-10


def _block_triangular(coupled_noise):
    """3-D maps that keep span(e₁, e₂) invariant, expand e₃ in mean square (E D² = 1.62), then rotated.

    ``coupled_noise``: the second map also pushes along e₃, so the noise reaches it.
    """
    rng = np.random.default_rng(2024)
    B = rng.normal(size=(2, 2, 2))
    B *= 0.7 / np.linalg.norm(B, 2, axis=(1, 2))[:, None, None]
    A = np.zeros((2, 3, 3))
    A[:, :2, :2] = B
    A[:, :2, 2] = rng.normal(size=(2, 2))  # e₃ feeds the first block, never the reverse
    A[:, 2, 2] = [0.05, 1.8]
    b = np.zeros((2, 3))
    b[:, :2] = rng.normal(size=(2, 2))
    if coupled_noise:
        b[1, 2] = 1e-3
    U, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return ct.AffineMaps(U @ A @ U.T, b @ U.T), U


def test_reduced_covariance_agrees_with_perfect_samples():
    maps, U = _block_triangular(coupled_noise=False)
    mom = ct.stationary_moments(maps)
    assert mom.mean_square_radius > 1 and mom.reachable_dim == 2
    n = 8000
    z = ct.stationary_samples(maps, n, rng=7, tol=1e-9).samples
    y = (z - mom.mean) @ U  # coordinates along U's columns
    assert np.abs(y[:, 2]).max() < 1e-8  # no sample leaves μ + V
    v = y[:, :2]
    cov_v = (U.T @ mom.cov @ U)[:2, :2]
    z_mean = v.mean(0) / (v.std(0, ddof=1) / np.sqrt(n))
    prod = v[:, :, None] * v[:, None, :]
    z_cov = (prod.mean(0) - cov_v) / (prod.std(0, ddof=1) / np.sqrt(n))
    assert np.abs(z_mean).max() < 4.5 and np.abs(z_cov).max() < 4.5
    assert np.abs(U[:, 2] @ mom.cov).max() < 1e-12


def test_noise_that_reaches_the_unstable_direction_is_refused():
    maps, _ = _block_triangular(coupled_noise=True)  # a 1e-3 push along e₃ is not a rounding error
    with pytest.raises(ct.StationaryLawError, match="covariance is infinite"):
        ct.stationary_moments(maps)


def test_invariance_brings_in_directions_the_offsets_miss():
    # the offsets lie on e₁, but A₂ maps e₁ onto e₂, where the maps expand in mean square
    A = np.array([[[0.5, 0.0], [0.0, 0.1]], [[0.3, 0.0], [0.4, 1.8]]])
    maps = ct.AffineMaps(A, [[1.0, 0.0], [-1.0, 0.0]])
    with pytest.raises(ct.StationaryLawError, match="heavy-tailed"):
        ct.stationary_moments(maps)


def test_common_fixed_point_of_maps_whose_mean_map_expands():
    # θ ↦ 0.1 θ or 2.5 θ: Ā = 1.3, but E log|a| = ½ log 0.25 < 0, so θ_n → 0 and π = δ₀
    maps = ct.AffineMaps([[[0.1]], [[2.5]]], [[0.0], [0.0]])
    mom = ct.stationary_moments(maps)
    assert mom.method == "common fixed point" and mom.reachable_dim == 0
    assert np.all(mom.cov == 0) and np.all(mom.mean == 0)
    # the same slopes with a common fixed point at 3: T(θ) = a (θ − 3) + 3
    shifted = ct.AffineMaps([[[0.1]], [[2.5]]], [[2.7], [-4.5]])
    assert ct.stationary_moments(shifted).mean == pytest.approx([3.0])
    # but maps that expand on average have no stationary law to speak of
    with pytest.raises(ct.StationaryLawError, match="no stationary law"):
        ct.stationary_moments(ct.AffineMaps([[[2.0]], [[2.5]]], [[0.0], [0.0]]))
