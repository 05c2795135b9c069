"""Samples of the stationary law: perfect backward limits (Letac) or burnt-in forward chains."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core._validation import check_positive_int
from ..core.iterates import forward_iterates
from ..core.sampling import sample_batches
from .diagnostics import lyapunov_exponent
from .fixed_point import backward_limits
from .moments import StationaryLawError, _check_maps, _stationary_mean

__all__ = ["StationarySamples", "stationary_samples"]


@dataclass(frozen=True)
class StationarySamples:
    """Samples of the stationary law.

    Attributes
    ----------
    samples : ndarray (n_samples, d)
    method : str
    n_steps : ndarray (n_samples,)
        Steps used by each sample.
    error_bound : float
        Backward: largest bound on ``‖sample − θ̃_∞‖`` (kind in ``bound_kind``);
        forward: ``nan`` (burn-in only).
    bound_kind : str
    """

    samples: np.ndarray
    method: str
    n_steps: np.ndarray
    error_bound: float
    bound_kind: str


def stationary_samples(maps, n_samples, method="backward", rng=None, theta0=None, tol=1e-10,
                       burn_in=None, max_steps=100_000) -> StationarySamples:
    r"""Samples of the stationary law ``π``.

    ``method="backward"``: independent backward limits, perfect samples up to
    the error bound (Letac's principle; the sequence of each sample is
    extended, never redrawn). ``method="forward"``: the last of ``burn_in``
    forward steps of independent chains (approximate: the law of ``θ_n``
    only approaches ``π``).

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
    maps = _check_maps(maps)
    n_samples = check_positive_int(n_samples, "n_samples")
    if method not in ("backward", "forward"):
        raise ValueError(f"method: expected 'backward' or 'forward', got {method!r}")
    if theta0 is None:
        try:
            theta0 = _stationary_mean(maps)
        except StationaryLawError:
            theta0 = np.zeros(maps.dim)
    if method == "backward":
        res = backward_limits(maps, theta0, n_samples, rng=rng, tol=tol, max_steps=max_steps)
        if not res.converged.all():
            raise StationaryLawError(
                f"max_steps: {int((~res.converged).sum())} of {n_samples} backward samples did not reach "
                f"tol={tol:g} within {max_steps} steps; raise max_steps or loosen tol"
            )
        return StationarySamples(res.x, "backward", res.n_steps, float(res.error_bound.max()), res.bound_kind)
    if burn_in is None:
        gamma = lyapunov_exponent(maps, rng=np.random.default_rng(0)).exponent
        burn_in = int(min(max_steps, np.ceil(np.log(tol) / min(gamma, -1e-6))))
    burn_in = check_positive_int(burn_in, "burn_in")
    idx = sample_batches(maps.n_maps, burn_in, n_samples, probs=maps.probs, rng=rng)
    x = forward_iterates(maps, theta0, idx, save_steps=[burn_in])[:, 0]
    return StationarySamples(x, "forward", np.full(n_samples, burn_in), float("nan"), "none")
