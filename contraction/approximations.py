r"""Practical approximations of backward SGD (SPEC C11), with their costs.

Steps are numbered from 1; blocks are ``(kW, (k+1)W]``.

* Anchored windowed backward (C11a): an anchor ``a_k`` refreshed every ``W``
  steps; inside block ``k``,
  ``θ^W_n = T_{ξ_{kW+1}} ∘ … ∘ T_{ξ_n}(a_k)`` and ``a_{k+1} = θ^W_{(k+1)W}``.
  About ``W/2`` gradient evaluations per step; the iterates settle inside
  each block.
* Sliding reversed window (C11b): ``θ^S_n = T_{ξ_{n−W+1}} ∘ … ∘ T_{ξ_n}(θ^S_{n−W})``
  (the first ``W`` steps are backward from ``θ_0``). Each ``θ^S_n`` is a
  chain of independent reversed blocks, so it has forward SGD's law: no
  stabilisation. ``W`` gradient evaluations per step.
* Bracket-corrected forward (C11c):
  ``θ^c_n = T_{ξ_n}(θ^c_{n−1}) − h² [G_{n−1}, g_{ξ_n}](θ^c_{n−1})`` with ``G`` the
  sum of the block's earlier gradient fields; it tracks the anchored window to
  ``O(h³)`` per block at the price of Hessian-vector products.

Costs are counted per chain in evaluations of one batch gradient and of one
Hessian-vector product, as a general (nonlinear) loss needs them; affine maps
are evaluated through the same engines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .core._validation import as_float_array, as_indices, check_positive_int, describe
from .core.iterates import apply_words, check_diverged, iterate_and_save, prepare_iteration
from .core.maps import check_gradient_family

__all__ = [
    "ApproximateIterates",
    "BracketStep",
    "bracket_corrected_iterates",
    "bracket_corrected_step",
    "sliding_backward_iterates",
    "windowed_backward_iterates",
]


@dataclass(frozen=True)
class ApproximateIterates:
    """Iterates of an approximation of backward SGD, with their cost.

    Attributes
    ----------
    iterates : ndarray (n_chains, len(save_steps), d)
    steps : ndarray
        The step numbers of the rows.
    method : str
    window : int
    gradient_evals : int
        Batch-gradient evaluations per chain.
    hvp_evals : int
        Hessian-vector products per chain.
    """

    iterates: np.ndarray
    steps: np.ndarray
    method: str
    window: int
    gradient_evals: int
    hvp_evals: int


def windowed_backward_iterates(maps, theta0, idx, window, *, save_steps=None) -> ApproximateIterates:
    r"""Anchored windowed backward SGD (SPEC C11a).

    Inside block ``k`` (steps ``kW+1 … (k+1)W``),
    ``θ^W_n = T_{ξ_{kW+1}} ∘ … ∘ T_{ξ_n}(a_k)``; the anchor is refreshed,
    ``a_{k+1} = θ^W_{(k+1)W}``. ``window = n_steps`` is full backward SGD;
    ``window = 1`` is forward SGD.

    Parameters
    ----------
    maps : AffineMaps, LowRankAffineMaps or map family
        Any family accepted by :func:`contraction.forward_iterates`.
    theta0 : array_like, shape (d,) or (n_chains, d)
        Start, shared by all chains or one per chain.
    idx : array_like of int, shape (n_steps,) or (n_chains, n_steps)
        Batch sequences (see :func:`contraction.sample_batches`).
    window : int
        Block length ``W >= 1``.
    save_steps : array_like of int, optional
        Strictly increasing step numbers to return (default all, ``0, …, n_steps``).

    Returns
    -------
    ApproximateIterates
        Cost: ``Σ_blocks L(L+1)/2`` gradient evaluations (``L`` the block
        length), about ``W/2`` per step.

    Examples
    --------
    >>> import numpy as np
    >>> import contraction as ct
    >>> maps = ct.two_point_quadratic().sgd_maps(0.5)
    >>> idx = ct.sample_batches(2, 12, rng=0)
    >>> win = ct.windowed_backward_iterates(maps, [0.0], idx, window=4)
    >>> a4 = ct.backward_iterates(maps, [0.0], idx[:, :4])[0, -1]
    >>> bool(np.allclose(win.iterates[0, 6], ct.backward_iterates(maps, a4, idx[:, 4:6])[0, -1]))
    True
    >>> win.gradient_evals == 3 * (4 * 5 // 2)
    True
    """
    idx, theta0, steps = prepare_iteration(maps, theta0, idx, save_steps)
    C, n = idx.shape
    W = check_positive_int(window, "window")
    d = theta0.shape[1]
    out = np.empty((C, steps.size, d))
    anchor = theta0
    if steps[0] == 0:
        out[:, 0] = theta0
    cost = 0
    for start in range(0, n, W):
        stop = min(n, start + W)
        # within the block: the saved steps plus its end (the next anchor)
        ns = np.union1d(steps[(steps > start) & (steps <= stop)], [stop])
        vals = apply_words(maps, np.broadcast_to(anchor[:, None], (C, ns.size, d)), idx,
                           np.full(ns.size, start + 1), ns)
        keep = np.isin(steps, ns)
        out[:, keep] = vals[:, np.isin(ns, steps)]
        anchor = vals[:, -1]
        L = stop - start
        cost += L * (L + 1) // 2
    return ApproximateIterates(check_diverged(out, steps, "windowed backward"), steps, "windowed", W, cost, 0)


def sliding_backward_iterates(maps, theta0, idx, window, *, save_steps=None) -> ApproximateIterates:
    r"""Sliding reversed window (SPEC C11b): ``θ^S_n = T_{ξ_{n−W+1}} ∘ … ∘ T_{ξ_n}(θ^S_{n−W})``.

    For ``n < W`` the word starts at ``ξ_1`` and acts on ``θ_0``. Same law as
    forward SGD at every ``n`` for i.i.d. batches (reversed i.i.d. blocks keep
    their law), so it does not settle.

    Parameters
    ----------
    maps : AffineMaps, LowRankAffineMaps or map family
        Any family accepted by :func:`contraction.forward_iterates`.
    theta0 : array_like, shape (d,) or (n_chains, d)
        Start, shared by all chains or one per chain.
    idx : array_like of int, shape (n_steps,) or (n_chains, n_steps)
        Batch sequences (see :func:`contraction.sample_batches`).
    window : int
        Block length ``W >= 1``.
    save_steps : array_like of int, optional
        Strictly increasing step numbers to return (default all, ``0, …, n_steps``).

    Returns
    -------
    ApproximateIterates
        Cost: ``W`` gradient evaluations per step (``min(n, W)`` at the start).

    Examples
    --------
    >>> import numpy as np
    >>> import contraction as ct
    >>> maps = ct.two_point_quadratic().sgd_maps(0.5)
    >>> idx = np.array([[0, 1, 1, 0, 1]])
    >>> s = ct.sliding_backward_iterates(maps, [0.0], idx, window=2).iterates[0, :, 0]
    >>> A, b = maps.word([idx[0, 3], idx[0, 4]])      # T_{ξ4} ∘ T_{ξ5} on θ^S_3
    >>> bool(np.isclose(s[5], A[0, 0] * s[3] + b[0]))
    True
    """
    idx, theta0, steps = prepare_iteration(maps, theta0, idx, save_steps)
    C, n = idx.shape
    window = check_positive_int(window, "window")
    W = min(window, max(n, 1))  # a window past the end is full backward SGD
    d = theta0.shape[1]
    out = np.empty((C, steps.size, d))
    if steps[0] == 0:
        out[:, 0] = theta0
    previous = theta0[:, None, :]  # θ^S of the block before: steps (start − W, start], or θ_0
    for start in range(0, n, W):  # θ^S_n for n in (start, start + W] depends on the block before
        ns = np.arange(start + 1, min(n, start + W) + 1)
        first = np.maximum(1, ns - W + 1)
        base = np.maximum(0, ns - W) - max(0, start - W + 1) if start else np.zeros(ns.size, dtype=np.int64)
        current = apply_words(maps, previous[:, base], idx, first, ns)
        keep = (steps > start) & (steps <= ns[-1])
        out[:, keep] = current[:, steps[keep] - start - 1]
        previous = current
    cost = int(np.minimum(np.arange(1, n + 1), W).sum())
    return ApproximateIterates(check_diverged(out, steps, "sliding backward"), steps, "sliding",
                               window, cost, 0)


def bracket_corrected_iterates(maps, theta0, idx, window, *, save_steps=None) -> ApproximateIterates:
    r"""Bracket-corrected forward SGD (SPEC C11c).

    ``θ^c_n = T_{ξ_n}(θ^c_{n−1}) − h² [G_{n−1}, g_{ξ_n}](θ^c_{n−1})``,
    ``G_{n−1} = Σ g_{ξ_k}`` over the block's earlier steps ``k`` (reset every
    ``window`` steps), bracket ``[X, Y] = (DY) X − (DX) Y``. Tracks the
    anchored window to ``O(h³)`` per block.

    Parameters
    ----------
    maps : map family
        A family with ``lr``, ``gradient`` and ``hvp``, for instance
        ``model.gradient_maps(lr)`` or a network's maps.
    theta0 : array_like, shape (d,) or (n_chains, d)
        Start, shared by all chains or one per chain.
    idx : array_like of int, shape (n_steps,) or (n_chains, n_steps)
        Batch sequences (see :func:`contraction.sample_batches`).
    window : int
        Block length ``W >= 1``: the sum ``G`` restarts every ``W`` steps.
    save_steps : array_like of int, optional
        Strictly increasing step numbers to return (default all, ``0, …, n_steps``).

    Returns
    -------
    ApproximateIterates
        Cost per step at block position ``j >= 2``: ``j`` gradients and ``j``
        Hessian-vector products (``H_j G`` and ``H_k g_j`` for the ``j − 1``
        earlier ``k``); ``j = 1``: one gradient.

    Examples
    --------
    >>> import numpy as np
    >>> import contraction as ct
    >>> model = ct.QuadraticModel([[[1.0]], [[2.0]]], [[1.0], [-1.0]])
    >>> idx = ct.sample_batches(2, 8, rng=1)
    >>> c = ct.bracket_corrected_iterates(model.gradient_maps(0.025), [0.0], idx, window=8)
    >>> w = ct.windowed_backward_iterates(model.sgd_maps(0.025), [0.0], idx, window=8)
    >>> f = ct.forward_iterates(model.sgd_maps(0.025), [0.0], idx)
    >>> bool(np.abs(c.iterates - w.iterates).max() < 0.2 * np.abs(f - w.iterates).max())
    True
    """

    check_gradient_family(maps)
    idx, theta0, steps = prepare_iteration(maps, theta0, idx, save_steps)
    C, n = idx.shape
    W = check_positive_int(window, "window")
    out = np.empty((C, steps.size, theta0.shape[1]))
    cost = {"gradient": 0, "hvp": 0}

    def advance(k, theta):
        block_start = (k // W) * W
        res = bracket_corrected_step(maps, theta, idx[:, k], idx[:, block_start:k])
        cost["gradient"] += int(res.gradient_evals)
        cost["hvp"] += int(res.hvp_evals)
        return res.theta

    iterate_and_save(advance, theta0, n, steps, out)
    return ApproximateIterates(check_diverged(out, steps, "bracket-corrected"), steps, "bracket_corrected",
                               W, cost["gradient"], cost["hvp"])


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
        Points, one per row (non-finite rows come back as ``nan``; ``maps``'
        callables never see them).
    index : array_like of int, shape (K,)
        The batch of this step, one per row.
    previous : array_like of int, shape (K, r)
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
    h = check_gradient_family(maps)
    # non-finite rows pass through: the iteration functions report divergence
    theta = as_float_array(theta, "theta", ndim=2, finite=False)
    K, d = theta.shape
    m = getattr(maps, "n_maps", None)
    if m is None:
        m = getattr(maps, "n_batches", None)
    index = as_indices(index, "index", m, ndim=1)
    if index.shape != (K,):
        raise ValueError(f"index: expected shape ({K},) (one batch per row of theta), got {describe(index)}")
    previous = as_indices(previous, "previous", m, ndim=2)
    if previous.shape[0] != K:
        raise ValueError(f"previous: expected shape ({K}, r) (one row per row of theta), got {describe(previous)}")
    r = previous.shape[1]
    ok = np.isfinite(theta).all(axis=1)
    if not ok.all():  # the callables never see a point that already overflowed: such rows stay nan
        out = np.full((K, d), np.nan)
        if ok.any():
            out[ok] = bracket_corrected_step(maps, theta[ok], index[ok], previous[ok]).theta
        return BracketStep(out, r + 1, r + 1 if r else 0)
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
