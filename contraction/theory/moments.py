r"""Stationary laws of i.i.d. SGD with affine maps: exact moments, samples, comparisons.

With ``Ā = Σ p_i A_i`` and ``b̄ = Σ p_i b_i``:

* mean ``μ = (I − Ā)^{-1} b̄`` (when ``ρ(Ā) < 1``);
* second moment ``S = Σ p_i (A_i S A_iᵀ + A_i μ b_iᵀ + b_i μᵀ A_iᵀ + b_i b_iᵀ)``,
  finite when ``ρ(Σ p_i A_i ⊗ A_i) < 1``; covariance ``Σ_π = S − μ μᵀ``;
* finite ``n`` (forward and backward alike): ``μ_n = Ā μ_{n−1} + b̄`` and the
  same recursion for ``S_n``;
* backward distance ``E‖θ̃_n − θ̃_∞‖² = tr(Q_n M)``, ``Q_n = Σ p_i A_iᵀ Q_{n−1} A_i``,
  ``M = (θ_0 − μ)(θ_0 − μ)ᵀ + Σ_π``;
* forward SGD's mean squared increment in stationarity
  ``E‖θ_{n+1} − θ_n‖² = Σ p_i E‖(A_i − I) Z + b_i‖²``, ``Z ~ π``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse.linalg

from ..core._validation import (
    as_float_array,
    check_choice,
    check_int,
    check_nonnegative_int,
    check_real,
    describe,
)
from ..core.lowrank import LowRankAffineMaps
from ..core.maps import AffineMaps, check_affine_maps
from ._reachable import RANK_RTOL, _offset_sizes, _reachable_subspace
from ._second_moment import MeanUnstable, NegativeCurvature, NotPositive, low_rank_moments_at_step, solve_low_rank
from .diagnostics import (
    lyapunov_bounds,
    mean_square_matrix,
    mean_square_operator,
    mean_square_radius,
    spectral_radius,
)

__all__ = [
    "MAX_MOMENT_STEPS",
    "RANK_RTOL",
    "MomentsAtStep",
    "StationaryLawError",
    "StationaryMoments",
    "backward_distance_squared",
    "moments_at_step",
    "stationary_mean",
    "stationary_mean_squared_increment",
    "stationary_moments",
]


#: Largest ``n`` of :func:`moments_at_step` and :func:`backward_distance_squared` (each step costs ``O(m d³)``).
MAX_MOMENT_STEPS = 10**6


class StationaryLawError(ValueError):
    """A stationary quantity that does not exist was asked for (e.g. an infinite covariance)."""


@dataclass(frozen=True)
class StationaryMoments:
    """Exact stationary moments.

    Attributes
    ----------
    mean : ndarray, shape (d,)
        ``μ = E Z``, ``Z ~ π``.
    cov : ndarray, shape (d, d)
        ``Σ_π = E[(Z − μ)(Z − μ)ᵀ]``.
    second_moment : ndarray, shape (d, d)
        ``E[Z Zᵀ]``.
    residual : float
        Relative residual of the defining equation of the second moment (SPEC §2)
        in the full space, ``‖S − Σ p_i (A_i S A_iᵀ + A_i μ b_iᵀ + b_i μᵀ A_iᵀ + b_i b_iᵀ)‖``
        over the norm of the source term ``Σ p_i (A_i μ b_iᵀ + b_i μᵀ A_iᵀ + b_i b_iᵀ)``.
    mean_square_radius : float
        ``ρ(Σ p_i A_i ⊗ A_i)`` on the whole space. For the matrix-free path
        with ``d > dense_max_dim``: the upper end of ``radius_bounds`` (a bound, not ``ρ``).
    method : str
        ``"direct"`` (Kronecker solve), ``"iterative"`` (GMRES on the operator),
        ``"matrix-free cg"`` / ``"matrix-free gmres"`` (low-rank maps, see
        :func:`stationary_moments`) or ``"common fixed point"`` (a point mass:
        the reachable subspace is ``{0}``).
    reachable_dim : int or None
        Dimension ``k`` of the reachable subspace ``V`` (see :func:`stationary_moments`);
        ``Z − μ`` lies in ``V``. ``None`` in records not made by :func:`stationary_moments`.
    reachable_radius : float or None
        ``ρ(Σ p_i Ã_i ⊗ Ã_i)`` of the maps restricted to ``V`` (0 when ``V = {0}``):
        the covariance exists because it is ``< 1``. ``None`` as above.
    iterations : int or None
        Krylov iterations of the matrix-free path (``None`` otherwise).
    covariance_residual : float or None
        Matrix-free path: relative residual of the covariance equation
        ``‖Σ − Σ p_i A_i Σ A_iᵀ − Σ p_i c_i c_iᵀ‖ / ‖Σ p_i c_i c_iᵀ‖``
        (``c_i = T_i(μ) − μ``), the equation the solver drives down.
    radius_bounds : tuple of float or None
        Matrix-free path: ``(lower, upper)`` with ``lower <= ρ <= upper``,
        read off the solution ``Σ ≻ 0`` (Collatz–Wielandt; the Rayleigh
        quotient for symmetric maps; ``ρ(Ā)²``); ``None`` when ``Σ`` is singular.
    """

    mean: np.ndarray
    cov: np.ndarray
    second_moment: np.ndarray
    residual: float
    mean_square_radius: float
    method: str
    reachable_dim: int | None = None
    reachable_radius: float | None = None
    iterations: int | None = None
    covariance_residual: float | None = None
    radius_bounds: tuple[float, float] | None = None


def _start(maps: AffineMaps, theta0) -> np.ndarray:
    theta0 = as_float_array(theta0, "theta0", ndim=1)
    if theta0.shape != (maps.dim,):
        raise ValueError(f"theta0: expected shape ({maps.dim},), got {describe(theta0)}")
    return theta0


def _common_fixed_point(maps: AffineMaps):
    """A point fixed by every map, or ``None``."""
    d = maps.dim
    M = (np.eye(d) - maps.A).reshape(-1, d)
    x, *_ = np.linalg.lstsq(M, maps.b.reshape(-1), rcond=None)
    scale = max(1.0, float(np.abs(maps.b).max()))
    if np.abs(M @ x - maps.b.reshape(-1)).max() <= 1e-10 * scale:
        return x
    return None


def stationary_mean(maps: AffineMaps) -> np.ndarray:
    """``μ = (I − Ā)^{-1} b̄``, or :class:`StationaryLawError` when the mean map is not stable."""
    Abar, bbar = maps.mean_map()
    rho = spectral_radius(Abar)
    if rho >= 1:
        raise StationaryLawError(
            f"maps: the mean map is not stable (spectral radius of Σ p_i A_i is {rho:.4g} >= 1); "
            f"there is no stationary law with a finite mean. Lower the learning rate."
        )
    return np.linalg.solve(np.eye(maps.dim) - Abar, bbar)


def _second_moment_source(maps: AffineMaps, mu: np.ndarray) -> np.ndarray:
    p, A, b = maps.probs, maps.A, maps.b
    Amu = A @ mu  # (m, d)
    R = np.einsum("m,mi,mj->ij", p, Amu, b)
    return R + R.T + np.einsum("m,mi,mj->ij", p, b, b)


def _infinite_covariance(maps, rho: float, where: str = "", radius: str | None = None) -> StationaryLawError:
    """The error for ``ρ >= 1``, saying whether a (heavy-tailed) stationary law exists.

    The sign of the Lyapunov exponent decides; it is bracketed without
    sampling by :func:`contraction.theory.diagnostics.lyapunov_bounds` (exact
    in one dimension). ``maps`` are the maps restricted to the reachable
    subspace (``where`` says so in the message).
    """
    try:
        bounds = lyapunov_bounds(maps)
    except ValueError:  # a family too large for the bounds: say nothing about the law
        bounds = None
    if bounds is None:
        law = "Lower the learning rate, or estimate the Lyapunov exponent with lyapunov_exponent(maps, rng=...)."
    elif bounds.upper < 0:
        law = (f"The stationary law exists (Lyapunov exponent γ <= {bounds.upper:.4g} < 0) but is "
               f"heavy-tailed with infinite variance; use stationary_samples and tail "
               f"diagnostics instead, or lower the learning rate.")
    elif bounds.lower > 0:
        law = (f"There is no stationary law either (Lyapunov exponent γ >= {bounds.lower:.4g} > 0): "
               f"the iterates diverge. Lower the learning rate.")
    else:
        law = (f"Whether a stationary law exists depends on the sign of the Lyapunov exponent γ, which lies in "
               f"[{bounds.lower:.4g}, {bounds.upper:.4g}]; estimate it with lyapunov_exponent(maps, rng=...).")
    if radius is None:
        radius = f"mean-square radius ρ(Σ p_i A_i⊗A_i){where} = {rho:.6g} >= 1"
    return StationaryLawError(f"maps: the stationary covariance is infinite ({radius}). {law}")


def _reference_point(maps: AffineMaps):
    """The stationary mean ``μ`` and whether the mean map is stable.

    ``ρ(Ā) < 1``: ``μ = (I − Ā)^{-1} b̄``. Otherwise a point fixed by every
    map, when there is one; ``None`` when neither exists.
    """
    Abar, bbar = maps.mean_map()
    if spectral_radius(Abar) < 1:
        try:
            return np.linalg.solve(np.eye(maps.dim) - Abar, bbar), True
        except np.linalg.LinAlgError:  # a radius of one computed a rounding below it: I − Ā is singular
            pass
    return _common_fixed_point(maps), False


def _solve_covariance(reduced: AffineMaps, use_direct: bool, dense: bool, dense_max_dim: int, tol: float):
    """Covariance ``Σ̃ = Σ p_i (Ã_i Σ̃ Ã_iᵀ + c̃_i c̃_iᵀ)`` of the centred maps on ``V``, its radius and method.

    The covariance is ``None`` when ``ρ(Σ p_i Ã_i ⊗ Ã_i) >= 1`` (the caller
    raises, with its context).
    """
    k = reduced.dim
    K = mean_square_matrix(reduced) if dense or use_direct else None  # formed once per call
    rho = spectral_radius(K) if dense else mean_square_radius(reduced, dense_max_dim=dense_max_dim)
    if rho >= 1.0 - 1e-12:  # at ρ = 1 the variance is already infinite
        return None, rho, ""
    C = np.einsum("m,mi,mj->ij", reduced.probs, reduced.b, reduced.b)
    if use_direct:
        return np.linalg.solve(np.eye(k * k) - K, C.ravel()).reshape(k, k), rho, "direct"
    op = mean_square_operator(reduced)
    lhs = scipy.sparse.linalg.LinearOperator((k * k, k * k), matvec=lambda x: x - op.matvec(x), dtype=np.float64)
    sol, info = scipy.sparse.linalg.gmres(lhs, C.ravel(), x0=C.ravel(), rtol=tol, atol=0.0, restart=50,
                                          maxiter=2000)
    if info != 0:
        raise StationaryLawError(
            f"method: the iterative solver did not converge (info={info}); use method='direct' "
            f"or a smaller learning rate"
        )
    return sol.reshape(k, k), rho, "iterative"


def stationary_moments(maps, method="auto", tol=1e-12, dense_max_dim=20) -> StationaryMoments:
    r"""Exact mean and covariance of the stationary law ``π`` of forward SGD.

    The mean solves ``μ = Ā μ + b̄`` and the second moment
    ``S = Σ p_i (A_i S A_iᵀ + A_i μ b_iᵀ + b_i μᵀ A_iᵀ + b_i b_iᵀ)``;
    ``Σ_π = S − μ μᵀ``.

    The covariance is decided and solved on the *reachable subspace* ``V``:
    the smallest subspace invariant under every ``A_i`` that contains the
    offsets ``c_i = A_i μ + b_i − μ``. With ``Z ~ π`` and an independent
    batch ``ξ``, ``Z − μ = A_ξ (Z − μ) + c_ξ``, so ``Z − μ`` lies in ``V``
    and, for an orthonormal basis ``Q`` of ``V``, ``Ã_i = Qᵀ A_i Q`` and
    ``c̃_i = Qᵀ c_i``, the covariance is ``Q Σ̃ Qᵀ`` with
    ``Σ̃ = Σ p_i (Ã_i Σ̃ Ã_iᵀ + c̃_i c̃_iᵀ)`` (``Σ p_i c_i = 0``). It is finite
    iff ``ρ(Σ p_i Ã_i ⊗ Ã_i) < 1``: the noise never reaches the directions
    outside ``V``, however unstable the maps are there. A common fixed point
    is the case ``V = {0}`` (a point mass).

    ``V`` is built from ``span{c_i}`` by applying every ``A_i`` to every new
    basis vector (Gram-Schmidt, twice). Rank decisions use the relative
    tolerance ``RANK_RTOL = 1e-10``: an offset counts when its part outside
    the basis so far exceeds ``RANK_RTOL · (‖A_i‖₂ ‖μ‖ + ‖b_i‖ + ‖μ‖)`` (the
    size of the terms that form it), an image ``A_i q`` of a basis vector
    when its new part exceeds ``RANK_RTOL · ‖A_i‖₂``; in both cases it must
    also exceed 100 times its own rounding error (propagated from that of
    ``μ``, about ``cond(I − Ā)`` times ``d u ‖μ‖``, and of the directions it
    came from), so that a rounding error never opens a direction.

    A :class:`~contraction.LowRankAffineMaps` family ``A_i = I − s_i U_i V_iᵀ``
    (least squares: ``I − h X_iᵀX_i / B``) is solved matrix-free on the whole
    space: ``Σ ↦ Σ p_i A_i Σ A_iᵀ = Σ − GΣ − ΣGᵀ + Σ p_i s_i² U_i (V_iᵀ Σ V_i) U_iᵀ``
    (``G = I − Ā``) costs ``O(m r d²)``, never the ``(m, d, d)`` matrices;
    SciPy's conjugate gradients (``U = V``) or GMRES solve the covariance
    equation, preconditioned by the mean map's Lyapunov operator
    ``Σ ↦ Σ − ĀΣĀᵀ`` (inverted in the eigenbasis of ``Ā``, with a fitted
    Gaussian fourth-moment correction) and report the iterations and the
    residual. No finite covariance on the whole space shows as a direction
    of negative curvature of ``Σ ↦ Σ − Σ p_i A_i Σ A_iᵀ`` (``ρ >= 1``) or a
    solution that is not positive semi-definite. The reachable subspace is
    not built there: for ``d <= dense_max_dim`` a refusal is decided by the
    dense path above, which says why.

    Parameters
    ----------
    maps : AffineMaps or LowRankAffineMaps
        The family ``T_i(θ) = A_i θ + b_i`` with its probabilities.
    method : {"auto", "direct", "iterative"}
        ``"direct"`` solves the ``k² × k²`` Kronecker system on ``V``
        (``k = dim V``); ``"iterative"`` runs GMRES on
        ``Σ ↦ Σ − Σ p_i Ã_i Σ Ã_iᵀ`` (each product ``O(m k³)``). ``"auto"`` is
        direct for ``k <= dense_max_dim``. Low-rank maps: ``"auto"`` and
        ``"iterative"`` are matrix-free, ``"direct"`` forms the dense maps.
    tol : float, default 1e-12
        Relative tolerance of the iterative solvers, ``> 0``.
    dense_max_dim : int, default 20
        Largest ``k`` for which the ``k² × k²`` matrix ``Σ p_i Ã_i ⊗ Ã_i``
        is formed (once, for both the radius and the direct solve).

    Returns
    -------
    StationaryMoments
        Mean, covariance, second moment, residual of the full-space equation,
        method and the reachable subspace's dimension and radius.

    Raises
    ------
    StationaryLawError
        When the covariance is infinite (``ρ >= 1`` on ``V``); the message
        says whether the stationary law exists (Lyapunov exponent ``γ < 0``:
        heavy tails) or not. Also when the mean map is not stable
        (``ρ(Ā) >= 1``) and no common fixed point exists, or when it is not
        stable and the maps are not shown to contract on average
        (``E log‖A_ξ‖₂ >= 0``), so that the law on ``μ + V`` would not
        attract the iterates.

    Examples
    --------
    >>> import numpy as np
    >>> import contraction as ct
    >>> h = 0.5
    >>> maps = ct.QuadraticModel([[[1.0]], [[1.0]]], [[1.0], [-1.0]]).sgd_maps(h)
    >>> mom = ct.stationary_moments(maps)
    >>> bool(np.isclose(mom.cov[0, 0], h / (2 - h)) and abs(mom.mean[0]) < 1e-15)
    True

    The noise never reaches the second axis, where the maps expand in mean
    square: the covariance is still finite.

    >>> maps = ct.AffineMaps([np.diag([0.5, 0.1]), np.diag([0.3, 1.8])], [[1.0, 0.0], [-1.0, 0.0]])
    >>> mom = ct.stationary_moments(maps)
    >>> mom.mean_square_radius > 1 and mom.reachable_dim == 1
    True
    >>> bool(np.allclose(mom.cov, [[1 / (1 - (0.25 + 0.09) / 2), 0.0], [0.0, 0.0]]))
    True
    """
    method = check_choice(method, "method", ("auto", "direct", "iterative"))
    tol = check_real(tol, "tol", 0.0, None, closed="neither")
    dense_max_dim = check_nonnegative_int(dense_max_dim, "dense_max_dim")
    if isinstance(maps, LowRankAffineMaps) and method != "direct":
        return _low_rank_stationary_moments(maps, tol, dense_max_dim)
    maps = check_affine_maps(maps)
    d = maps.dim

    def full_radius():
        if d <= dense_max_dim:
            return spectral_radius(mean_square_matrix(maps))
        return mean_square_radius(maps, dense_max_dim=dense_max_dim)

    mu, mean_stable = _reference_point(maps)
    if mu is None:  # ρ(Ā) >= 1, so ρ(𝒜) >= ρ(Ā)² >= 1
        raise _infinite_covariance(maps, full_radius())
    offsets = maps.b - mu + maps.A @ mu  # c_i = T_i(μ) − μ, (m, d)
    Q = _reachable_subspace(maps.A, offsets, *_offset_sizes(maps, mu))
    k = Q.shape[1]
    if not mean_stable and not lyapunov_bounds(maps).upper < 0:
        raise _infinite_covariance(maps, full_radius())
    if k == 0:
        S = np.outer(mu, mu)
        return StationaryMoments(mu, np.zeros((d, d)), S, _residual(maps, mu, S), full_radius(),
                                 "common fixed point", 0, 0.0)
    if k == d:  # the whole space: no change of basis
        Q = np.eye(d)
        reduced = AffineMaps(maps.A, offsets, maps.probs)
    else:
        reduced = AffineMaps(Q.T @ maps.A @ Q, offsets @ Q, maps.probs)
    dense = k <= dense_max_dim or k == 1
    use_direct = method == "direct" or (method == "auto" and dense)
    cov_v, rho_v, used = _solve_covariance(reduced, use_direct, dense, dense_max_dim, tol)
    where = "" if k == d else f" on the reachable subspace (dimension {k} of {d})"
    if cov_v is None:
        raise _infinite_covariance(reduced, rho_v, where)
    cov = Q @ (0.5 * (cov_v + cov_v.T)) @ Q.T
    cov = 0.5 * (cov + cov.T)
    S = cov + np.outer(mu, mu)
    rho = rho_v if k == d else full_radius()
    return StationaryMoments(mu, cov, S, _residual(maps, mu, S), rho, used, k, rho_v)


#: Largest number of Krylov iterations of the matrix-free path of :func:`stationary_moments`.
MAX_KRYLOV_ITERATIONS = 1000


def _low_rank_stationary_moments(maps: LowRankAffineMaps, tol: float, dense_max_dim: int) -> StationaryMoments:
    """The matrix-free path of :func:`stationary_moments`; the dense path decides a refusal when ``d`` is small."""
    try:
        sol = solve_low_rank(maps, tol, MAX_KRYLOV_ITERATIONS)
    except (MeanUnstable, NegativeCurvature, NotPositive) as exc:
        if maps.dim <= dense_max_dim:  # the reachable subspace and the exact radius decide, and say why
            return stationary_moments(maps.to_dense(), "auto", tol, dense_max_dim)
        text = "mean-square radius ρ(Σ p_i A_i⊗A_i) >= 1 on the whole space: "
        if isinstance(exc, MeanUnstable):
            text += f"the mean map Σ p_i A_i has spectral radius {exc.args[0]:.6g} >= 1"
        elif isinstance(exc, NegativeCurvature):
            text += "the conjugate-gradient solve met a direction S with ⟨S, S − Σ p_i A_i S A_iᵀ⟩ <= 0"
        else:
            text += (f"the solution of the covariance equation is not positive semi-definite "
                     f"(λ_min / λ_max = {exc.args[0]:.3g})")
        raise _infinite_covariance(maps, np.nan, radius=text) from None
    if not sol["converged"]:
        raise StationaryLawError(
            f"tol: the matrix-free solver did not reach tol={tol:g} within {MAX_KRYLOV_ITERATIONS} iterations "
            f"(relative residual {sol['covariance_residual']:.3g}); the learning rate may be close to the "
            f"mean-square threshold: loosen tol or lower the learning rate"
        )
    bounds = sol["radius_bounds"]
    rho = None if bounds is None else bounds[1]
    if maps.dim <= dense_max_dim or bounds is None:  # (ARPACK needs d² >= 3: form the matrix for d <= 2)
        try:
            rho = mean_square_radius(maps, dense_max_dim=max(dense_max_dim, 2))
        except ValueError:  # the dense maps would not fit in memory: keep the bound
            if rho is None:
                raise
    return StationaryMoments(sol["mean"], sol["cov"], sol["second_moment"], sol["residual"], rho, sol["method"],
                             iterations=sol["iterations"], covariance_residual=sol["covariance_residual"],
                             radius_bounds=bounds)


def _residual(maps: AffineMaps, mu: np.ndarray, S: np.ndarray) -> float:
    """Relative residual of ``S = Σ p_i (A_i S A_iᵀ + A_i μ b_iᵀ + b_i μᵀ A_iᵀ + b_i b_iᵀ)`` (SPEC §2)."""
    R = _second_moment_source(maps, mu)
    lhs = S - np.einsum("m,mij,jk,mlk->il", maps.probs, maps.A, S, maps.A, optimize=True)
    return float(np.linalg.norm(lhs - R) / max(np.linalg.norm(R), np.finfo(float).tiny))


@dataclass(frozen=True)
class MomentsAtStep:
    """Mean and covariance of ``θ_n`` (equivalently ``θ̃_n``) from a fixed ``θ_0``.

    Attributes
    ----------
    n : int
        The step.
    mean : ndarray, shape (d,)
        ``E θ_n``.
    cov : ndarray, shape (d, d)
        Covariance of ``θ_n``.
    """

    n: int
    mean: np.ndarray
    cov: np.ndarray


def moments_at_step(maps, theta0, n) -> MomentsAtStep:
    r"""Exact mean and covariance of ``θ_n`` for i.i.d. batches (the same for ``θ̃_n``).

    ``μ_n = Ā μ_{n−1} + b̄`` and
    ``S_n = Σ p_i (A_i S_{n−1} A_iᵀ + A_i μ_{n−1} b_iᵀ + b_i μ_{n−1}ᵀ A_iᵀ + b_i b_iᵀ)``.

    Parameters
    ----------
    maps : AffineMaps or LowRankAffineMaps
        The family with its probabilities.
    theta0 : array_like, shape (d,)
        The start ``θ_0``.
    n : int
        The step, in ``[0, MAX_MOMENT_STEPS]`` (``10**6``; each step costs
        ``O(m d³)``, ``O(m r d²)`` for :class:`~contraction.LowRankAffineMaps`,
        whose covariance is carried instead of the second moment; the
        recursion stops early once it reaches its fixed point in floating point).

    Returns
    -------
    MomentsAtStep
        ``E θ_n`` and the covariance of ``θ_n``.

    Examples
    --------
    >>> import numpy as np
    >>> import contraction as ct
    >>> maps = ct.AffineMaps([[[0.5]], [[0.5]]], [[0.5], [-0.5]])
    >>> m1 = ct.moments_at_step(maps, [2.0], 1)   # θ_1 = 1 ± 0.5
    >>> bool(np.isclose(m1.mean[0], 1.0) and np.isclose(m1.cov[0, 0], 0.25))
    True
    """
    n = check_int(n, "n", 0, MAX_MOMENT_STEPS)
    if isinstance(maps, LowRankAffineMaps):
        theta0 = _start(maps, theta0)
        mu, cov, overflow = low_rank_moments_at_step(maps, theta0, n)
        if overflow:
            raise StationaryLawError(f"n: the moments overflow at step {overflow} of {n}; the maps expand in "
                                     f"mean square")
        return MomentsAtStep(n, mu, cov)
    maps = check_affine_maps(maps)
    theta0 = _start(maps, theta0)
    Abar, bbar = maps.mean_map()
    mu, S = theta0.copy(), np.outer(theta0, theta0)
    p, A = maps.probs, maps.A
    path = np.einsum_path("m,mij,jk,mlk->il", p, A, S, A, optimize="optimal")[0]
    with np.errstate(over="ignore", invalid="ignore"):
        for step in range(1, n + 1):
            S_next = np.einsum("m,mij,jk,mlk->il", p, A, S, A, optimize=path) + _second_moment_source(maps, mu)
            mu_next = Abar @ mu + bbar
            if not (np.all(np.isfinite(S_next)) and np.all(np.isfinite(mu_next))):
                raise StationaryLawError(f"n: the moments overflow at step {step} of {n}; the maps expand in "
                                         f"mean square")
            if np.array_equal(S_next, S) and np.array_equal(mu_next, mu):
                break  # a fixed point in floating point: every later step gives the same numbers
            mu, S = mu_next, S_next
    cov = S - np.outer(mu, mu)
    return MomentsAtStep(n, mu, 0.5 * (cov + cov.T))


def backward_distance_squared(maps, theta0, n_steps) -> np.ndarray:
    r"""``E‖θ̃_n − θ̃_∞‖² = tr(Q_n M)`` for ``n = 0, …, n_steps``.

    ``Q_0 = I``, ``Q_n = Σ p_i A_iᵀ Q_{n−1} A_i`` and
    ``M = (θ_0 − μ)(θ_0 − μ)ᵀ + Σ_π``. Requires a finite covariance.

    Parameters
    ----------
    maps : AffineMaps
        The family with its probabilities.
    theta0 : array_like, shape (d,)
        The start ``θ_0``.
    n_steps : int
        Last step, in ``[0, MAX_MOMENT_STEPS]`` (``10**6``).

    Returns
    -------
    ndarray, shape (n_steps + 1,)
        Entry ``n`` is ``E‖θ̃_n − θ̃_∞‖²``.

    Examples
    --------
    >>> import numpy as np
    >>> import contraction as ct
    >>> maps = ct.QuadraticModel([[[1.0]], [[1.0]]], [[1.0], [-1.0]]).sgd_maps(0.5)
    >>> dist = ct.backward_distance_squared(maps, [0.0], 3)
    >>> bool(np.allclose(dist, (1 / 3) * 0.25 ** np.arange(4)))   # Var π = 1/3, Q_n = 4^{-n}
    True
    """
    maps = check_affine_maps(maps)
    n_steps = check_int(n_steps, "n_steps", 0, MAX_MOMENT_STEPS)
    theta0 = _start(maps, theta0)
    mom = stationary_moments(maps)
    diff = theta0 - mom.mean
    M = np.outer(diff, diff) + mom.cov
    Q = np.eye(maps.dim)
    out = np.empty(n_steps + 1)
    path = np.einsum_path("m,mji,jk,mkl->il", maps.probs, maps.A, Q, maps.A, optimize="optimal")[0]
    for n in range(n_steps + 1):
        out[n] = np.sum(Q * M)
        Q_next = np.einsum("m,mji,jk,mkl->il", maps.probs, maps.A, Q, maps.A, optimize=path)
        if np.array_equal(Q_next, Q):  # a fixed point in floating point (e.g. Q = 0): the rest is constant
            out[n + 1:] = out[n]
            break
        Q = Q_next
    return out


def stationary_mean_squared_increment(maps) -> float:
    r"""Forward SGD's mean squared increment in stationarity, ``E‖θ_{n+1} − θ_n‖²``.

    ``Σ p_i [tr((A_i − I) S (A_i − I)ᵀ) + 2 b_iᵀ (A_i − I) μ + ‖b_i‖²]`` with
    ``S = E[Z Zᵀ]``, ``Z ~ π``. Zero iff all maps share a fixed point.
    (Formerly ``stationary_step_size``; in SGD the step size is the learning rate.)

    Parameters
    ----------
    maps : AffineMaps
        The family with its probabilities; the stationary covariance must be finite.

    Returns
    -------
    float
        ``E‖θ_{n+1} − θ_n‖²`` for ``θ_n ~ π``.

    Examples
    --------
    >>> import numpy as np
    >>> import contraction as ct
    >>> maps = ct.QuadraticModel([[[1.0]], [[1.0]]], [[1.0], [-1.0]]).sgd_maps(0.5)
    >>> bool(np.isclose(ct.stationary_mean_squared_increment(maps), 0.25 * (1 / 3) + 0.25))  # E(−Z/2 ± 1/2)²
    True
    """
    maps = check_affine_maps(maps)
    mom = stationary_moments(maps)
    B = maps.A - np.eye(maps.dim)
    quad = np.einsum("mij,jk,mik->m", B, mom.second_moment, B)
    cross = 2 * np.einsum("mi,mij,j->m", maps.b, B, mom.mean)
    return float(maps.probs @ (quad + cross + np.sum(maps.b**2, axis=1)))
