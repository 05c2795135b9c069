r"""Numeric Lie-bracket helpers (numpy only): the bracket-corrected SGD step of SPEC C11(c)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import as_float_array, as_int_array, describe

__all__ = ["BracketStep", "bracket_corrected_step", "loglog_slope"]


@dataclass(frozen=True)
class BracketStep:
    """Result of :func:`bracket_corrected_step`.

    Attributes
    ----------
    theta : ndarray, shape (K, d)
        The corrected iterates.
    gradient_evals : int
        Gradient evaluations per row (``r + 1`` for ``r`` earlier batches).
    hvp_evals : int
        Hessian-vector products per row (``r + 1``, or 0 when ``r = 0``).
    """

    theta: np.ndarray
    gradient_evals: int
    hvp_evals: int


def _int_array(value, name: str, ndim: int) -> np.ndarray:
    arr = as_int_array(value, name)
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-dimensional integer array, got {describe(arr)}")
    return arr


def bracket_corrected_step(maps, theta, index, previous):
    r"""One step θ ↦ T_index(θ) − h² [G, g_index](θ), G = Σ_{k in previous} g_k.

    With the bracket ``[X, Y] = (DY) X − (DX) Y`` of vector fields,
    ``[G, g_j](θ) = H_j(θ) G(θ) − (Σ_k H_k(θ)) g_j(θ)``. Iterated over a
    block ``ξ_1, …, ξ_W`` with ``previous`` the block's earlier batches
    ``ξ_1, …, ξ_{n−1}``, it removes the ``h² Σ_{i<j} [g_{ξ_i}, g_{ξ_j}]``
    term by which forward SGD differs from the backward (anchored)
    composition ``T_{ξ_1} ∘ … ∘ T_{ξ_n}`` (SPEC C9), so it tracks that
    composition to ``O(h³)`` per block (SPEC C11(c)).

    Parameters
    ----------
    maps : map family
        Any object with ``.lr``, ``.gradient(theta, index)`` and
        ``.hvp(theta, v, index)`` working on stacks ``theta`` (K, d),
        ``index`` (K,) int, ``v`` (K, d), e.g. :class:`contraction.GradientMaps`
        or ``QuadraticModel(...).gradient_maps(lr)``.
    theta : array_like, shape (K, d)
    index : int array, shape (K,)
        The batch of this step, one per row.
    previous : int array, shape (K, r)
        The block's earlier batch indices, one row per row of ``theta``
        (``r`` may be 0: then the step is the plain SGD step).

    Returns
    -------
    BracketStep
        ``theta`` (K, d) and the evaluations per row: ``gradient_evals = r + 1``
        and ``hvp_evals = r + 1`` (0 when ``r = 0``).

    Examples
    --------
    >>> import numpy as np
    >>> import contraction as ct
    >>> H = np.array([[[2.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [1.0, 3.0]]])
    >>> maps = ct.QuadraticModel(H, [[1.0, 0.0], [0.0, -1.0]]).gradient_maps(0.1)
    >>> theta = np.array([[0.5, 0.5]]); out = bracket_corrected_step(maps, theta, [1], [[0]])
    >>> g0, g1 = maps.gradient(theta, [0]), maps.gradient(theta, [1])
    >>> br = H[1] @ g0[0] - H[0] @ g1[0]                       # [g_0, g_1](θ)
    >>> bool(np.allclose(out.theta[0], theta[0] - 0.1 * g1[0] - 0.01 * br))
    True
    >>> (out.gradient_evals, out.hvp_evals)
    (2, 2)
    """
    for attr in ("gradient", "hvp"):
        if not callable(getattr(maps, attr, None)):
            raise TypeError(
                f"maps: expected an object with callable .lr, .gradient and .hvp, got {describe(maps)} "
                f"whose .{attr} is not callable"
            )
    lr = getattr(maps, "lr", None)
    if isinstance(lr, (bool, np.bool_)) or not isinstance(lr, (int, float, np.number)) or not lr > 0:
        raise TypeError(f"maps: expected a positive learning rate .lr, got {describe(lr)}")
    h = float(lr)
    if isinstance(theta, (str, bytes)) or theta is None:
        raise TypeError(f"theta: expected an array of shape (K, d), got {describe(theta)}")
    theta = np.asarray(theta, dtype=np.float64)  # non-finite rows pass through: callers report divergence
    if theta.ndim != 2:
        raise ValueError(f"theta: expected an array of shape (K, d), got {describe(theta)}")
    K, d = theta.shape
    index = _int_array(index, "index", 1)
    if index.shape != (K,):
        raise ValueError(f"index: expected shape ({K},) (one batch per row of theta), got {describe(index)}")
    previous = _int_array(previous, "previous", 2)
    if previous.shape[0] != K:
        raise ValueError(f"previous: expected shape ({K}, r) (one row per row of theta), got {describe(previous)}")
    m = getattr(maps, "n_batches", None)
    for name, arr in (("index", index), ("previous", previous)):
        if arr.size and (arr.min() < 0 or (m is not None and arr.max() >= m)):
            upper = "" if m is None else f", {int(m) - 1}"
            raise ValueError(f"{name}: expected batch indices in [0{upper}], got values in [{arr.min()}, {arr.max()}]")
    r = previous.shape[1]
    if r == 0:
        g = np.asarray(maps.gradient(theta, index), dtype=np.float64)
        return BracketStep(theta - h * g, 1, 0)
    everyone = np.concatenate([index[:, None], previous], axis=1)  # (K, r + 1): ξ_n first
    stacked = np.repeat(theta, r + 1, axis=0)  # row k (r+1) + s is θ_k
    grads = np.asarray(maps.gradient(stacked, everyone.ravel()), dtype=np.float64).reshape(K, r + 1, d)
    g, G = grads[:, 0], grads[:, 1:].sum(axis=1)
    # H_index G, then H_{previous_s} g_index for every s: one stacked call.
    vectors = np.concatenate([G[:, None], np.broadcast_to(g[:, None], (K, r, d))], axis=1)
    hv = np.asarray(maps.hvp(stacked, vectors.reshape(-1, d), everyone.ravel()), dtype=np.float64)
    hv = hv.reshape(K, r + 1, d)
    correction = hv[:, 0] - hv[:, 1:].sum(axis=1)  # [G, g_index](θ)
    return BracketStep(theta - h * g - h * h * correction, r + 1, r + 1)


def loglog_slope(x, y) -> float:
    r"""Least-squares slope of ``log y`` against ``log x``: the fitted order ``p`` in ``y ≈ C x^p``.

    Parameters
    ----------
    x, y : array_like, shape (n,)
        Positive finite numbers, ``n ≥ 2`` with at least two distinct ``x``.

    Examples
    --------
    >>> import numpy as np
    >>> h = np.geomspace(1e-3, 1e-1, 5)
    >>> bool(abs(loglog_slope(h, 3.0 * h**2) - 2.0) < 1e-12)
    True
    """
    x = as_float_array(x, "x", ndim=1)
    y = as_float_array(y, "y", ndim=1)
    if x.shape != y.shape or x.size < 2:
        raise ValueError(f"y: expected the shape of x with at least 2 points, got {describe(y)}")
    if np.any(x <= 0) or np.ptp(x) == 0:
        raise ValueError(f"x: expected positive numbers, not all equal, got {describe(x)}")
    if np.any(y <= 0):
        raise ValueError(f"y: expected positive numbers (errors that do not vanish), got minimum {y.min()!r}")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])
