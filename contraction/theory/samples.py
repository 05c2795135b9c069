"""Samples of the stationary law: perfect backward limits (Letac) or burnt-in forward chains."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core._validation import as_generator, check_choice, check_int, check_positive_int, check_real
from ..core.iterates import forward_iterates
from ..core.maps import check_affine_maps
from ..core.sampling import draw_batches
from .diagnostics import lyapunov_exponent
from .fixed_point import MAX_CHAINS, backward_limits
from .moments import StationaryLawError, stationary_mean

__all__ = ["StationarySamples", "stationary_samples"]

# Forward method: batch indices drawn and iterated for blocks of chains of at most this many values at once.
_BLOCK_VALUES = 2**21


@dataclass(frozen=True)
class StationarySamples:
    """Samples of the stationary law.

    Attributes
    ----------
    samples : ndarray, shape (n_samples, d)
        One sample per row.
    method : str
        ``"backward"`` or ``"forward"``.
    n_steps : ndarray of int, shape (n_samples,)
        Steps used by each sample.
    error_bound : float or None
        Backward: largest bound on ``‖sample − θ̃_∞‖``, rounding included
        (kind in ``bound_kind``); forward: ``None`` (burn-in only, no bound).
    bound_kind : str
        ``"certified"``, ``"estimate"`` or ``"none"`` (forward).
    """

    samples: np.ndarray
    method: str
    n_steps: np.ndarray
    error_bound: float | None
    bound_kind: str


def stationary_samples(maps, n_samples, method="backward", rng=None, theta0=None, tol=1e-10,
                       burn_in=None, max_steps=100_000) -> StationarySamples:
    r"""Draw samples of the stationary law ``π``.

    ``method="backward"``: independent backward limits, perfect samples up to
    the error bound (Letac's principle; the sequence of each sample is
    extended, never redrawn). ``method="forward"``: the last of ``burn_in``
    forward steps of independent chains (approximate: the law of ``θ_n``
    only approaches ``π``).

    Parameters
    ----------
    maps : AffineMaps
        The family, contractive on average.
    n_samples : int
        Number of independent samples, in ``[1, MAX_CHAINS]`` (``10**6``).
    method : {"backward", "forward"}
        Perfect backward limits or burnt-in forward chains.
    rng : None, int, SeedSequence or Generator, optional
        Source of randomness: sample ``i`` draws its batches from the
        ``i``-th stream spawned from it (as chain ``i`` of
        ``sample_batches(rng=rng)``); auxiliary estimates (Lyapunov exponent,
        spread of the law) use the streams spawned next.
    theta0 : array_like, shape (d,), optional
        Start of every chain (default: the stationary mean when it exists, else 0).
    tol : float, default 1e-10
        Backward: the error bound each sample must meet (truncation and
        rounding: it cannot be below half an ulp of the sample, about
        ``1.1e-16 ‖θ̃_∞‖``, see :func:`backward_fixed_point`); forward with
        ``burn_in=None``: the contraction ``e^{γ n}`` the burn-in must reach.
    burn_in : int, optional
        Forward only: the number of steps (default from the Lyapunov exponent
        and ``tol``, at most ``max_steps``).
    max_steps : int, default 100000
        Largest number of steps per sample.

    Returns
    -------
    StationarySamples
        The samples with the steps used and the error bound.

    Raises
    ------
    StationaryLawError
        When some backward sample does not reach ``tol`` within ``max_steps``
        (message naming ``max_steps``) or because rounding limits its accuracy
        (message naming ``tol``).

    Examples
    --------
    >>> import numpy as np
    >>> import contraction as ct
    >>> maps = ct.QuadraticModel([[[1.0]], [[1.0]]], [[1.0], [-1.0]]).sgd_maps(0.5)
    >>> res = ct.stationary_samples(maps, 2000, rng=0)
    >>> res.samples.shape == (2000, 1) and res.error_bound <= 1e-10
    True
    >>> bool(ct.ks_against_cdf(res.samples[:, 0], lambda x: (x + 1) / 2).pvalue > 0.001)  # Uniform[-1, 1]
    True
    """
    maps = check_affine_maps(maps)
    n_samples = check_int(n_samples, "n_samples", 1, MAX_CHAINS)
    method = check_choice(method, "method", ("backward", "forward"))
    gen = as_generator(rng)
    tol = check_real(tol, "tol", 0.0, None, closed="neither")
    max_steps = check_positive_int(max_steps, "max_steps")
    if theta0 is None:
        try:
            theta0 = stationary_mean(maps)
        except StationaryLawError:
            theta0 = np.zeros(maps.dim)
    if method == "backward":
        res = backward_limits(maps, theta0, n_samples, rng=gen, tol=tol, max_steps=max_steps)
        if res.rounding_limited.any():
            worst = float(res.error_bound[res.rounding_limited].max())
            raise StationaryLawError(
                f"tol: rounding limits the accuracy of {int(res.rounding_limited.sum())} of {n_samples} backward "
                f"samples to about {worst:.2g} > tol={tol:g} (the bound covers the floating-point error of "
                f"each sample); loosen tol to at least {worst:.2g}"
            )
        if not res.converged.all():
            raise StationaryLawError(
                f"max_steps: {int((~res.converged).sum())} of {n_samples} backward samples did not reach "
                f"tol={tol:g} within {max_steps} steps; raise max_steps or loosen tol"
            )
        return StationarySamples(res.x, "backward", res.n_steps, float(res.error_bound.max()), res.bound_kind)
    chains = gen.spawn(n_samples)  # chain i: the i-th spawned stream, as in sample_batches
    if burn_in is None:
        gamma = lyapunov_exponent(maps, rng=gen.spawn(1)[0]).exponent
        burn_in = int(min(max_steps, max(1.0, np.ceil(np.log(tol) / min(gamma, -1e-6)))))
    burn_in = check_positive_int(burn_in, "burn_in")
    x = np.empty((n_samples, maps.dim))
    per_chain = np.ndim(theta0) == 2 and np.shape(theta0)[0] == n_samples > 1  # one start per chain
    block = max(1, _BLOCK_VALUES // burn_in)  # every chain is iterated on its own: blocks change no sample
    for first in range(0, n_samples, block):
        rows = slice(first, first + block)
        idx = draw_batches(chains[rows], maps.n_maps, burn_in, "iid", maps.probs)
        x[rows] = forward_iterates(maps, theta0[rows] if per_chain else theta0, idx, save_steps=[burn_in])[:, 0]
    return StationarySamples(x, "forward", np.full(n_samples, burn_in), None, "none")
