r"""Certified estimation of backward limits ``θ̃_∞ = lim T_{ξ_1} ∘ … ∘ T_{ξ_n}(θ_0)``.

For affine maps ``θ̃_n = P_n θ_0 + q_n`` and ``θ̃_∞ − θ̃_n = P_n (Z' − θ_0)``
where ``Z'`` is the backward limit of the shifted sequence ``ξ_{n+1}, …``.
The bound on ``‖x − θ̃_∞‖`` for the returned floating-point ``x`` has two parts.

**Truncation.**

* Strict contraction (``c = max ‖A_i‖₂ < 1``): ``‖Z' − θ_0‖ ≤ G/(1 − c)`` with
  ``G = max_i ‖T_i(θ_0) − θ_0‖``, so
  ``‖θ̃_n − θ̃_∞‖ ≤ min(c^n, ‖P_n‖₂) G/(1 − c)``: a certified a-posteriori
  bound (SPEC C1).
* Average contraction (``c ≥ 1``, Lyapunov exponent ``γ < 0``): ``‖P_n‖₂ → 0``
  but ``‖Z' − θ_0‖`` has no deterministic bound. The bound reported is
  ``‖P_n‖₂ R`` with ``R`` an estimate of the spread of ``‖Z − θ_0‖``,
  ``Z ~ π``; it is labelled ``"estimate"``.

**Rounding.** ``P̂_n = fl(P̂_{n−1} A_{ξ_n})`` and ``t̂ = fl(P̂_{n−1} b_{ξ_n})``
are dot products of length ``d``, so (Higham, *Accuracy and Stability of
Numerical Algorithms*, §3.1, any summation order, with or without fused
multiply-add) their errors are at most ``γ_d |P̂_{n−1}| |A|`` and
``γ_d |P̂_{n−1}| |b|`` entrywise, ``γ_k = k u/(1 − k u)``, ``u = 2^-53``. The
sum ``q_n = q_{n−1} + P_{n−1} b_{ξ_n}`` is accumulated *compensated*: ``q̂`` is
held as ``q_hi + q_lo``; ``(q_hi, e) = TwoSum(q_hi, t̂)`` is exact
(``q_hi + e = q_hi_old + t̂``) and only ``q_lo ← fl(q_lo + e)`` rounds, by at
most ``u/(1 − u) ‖q_lo‖`` (``q_lo`` is of the order of ``u ‖q‖``). Writing
``P_n, q_n`` for the exact products of the (floating-point) data and
``e_P(n) ≥ ‖P̂_n − P_n‖₂``, ``e_q(n) ≥ ‖q_hi + q_lo − q_n‖₂``:

* ``P̂_n − P_n = (P̂_{n−1} − P_{n−1}) A + F`` with ``‖F‖₂ ≤ γ_d ‖|P̂_{n−1}||A|‖₂ ≤ γ_d ‖P̂_{n−1}‖_F ‖A‖_F``,
  so ``e_P(n) = e_P(n−1) ‖A_ξ‖₂ + γ_d ‖P̂_{n−1}‖_F ‖A_ξ‖_F``;
* ``e_q(n) = e_q(n−1) + e_P(n−1) ‖b_ξ‖ + γ_d ‖P̂_{n−1}‖_F ‖b_ξ‖ + u/(1 − u) ‖q_lo‖``;
* the returned ``x = fl(q_hi + fl(q_lo + fl(P̂_n θ_0)))`` adds
  ``γ_d ‖P̂_n‖_F ‖θ_0‖ + u/(1 − u) (‖fl(q_lo + P̂_n θ_0)‖ + ‖x‖)``: half an ulp
  of ``x``, which no tolerance can beat.

Hence ``‖x − θ̃_n‖ ≤ e_P(n) ‖θ_0‖ + e_q(n) + γ_d ‖P̂_n‖_F ‖θ_0‖ + u/(1 − u) (…)``, and the
truncation part uses ``‖P_n‖₂ ≤ ‖P̂_n‖₂ + e_P(n)``. (Plain summation of
``q`` would add ``γ ‖q̂_{n−1}‖`` at every step: ``n u ‖θ̃_∞‖`` in all.)

Under average contraction some ``‖A_i‖₂ ≥ 1`` and ``e_P`` would grow like
``∏ ‖A_ξ‖₂`` while the products shrink. There the local errors are carried
by the actual products instead: with ``M = [[P, q], [0, 1]]``,
``E_i = [[A_i, b_i], [0, 1]]`` and ``F̃_k = [[F_k, f_k], [0, 0]]`` the error
committed at step ``k`` (``F_k`` in ``P``, ``f_k`` in ``q``),
``M̂_n − M_n = Σ_k F̃_k E_{ξ_{k+1}} ⋯ E_{ξ_n}``. Applied to ``v = [θ_0; 1]``
this is ``Σ_k (F_k y_k + f_k)`` with ``[y_k; 1] = E_{ξ_{k+1}} ⋯ E_{ξ_n} v``,
and by Cauchy–Schwarz ``Σ_k ‖F_k‖ ‖y_k‖ ≤ (n vᵀ H_n v)^{1/2}`` where
``H_n = E_{ξ_n}ᵀ H_{n−1} E_{ξ_n} + w_n² I``, ``w_k ≥ ‖F_k‖₂``; likewise
``‖P̂_n − P_n‖₂ ≤ (n tr H_n[:d, :d])^{1/2}``, and ``Σ_k ‖f_k‖`` is summed as
``e_q``. ``H`` is itself formed in floating point, so both square roots are
doubled; with the truncation part an estimate, the bound is labelled
``"estimate"``.

The
scalars of the bound are themselves computed in floating point, so each is
rounded upwards: a computed norm of ``k`` terms is multiplied by
``1 + (k + 4) u``, a 2-norm (LAPACK's SVD, accurate to a small multiple of
``d u`` relative to the largest singular value) by ``1 + 8 (d + 1)² u``, ``c``
and ``G`` likewise (``G`` also gets the rounding of forming
``T_i(θ_0) − θ_0``), every update of ``e_P``, ``e_q`` and the final sum by
``1 + 8 u``, and each step adds an allowance for underflow. A tolerance
below the rounding part cannot be met: the chain stops once the truncation
part is below a thousandth of the rounding part, and is reported as not
converged, *limited by rounding*.

**Low-rank maps** ``A_i = I − s U Vᵀ`` (:class:`~contraction.LowRankAffineMaps`)
with ``r < d`` are the identity on a subspace, so ``c >= 1`` exactly and the
bound is an estimate (with ``r >= d`` the maps are made dense first). The
product is ``P̂_n = fl(P̂ − fl(Ŵ Vᵀ))`` with ``Ŵ = fl(fl(P̂ U) s)``, whose error
is at most ``γ_{d+1} s |P̂||U||Vᵀ| + γ_r |Ŵ||Vᵀ| + u/(1 − u) |P̂_n|`` entrywise,
so ``w = γ_{d+1} s ‖P̂‖_F ‖U‖_F ‖V‖_F + γ_r ‖Ŵ‖_F ‖V‖_F + u/(1 − u) ‖P̂_n‖_F``
bounds ``‖F‖₂``; ``E_iᵀ H E_i`` is a rank-``2(r + 1)`` update of ``H``.

The batch sequence is drawn in chunks and extended, never redrawn, when the
horizon grows.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..core._kernels import chain_matmul
from ..core._validation import (
    NonConvergenceWarning,
    as_float_array,
    as_generator,
    check_int,
    check_positive_int,
    check_real,
    describe,
)
from ..core.iterates import forward_iterates
from ..core.lowrank import LowRankAffineMaps, check_affine_family
from ..core.maps import AffineMaps
from ..core.sampling import sample_batches
from .diagnostics import contraction_constant, lyapunov_exponent
from .moments import StationaryLawError, stationary_moments

__all__ = ["MAX_CHAINS", "BackwardLimits", "FixedPointResult", "backward_fixed_point", "backward_limits"]

#: Largest ``n_chains`` of :func:`backward_limits` (one spawned stream and one ``(d+1)²`` product each).
MAX_CHAINS = 10**6
_U = 2.0**-53  # unit roundoff of float64
_GROW = 1.0 + 8 * _U  # rounds a computed bound upwards (covers a few roundings of its own arithmetic)
_TINY = np.finfo(float).smallest_subnormal
_BLOCK = 8192  # chains backward_limits runs together (their draws: at most _BLOCK x 1024 values)


def _up(x, n_terms: int):
    """``x`` (a computed norm or sum of ``n_terms`` terms) rounded upwards past its own rounding error."""
    return x * (1.0 + (n_terms + 4) * _U)


@dataclass(frozen=True)
class FixedPointResult:
    """Backward limit of one batch sequence.

    Attributes
    ----------
    x : ndarray, shape (d,)
        ``θ̃_n`` at the step where the bound met ``tol`` (or where it stopped).
    converged : bool
        Whether the bound met ``tol``.
    n_steps : int
        Number of batches used.
    error_bound : float
        Bound on ``‖x − θ̃_∞‖`` for the returned floating-point ``x``:
        ``truncation_bound + rounding_bound`` (rounded upwards).
    bound_kind : str
        ``"certified"`` (strict contraction) or ``"estimate"`` (average
        contraction; see the module notes).
    message : str
        What happened, and what to change when it did not converge.
    truncation_bound : float
        The part ``min(c^n, ‖P_n‖₂) G/(1 − c)`` (or ``‖P_n‖₂ R``): distance
        from the exact ``θ̃_n`` to ``θ̃_∞``.
    rounding_bound : float
        The part that covers the floating-point error of forming ``P_n``,
        ``q_n`` and ``x``; ``tol`` below it cannot be met.
    rounding_limited : bool
        Stopped because rounding, not the number of steps, kept the bound above ``tol``.
    """

    x: np.ndarray
    converged: bool
    n_steps: int
    error_bound: float
    bound_kind: str
    message: str
    truncation_bound: float | None = None
    rounding_bound: float | None = None
    rounding_limited: bool = False


@dataclass(frozen=True)
class BackwardLimits:
    """Backward limits of many independent chains (see :func:`backward_limits`).

    Attributes
    ----------
    x : ndarray, shape (n_chains, d)
        The last ``θ̃_n`` of each chain.
    converged : ndarray of bool, shape (n_chains,)
        Whether each chain's bound met ``tol``.
    n_steps : ndarray of int, shape (n_chains,)
        Batches used by each chain.
    error_bound : ndarray, shape (n_chains,)
        Bound on ``‖x − θ̃_∞‖`` per chain, rounding included.
    bound_kind : str
        ``"certified"`` or ``"estimate"``.
    contraction_constant : float
        ``c = max_i ‖A_i‖₂``.
    truncation_bound : ndarray, shape (n_chains,)
        The truncation part of ``error_bound``.
    rounding_bound : ndarray, shape (n_chains,)
        The rounding part of ``error_bound``.
    rounding_limited : ndarray of bool, shape (n_chains,)
        Chains stopped because rounding kept the bound above ``tol``.
    """

    x: np.ndarray
    converged: np.ndarray
    n_steps: np.ndarray
    error_bound: np.ndarray
    bound_kind: str
    contraction_constant: float
    truncation_bound: np.ndarray
    rounding_bound: np.ndarray
    rounding_limited: np.ndarray


def _spread_estimate(maps, theta0: np.ndarray, gamma: float, rng: np.random.Generator) -> np.ndarray:
    """Estimate of ``‖Z − θ_0‖`` (Z ~ π) used by the average-contraction bound.

    Finite covariance: ten times ``sqrt(E‖Z − θ_0‖²)`` (Chebyshev: exceeded
    with probability ≤ 1 %). Otherwise the 0.999-quantile of ``‖Z − θ_0‖``
    over long forward runs (length from the Lyapunov exponent ``gamma``),
    drawn from ``rng``.
    """
    try:
        mom = stationary_moments(maps)
    except StationaryLawError:
        mom = None
    if mom is not None:
        diff = theta0 - mom.mean
        return 10.0 * np.sqrt(np.sum(diff * diff, axis=-1) + np.trace(mom.cov))
    n = int(min(20000, max(200, 40.0 / max(-gamma, 1e-3))))
    idx = sample_batches(maps.n_maps, n, 2000, probs=maps.probs, rng=rng)
    z = forward_iterates(maps, np.zeros(maps.dim), idx, save_steps=[n])[:, 0]
    starts, inverse = np.unique(theta0, axis=0, return_inverse=True)  # one quantile per distinct start
    dist = np.linalg.norm(starts[:, None, :] - z[None, :, :], axis=-1)
    return np.quantile(dist, 0.999, axis=1)[inverse.reshape(-1)]


class _Products:
    """Backward products ``P̂_n``, ``q̂_n = q_hi + q_lo`` of many chains, with running rounding bounds.

    ``certified``: ``e_P(n)``, ``e_q(n)`` bound ``‖P̂_n − P_n‖₂`` and
    ``‖q̂_n − q_n‖₂``. Otherwise (average contraction) the local errors are
    propagated through the suffix products, ``H_n = E_nᵀ H_{n−1} E_n + w_n² I``
    over ``n`` steps (see the module notes).
    """

    def __init__(self, maps, theta0: np.ndarray, certified: bool):
        n, d = theta0.shape
        self.maps, self.d, self.theta0, self.certified = maps, d, theta0, certified
        self.gamma = d * _U / (1 - d * _U)
        self.low_rank = isinstance(maps, LowRankAffineMaps)
        if self.low_rank:  # never certified (c >= 1): s ‖U‖_F ‖V‖_F and ‖V‖_F for w
            r = maps.rank
            self.gamma_r, self.gamma_s = r * _U / (1 - r * _U), (d + 1) * _U / (1 - (d + 1) * _U)
            self.norm_v = _up(np.linalg.norm(maps.V, axis=(1, 2)), r * d)
            self.norm_uv = _up(_up(maps.scale * np.linalg.norm(maps.U, axis=(1, 2)), r * d) * self.norm_v, 2)
        else:
            self.norm2 = _up(np.linalg.norm(maps.A, 2, axis=(1, 2)), 8 * (d + 1) ** 2)
            self.norm_f = _up(np.linalg.norm(maps.A, axis=(1, 2)), d * d)
        self.norm_b = _up(np.linalg.norm(maps.b, axis=1), d)
        self.norm_theta0 = _up(np.linalg.norm(theta0, axis=1), d)
        self.tiny = (d + 1) ** 2 * _TINY  # underflow allowance per step
        self.P = np.broadcast_to(np.eye(d), (n, d, d)).copy()
        self.q_hi = np.zeros((n, d))
        self.q_lo = np.zeros((n, d))
        self.e_P = np.zeros(n)
        self.e_q = np.zeros(n)
        if not certified:
            self.H = np.zeros((n, d + 1, d + 1))
            self.steps = np.zeros(n)

    def _fro(self, P: np.ndarray, width: int | None = None) -> np.ndarray:
        return _up(np.sqrt(np.einsum("cij,cij->c", P, P)), self.d * (self.d if width is None else width))

    def _norm(self, v: np.ndarray) -> np.ndarray:
        return _up(np.sqrt(np.einsum("ci,ci->c", v, v)), self.d)

    def run(self, rows: np.ndarray, idx: np.ndarray) -> None:
        """Extend the chains ``rows`` by the batches ``idx`` (len(rows), k): ``P ← P A_ξ``, ``q ← q + P b_ξ``."""
        b = self.maps.b
        P, hi, lo = self.P[rows], self.q_hi[rows], self.q_lo[rows]
        e_P, e_q, g = self.e_P[rows], self.e_q[rows], self.gamma
        if not self.certified:
            H, eye = self.H[rows], np.eye(self.d + 1)
        for j in range(idx.shape[1]):
            i = idx[:, j]
            t = np.einsum("cij,cj->ci", P, b[i])
            s = hi + t  # TwoSum: s + err == hi + t exactly
            bb = s - hi
            lo = lo + ((hi - (s - bb)) + (t - bb))
            hi = s
            fro, nb = self._fro(P), self.norm_b[i]
            lo_err = _U / (1 - _U) * self._norm(lo)
            if self.certified:
                e_q = (e_q + e_P * nb + g * fro * nb + lo_err + self.tiny) * _GROW
                e_P = (e_P * self.norm2[i] + g * fro * self.norm_f[i] + self.tiny) * _GROW
                P = chain_matmul(P, self.maps.A, i)
                continue
            # the local error [[F, f], [0, 0]] of this step: F carries on through the suffix, f does not
            e_q = (e_q + g * fro * nb + lo_err + self.tiny) * _GROW
            if self.low_rank:
                P_new, W = self.maps._times_linear(P, i)
                w = (self.gamma_s * fro * self.norm_uv[i] + self.gamma_r * self._fro(W, self.maps.rank) * self.norm_v[i]
                     + _U / (1 - _U) * self._fro(P_new) + self.tiny) * _GROW  # w ≥ ‖F‖₂
                H = self.maps._augmented_congruence(H, i) + (w * w)[:, None, None] * eye  # Eᵀ H E + w² I
            else:
                w = (g * fro * self.norm_f[i] + self.tiny) * _GROW  # w ≥ ‖F‖₂
                HE = chain_matmul(H, self.maps.augmented, i)
                H = chain_matmul(np.swapaxes(HE, 1, 2), self.maps.augmented, i) + (w * w)[:, None, None] * eye
                P_new = chain_matmul(P, self.maps.A, i)
            P = P_new
        self.P[rows], self.q_hi[rows], self.q_lo[rows] = P, hi, lo
        self.e_P[rows], self.e_q[rows] = e_P, e_q
        if not self.certified:
            self.H[rows] = H
            self.steps[rows] += idx.shape[1]

    def p_error(self, rows: np.ndarray) -> np.ndarray:
        """Bound on ``‖P̂_n − P_n‖₂`` (an estimate under average contraction)."""
        if self.certified:
            return self.e_P[rows]
        d = self.d
        # |tr H|: the low-rank congruence H − K Rᵀ − R Kᵀ can round a tiny trace below zero
        return 2.0 * np.sqrt(self.steps[rows] * np.abs(np.einsum("cii->c", self.H[rows][:, :d, :d]))) + self.tiny

    def limit(self, rows: np.ndarray):
        """``x = fl(q_hi + fl(q_lo + fl(P̂ θ_0)))`` of the chains ``rows`` and the bound on its rounding error."""
        P, t0 = self.P[rows], self.norm_theta0[rows]
        z = self.q_lo[rows] + np.einsum("cij,cj->ci", P, self.theta0[rows])
        x = self.q_hi[rows] + z
        if self.certified:
            carried = self.e_P[rows] * t0 + self.e_q[rows]
        else:
            v = np.concatenate([self.theta0[rows], np.ones((len(rows), 1))], axis=1)
            vHv = np.abs(np.einsum("ci,cij,cj->c", v, self.H[rows], v))
            carried = 2.0 * np.sqrt(self.steps[rows] * vHv) + self.e_q[rows]
        err = (carried + self.gamma * self._fro(P) * t0 + _U / (1 - _U) * (self._norm(z) + self._norm(x))
               + self.tiny) * _GROW
        return x, err


def _streams_after(gen: np.random.Generator, skip: int, count: int) -> list:
    """The ``count`` generators ``gen.spawn`` gives after ``skip`` more streams, without spawning those."""
    seq = gen.bit_generator.seed_seq
    first = seq.n_children_spawned + skip
    return [np.random.Generator(type(gen.bit_generator)(np.random.SeedSequence(
        seq.entropy, spawn_key=(*seq.spawn_key, first + j), pool_size=seq.pool_size))) for j in range(count)]


def _certified_scale(maps: AffineMaps, theta0: np.ndarray, c_up: float) -> np.ndarray:
    """``G/(1 − c)`` per chain, rounded upwards (``G`` includes the rounding of ``T_i(θ_0) − θ_0``)."""
    d, m = maps.dim, maps.n_maps
    diff = maps.step(theta0[:, None, :], np.arange(m)) - theta0[:, None, :]  # (C, m, d)
    gamma = (d + 2) * _U / (1 - (d + 2) * _U)
    norm_f = np.linalg.norm(maps.A, axis=(1, 2))
    norm_b = np.linalg.norm(maps.b, axis=1)
    norm_t = np.linalg.norm(theta0, axis=1)[:, None]
    err = _up(gamma * (_up(norm_f, d * d) * _up(norm_t, d) + _up(norm_b, d) + _up(norm_t, d)), 4)
    G = (_up(np.linalg.norm(diff, axis=-1), d) + err).max(axis=1)
    return G / (1.0 - c_up) * _GROW * _GROW


def backward_limits(maps, theta0, n_chains, rng=None, tol=1e-10, max_steps=100_000, chunk=8) -> BackwardLimits:
    r"""Backward limits of ``n_chains`` independent i.i.d. batch sequences, vectorized.

    Each chain runs until its error bound is ``<= tol``, until rounding keeps
    it above ``tol`` (the truncation part has fallen below a thousandth of
    the rounding part), or ``max_steps``; the bound is checked after chunks of
    ``chunk`` steps, doubling up to 1024. The bound covers truncation and
    rounding (derivation in the module notes). Chain ``i`` draws its batches
    from the ``i``-th stream spawned from ``rng`` (the same sequence as chain
    ``i`` of ``sample_batches(rng=rng)``); under average contraction the
    Lyapunov exponent and the spread estimate use the two streams spawned
    next. See :func:`backward_fixed_point`.

    Parameters
    ----------
    maps : AffineMaps or LowRankAffineMaps
        The family, strictly contractive or contractive on average.
    theta0 : array_like, shape (d,) or (n_chains, d)
        One start for every chain, or one per chain.
    n_chains : int
        Number of chains, in ``[1, MAX_CHAINS]`` (``10**6``).
    rng : None, int, SeedSequence or Generator, optional
        Source of the batch sequences.
    tol : float, default 1e-10
        Target bound on ``‖x − θ̃_∞‖``, ``> 0``.
    max_steps : int, default 100000
        Largest number of batches per chain.
    chunk : int, default 8
        Steps before the first check of the bound.

    Returns
    -------
    BackwardLimits
        Limits, bounds (with their truncation and rounding parts) and flags per chain.

    Examples
    --------
    >>> import numpy as np
    >>> maps = AffineMaps([[[0.5]], [[0.5]]], [[1.0], [-1.0]])
    >>> res = backward_limits(maps, [0.0], 3, rng=0, tol=1e-12)
    >>> bool(res.converged.all() and np.all(res.error_bound <= 1e-12) and np.all(res.rounding_bound > 0))
    True
    """
    maps = check_affine_family(maps)
    if isinstance(maps, LowRankAffineMaps) and maps.rank >= maps.dim:
        maps = maps.to_dense()  # only then can c < 1: the certified bound uses the matrices
    gen = as_generator(rng)
    n_chains = check_int(n_chains, "n_chains", 1, MAX_CHAINS)
    max_steps = check_positive_int(max_steps, "max_steps")
    chunk = check_positive_int(chunk, "chunk")
    tol = check_real(tol, "tol", 0.0, None, closed="neither")
    d = maps.dim
    theta0 = as_float_array(theta0, "theta0", ndim=(1, 2))
    if theta0.shape[-1] != d:
        raise ValueError(f"theta0: expected last axis of length {d}, got {describe(theta0)}")
    if theta0.ndim == 2 and theta0.shape[0] not in (1, n_chains):
        raise ValueError(f"theta0: expected one vector or one per chain ({n_chains}, {d}), got {describe(theta0)}")
    theta0 = np.broadcast_to(theta0, (n_chains, d)).copy()
    c = contraction_constant(maps)
    c_up = float(_up(c, 8 * (d + 1) ** 2))
    with np.errstate(over="ignore", invalid="ignore"):
        if c_up < 1:
            kind = "certified"
            scale = _certified_scale(maps, theta0, c_up)
        else:
            lyapunov_rng, spread_rng = _streams_after(gen, n_chains, 2)  # spawned after the chains' streams
            gamma = lyapunov_exponent(maps, rng=lyapunov_rng)
            if not gamma.exponent + 3 * gamma.stderr < 0:
                raise ValueError(
                    f"maps: backward iterates need a negative Lyapunov exponent; got γ ≈ {gamma.exponent:.3g} "
                    f"± {gamma.stderr:.2g} with contraction constant {c:.3g} >= 1. Lower the learning rate."
                )
            kind = "estimate"
            scale = _spread_estimate(maps, theta0, gamma.exponent, spread_rng)
    if not np.all(np.isfinite(scale)):
        raise ValueError("maps: the distance from theta0 to the limit overflows; the maps or theta0 are too large")
    products = _Products(maps, theta0, kind == "certified")
    cdf = maps.probs.cumsum()
    cdf /= cdf[-1]
    out_x = theta0.copy()
    out_n = np.zeros(n_chains, dtype=np.int64)
    out_trunc = scale.copy()
    out_round = np.zeros(n_chains)
    out_bound = scale.copy()
    done = out_bound <= tol
    limited = np.zeros(n_chains, dtype=bool)
    for first in range(0, n_chains, _BLOCK):  # blocks of chains, each run to its end: memory bounded by _BLOCK
        gens = gen.spawn(min(_BLOCK, n_chains - first))  # chain i: the i-th spawned stream
        active = first + np.flatnonzero(~done[first:first + len(gens)])
        n, k_next = 0, chunk
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            while active.size and n < max_steps:
                k = min(k_next, max_steps - n)
                k_next = min(2 * k_next, 1024)
                # Generator.choice(m, size=k, p=probs), as in sample_batches, without its O(m) checks per call
                uniforms = np.empty((active.size, k))
                for row, i in enumerate(active):
                    gens[i - first].random(out=uniforms[row])
                idx = cdf.searchsorted(uniforms, side="right")
                products.run(active, idx)
                n += k
                P = products.P[active]
                norms = _up(np.linalg.norm(P, 2, axis=(1, 2)), 8 * (d + 1) ** 2) + products.p_error(active)
                if not np.all(np.isfinite(norms)):
                    raise ValueError("maps: backward products overflowed; the maps do not contract on average")
                rate = np.minimum(norms, c_up**n * _GROW) if kind == "certified" else norms
                trunc = rate * scale[active] * _GROW
                x, rnd = products.limit(active)
                bound = (trunc + rnd) * _GROW
                if not (np.all(np.isfinite(bound)) and np.all(np.isfinite(x))):
                    raise ValueError("maps: the backward iterates or their rounding bound overflowed; the products "
                                     "grow too large before they contract (lower the learning rate)")
                out_x[active], out_n[active], out_bound[active] = x, n, bound
                out_trunc[active], out_round[active] = trunc, rnd
                newly = bound <= tol
                stuck = ~newly & (trunc <= 1e-3 * rnd)  # more steps cannot bring the bound below tol
                done[active[newly]] = True
                limited[active[stuck]] = True
                active = active[~(newly | stuck)]
    if kind == "estimate":
        gen.spawn(2)  # the auxiliary streams, used above: the spawn counter ends where it always did
    return BackwardLimits(out_x, done, out_n, out_bound, kind, c, out_trunc, out_round, limited)


def backward_fixed_point(maps, theta0=None, rng=None, tol=1e-10, max_steps=100_000) -> FixedPointResult:
    r"""Estimate the backward limit ``θ̃_∞`` of one i.i.d. batch sequence, with an error bound.

    Parameters
    ----------
    maps : AffineMaps or LowRankAffineMaps
        The family; strictly contractive (certified bound) or contractive on
        average (estimated bound). Low-rank maps ``I − s U Vᵀ`` with ``r < d``
        have ``c >= 1``: their bound is an estimate, and a step costs ``O(r d²)``.
    theta0 : array_like, shape (d,), optional
        Start (zeros by default); the limit does not depend on it.
    rng : None, int, SeedSequence or Generator, optional
        Source of randomness. The batch sequence is the first stream spawned
        from it, as chain 0 of ``sample_batches(rng=rng)``, extended in chunks
        and never redrawn; under average contraction two more spawned streams
        estimate the Lyapunov exponent and the spread of the law.
    tol : float, default 1e-10
        Stop when the bound on ``‖x − θ̃_∞‖`` is ``<= tol`` (``tol > 0``).
        The bound covers the floating-point error of the returned ``x`` as
        well as the truncation (see :mod:`contraction.theory.fixed_point`), so
        ``tol`` cannot be below half an ulp of the answer, ``u ‖θ̃_∞‖``
        (``u = 2^-53``), plus the accumulated error of the products; a
        smaller ``tol`` is reported as not reached, limited by rounding.
    max_steps : int, default 100000
        Largest number of batches used.

    Returns
    -------
    FixedPointResult
        The limit estimate and its bound (with its truncation and rounding
        parts). Non-convergence, for lack of steps or because rounding limits
        the accuracy, is reported in ``converged``/``message`` and with a
        :class:`NonConvergenceWarning` saying what to change.

    Examples
    --------
    >>> import numpy as np
    >>> import contraction as ct
    >>> maps = ct.QuadraticModel([[[1.0]], [[1.0]]], [[1.0], [-1.0]]).sgd_maps(0.5)
    >>> res = ct.backward_fixed_point(maps, rng=0, tol=1e-12)
    >>> res.converged and res.bound_kind == "certified"
    True
    >>> far = ct.backward_iterates(maps, [5.0], ct.sample_batches(2, res.n_steps + 40, rng=0))
    >>> bool(abs(far[0, -1, 0] - res.x[0]) <= res.error_bound)
    True
    """
    maps = check_affine_family(maps)
    if theta0 is None:
        theta0 = np.zeros(maps.dim)
    theta0 = as_float_array(theta0, "theta0", ndim=1)
    res = backward_limits(maps, theta0, 1, rng=rng, tol=tol, max_steps=max_steps)
    converged = bool(res.converged[0])
    bound, rnd, n = float(res.error_bound[0]), float(res.rounding_bound[0]), int(res.n_steps[0])
    limited = bool(res.rounding_limited[0])
    if converged:
        msg = (f"converged after {n} steps ({res.bound_kind} bound {bound:.3g}, of which rounding "
               f"{rnd:.3g})")
    elif limited:
        msg = (f"not converged: rounding limits the accuracy to about {bound:.3g} (rounding part {rnd:.3g} "
               f"after {n} steps) > tol {tol:.3g}; loosen tol to at least {bound:.2g}")
    else:
        msg = (
            f"not converged after {max_steps} steps: bound {bound:.3g} > tol {tol:.3g}; "
            f"raise max_steps, loosen tol or lower the learning rate (contraction constant "
            f"{res.contraction_constant:.4g})"
        )
    if not converged:
        warnings.warn(msg, NonConvergenceWarning, stacklevel=2)
    return FixedPointResult(res.x[0], converged, n, bound, res.bound_kind, msg, float(res.truncation_bound[0]),
                            rnd, limited)
