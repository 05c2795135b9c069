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
    check_nonnegative_int,
    check_real,
    describe,
)
from ..core.maps import AffineMaps, check_affine_maps
from .diagnostics import (
    lyapunov_bounds,
    mean_square_matrix,
    mean_square_operator,
    mean_square_radius,
    spectral_radius,
)

__all__ = [
    "MomentsAtStep",
    "StationaryLawError",
    "StationaryMoments",
    "backward_distance_squared",
    "moments_at_step",
    "stationary_mean",
    "stationary_mean_squared_increment",
    "stationary_moments",
]


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
        Relative residual of the defining linear equation of the second moment.
    mean_square_radius : float
        ``ρ(Σ p_i A_i ⊗ A_i)``.
    method : str
        ``"direct"`` (Kronecker solve), ``"iterative"`` (GMRES on the operator)
        or ``"common fixed point"`` (a point mass).
    """

    mean: np.ndarray
    cov: np.ndarray
    second_moment: np.ndarray
    residual: float
    mean_square_radius: float
    method: str


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


def _infinite_covariance(maps: AffineMaps, rho: float) -> StationaryLawError:
    """The error for ``ρ >= 1``, saying whether a (heavy-tailed) stationary law exists.

    The sign of the Lyapunov exponent decides; it is bracketed without
    sampling by :func:`contraction.theory.diagnostics.lyapunov_bounds` (exact
    in one dimension).
    """
    bounds = lyapunov_bounds(maps)
    if bounds.upper < 0:
        law = (f"The stationary law exists (Lyapunov exponent γ <= {bounds.upper:.4g} < 0) but is "
               f"heavy-tailed with infinite variance; use stationary_samples and tail "
               f"diagnostics instead, or lower the learning rate.")
    elif bounds.lower > 0:
        law = (f"There is no stationary law either (Lyapunov exponent γ >= {bounds.lower:.4g} > 0): "
               f"the iterates diverge. Lower the learning rate.")
    else:
        law = (f"Whether a stationary law exists depends on the sign of the Lyapunov exponent γ, which lies in "
               f"[{bounds.lower:.4g}, {bounds.upper:.4g}]; estimate it with lyapunov_exponent(maps, rng=...).")
    return StationaryLawError(
        f"maps: the stationary covariance is infinite (mean-square radius ρ(Σ p_i A_i⊗A_i) = "
        f"{rho:.6g} >= 1). {law}"
    )


def stationary_moments(maps, method="auto", tol=1e-12, dense_max_dim=20) -> StationaryMoments:
    r"""Exact mean and covariance of the stationary law ``π`` of forward SGD.

    The mean solves ``μ = Ā μ + b̄`` and the second moment
    ``S = Σ p_i (A_i S A_iᵀ + A_i μ b_iᵀ + b_i μᵀ A_iᵀ + b_i b_iᵀ)``;
    ``Σ_π = S − μ μᵀ``.

    Parameters
    ----------
    maps : AffineMaps
        The family ``T_i(θ) = A_i θ + b_i`` with its probabilities.
    method : {"auto", "direct", "iterative"}
        ``"direct"`` solves the ``d² × d²`` Kronecker system; ``"iterative"``
        runs GMRES on ``S ↦ S − Σ p_i A_i S A_iᵀ`` (each product ``O(m d³)``).
        ``"auto"`` is direct for ``d <= dense_max_dim``.
    tol : float, default 1e-12
        Relative tolerance of the iterative solver, ``> 0``.
    dense_max_dim : int, default 20
        Largest ``d`` for which the ``d² × d²`` matrix ``Σ p_i A_i ⊗ A_i``
        is formed (once, for both the radius and the direct solve).

    Returns
    -------
    StationaryMoments
        Mean, covariance, second moment, residual and method.

    Raises
    ------
    StationaryLawError
        When the covariance is infinite (mean-square radius ``>= 1``); the
        message says whether the stationary law exists (Lyapunov exponent
        ``γ < 0``: heavy tails) or not. Maps with a common fixed point give a
        point mass, whatever the radius.

    Examples
    --------
    >>> import numpy as np
    >>> import contraction as ct
    >>> h = 0.5
    >>> maps = ct.QuadraticModel([[[1.0]], [[1.0]]], [[1.0], [-1.0]]).sgd_maps(h)
    >>> mom = ct.stationary_moments(maps)
    >>> bool(np.isclose(mom.cov[0, 0], h / (2 - h)) and abs(mom.mean[0]) < 1e-15)
    True
    """
    maps = check_affine_maps(maps)
    method = check_choice(method, "method", ("auto", "direct", "iterative"))
    tol = check_real(tol, "tol", 0.0, None, closed="neither")
    dense_max_dim = check_nonnegative_int(dense_max_dim, "dense_max_dim")
    d = maps.dim
    dense = d <= dense_max_dim
    use_direct = method == "direct" or (method == "auto" and dense)
    K = mean_square_matrix(maps) if dense or use_direct else None  # formed once per call
    rho = spectral_radius(K) if dense else mean_square_radius(maps, dense_max_dim=dense_max_dim)
    fixed = _common_fixed_point(maps)
    if fixed is not None:
        if spectral_radius(maps.mean_map().A) < 1 or rho < 1:
            S = np.outer(fixed, fixed)
            return StationaryMoments(fixed, np.zeros((d, d)), S, 0.0, rho, "common fixed point")
    if rho >= 1.0 - 1e-12:  # at ρ = 1 the variance is already infinite
        raise _infinite_covariance(maps, rho)
    mu = stationary_mean(maps)
    R = _second_moment_source(maps, mu)
    op = mean_square_operator(maps)
    if use_direct:
        S = np.linalg.solve(np.eye(d * d) - K, R.ravel()).reshape(d, d)
        used = "direct"
    else:
        lhs = scipy.sparse.linalg.LinearOperator((d * d, d * d), matvec=lambda x: x - op.matvec(x),
                                                 dtype=np.float64)
        x0 = (R + np.outer(mu, mu)).ravel()
        sol, info = scipy.sparse.linalg.gmres(lhs, R.ravel(), x0=x0, rtol=tol, atol=0.0, restart=50,
                                              maxiter=2000)
        if info != 0:
            raise StationaryLawError(
                f"method: the iterative solver did not converge (info={info}); use method='direct' "
                f"or a smaller learning rate"
            )
        S = sol.reshape(d, d)
        used = "iterative"
    S = 0.5 * (S + S.T)
    residual = float(np.linalg.norm(S.ravel() - op.matvec(S.ravel()) - R.ravel()) /
                     max(np.linalg.norm(R), np.finfo(float).tiny))
    cov = S - np.outer(mu, mu)
    return StationaryMoments(mu, 0.5 * (cov + cov.T), S, residual, rho, used)


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
    maps : AffineMaps
        The family with its probabilities.
    theta0 : array_like, shape (d,)
        The start ``θ_0``.
    n : int
        The step, ``>= 0``.

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
    maps = check_affine_maps(maps)
    n = check_nonnegative_int(n, "n")
    theta0 = _start(maps, theta0)
    Abar, bbar = maps.mean_map()
    mu, S = theta0.copy(), np.outer(theta0, theta0)
    p, A = maps.probs, maps.A
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(n):
            S = np.einsum("m,mij,jk,mlk->il", p, A, S, A, optimize=True) + _second_moment_source(maps, mu)
            mu = Abar @ mu + bbar
    if not (np.all(np.isfinite(S)) and np.all(np.isfinite(mu))):
        raise StationaryLawError(f"n: the moments overflow before step {n}; the maps expand in mean square")
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
        Last step, ``>= 0``.

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
    n_steps = check_nonnegative_int(n_steps, "n_steps")
    theta0 = _start(maps, theta0)
    mom = stationary_moments(maps)
    diff = theta0 - mom.mean
    M = np.outer(diff, diff) + mom.cov
    Q = np.eye(maps.dim)
    out = np.empty(n_steps + 1)
    for n in range(n_steps + 1):
        out[n] = np.sum(Q * M)
        Q = np.einsum("m,mji,jk,mkl->il", maps.probs, maps.A, Q, maps.A, optimize=True)
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
