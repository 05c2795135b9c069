r"""Stability diagnostics of a family of affine maps ``T_i(θ) = A_i θ + b_i``.

* contraction constant ``c = max_i ‖A_i‖₂`` (strict contraction: ``c < 1``);
  for :class:`~contraction.LowRankAffineMaps` ``A_i = I − s_i U_i V_iᵀ`` from
  a ``2r``-dimensional problem, and ``c >= 1`` whenever ``r < d``;
* top Lyapunov exponent ``γ = lim (1/n) log ‖A_{ξ_n} ⋯ A_{ξ_1}‖`` (backward
  iterates converge when ``γ < 0``: average contraction);
* mean-square radius ``ρ(Σ p_i A_i ⊗ A_i)`` (finite stationary covariance
  when ``< 1``);
* Kesten's tail index ``α`` (:func:`tail_index`, from :mod:`contraction.theory.tails`):
  ``E|a|^α = 1`` in one dimension, the root of the moment Lyapunov exponent otherwise.

Between ``γ < 0`` and ``ρ < 1`` the stationary law exists but has infinite
variance (heavy tails).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.optimize
import scipy.sparse.linalg

from ..core._kernels import chain_matmul
from ..core._validation import (
    as_generator,
    check_int,
    check_nonnegative_int,
    check_real,
    describe,
    frozen,
)
from ..core.lowrank import LowRankAffineMaps, _chunks, check_affine_family
from ..core.maps import check_affine_maps
from ..core.sampling import sample_batches
from .tails import TailIndexResult, tail_index

__all__ = [
    "MAX_LYAPUNOV_CHAINS",
    "MAX_LYAPUNOV_DRAWS",
    "LyapunovBounds",
    "LyapunovResult",
    "StableLearningRates",
    "TailIndexResult",
    "contraction_constant",
    "lyapunov_bounds",
    "lyapunov_exponent",
    "max_stable_lr",
    "mean_square_matrix",
    "mean_square_operator",
    "mean_square_radius",
    "spectral_radius",
    "tail_index",
]


def contraction_constant(maps) -> float:
    r"""Largest operator norm ``c = max_i ‖A_i‖₂`` (the Lipschitz constant of the family).

    Parameters
    ----------
    maps : AffineMaps or LowRankAffineMaps
        The family ``T_i(θ) = A_i θ + b_i``. For ``A_i = I − s_i U_i V_iᵀ``
        the norm comes from an ``r × r`` or ``2r × 2r`` problem (the maps act
        as the identity outside the span of ``U_i`` and ``V_i``, so ``c >= 1``
        when ``r < d``).

    Returns
    -------
    float
        ``c``; every map is a strict contraction when ``c < 1``.

    Examples
    --------
    >>> import contraction as ct
    >>> maps = ct.QuadraticModel([[[1.0]], [[3.0]]], [[1.0], [-1.0]]).sgd_maps(0.25)
    >>> bool(abs(ct.contraction_constant(maps) - 0.75) < 1e-12)   # max(|1-h|, |1-3h|)
    True
    """
    maps = check_affine_family(maps)
    if isinstance(maps, LowRankAffineMaps):
        return float(maps._linear_norms().max())
    return float(np.linalg.norm(maps.A, 2, axis=(1, 2)).max())


@dataclass(frozen=True)
class LyapunovResult:
    """Estimate of the top Lyapunov exponent.

    Attributes
    ----------
    exponent : float
        ``γ`` (exact for one-dimensional maps, where ``γ = Σ p_i log|a_i|``).
    stderr : float
        Standard error across independent chains (0 when exact).
    n_steps : int
        Steps per chain of the Monte Carlo estimate (0 when exact).
    n_chains : int
        Number of chains of the Monte Carlo estimate (0 when exact).
    exact : bool
        Whether ``exponent`` is exact (one-dimensional maps) *for the family
        passed in*, a discrete law of maps. When that family stands for a
        continuous one (the E3 nodes standing for Gaussian features, see
        :func:`contraction.gaussian_least_squares_1d`), the exact value of
        the stand-in still differs from the continuous one; for Gaussian
        features that value is :func:`contraction.gaussian_lyapunov_1d`.
    method : str
        How ``exponent`` was obtained and for which law: ``"exact: Σ p_i
        log|a_i| over the given (discrete) family"`` or ``"Monte Carlo:
        renormalised products over the given (discrete) family"``.
    """

    exponent: float
    stderr: float
    n_steps: int
    n_chains: int
    exact: bool
    method: str = ""


#: Largest number of batch draws ``n_chains · (burn_in + n_steps)`` of :func:`lyapunov_exponent`.
MAX_LYAPUNOV_DRAWS = 10**7
#: Largest ``n_chains`` of :func:`lyapunov_exponent` (one spawned stream each).
MAX_LYAPUNOV_CHAINS = 10**5
_EXACT = "exact: Σ p_i log|a_i| over the given (discrete) family"
_MONTE_CARLO = "Monte Carlo: renormalised products over the given (discrete) family"


def lyapunov_exponent(maps, rng=None, n_steps=2000, n_chains=64, burn_in=50) -> LyapunovResult:
    r"""Top Lyapunov exponent ``γ = lim (1/n) log ‖A_{ξ_n} ⋯ A_{ξ_1}‖`` of i.i.d. products.

    One-dimensional maps give the exact ``γ = Σ p_i log|a_i|``. Otherwise a
    random unit vector is pushed through the products with renormalisation;
    each of ``n_chains`` independent chains gives ``(1/n) Σ log r_k`` after
    ``burn_in`` steps, and the standard error is their spread over
    ``sqrt(n_chains)``.

    Parameters
    ----------
    maps : AffineMaps or LowRankAffineMaps
        The family; only the linear parts ``A_i`` and ``probs`` matter.
    rng : None, int, SeedSequence or Generator, optional
        Source of the batch sequences (spawned streams, one per chain) and of
        the start vectors. Unused for one-dimensional maps.
    n_steps : int, default 2000
        Steps per chain after the burn-in, ``>= 1``.
    n_chains : int, default 64
        Independent chains, in ``[2, MAX_LYAPUNOV_CHAINS]`` (``10**5``).
    burn_in : int, default 50
        Steps discarded at the start of each chain, ``>= 0``. The draws
        ``n_chains · (burn_in + n_steps)`` are at most
        ``MAX_LYAPUNOV_DRAWS`` (``10**7``), checked before anything is allocated.

    Returns
    -------
    LyapunovResult
        The estimate, its standard error and whether it is exact.

    Examples
    --------
    >>> import numpy as np
    >>> import contraction as ct
    >>> maps = ct.AffineMaps([[[0.5]], [[2.0]]], [[1.0], [1.0]], probs=[0.75, 0.25])
    >>> res = ct.lyapunov_exponent(maps)
    >>> res.exact and bool(np.isclose(res.exponent, 0.75 * np.log(0.5) + 0.25 * np.log(2.0)))
    True
    """
    maps = check_affine_family(maps)
    gen = as_generator(rng)
    n_steps = check_int(n_steps, "n_steps", 1, MAX_LYAPUNOV_DRAWS)
    n_chains = check_int(n_chains, "n_chains", 2, MAX_LYAPUNOV_CHAINS)
    burn_in = check_int(burn_in, "burn_in", 0, MAX_LYAPUNOV_DRAWS)
    if n_chains * (burn_in + n_steps) > MAX_LYAPUNOV_DRAWS:
        name = "n_steps" if 2 * (burn_in + n_steps) > MAX_LYAPUNOV_DRAWS else "n_chains"  # too long even for 2 chains
        raise ValueError(f"{name}: expected n_chains · (burn_in + n_steps) <= {MAX_LYAPUNOV_DRAWS:.0e} batch "
                         f"draws, got {n_chains} · {burn_in + n_steps}")
    low_rank = isinstance(maps, LowRankAffineMaps)
    if maps.dim == 1:
        a = np.abs((maps.to_dense() if low_rank else maps).A[:, 0, 0])
        with np.errstate(divide="ignore"):
            logs = np.log(a)
        pos = maps.probs > 0
        gamma = float(np.sum(maps.probs[pos] * logs[pos]))
        return LyapunovResult(gamma, 0.0, 0, 0, True, _EXACT)
    # the batch sequences come from spawned children, the start vectors from gen's own stream
    idx = sample_batches(maps.n_maps, burn_in + n_steps, n_chains, probs=maps.probs, rng=gen)
    v = gen.normal(size=(n_chains, maps.dim))
    v /= np.linalg.norm(v, axis=-1, keepdims=True)
    if low_rank:  # row vectors: v ← v A_iᵀ = v − s (v V_i) U_iᵀ
        step = lambda v, i: maps._rows(v, i, offset=False)
    else:
        At = frozen(np.swapaxes(maps.A, 1, 2))
        step = lambda v, i: chain_matmul(v[:, None, :], At, i)[:, 0]
    total = np.zeros(n_chains)
    with np.errstate(divide="ignore"):
        for k in range(burn_in + n_steps):
            v = step(v, idx[:, k])
            r = np.linalg.norm(v, axis=-1)  # (C,)
            if np.any(r == 0):
                return LyapunovResult(-np.inf, 0.0, k + 1, n_chains, False, _MONTE_CARLO)
            v /= r[:, None]
            if k >= burn_in:
                total += np.log(r)
    per_chain = total / n_steps
    return LyapunovResult(
        float(per_chain.mean()), float(per_chain.std(ddof=1) / np.sqrt(n_chains)), n_steps, n_chains, False,
        _MONTE_CARLO,
    )


@dataclass(frozen=True)
class LyapunovBounds:
    """Deterministic bounds ``lower <= γ <= upper`` on the top Lyapunov exponent.

    Attributes
    ----------
    lower : float
        ``E log|det A_ξ| / d`` (the mean of all Lyapunov exponents).
    upper : float
        ``E log‖A_ξ‖₂`` (subadditivity of ``log‖·‖``).
    """

    lower: float
    upper: float


def lyapunov_bounds(maps) -> LyapunovBounds:
    r"""Bounds on ``γ`` that need no sampling: ``E log|det A| / d <= γ <= E log‖A‖₂``.

    Both are equal to ``γ`` for one-dimensional maps.
    """
    maps = check_affine_family(maps)
    keep = maps.probs > 0
    p = maps.probs[keep]
    if isinstance(maps, LowRankAffineMaps):
        norms, logdet = maps._linear_norms()[keep], maps._log_abs_det()[keep]
    else:
        norms, logdet = np.linalg.norm(maps.A[keep], 2, axis=(1, 2)), np.linalg.slogdet(maps.A[keep])[1]
    with np.errstate(divide="ignore"):
        upper = float(p @ np.log(norms))
        lower = float(p @ logdet) / maps.dim
    return LyapunovBounds(lower, upper)


def mean_square_operator(maps) -> scipy.sparse.linalg.LinearOperator:
    r"""The operator ``S ↦ Σ p_i A_i S A_iᵀ`` on ``d × d`` matrices (flattened row-major).

    In row-major vectorisation it is the matrix ``Σ p_i A_i ⊗ A_i``; each
    product costs ``O(m d³)`` instead of ``O(d⁴)``; for ``A_i = I − s_i U_i V_iᵀ``,
    ``S − G S − S Gᵀ + Σ p_i s_i² U_i (V_iᵀ S V_i) U_iᵀ`` with ``G = Σ p_i s_i U_i V_iᵀ``
    formed once: ``O(m r d²)``.
    """
    maps = check_affine_family(maps)
    d = maps.dim
    if isinstance(maps, LowRankAffineMaps):
        return _low_rank_mean_square_operator(maps)
    A, p = maps.A, maps.probs

    def matvec(x):
        S = np.asarray(x, dtype=np.float64).reshape(d, d)
        return np.einsum("m,mij,jk,mlk->il", p, A, S, A, optimize=True).ravel()

    return scipy.sparse.linalg.LinearOperator((d * d, d * d), matvec=matvec, dtype=np.float64)


def _low_rank_mean_square_operator(maps: LowRankAffineMaps) -> scipy.sparse.linalg.LinearOperator:
    d, r = maps.dim, maps.rank
    G = maps._update_sum(maps.probs)
    w = maps.probs * maps.scale**2

    def matvec(x):
        S = np.asarray(x, dtype=np.float64).reshape(d, d)
        out = S - G @ S - S @ G.T
        for part in _chunks(maps.n_maps, 3 * r * d):
            R, L = maps._right[part], maps._left[part]
            K = np.matmul((R.reshape(-1, d) @ S).reshape(R.shape), np.swapaxes(R, 1, 2))  # V_iᵀ S V_i (k, r, r)
            W = np.matmul(K * w[part, None, None], L)  # p_i s_i² (V_iᵀ S V_i) U_iᵀ (k, r, d)
            out += L.reshape(-1, d).T @ W.reshape(-1, d)
        return out.ravel()

    return scipy.sparse.linalg.LinearOperator((d * d, d * d), matvec=matvec, dtype=np.float64)


def mean_square_matrix(maps) -> np.ndarray:
    r"""The ``d² × d²`` matrix ``𝒜 = Σ p_i A_i ⊗ A_i`` (row-major vectorisation of ``S ↦ Σ p_i A_i S A_iᵀ``)."""
    maps = check_affine_maps(maps)
    d = maps.dim
    return np.einsum("m,mij,mkl->ikjl", maps.probs, maps.A, maps.A).reshape(d * d, d * d)


def spectral_radius(K: np.ndarray) -> float:
    """Largest modulus of the eigenvalues of a square matrix."""
    return float(np.abs(np.linalg.eigvals(K)).max())


def mean_square_radius(maps, dense_max_dim=20) -> float:
    r"""Spectral radius of ``𝒜 = Σ p_i A_i ⊗ A_i`` (mean-square stability when ``< 1``).

    For ``d <= dense_max_dim`` the ``d² × d²`` matrix is formed and its
    eigenvalues computed; for larger ``d`` ARPACK runs on the operator
    ``S ↦ Σ p_i A_i S A_iᵀ`` without forming it.

    Parameters
    ----------
    maps : AffineMaps or LowRankAffineMaps
        The family; only the linear parts ``A_i`` and ``probs`` matter.
    dense_max_dim : int, default 20
        Largest ``d`` for which the matrix is formed, ``>= 0``.

    Returns
    -------
    float
        ``ρ(𝒜)``; the stationary covariance is finite when it is ``< 1``.

    Examples
    --------
    >>> import numpy as np
    >>> import contraction as ct
    >>> maps = ct.AffineMaps([[[0.5]], [[1.2]]], [[0.0], [1.0]])
    >>> bool(np.isclose(ct.mean_square_radius(maps), 0.5 * 0.25 + 0.5 * 1.44))
    True
    """
    maps = check_affine_family(maps)
    dense_max_dim = check_nonnegative_int(dense_max_dim, "dense_max_dim")
    d = maps.dim
    if d <= dense_max_dim:
        return spectral_radius(mean_square_matrix(maps))
    op = mean_square_operator(maps)
    vals = scipy.sparse.linalg.eigs(op, k=1, which="LM", v0=np.eye(d).ravel(), return_eigenvectors=False,
                                    tol=1e-10, maxiter=5000)
    return float(np.abs(vals).max())


@dataclass(frozen=True)
class StableLearningRates:
    r"""Learning-rate thresholds of a quadratic or least-squares model.

    Attributes
    ----------
    contraction : float
        Largest ``h`` with ``c = max_i ‖I − h H_i‖₂ < 1``, namely
        ``2 / max_i λ_max(H_i)``; strict contraction holds for
        ``0 < h < contraction`` only when ``strict`` is true.
    strict : bool
        Every ``H_i`` is positive definite (``μ > 0``); otherwise no ``h``
        makes every map a strict contraction (``c = 1``).
    mean : float
        ``2 / λ_max(Σ p_i H_i)``: below it the mean map ``Ā`` is stable.
    mean_square : float
        Largest ``h`` with ``ρ(Σ p_i A_i ⊗ A_i) < 1`` (finite stationary
        covariance), the root of ``ρ(h) = 1`` found by ``brentq``.
    """

    contraction: float
    strict: bool
    mean: float
    mean_square: float


def max_stable_lr(model, rtol=1e-10) -> StableLearningRates:
    r"""Find the learning-rate thresholds of contraction, mean and mean-square stability.

    ``ρ(h) = ρ(Σ p_i (I − h H_i) ⊗ (I − h H_i))`` is ``< 1`` on an interval
    ``(0, h*)`` with ``h* <= 2 / λ_max(Σ p_i H_i)``; ``h*`` is the root of
    ``ρ(h) − 1`` (``scipy.optimize.brentq``).

    Parameters
    ----------
    model : QuadraticModel or LinearRegressionModel
        A model with constant batch Hessians ``H_i``.
    rtol : float, default 1e-10
        Relative tolerance of the mean-square threshold, in ``(0, 1)``.

    Returns
    -------
    StableLearningRates
        The three thresholds and whether strict contraction is possible.

    Examples
    --------
    >>> import numpy as np
    >>> import contraction as ct
    >>> x = np.array([-1.0, 1.0, 2.0]); model = ct.LinearRegressionModel(x[:, None], x)
    >>> lr = ct.max_stable_lr(model)   # E x² = 2, E x⁴ = 6: mean-square limit 2·2/6
    >>> bool(np.isclose(lr.mean_square, 2 / 3)) and lr.contraction == 2 / 4   # 2 / max x²
    True
    """
    if not all(callable(getattr(model, f, None)) for f in ("hessian_eigenvalues", "mean_hessian", "sgd_maps")):
        raise TypeError(f"model: expected a QuadraticModel or LinearRegressionModel, got {describe(model)}")
    rtol = check_real(rtol, "rtol", 0.0, 1.0, closed="neither")
    eig = model.hessian_eigenvalues()
    lmax = float(eig.max())
    if lmax <= 0:
        raise ValueError("model: every batch Hessian is zero, so the SGD maps only translate θ and no "
                         "learning rate makes them stable (there is no threshold)")
    strict = bool(eig.min() > 1e-12 * lmax)
    mean = 2.0 / float(np.linalg.eigvalsh(model.mean_hessian()).max())

    def excess(h):  # ρ(h) − 1: < 0 below the threshold, >= 0 above it
        return mean_square_radius(model.sgd_maps(h)) - 1.0

    if excess(mean) < 0:
        return StableLearningRates(2.0 / lmax, strict, mean, mean)
    lo = 0.5 * mean
    while excess(lo) >= 0:  # ρ(h) = 1 − O(h) near 0 unless some direction is never contracted
        lo *= 0.5
        if lo < 1e-12 * mean:
            return StableLearningRates(2.0 / lmax, strict, mean, 0.0)
    ms = scipy.optimize.brentq(excess, lo, mean, xtol=1e-15 * mean, rtol=max(rtol, 4 * np.finfo(float).eps))
    return StableLearningRates(2.0 / lmax, strict, mean, float(ms))
