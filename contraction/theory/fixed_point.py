r"""Certified estimation of backward limits ``θ̃_∞ = lim T_{ξ_1} ∘ … ∘ T_{ξ_n}(θ_0)``.

For affine maps ``θ̃_n = P_n θ_0 + q_n`` and ``θ̃_∞ − θ̃_n = P_n (Z' − θ_0)``
where ``Z'`` is the backward limit of the shifted sequence ``ξ_{n+1}, …``.

* Strict contraction (``c = max ‖A_i‖ < 1``): ``‖Z' − θ_0‖ ≤ G/(1 − c)`` with
  ``G = max_i ‖T_i(θ_0) − θ_0‖``, so
  ``‖θ̃_n − θ̃_∞‖ ≤ min(c^n, ‖P_n‖₂) G/(1 − c)``: a certified a-posteriori
  bound (SPEC C1).
* Average contraction (``c ≥ 1``, Lyapunov exponent ``γ < 0``): ``‖P_n‖₂ → 0``
  but ``‖Z' − θ_0‖`` has no deterministic bound. The bound reported is
  ``‖P_n‖₂ R`` with ``R`` an estimate of the spread of ``‖Z − θ_0‖``,
  ``Z ~ π``; it is labelled ``"estimate"``.

The batch sequence is drawn in chunks and extended, never redrawn, when the
horizon grows.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..core._kernels import _grouped_matmul
from ..core._validation import (
    NonConvergenceWarning,
    as_float_array,
    as_generator,
    check_positive_int,
    check_real,
    describe,
)
from ..core.iterates import forward_iterates
from ..core.maps import AffineMaps, check_affine_maps
from ..core.sampling import sample_batches
from .diagnostics import contraction_constant, lyapunov_exponent, mean_square_radius
from .moments import stationary_moments

__all__ = ["BackwardLimits", "FixedPointResult", "backward_fixed_point", "backward_limits"]


@dataclass(frozen=True)
class FixedPointResult:
    """Backward limit of one batch sequence.

    Attributes
    ----------
    x : ndarray, shape (d,)
        ``θ̃_n`` at the step where the bound met ``tol`` (or at ``max_steps``).
    converged : bool
        Whether the bound met ``tol``.
    n_steps : int
        Number of batches used.
    error_bound : float
        Bound on ``‖x − θ̃_∞‖``.
    bound_kind : str
        ``"certified"`` (strict contraction) or ``"estimate"`` (average
        contraction; see the module notes).
    message : str
        What happened, and what to change when it did not converge.
    """

    x: np.ndarray
    converged: bool
    n_steps: int
    error_bound: float
    bound_kind: str
    message: str


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
        Bound on ``‖x − θ̃_∞‖`` per chain.
    bound_kind : str
        ``"certified"`` or ``"estimate"``.
    contraction_constant : float
        ``c = max_i ‖A_i‖₂``.
    """

    x: np.ndarray
    converged: np.ndarray
    n_steps: np.ndarray
    error_bound: np.ndarray
    bound_kind: str
    contraction_constant: float


def _spread_estimate(maps: AffineMaps, theta0: np.ndarray, gamma: float, rng: np.random.Generator) -> np.ndarray:
    """Estimate of ``‖Z − θ_0‖`` (Z ~ π) used by the average-contraction bound.

    Mean-square stable: ten times ``sqrt(E‖Z − θ_0‖²)`` (Chebyshev: exceeded
    with probability ≤ 1 %). Otherwise the 0.999-quantile of ``‖Z − θ_0‖``
    over long forward runs (length from the Lyapunov exponent ``gamma``),
    drawn from ``rng``.
    """
    if mean_square_radius(maps) < 1:
        mom = stationary_moments(maps)
        diff = theta0 - mom.mean
        return 10.0 * np.sqrt(np.sum(diff * diff, axis=-1) + np.trace(mom.cov))
    n = int(min(20000, max(200, 40.0 / max(-gamma, 1e-3))))
    idx = sample_batches(maps.n_maps, n, 2000, probs=maps.probs, rng=rng)
    z = forward_iterates(maps, np.zeros(maps.dim), idx, save_steps=[n])[:, 0]
    dist = np.linalg.norm(theta0[:, None, :] - z[None, :, :], axis=-1)
    return np.quantile(dist, 0.999, axis=1)


def backward_limits(maps, theta0, n_chains, rng=None, tol=1e-10, max_steps=100_000, chunk=8) -> BackwardLimits:
    """Backward limits of ``n_chains`` independent i.i.d. batch sequences, vectorized.

    Each chain runs until its error bound is ``<= tol`` or ``max_steps``;
    the bound is checked after chunks of ``chunk`` steps, doubling up to 1024.
    Chain ``i`` draws its batches from the ``i``-th stream spawned from
    ``rng`` (the same sequence as chain ``i`` of ``sample_batches(rng=rng)``);
    under average contraction the Lyapunov exponent and the spread estimate
    use the two streams spawned next. See :func:`backward_fixed_point`.
    """
    maps = check_affine_maps(maps)
    gen = as_generator(rng)
    n_chains = check_positive_int(n_chains, "n_chains")
    max_steps = check_positive_int(max_steps, "max_steps")
    chunk = check_positive_int(chunk, "chunk")
    tol = check_real(tol, "tol", 0.0, None, closed="neither")
    d, m = maps.dim, maps.n_maps
    theta0 = as_float_array(theta0, "theta0", ndim=(1, 2))
    if theta0.shape[-1] != d:
        raise ValueError(f"theta0: expected last axis of length {d}, got {describe(theta0)}")
    if theta0.ndim == 2 and theta0.shape[0] not in (1, n_chains):
        raise ValueError(f"theta0: expected one vector or one per chain ({n_chains}, {d}), got {describe(theta0)}")
    theta0 = np.broadcast_to(theta0, (n_chains, d)).copy()
    gens = gen.spawn(n_chains)
    c = contraction_constant(maps)
    x0 = np.concatenate([theta0, np.ones((n_chains, 1))], axis=1)
    if c < 1:
        kind = "certified"
        G = np.linalg.norm(maps.step(theta0[:, None, :], np.arange(m)) - theta0[:, None, :], axis=-1).max(1)
        scale = G / (1.0 - c)
    else:
        lyapunov_rng, spread_rng = gen.spawn(2)
        gamma = lyapunov_exponent(maps, rng=lyapunov_rng)
        if not gamma.exponent + 3 * gamma.stderr < 0:
            raise ValueError(
                f"maps: backward iterates need a negative Lyapunov exponent; got γ ≈ {gamma.exponent:.3g} "
                f"± {gamma.stderr:.2g} with contraction constant {c:.3g} >= 1. Lower the learning rate."
            )
        kind = "estimate"
        scale = _spread_estimate(maps, theta0, gamma.exponent, spread_rng)
    E = maps.augmented
    carry = np.broadcast_to(np.eye(d + 1), (n_chains, d + 1, d + 1)).copy()
    out_x = theta0.copy()
    out_n = np.zeros(n_chains, dtype=np.int64)
    out_bound = scale.copy()
    done = out_bound <= tol
    active = np.flatnonzero(~done)
    n = 0
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        while active.size and n < max_steps:
            k = min(chunk, max_steps - n)
            chunk = min(2 * chunk, 1024)
            idx = np.stack([gens[i].choice(m, size=k, p=maps.probs) for i in active])
            P = carry[active]
            for j in range(k):
                P = _grouped_matmul(P, E, idx[:, j])
            n += k
            carry[active] = P
            norms = np.linalg.norm(P[:, :d, :d], 2, axis=(1, 2))
            if not np.all(np.isfinite(norms)):
                raise ValueError("maps: backward products overflowed; the maps do not contract on average")
            rate = np.minimum(norms, c**n) if c < 1 else norms
            bound = rate * scale[active]
            x = np.einsum("cij,cj->ci", P[:, :d], x0[active])
            out_x[active], out_n[active], out_bound[active] = x, n, bound
            newly = bound <= tol
            done[active[newly]] = True
            active = active[~newly]
    return BackwardLimits(out_x, done, out_n, out_bound, kind, c)


def backward_fixed_point(maps, theta0=None, rng=None, tol=1e-10, max_steps=100_000) -> FixedPointResult:
    r"""Estimate the backward limit ``θ̃_∞`` of one i.i.d. batch sequence, with an error bound.

    Parameters
    ----------
    maps : AffineMaps
        The family; strictly contractive (certified bound) or contractive on
        average (estimated bound).
    theta0 : array_like, shape (d,), optional
        Start (zeros by default); the limit does not depend on it.
    rng : None, int, SeedSequence or Generator, optional
        Source of randomness. The batch sequence is the first stream spawned
        from it, as chain 0 of ``sample_batches(rng=rng)``, extended in chunks
        and never redrawn; under average contraction two more spawned streams
        estimate the Lyapunov exponent and the spread of the law.
    tol : float, default 1e-10
        Stop when the bound on ``‖θ̃_n − θ̃_∞‖`` is ``<= tol`` (``tol > 0``).
    max_steps : int, default 100000
        Largest number of batches used.

    Returns
    -------
    FixedPointResult
        The limit estimate and its bound. Non-convergence is reported in
        ``converged``/``message`` and with a :class:`NonConvergenceWarning`
        saying what to change.

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
    maps = check_affine_maps(maps)
    if theta0 is None:
        theta0 = np.zeros(maps.dim)
    theta0 = as_float_array(theta0, "theta0", ndim=1)
    res = backward_limits(maps, theta0, 1, rng=rng, tol=tol, max_steps=max_steps)
    converged = bool(res.converged[0])
    if converged:
        msg = f"converged after {res.n_steps[0]} steps ({res.bound_kind} bound {res.error_bound[0]:.3g})"
    else:
        msg = (
            f"not converged after {max_steps} steps: bound {res.error_bound[0]:.3g} > tol {tol:.3g}; "
            f"raise max_steps, loosen tol or lower the learning rate (contraction constant "
            f"{res.contraction_constant:.4g})"
        )
        warnings.warn(msg, NonConvergenceWarning, stacklevel=2)
    return FixedPointResult(res.x[0], converged, int(res.n_steps[0]), float(res.error_bound[0]),
                            res.bound_kind, msg)
