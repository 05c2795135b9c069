r"""Kesten–Goldie tail index of the stationary law of random affine maps ``θ ↦ A θ + b``.

When ``γ < 0`` and some products expand, the stationary law has a power tail
``P(‖θ‖ > t) ~ C t^{−α}`` with ``α`` the positive root of the moment
Lyapunov exponent

.. math:: Λ(s) = \lim_{n→∞} \frac1n \log E‖A_{ξ_n} ⋯ A_{ξ_1} x‖^s,

convex with ``Λ(0) = 0`` and ``Λ'(0) = γ`` (Kesten 1973, Goldie 1991). In one
dimension ``Λ(s) = log E|a|^s`` exactly; in ``d > 1`` it is the log of the
top eigenvalue of the tilted transfer operator ``f ↦ E[‖A x‖^s f(A x/‖A x‖)]``
on directions, estimated here by a population (cloning) Monte Carlo.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.optimize

from ..core._kernels import chain_matmul
from ..core._validation import as_generator, check_int, check_real, frozen
from ..core.lowrank import LowRankAffineMaps, check_affine_family

__all__ = ["MAX_TAIL_DRAWS", "TailIndexResult", "tail_index"]

#: Largest number of map draws ``n_batches · n_chains · (burn_in + n_steps)`` of :func:`tail_index`.
MAX_TAIL_DRAWS = 10**7
EXACT_1D = "exact: root of E|a|^α = 1 (brentq)"
POPULATION = "Monte Carlo: root of the moment Lyapunov exponent Λ(s), population estimate with resampling"
_S_MIN = 1.0 / 64.0
_XTOL = 5e-3
_MAX_ROUNDS = 16  # bracketing takes at most 7 (s from 1 to 64 or 1/64); regula falsi the rest


@dataclass(frozen=True, eq=False)
class TailIndexResult(float):
    """Kesten's tail index ``α``: a float (the estimate) that carries how it was obtained.

    The value compares, formats and computes as the float ``alpha``.

    Attributes
    ----------
    alpha : float
        The tail index: ``P(‖θ‖ > t) ~ C t^{−α}`` for the stationary law.
    stderr : float
        Standard error of ``alpha``: the spread of the independent batches'
        roots over ``sqrt(n_batches)`` (0 when exact).
    estimator : str
        ``EXACT_1D`` (``d = 1``) or ``POPULATION`` (``d > 1``).
    exact : bool
        Whether ``alpha`` is exact up to the root finder's tolerance.
    n_steps : int
        Steps per population after the burn-in (0 when exact).
    n_chains : int
        Particles per population (0 when exact).
    n_batches : int
        Independent populations (0 when exact).
    """

    alpha: float
    stderr: float
    estimator: str
    exact: bool
    n_steps: int = 0
    n_chains: int = 0
    n_batches: int = 0

    def __new__(cls, alpha, *args, **kwargs):
        return super().__new__(cls, alpha)

    def __str__(self) -> str:
        return float.__repr__(self)


def _linear_norms(maps) -> np.ndarray:
    if isinstance(maps, LowRankAffineMaps):
        return maps._linear_norms()
    return np.linalg.norm(maps.A, 2, axis=(1, 2))


def _exact_1d(maps) -> TailIndexResult:
    A = maps.to_dense().A if isinstance(maps, LowRankAffineMaps) else maps.A
    keep = maps.probs > 0
    a, p = np.abs(A[keep, 0, 0]), maps.probs[keep]
    with np.errstate(divide="ignore"):
        gamma = float(p @ np.log(a))
    if not gamma < 0:
        raise ValueError(f"maps: expected E log|a| < 0 (a stationary law), got {gamma:.4g}")
    if not np.any(a > 1):
        raise ValueError("maps: expected some |a_i| > 1 (with positive probability); with every |a_i| <= 1 the "
                         "stationary law has bounded support, every moment is finite and there is no finite "
                         "tail index (α = ∞)")
    loga = np.log(np.where(a > 0, a, 1.0))

    def g(alpha):  # log E|a|^α, convex, g(0) = 0, g'(0) = γ < 0
        terms = np.where(a > 0, np.log(p) + alpha * loga, -np.inf)
        return float(np.logaddexp.reduce(terms))

    hi = 1.0
    while g(hi) <= 0:  # g(α) >= log p_j + α log a_j → +∞ for the a_j > 1: this ends
        hi *= 2.0
    alpha = float(scipy.optimize.brentq(g, 1e-12, hi, xtol=1e-13, rtol=1e-13))
    return TailIndexResult(alpha, 0.0, EXACT_1D, True)


class _Populations:
    """``n_batches`` independent populations of directions with their random numbers drawn once.

    Every evaluation of ``Λ`` reuses the same map indices, start directions
    and resampling uniforms (common random numbers), so each batch's
    estimate ``Λ_b(s)`` varies with ``s`` only through the tilt.
    """

    def __init__(self, maps, gens, n_chains, n_steps, burn_in):
        d, total = maps.dim, burn_in + n_steps
        self.K, self.N, self.burn_in, self.n_steps = len(gens), n_chains, burn_in, n_steps
        starts, idx, u = [], [], []
        for g in gens:  # batch b's numbers come from its own stream only
            x = g.normal(size=(n_chains, d))
            starts.append(x / np.linalg.norm(x, axis=-1, keepdims=True))
            idx.append(g.choice(maps.n_maps, size=(total, n_chains), p=maps.probs))
            u.append(g.random(total))
        self.start = np.concatenate(starts)  # (K N, d)
        self.idx = np.stack(idx, axis=1).reshape(total, -1)  # (T, K N)
        self.u = np.stack(u, axis=1)  # (T, K)
        if isinstance(maps, LowRankAffineMaps):
            self.step = lambda v, i: maps._rows(v, i, offset=False)
        else:
            At = frozen(np.swapaxes(maps.A, 1, 2))
            self.step = lambda v, i: chain_matmul(v[:, None, :], At, i)[:, 0]
        self.grid = np.arange(n_chains) / n_chains
        self.offsets = np.arange(self.K)[:, None].astype(np.float64)
        self.last = ((np.arange(self.K) + 1) * n_chains - 1)[:, None]

    def moment_exponents(self, s: np.ndarray) -> np.ndarray:
        """``Λ_b(s_b)`` for every batch ``b``: mean over steps of ``log mean_j r_j^{s_b}``, resampling by weight."""
        K, N = self.K, self.N
        v = self.start
        total = np.zeros(K)
        for k in range(self.idx.shape[0]):
            v = self.step(v, self.idx[k])
            r = np.sqrt(np.einsum("ij,ij->i", v, v))
            with np.errstate(divide="ignore"):
                logw = s[:, None] * np.log(r).reshape(K, N)
            top = logw.max(axis=1, keepdims=True)
            dead = ~np.isfinite(top)  # every particle of the batch mapped to 0
            w = np.exp(logw - np.where(dead, 0.0, top))
            w[dead[:, 0]] = 1.0
            if k >= self.burn_in:  # log of the mean weight, less its O(1/N) bias −var/(2 N mean²)
                mean = w.mean(axis=1)
                inc = top[:, 0] + np.log(mean) + w.var(axis=1) / (2 * N * mean**2)
                total += np.where(dead[:, 0], -np.inf, inc)
            v = v / np.where(r > 0, r, 1.0)[:, None]
            cum = np.cumsum(w, axis=1)
            cum = cum / cum[:, -1:] + self.offsets
            pos = self.u[k][:, None] / N + self.grid + self.offsets  # systematic resampling
            parent = np.searchsorted(cum.ravel(), pos.ravel(), side="right").reshape(K, N)
            v = v[np.minimum(parent, self.last).ravel()]
        return total / self.n_steps


def _batch_roots(pop: _Populations, s_max: float) -> np.ndarray:
    """Root of each batch's ``Λ_b``: doubling or halving from 1 to a bracket, then Illinois regula falsi."""
    K = pop.K
    lo, flo = np.zeros(K), np.full(K, np.nan)
    hi, fhi = np.full(K, np.inf), np.full(K, np.nan)
    last = np.zeros(K)  # +1: hi replaced last, −1: lo replaced last
    s = np.ones(K)
    for _ in range(_MAX_ROUNDS):
        f = pop.moment_exponents(s)
        neg = f < 0
        bracketed = np.isfinite(flo) & np.isfinite(fhi)
        fhi = np.where(bracketed & neg & (last < 0), 0.5 * fhi, fhi)  # Illinois: the same side twice
        flo = np.where(bracketed & ~neg & (last > 0), 0.5 * flo, flo)
        lo, flo = np.where(neg, s, lo), np.where(neg, f, flo)
        hi, fhi = np.where(neg, hi, s), np.where(neg, fhi, f)
        last = np.where(neg, -1.0, 1.0)
        has_lo, has_hi = np.isfinite(flo), np.isfinite(fhi)
        if np.any(~has_hi & (s >= s_max)):
            raise ValueError(f"s_max: expected a bound above the tail index, but Λ(s) < 0 up to s_max = "
                             f"{s_max:g} (α > s_max, or α = ∞ when the law has bounded support); raise s_max")
        if np.any(~has_lo & (s <= _S_MIN)):
            raise ValueError(f"maps: expected a negative Lyapunov exponent (Λ(s) < 0 for small s > 0), got "
                             f"Λ({_S_MIN:g}) >= 0: no stationary law, or γ too close to 0 to resolve")
        bracketed = has_lo & has_hi
        if np.all(bracketed & (hi - lo <= _XTOL * hi)):
            break
        with np.errstate(invalid="ignore", divide="ignore"):
            falsi = hi - fhi * (hi - lo) / (fhi - flo)
        s = np.where(bracketed, falsi, np.where(has_hi, 0.5 * s, np.minimum(2.0 * s, s_max)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return hi - fhi * (hi - lo) / (fhi - flo)


def tail_index(maps, rng=None, n_steps=200, n_chains=256, n_batches=8, burn_in=20, s_max=64.0) -> TailIndexResult:
    r"""Compute Kesten's tail index ``α``: the positive root of the moment Lyapunov exponent ``Λ(s)``.

    ``Λ(s) = lim (1/n) log E‖A_{ξ_n} ⋯ A_{ξ_1} x‖^s`` is convex, ``Λ(0) = 0``,
    ``Λ'(0) = γ``; when ``γ < 0`` and some products expand it has one positive
    root ``α`` and the stationary law has ``P(‖θ‖ > t) ~ C t^{−α}`` (Kesten
    1973, Goldie 1991); its variance is finite iff ``α > 2``.

    * ``d = 1``: ``Λ(s) = log E|a|^s`` and ``α`` is its exact root (``brentq``).
    * ``d > 1``: ``n_batches`` independent populations of ``n_chains``
      directions are pushed through the same maps; at every step each
      direction ``x_j`` is mapped and renormalised, ``r_j = ‖A_{ξ_j} x_j‖``,
      the step contributes ``log mean_j r_j^s`` and the population is
      resampled with weights ``r_j^s`` (systematic resampling): the cloning
      estimate of the top eigenvalue of ``f ↦ E[‖A x‖^s f(A x/‖A x‖)]``.
      ``Λ_b(s)`` is the mean contribution over ``n_steps`` steps after
      ``burn_in``; with the random numbers fixed per batch, its root is
      found by doubling from ``s = 1`` and Illinois regula falsi (relative
      tolerance ``5e-3``, at most 16 evaluations). The log of each step's mean weight is corrected
      for its ``O(1/n_chains)`` bias (``+ var/(2 n_chains mean²)``); the
      resampled population leaves a bias of order ``1/n_chains`` for
      maps that do not commute. ``α`` is the mean of the batches' roots, its
      standard error their spread over ``sqrt(n_batches)``.

    Parameters
    ----------
    maps : AffineMaps or LowRankAffineMaps
        The family; only the linear parts ``A_i`` and ``probs`` matter.
    rng : None, int, SeedSequence or Generator, optional
        Source of the populations (``d > 1``); batch ``b`` uses the ``b``-th
        spawned stream only, so it does not depend on ``n_batches``.
    n_steps : int, default 200
        Steps per population after the burn-in, ``>= 1``.
    n_chains : int, default 256
        Directions per population, ``>= 2``.
    n_batches : int, default 8
        Independent populations, ``>= 2`` (they give the standard error).
    burn_in : int, default 20
        Steps discarded at the start, ``>= 0``. The draws
        ``n_batches · n_chains · (burn_in + n_steps)`` are at most
        ``MAX_TAIL_DRAWS`` (``10**7``).
    s_max : float, default 64
        Largest ``s`` tried (``d > 1``), ``> 1``; ``Λ < 0`` up to it raises.

    Returns
    -------
    TailIndexResult
        A float equal to ``alpha`` with the fields ``alpha``, ``stderr``,
        ``estimator``, ``exact``, ``n_steps``, ``n_chains``, ``n_batches``.

    Raises
    ------
    ValueError
        Naming ``maps`` when there is no stationary law (``γ >= 0``) or the
        law has bounded support (every ``‖A_i‖₂ <= 1``: ``α = ∞``); naming
        ``s_max`` when ``Λ(s) < 0`` up to ``s_max``.

    Examples
    --------
    >>> import numpy as np
    >>> import contraction as ct
    >>> maps = ct.AffineMaps([[[0.5]], [[2.0]]], [[1.0], [1.0]], probs=[0.75, 0.25])
    >>> alpha = ct.tail_index(maps)
    >>> bool(np.isclose(0.75 * 0.5**alpha + 0.25 * 2.0**alpha, 1.0)) and alpha.exact
    True
    >>> scaled = ct.AffineMaps([0.5 * np.eye(2), 2.0 * np.eye(2)], np.ones((2, 2)), probs=[0.75, 0.25])
    >>> est = ct.tail_index(scaled, rng=0)   # A_i = a_i I: the same α as in one dimension
    >>> bool(abs(est.alpha - alpha) < 4 * est.stderr + 0.01)
    True
    """
    maps = check_affine_family(maps)
    n_steps = check_int(n_steps, "n_steps", 1, MAX_TAIL_DRAWS)
    n_chains = check_int(n_chains, "n_chains", 2, MAX_TAIL_DRAWS)
    n_batches = check_int(n_batches, "n_batches", 2, MAX_TAIL_DRAWS)
    burn_in = check_int(burn_in, "burn_in", 0, MAX_TAIL_DRAWS)
    s_max = check_real(s_max, "s_max", 1.0, None, closed="neither")
    if n_batches * n_chains * (burn_in + n_steps) > MAX_TAIL_DRAWS:
        raise ValueError(f"n_steps: expected n_batches · n_chains · (burn_in + n_steps) <= {MAX_TAIL_DRAWS:.0e} "
                         f"map draws, got {n_batches} · {n_chains} · {burn_in + n_steps}")
    gen = as_generator(rng)
    if maps.dim == 1:
        return _exact_1d(maps)
    keep = maps.probs > 0
    norms = _linear_norms(maps)[keep]
    if not np.any(norms > 1.0 + 1e-12):
        raise ValueError("maps: expected some ‖A_i‖₂ > 1 (with positive probability); with every ‖A_i‖₂ <= 1 the "
                         "stationary law has bounded support, every moment is finite and there is no finite "
                         "tail index (α = ∞)")
    pop = _Populations(maps, gen.spawn(n_batches), n_chains, n_steps, burn_in)
    roots = _batch_roots(pop, s_max)
    return TailIndexResult(float(roots.mean()), float(roots.std(ddof=1) / np.sqrt(n_batches)), POPULATION, False,
                           n_steps, n_chains, n_batches)
