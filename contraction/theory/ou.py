r"""The continuous-time (Ornstein–Uhlenbeck) approximation of SGD on a quadratic loss, and what it misses.

For batch losses with constant Hessians ``H_i`` (quadratic models, least
squares), ``Ĥ = Σ p_i H_i``, the minimiser ``θ*`` and the batch gradients
``g_i = ∇f_i(θ*)`` there, the exact stationary covariance ``Σ`` of SGD with
learning rate ``h`` solves (:func:`contraction.stationary_moments`)

    Ĥ Σ + Σ Ĥ − h Σ p_i H_i Σ H_i = h C_b,    C_b = Σ p_i g_i g_iᵀ

(``Σ p_i g_i = ∇L(θ*) = 0``: ``C_b`` is the covariance over batches of the
batch gradients at the minimiser). The Ornstein–Uhlenbeck approximation of
Mandt, Hoffman and Blei (JMLR 2017) drops the fourth-moment term
``h Σ p_i H_i Σ H_i``:

    Ĥ Σ_OU + Σ_OU Ĥ = h C_b,

so ``Σ = Σ_OU + O(h²)`` and ``‖Σ_OU − Σ‖ / ‖Σ‖ = O(h)``. The dropped term
is also what makes ``Σ`` blow up: with ``𝓛(S) = ĤS + SĤ`` and
``𝓗(S) = Σ p_i H_i S H_i``, the covariance is finite iff ``h < 1/ρ(𝓛^{-1}𝓗)``
(:func:`mean_square_threshold`), while ``Σ_OU`` is finite for every ``h``.

Taking the trace of the exact equation gives the fluctuation–dissipation
identity of Yaida (ICLR 2019), ``E[φ·∇L(θ)] = (h/2) E‖∇f_ξ(θ)‖²`` with
``φ = θ − θ*``, ``θ ~ π`` and an independent batch ``ξ``
(:func:`fluctuation_dissipation`); it is ``E‖θ_{n+1} − θ*‖² = E‖θ_n − θ*‖²``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse.linalg
import scipy.stats

from ..core._validation import as_float_array, check_lr, describe
from ..core.lowrank import LowRankAffineMaps
from ..core.models import LinearRegressionModel, QuadraticModel
from ._second_moment import LowRankSecondMoment

__all__ = [
    "FluctuationDissipation",
    "OUCovariance",
    "batch_gradient_covariance",
    "fluctuation_dissipation",
    "fluctuation_dissipation_exact",
    "mean_square_threshold",
    "ou_covariance",
]

# Batches per chunk when gradients and Hessian products are taken over the whole family.
_CHUNK_VALUES = 1 << 22
# Relative size below which an eigenvalue of the mean Hessian counts as zero.
_SINGULAR_RTOL = 1e-12


def _check_model(model):
    if not isinstance(model, (QuadraticModel, LinearRegressionModel)):
        raise TypeError(f"model: expected a QuadraticModel or LinearRegressionModel, got {describe(model)}")
    return model


def _chunks(model):
    per = model.dim * (getattr(model, "batch_size", 1) + model.dim)
    step = max(1, _CHUNK_VALUES // per)
    for start in range(0, model.n_batches, step):
        yield np.arange(start, min(model.n_batches, start + step))


def _batch_gradients(model, theta: np.ndarray) -> np.ndarray:
    """``∇f_i(θ)`` for every batch, shape (m, d), in chunks of batches."""
    return np.concatenate([model.gradient(theta, idx) for idx in _chunks(model)])


class _DenseFourth:
    """``G = Σ p_i D_i`` and ``F(S) = Σ p_i D_i S D_iᵀ`` for dense maps, ``D_i = I − A_i``."""

    def __init__(self, maps):
        self.D = np.eye(maps.dim) - maps.A
        self.probs = maps.probs
        self.G = np.tensordot(self.probs, self.D, axes=1)

    def fourth(self, S):
        return np.einsum("m,mij,jk,mlk->il", self.probs, self.D, S, self.D, optimize=True)


def _hessian_operator(model):
    """``Ĥ`` (as ``.G``) and ``S ↦ Σ p_i H_i S H_i`` (as ``.fourth``), from the SGD maps at ``h = 1``."""
    maps = model.sgd_maps(1.0)  # A_i = I − H_i: G = Ĥ and F = 𝓗
    return LowRankSecondMoment(maps) if isinstance(maps, LowRankAffineMaps) else _DenseFourth(maps)


def batch_gradient_covariance(model) -> np.ndarray:
    r"""Covariance over batches of the batch gradients at the minimiser, ``C_b = Σ p_i (g_i − ḡ)(g_i − ḡ)ᵀ``.

    ``g_i = ∇f_i(θ*)`` and ``ḡ = Σ p_i g_i = ∇L(θ*)`` (zero up to rounding).
    For i.i.d. rows and batches of ``B`` it is about the per-example
    gradient covariance over ``B``.

    Parameters
    ----------
    model : QuadraticModel or LinearRegressionModel
        The batch losses.

    Returns
    -------
    ndarray, shape (d, d)
        ``C_b``.

    Examples
    --------
    >>> import numpy as np
    >>> import contraction as ct
    >>> model = ct.QuadraticModel([[[1.0]], [[1.0]]], [[1.0], [-1.0]])   # g_i = ∓1 at θ* = 0
    >>> batch_gradient_covariance(model).tolist()
    [[1.0]]
    """
    model = _check_model(model)
    g = _batch_gradients(model, model.minimizer())
    g = g - model.probs @ g
    C = (g * model.probs[:, None]).T @ g
    return 0.5 * (C + C.T)


@dataclass(frozen=True)
class OUCovariance:
    """The stationary covariance of the Ornstein–Uhlenbeck approximation of SGD.

    Attributes
    ----------
    cov : ndarray, shape (d, d)
        ``Σ_OU``, the solution of ``Ĥ Σ + Σ Ĥ = h C_b``.
    mean : ndarray, shape (d,)
        The minimiser ``θ*`` (the mean of the approximation and of the exact law).
    noise : ndarray, shape (d, d)
        ``C_b``, the covariance over batches of the batch gradients at ``θ*``.
    lr : float
        The learning rate ``h``.
    residual : float
        ``‖Ĥ Σ_OU + Σ_OU Ĥ − h C_b‖_F / ‖h C_b‖_F`` (0 when ``C_b = 0``).
    """

    cov: np.ndarray
    mean: np.ndarray
    noise: np.ndarray
    lr: float
    residual: float


def ou_covariance(model, lr) -> OUCovariance:
    r"""Solve ``Ĥ Σ_OU + Σ_OU Ĥ = h C_b``: the covariance of Mandt, Hoffman and Blei's continuous-time approximation.

    Solved in the eigenbasis of ``Ĥ = W diag(λ) Wᵀ``:
    ``Σ_OU = h W [(Wᵀ C_b W)_{jk} / (λ_j + λ_k)] Wᵀ`` (``O(d³)``). It is
    linear in ``h`` and finite for every ``h > 0``; the exact covariance of
    SGD is ``Σ_OU + O(h²)`` and diverges at :func:`mean_square_threshold`.

    Parameters
    ----------
    model : QuadraticModel or LinearRegressionModel
        The batch losses.
    lr : float
        The learning rate ``h > 0``.

    Returns
    -------
    OUCovariance
        ``Σ_OU``, ``θ*``, ``C_b`` and the residual of the Lyapunov equation.

    Notes
    -----
    When ``Ĥ`` is singular the noise never reaches its kernel
    (``g_i = H_i(θ* − c_i)`` lies in the range of ``H_i``, inside that of
    ``Ĥ``), and ``Σ_OU`` is zero there.

    Examples
    --------
    >>> import numpy as np
    >>> import contraction as ct
    >>> model = ct.QuadraticModel([[[1.0]], [[1.0]]], [[1.0], [-1.0]])
    >>> h = 0.1
    >>> ou = ou_covariance(model, h)              # 2 Σ = h: Σ_OU = h / 2
    >>> exact = ct.stationary_moments(model.sgd_maps(h)).cov   # h / (2 − h)
    >>> bool(np.isclose(ou.cov[0, 0], h / 2) and np.isclose(exact[0, 0], h / (2 - h)))
    True
    """
    model = _check_model(model)
    h = check_lr(lr)
    lam, W = np.linalg.eigh(model.mean_hessian())
    C = batch_gradient_covariance(model)
    Cp = W.T @ C @ W
    den = lam[:, None] + lam[None, :]
    singular = den <= _SINGULAR_RTOL * max(float(lam.max()), np.finfo(float).tiny)
    Sp = np.where(singular, 0.0, h * Cp / np.where(singular, 1.0, den))
    cov = W @ Sp @ W.T
    cov = 0.5 * (cov + cov.T)
    Hbar = model.mean_hessian()
    scale = float(np.linalg.norm(h * C))
    residual = float(np.linalg.norm(Hbar @ cov + cov @ Hbar - h * C)) / scale if scale > 0 else 0.0
    return OUCovariance(cov, model.minimizer(), C, h, residual)


def mean_square_threshold(model) -> float:
    r"""The learning rate ``h*`` above which SGD's stationary covariance is infinite: ``h* = 1/ρ(𝓛^{-1}𝓗)``.

    With ``A_i = I − h H_i``, ``S − Σ p_i A_i S A_iᵀ = h (𝓛 − h 𝓗)(S)``,
    ``𝓛(S) = ĤS + SĤ`` and ``𝓗(S) = Σ p_i H_i S H_i``. Both are self-adjoint
    and ``𝓛^{-1}𝓗`` maps positive semi-definite matrices to positive
    semi-definite ones, so ``ρ(Σ p_i A_i ⊗ A_i) < 1`` iff ``𝓛 − h𝓗 ≻ 0`` iff
    ``h ρ(𝓛^{-1}𝓗) < 1``: one eigenvalue problem instead of a root search.
    ``ρ`` is the largest eigenvalue of ``𝓛^{-1/2} 𝓗 𝓛^{-1/2}`` (``𝓛^{-1/2}``
    elementwise in the eigenbasis of ``Ĥ``), found by ARPACK (Lanczos) with
    ``𝓗`` applied through the data (``O(n d²)`` for least squares).

    Parameters
    ----------
    model : QuadraticModel or LinearRegressionModel
        The batch losses.

    Returns
    -------
    float
        ``h*`` (the ``mean_square`` of :func:`contraction.max_stable_lr`,
        without its root search); 0 when ``Ĥ`` is singular.

    Examples
    --------
    >>> import numpy as np
    >>> import contraction as ct
    >>> x = np.array([-1.0, 1.0, 2.0]); model = ct.LinearRegressionModel(x[:, None], x)
    >>> bool(np.isclose(mean_square_threshold(model), 2 * 2 / 6))   # 2 E x² / E x⁴
    True
    """
    model = _check_model(model)
    op = _hessian_operator(model)
    lam, W = np.linalg.eigh(0.5 * (op.G + op.G.T))
    if lam.min() <= _SINGULAR_RTOL * max(float(lam.max()), np.finfo(float).tiny):
        return 0.0
    d = len(lam)
    half = 1.0 / np.sqrt(lam[:, None] + lam[None, :])

    def matvec(x):
        Sp = half * np.asarray(x, dtype=np.float64).reshape(d, d)
        out = W.T @ op.fourth(W @ (0.5 * (Sp + Sp.T)) @ W.T) @ W
        return (half * out).ravel()

    if d <= 6:  # form the d² × d² matrix
        K = np.column_stack([matvec(e) for e in np.eye(d * d)])
        nu = float(np.linalg.eigvalsh(0.5 * (K + K.T)).max())
    else:
        K = scipy.sparse.linalg.LinearOperator((d * d, d * d), matvec=matvec, dtype=np.float64)
        v0 = (1.0 / half).ravel()  # 𝓛^{1/2}(I) in the eigenbasis: a positive definite start
        nu = float(scipy.sparse.linalg.eigsh(K, k=1, which="LA", v0=v0, tol=1e-12, return_eigenvectors=False)[0])
    return 1.0 / nu if nu > 0 else float("inf")


@dataclass(frozen=True)
class FluctuationDissipation:
    """The two sides of Yaida's fluctuation–dissipation identity, ``E[φ·∇L(θ)] = (h/2) E‖∇f_ξ(θ)‖²``.

    Attributes
    ----------
    lhs : float
        ``E[φ·∇L(θ)]``, ``φ = θ − θ*`` (a sample mean, or exact).
    rhs : float
        ``(h/2) E‖∇f_ξ(θ)‖² = (h/2) E Σ p_i ‖∇f_i(θ)‖²``.
    difference : float
        ``lhs − rhs`` (0 in stationarity).
    stderr : float
        Standard error of ``difference`` over the samples (0 when exact).
    zscore : float or None
        ``difference / stderr`` (``None`` when exact).
    pvalue : float or None
        Two-sided normal p-value of ``zscore`` (``None`` when exact).
    n_samples : int
        Number of samples (0 when exact).
    """

    lhs: float
    rhs: float
    difference: float
    stderr: float
    zscore: float | None
    pvalue: float | None
    n_samples: int


class _Sides:
    """``Ĥ``, ``Q = Σ p_i H_i²``, ``q = Σ p_i H_i g_i``, ``k = Σ p_i ‖g_i‖²`` and ``∇L(θ*)``: the identity's pieces."""

    def __init__(self, model):
        self.theta = model.minimizer()
        op = _hessian_operator(model)
        self.H = 0.5 * (op.G + op.G.T)
        self.Q = op.fourth(np.eye(model.dim))
        self.Q = 0.5 * (self.Q + self.Q.T)
        g = _batch_gradients(model, self.theta)
        zero = np.zeros(model.dim)
        Hg = np.concatenate([model.hvp(zero, g[idx], idx) for idx in _chunks(model)])
        self.q = model.probs @ Hg
        self.k = float(model.probs @ np.sum(g * g, axis=1))
        self.grad = model.probs @ g


def fluctuation_dissipation(model, lr, samples) -> FluctuationDissipation:
    r"""Test Yaida's identity ``E[φ·∇L(θ)] = (h/2) E‖∇f_ξ(θ)‖²`` on samples ``θ`` (``φ = θ − θ*``).

    Per sample, ``φ·∇L(θ) = φᵀ Ĥ φ + φ·∇L(θ*)`` and, with
    ``∇f_i(θ) = H_i φ + g_i``, ``Σ p_i ‖∇f_i(θ)‖² = φᵀ Q φ + 2 φ·q + k``
    (``Q = Σ p_i H_i²``, ``q = Σ p_i H_i g_i``, ``k = Σ p_i ‖g_i‖²``): the
    average over all batches, exactly. The difference of the two sides is
    averaged over the samples; its standard error comes from their spread.
    In stationarity the mean difference is 0; before it (forward iterates
    started away from ``π``) it is not.

    Parameters
    ----------
    model : QuadraticModel or LinearRegressionModel
        The batch losses.
    lr : float
        The learning rate ``h > 0`` of the SGD that produced the samples.
    samples : array_like, shape (N, d)
        Independent samples, ``N >= 2``.

    Returns
    -------
    FluctuationDissipation
        Both sides, their difference, its standard error, z-score and p-value.

    Examples
    --------
    >>> import numpy as np
    >>> import contraction as ct
    >>> model = ct.QuadraticModel([[[1.0]], [[1.0]]], [[1.0], [-1.0]])
    >>> h = 0.5                                    # π = Uniform[−1, 1]
    >>> z = ct.stationary_samples(model.sgd_maps(h), 20000, rng=0).samples
    >>> fd = fluctuation_dissipation(model, h, z)
    >>> bool(abs(fd.zscore) < 4 and np.isclose(fd.lhs, 1 / 3, rtol=0.05))
    True
    """
    model = _check_model(model)
    h = check_lr(lr)
    X = as_float_array(samples, "samples", ndim=2)
    if X.shape[1] != model.dim or X.shape[0] < 2:
        raise ValueError(f"samples: expected shape (N, {model.dim}) with N >= 2, got {describe(X)}")
    sides = _Sides(model)
    phi = X - sides.theta
    lhs = np.einsum("ni,ij,nj->n", phi, sides.H, phi) + phi @ sides.grad
    rhs = 0.5 * h * (np.einsum("ni,ij,nj->n", phi, sides.Q, phi) + 2.0 * phi @ sides.q + sides.k)
    diff = lhs - rhs
    n = len(diff)
    se = float(diff.std(ddof=1) / np.sqrt(n))
    mean = float(diff.mean())
    z = mean / se if se > 0 else (0.0 if mean == 0 else float(np.copysign(np.inf, mean)))
    return FluctuationDissipation(float(lhs.mean()), float(rhs.mean()), mean, se, float(z),
                                  float(2 * scipy.stats.norm.sf(abs(z))), n)


def fluctuation_dissipation_exact(model, lr, mean, cov) -> FluctuationDissipation:
    r"""Both sides of Yaida's identity for a law with the given mean and covariance, exactly.

    With ``φ̄ = mean − θ*`` and ``M = cov + φ̄φ̄ᵀ = E[φφᵀ]``:
    ``lhs = tr(Ĥ M) + φ̄·∇L(θ*)`` and ``rhs = (h/2)(tr(Q M) + 2 φ̄·q + k)``.
    For the exact stationary moments the two agree to rounding (trace of
    the covariance equation); for ``Σ_OU``, which drops the fourth-moment
    term, ``lhs − rhs = −(h/2) tr(Q Σ_OU)``.

    Parameters
    ----------
    model : QuadraticModel or LinearRegressionModel
        The batch losses.
    lr : float
        The learning rate ``h > 0``.
    mean : array_like, shape (d,)
        Mean of the law.
    cov : array_like, shape (d, d)
        Covariance of the law.

    Returns
    -------
    FluctuationDissipation
        Both sides and their difference (``stderr = 0``, ``n_samples = 0``).

    Examples
    --------
    >>> import numpy as np
    >>> import contraction as ct
    >>> model = ct.QuadraticModel([[[1.0]], [[1.0]]], [[1.0], [-1.0]])
    >>> mom = ct.stationary_moments(model.sgd_maps(0.5))
    >>> fd = fluctuation_dissipation_exact(model, 0.5, mom.mean, mom.cov)
    >>> bool(abs(fd.difference) < 1e-12 and np.isclose(fd.lhs, 1 / 3))
    True
    """
    model = _check_model(model)
    h = check_lr(lr)
    d = model.dim
    mean = as_float_array(mean, "mean", ndim=1)
    if mean.shape != (d,):
        raise ValueError(f"mean: expected shape ({d},), got {describe(mean)}")
    cov = as_float_array(cov, "cov", ndim=2)
    if cov.shape != (d, d):
        raise ValueError(f"cov: expected shape ({d}, {d}), got {describe(cov)}")
    sides = _Sides(model)
    phi = mean - sides.theta
    M = cov + np.outer(phi, phi)
    lhs = float(np.sum(sides.H * M) + phi @ sides.grad)
    rhs = float(0.5 * h * (np.sum(sides.Q * M) + 2.0 * phi @ sides.q + sides.k))
    return FluctuationDissipation(lhs, rhs, lhs - rhs, 0.0, None, None, 0)
