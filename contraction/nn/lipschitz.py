r"""How contractive is an SGD map near a point: ``Lip(T_i) ≈ ‖I − h ∇²f_i(θ)‖₂`` by power iteration."""

from __future__ import annotations

import warnings

import numpy as np

from ..core._validation import (
    as_float_array,
    as_generator,
    as_indices,
    check_lr,
    check_positive_int,
    check_real,
    describe,
)
from ._checks import MAX_ELEMENTS, check_size

__all__ = ["estimate_lipschitz"]


def estimate_lipschitz(maps, theta, index, rng=None, *, max_iter: int = 100, tol: float = 1e-6,
                       n_iter=None) -> np.ndarray:
    r"""Estimate ``Lip(T_i)`` near ``θ``: ``‖I − h ∇²f_i(θ)‖₂`` by power iteration.

    The Jacobian of ``T_i(θ) = θ − h ∇f_i(θ)`` is ``J = I − h ∇²f_i(θ)``,
    symmetric; power iteration on ``v ↦ J v = v − h · hvp(θ, v, i)`` with the
    estimate ``‖J v‖`` (``v`` a unit vector) converges to the largest
    eigenvalue modulus, which is ``‖J‖₂``. All rows of the stack iterate
    together. The estimate is a lower bound that converges from below; values
    below 1 mean the map contracts near ``θ`` (locally).

    Parameters
    ----------
    maps : GradientMaps
        With ``lr`` and ``hvp`` (for instance ``net.sgd_maps(lr)``).
    theta : array_like, shape (d,) or (K, d)
        Points, one row per stacked vector.
    index : int or array_like of int, shape (K,)
        Batch ``i`` of each row.
    rng : None, int, numpy.random.SeedSequence or numpy.random.Generator, optional
        Source of the random start vectors.
    max_iter : int, default 100
        Largest number of iterations (Hessian-vector products per row).
    tol : float, default 1e-6
        Stop when every row's estimate changes by less than ``tol`` relatively.
    n_iter : int, optional
        Deprecated name of ``max_iter``.

    Returns
    -------
    ndarray, shape () or (K,)
        The estimates, one per row.

    Examples
    --------
    >>> import numpy as np
    >>> import contraction as ct
    >>> model = ct.QuadraticModel([np.diag([1.0, 3.0])], [[0.0, 0.0]])
    >>> maps = model.gradient_maps(0.5)            # J = diag(0.5, -0.5)
    >>> bool(np.isclose(estimate_lipschitz(maps, [1.0, 1.0], 0, rng=0), 0.5))
    True
    """
    if n_iter is not None:
        warnings.warn("estimate_lipschitz: n_iter is deprecated, use max_iter (a largest number of iterations)",
                      DeprecationWarning, stacklevel=2)
        max_iter = n_iter
    hvp = getattr(maps, "hvp", None)
    if not callable(hvp):
        raise TypeError(f"maps: expected a map family with hvp(theta, v, index), got {describe(maps)}")
    h = check_lr(getattr(maps, "lr", None), "maps.lr")
    theta = as_float_array(theta, "theta", ndim=(1, 2))
    t2 = np.atleast_2d(theta)
    K, d = t2.shape
    index = as_indices(index, "index", getattr(maps, "n_maps", None), ndim=(0, 1))
    if index.ndim == 1 and theta.ndim == 2 and index.size != K:
        raise ValueError(f"index: expected an integer or shape ({K},), got {describe(index)}")
    single = theta.ndim == 1 and index.ndim == 0
    if index.ndim == 1 and theta.ndim == 1:
        K = index.size
        t2 = np.broadcast_to(t2, (K, d))
    index = np.broadcast_to(index, (K,))
    check_size(K * d, "index" if theta.ndim == 1 else "theta", "stack entries (rows × d)", MAX_ELEMENTS)
    max_iter = check_positive_int(max_iter, "max_iter")
    tol = check_real(tol, "tol", 0.0)
    gen = as_generator(rng)
    if d == 0:
        raise ValueError(f"theta: expected at least one coordinate, got {describe(theta)}")
    if K == 0:
        return np.zeros(0)
    v = gen.normal(size=(K, d))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    est = np.zeros(K)
    for _ in range(max_iter):
        with np.errstate(over="ignore", invalid="ignore"):
            Jv = v - h * np.asarray(hvp(t2, v, index), dtype=np.float64)
            norm = np.linalg.norm(Jv, axis=1, keepdims=True)  # ‖J v‖ ≤ ‖J‖ for unit v
        new = norm[:, 0]
        if not np.isfinite(new).all():
            raise ValueError(f"maps: expected ‖I − lr·∇²f‖ finite in float64 at theta, got an overflow "
                             f"(lr = {h:g}); lower lr")
        v = Jv / np.where(norm > 0, norm, 1.0)
        done = np.all(np.abs(new - est) <= tol * np.maximum(new, 1e-300))
        est = new
        if done:
            break
    return est[0] if single else est
