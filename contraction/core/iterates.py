r"""Forward and backward SGD iterates, vectorized over chains.

For a batch sequence ``ξ_1, …, ξ_n`` and start ``θ_0``:

* forward  ``θ_n = T_{ξ_n} ∘ … ∘ T_{ξ_1}(θ_0)``   (newest batch applied last);
* backward ``θ̃_n = T_{ξ_1} ∘ … ∘ T_{ξ_n}(θ_0)``  (newest batch applied first).

For affine maps both have closed forms, computed by the engines of
:mod:`contraction.core._engines`, which pick a kernel by shape: elementwise
forms for diagonal maps (and ``d = 1``; by words of steps whose composed
coefficients are tabled, forward the same as step by step to rounding);
otherwise forward by row products ``[θ, 1] @ M_ξ``, each a row of a GEMM
against all maps side by side or grouped by map (the same bits as
``maps.step``), and backward by the prefix products ``P_n = P_{n−1} E_{ξ_n}``
of the augmented matrices ``E_i = [[A_i, b_i], [0, 1]]``, with ``[θ̃_n; 1] =
P_n [θ_0; 1]``: a scan in blocks of 64 steps that advance side by side and
are joined after, stepped by words of a few maps whose products are tabled
(or by row products when the words would be too many). Sequences of at most
``2 (d + 1)`` steps are rebuilt map by map instead (cheaper, :func:`recompute_horizon`).
Memory stays bounded (``_SCAN_BUDGET``, chunks of steps) whatever the number
of steps.

Every result is reproducible bit for bit: the operations that produce
chain ``i``'s iterate at step ``k`` are fixed by its own batches, its start
and ``k`` (:mod:`contraction.core._kernels`), so chain ``i`` is the same
whatever the number of chains, the tiles and groups, the threads and the
steps saved; and, past :func:`recompute_horizon`, whatever the length of the
sequence (``θ̃_k`` from the first ``k`` batches is column ``k`` of a longer run).

Divergence is decided on the iterates: an iterate is reported (as
:class:`DivergenceError`) only when it is itself non-finite. When a product
``P_n`` overflows while the iterate it gives stays finite (the start and
the offsets avoid the expanding directions), the affected iterates are
recomputed map by map from ``θ_0``.

Low-rank maps ``A_i = I − s_i U_i V_iᵀ`` (:class:`contraction.LowRankAffineMaps`)
use the same two forms without forming ``A_i``: forward ``O(r d)`` per step
and chain, backward ``P_n = P_{n−1} − (s P_{n−1} U) Vᵀ``, ``O(r d²)`` per step.

Any other object with ``step(theta, index)`` (for instance
:class:`contraction.GradientMaps`) is iterated directly: forward by
iteration; backward by recomputation, where every requested ``θ̃_n`` is
rebuilt from ``θ_0`` and all of them advance side by side, one vectorized
``step`` call per round. Rows that are already non-finite are never passed
to ``step``: they stay non-finite and are reported as divergence.
"""

from __future__ import annotations

import numpy as np

from ._engines import affine_backward, affine_forward, iterate_and_save, low_rank_backward, low_rank_forward
from ._kernels import (
    single_thread_blas,
)
from ._validation import DivergenceError, all_finite, as_float_array, as_indices, check_output_size, describe
from .lowrank import LowRankAffineMaps
from .maps import AffineMaps, family_size

__all__ = ["MAX_STEPS", "apply_words", "backward_iterates", "check_diverged", "forward_iterates", "iterate_and_save",
           "prepare_iteration", "step_finite"]

# Map applications allowed to recompute backward iterates whose products overflowed (per call).
_RECOMPUTE_LIMIT = 5 * 10**7
# Longest batch sequence (steps) an iteration function accepts.
MAX_STEPS = 10**8


def prepare_iteration(maps, theta0, idx, save_steps=None):
    """Validate the common arguments of the iteration functions.

    Returns ``(idx, theta0, save_steps)`` with ``idx`` of shape
    ``(n_chains, n_steps)``, ``theta0`` of shape ``(n_chains, d)`` and
    ``save_steps`` a sorted int array of step numbers in ``[0, n_steps]``.
    A 1-D ``idx`` is one chain; one ``theta0`` row is shared by all chains,
    and one ``idx`` row by all rows of ``theta0``. Sequences longer than
    ``MAX_STEPS`` (``10**8``) are refused (naming ``idx``), and so is an output
    ``(n_chains, len(save_steps), d)`` above 1 GiB (naming ``save_steps``),
    before anything is computed.
    """
    m = family_size(maps)
    if isinstance(idx, np.ndarray) and idx.ndim in (1, 2) and idx.shape[-1] > MAX_STEPS:
        raise ValueError(f"idx: expected at most {MAX_STEPS} steps (MAX_STEPS), got {describe(idx)}")
    idx = as_indices(idx, "idx", m, ndim=(1, 2))
    if idx.shape[-1] > MAX_STEPS:
        raise ValueError(f"idx: expected at most {MAX_STEPS} steps (MAX_STEPS), got {describe(idx)}")
    if idx.ndim == 1:
        idx = idx[None, :]
    if idx.shape[0] == 0:
        raise ValueError(f"idx: expected at least one chain, got {describe(idx)}")
    theta0 = as_float_array(theta0, "theta0", ndim=(1, 2))
    dim = getattr(maps, "dim", None)
    if dim is not None and theta0.shape[-1] != dim:
        raise ValueError(f"theta0: expected last axis of length {dim}, got {describe(theta0)}")
    if theta0.shape[-1] == 0:
        raise ValueError(f"theta0: expected at least one coordinate, got {describe(theta0)}")
    n_chains = idx.shape[0]
    if theta0.ndim == 2:
        if idx.shape[0] == 1 and theta0.shape[0] > 1:
            idx = np.broadcast_to(idx, (theta0.shape[0], idx.shape[1]))
            n_chains = theta0.shape[0]
        elif theta0.shape[0] != n_chains:
            raise ValueError(
                f"theta0: expected one vector or one per chain ({n_chains}, d), got {describe(theta0)}"
            )
    n = idx.shape[1]
    if save_steps is None:
        steps = np.arange(n + 1)
    else:
        steps = np.atleast_1d(as_indices(save_steps, "save_steps", n + 1, ndim=(0, 1), what="step numbers"))
        if steps.size == 0:
            raise ValueError(f"save_steps: expected a non-empty 1-D list of steps, got {describe(steps)}")
        if np.any(np.diff(steps) <= 0):
            raise ValueError(f"save_steps: expected strictly increasing step numbers, got {steps.tolist()[:8]}")
    check_output_size((n_chains, steps.size, theta0.shape[-1]), "save_steps",
                      what="iterates (n_chains x len(save_steps) x d)")
    theta0 = np.broadcast_to(theta0, (n_chains, theta0.shape[-1])).copy()
    return idx, theta0, steps


def _diverged(order: str, chain: int, step: int) -> DivergenceError:
    return DivergenceError(
        f"{order} iterates overflowed: chain {chain} is non-finite at step {step} "
        f"(saved steps only). The maps expand there; lower lr or start inside a "
        f"contractive region."
    )


def check_diverged(out: np.ndarray, steps: np.ndarray, order: str) -> np.ndarray:
    """Return ``out``, or raise :class:`DivergenceError` naming the first non-finite saved step (and its chain)."""
    if all_finite(out):
        return out
    finite = np.isfinite(out).all(axis=-1)
    if not finite.all():
        bad = np.argwhere(~finite)
        chain, pos = bad[np.lexsort((bad[:, 0], bad[:, 1]))][0]
        raise _diverged(order, int(chain), int(steps[pos]))
    return out


def step_finite(maps, theta: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``maps.step(theta, index)`` on the finite rows of ``theta`` (K, d); non-finite rows stay non-finite.

    A family's callables are never handed a point that already overflowed
    (they may rightly refuse one); such rows come back as ``nan``, for
    :func:`check_diverged` to report.
    """
    ok = np.isfinite(theta).all(axis=-1)
    if ok.all():
        new = np.asarray(maps.step(theta, index), dtype=np.float64)
    else:
        new = np.full(theta.shape, np.nan)
        if ok.any():
            new[ok] = np.asarray(maps.step(theta[ok], index[ok]), dtype=np.float64)
    if new.shape != theta.shape:
        raise ValueError(f"maps: expected step(theta, index) to return shape {theta.shape}, got {new.shape}")
    return new


def _recompute_overflowed(maps, theta0, idx, steps, out):
    """Replace non-finite backward iterates read from overflowed products by their map-by-map recomputation.

    The first affected step of each affected chain is recomputed first: if
    it is non-finite too, the iterates diverge (reported at the earliest such
    step). Otherwise the rest is recomputed. Each pass is allowed
    ``_RECOMPUTE_LIMIT`` map applications; beyond that the overflow of the
    products is reported as divergence, with the reason.
    """
    bad = ~np.isfinite(out).all(axis=-1)  # (C, S)
    if not bad.any():
        return out
    chains = np.flatnonzero(bad.any(axis=1))
    first = bad[chains].argmax(axis=1)  # column of each chain's first non-finite iterate
    k0 = int(np.argmin(first))
    where = f"the products P_n of chain {chains[k0]} overflow from step {steps[first[k0]]} on"

    def recompute(rows, cols):
        work = rows.size * int(steps[cols].sum())
        if work > _RECOMPUTE_LIMIT:
            raise DivergenceError(
                f"backward iterates overflowed: {where}, and recomputing the iterates they give map by map "
                f"would take {work} map applications (limit {_RECOMPUTE_LIMIT}). The maps expand there; "
                f"save fewer steps (save_steps), lower lr or start inside a contractive region."
            )
        starts = np.broadcast_to(theta0[rows, None], (rows.size, cols.size, theta0.shape[1]))
        return apply_words(maps, starts, idx[rows], np.ones(cols.size, dtype=np.int64), steps[cols])

    cols = np.unique(first)
    own = recompute(chains, cols)[np.arange(chains.size), np.searchsorted(cols, first)]
    lost = ~np.isfinite(own).all(axis=-1)
    if lost.any():
        k = np.flatnonzero(lost)[np.argmin(first[lost])]
        raise _diverged("backward", int(chains[k]), int(steps[first[k]]))
    out[chains, first] = own
    bad[chains, first] = False
    if bad.any():
        chains = np.flatnonzero(bad.any(axis=1))
        cols = np.flatnonzero(bad[chains].any(axis=0))
        redo = recompute(chains, cols)
        rows, pos = np.nonzero(bad[np.ix_(chains, cols)])
        out[chains[rows], cols[pos]] = redo[rows, pos]
    return out


def _general_forward(maps, theta0, idx, steps):
    out = np.empty((idx.shape[0], steps.size, *theta0.shape[1:]))
    iterate_and_save(lambda k, theta: step_finite(maps, theta, idx[:, k]), theta0, idx.shape[1], steps, out)
    return out


def apply_words(maps, starts, idx, first, last):
    """Apply ``T_{ξ_first} ∘ … ∘ T_{ξ_last}`` to ``starts``, many words side by side.

    ``starts`` (C, k, d); ``idx`` (C, n) batch sequences; ``first``, ``last``
    int arrays (k,) of 1-based step numbers (a word is empty when
    ``first > last``). Round ``r`` applies, for every word still active, its
    letter ``ξ_{last − r}`` (the newest first): one vectorized ``step`` call
    per round over all active words of all chains (rows already non-finite
    are left out, see :func:`step_finite`). Returns (C, k, d).
    """
    C = idx.shape[0]
    d = starts.shape[-1]
    states = np.array(starts, dtype=np.float64, copy=True)
    first = np.asarray(first, dtype=np.int64)
    last = np.asarray(last, dtype=np.int64)
    lengths = np.maximum(last - first + 1, 0)
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        for r in range(int(lengths.max(initial=0))):
            cols = np.flatnonzero(lengths > r)
            letters = last[cols] - r - 1  # 0-based column of ξ_{last − r}
            active = states[:, cols].reshape(-1, d)
            index = idx[:, letters].reshape(-1)
            states[:, cols] = step_finite(maps, active, index).reshape(C, -1, d)
    return states


def _general_backward(maps, theta0, idx, steps):
    """All requested ``θ̃_n`` side by side: at round r every ``n ≥ r`` applies ``ξ_{n−r+1}``."""
    starts = np.broadcast_to(theta0[:, None, :], (idx.shape[0], steps.size, theta0.shape[1]))
    return apply_words(maps, starts, idx, np.ones_like(steps), steps)


def forward_iterates(maps, theta0, idx, *, save_steps=None) -> np.ndarray:
    r"""Forward SGD iterates ``θ_n = T_{ξ_n} ∘ … ∘ T_{ξ_1}(θ_0)``.

    Parameters
    ----------
    maps : AffineMaps, LowRankAffineMaps or map family
        Affine maps use the closed form ``θ_n = A_{ξ_n} θ_{n−1} + b_{ξ_n}``,
        vectorized over chains (low-rank maps in ``O(r d)`` per step; diagonal
        maps by words of a few steps with composed coefficients, the same as
        step by step to rounding); any object with ``step(theta, index)`` and
        ``n_maps`` (such as :class:`contraction.GradientMaps`) is iterated directly.
    theta0 : array_like, shape (d,) or (n_chains, d)
        Start, shared by all chains or one per chain.
    idx : array_like of int, shape (n_steps,) or (n_chains, n_steps)
        Batch sequences (see :func:`contraction.sample_batches`), at most
        ``MAX_STEPS`` (``10**8``) steps.
    save_steps : array_like of int, optional
        Strictly increasing step numbers to return (default all,
        ``0, …, n_steps``). ``[n_steps]`` keeps only the last iterate;
        ``range(0, n_steps + 1, k)`` every k-th. The output is limited to 1 GiB.

    Returns
    -------
    ndarray, shape (n_chains, len(save_steps), d)
        Row ``j`` is ``θ_{save_steps[j]}``; with the default, row 0 is ``θ_0``.

    Raises
    ------
    DivergenceError
        If an iterate overflows (non-finite values are never returned).

    Examples
    --------
    >>> import numpy as np
    >>> import contraction as ct
    >>> maps = ct.AffineMaps([[[0.5]], [[0.5]]], [[0.5], [-0.5]])
    >>> idx = [0, 1, 1]
    >>> x = ct.forward_iterates(maps, [0.0], idx)
    >>> x.shape
    (1, 4, 1)
    >>> loop = 0.0
    >>> for i in idx:
    ...     loop = maps.A[i, 0, 0] * loop + maps.b[i, 0]
    >>> bool(np.isclose(x[0, -1, 0], loop))
    True
    """
    idx, theta0, steps = prepare_iteration(maps, theta0, idx, save_steps)
    if isinstance(maps, (AffineMaps, LowRankAffineMaps)):
        engine = affine_forward if isinstance(maps, AffineMaps) else low_rank_forward
        with single_thread_blas():
            out = engine(maps, theta0, idx, steps)
    else:
        out = _general_forward(maps, theta0, idx, steps)
    return check_diverged(out, steps, "forward")


def backward_iterates(maps, theta0, idx, *, save_steps=None) -> np.ndarray:
    r"""Backward SGD iterates ``θ̃_n = T_{ξ_1} ∘ … ∘ T_{ξ_n}(θ_0)``.

    Same batches and start as :func:`forward_iterates`, opposite composition:
    the newest batch ``ξ_n`` acts first on ``θ_0``.

    Parameters
    ----------
    maps : AffineMaps, LowRankAffineMaps or map family
        Affine maps use the closed form below; any object with
        ``step(theta, index)`` and ``n_maps`` is iterated by recomputation.
    theta0 : array_like, shape (d,) or (n_chains, d)
        Start, shared by all chains or one per chain.
    idx : array_like of int, shape (n_steps,) or (n_chains, n_steps)
        Batch sequences (see :func:`contraction.sample_batches`), at most
        ``MAX_STEPS`` (``10**8``) steps.
    save_steps : array_like of int, optional
        Strictly increasing step numbers to return (default all, ``0, …, n_steps``);
        the output is limited to 1 GiB.

    Returns
    -------
    ndarray, shape (n_chains, len(save_steps), d)
        Row ``j`` is ``θ̃_{save_steps[j]}``; with the default, row 0 is ``θ_0``.

    Raises
    ------
    DivergenceError
        If an iterate overflows (non-finite values are never returned).

    Notes
    -----
    Affine maps: ``θ̃_n = P_n θ_0 + q_n`` with ``P_n = P_{n−1} A_{ξ_n}``,
    ``q_n = q_{n−1} + P_{n−1} b_{ξ_n}``, computed as a prefix scan of
    augmented matrices carried left to right (in tiles of chains, bounded
    memory; by words of a few steps whose products are tabled when the maps
    are few), ``O(n_steps)`` products of size ``d + 1`` per chain whatever
    is saved; diagonal maps (and ``d = 1``) use the same elementwise, by
    words of steps whose composed coefficients are tabled. Each chain's iterates are the same bit for bit whatever the
    number of chains and the steps saved; sequences of at most ``2 (d + 1)``
    steps are rebuilt map by map (cheaper; the same to rounding, not to the
    bit, as the scan), longer ones give ``θ̃_k`` the same bits whatever
    the length (it is column ``k`` of any longer scanned run). An iterate is
    reported as divergent only when it is non-finite itself: where a product
    ``P_n`` overflows but the iterate does not, it is recomputed from
    ``θ_0``. Low-rank maps ``I − s U Vᵀ``: ``P_n = P_{n−1} − (s P_{n−1} U) Vᵀ``,
    ``O(r d²)`` per step. General maps: recomputation, ``Σ_n n`` evaluations of ``step``
    for the requested ``n``, all ``n`` advancing side by side (SPEC C13);
    requesting only the last step costs ``n_steps`` evaluations.

    Examples
    --------
    >>> import numpy as np
    >>> import contraction as ct
    >>> rng = np.random.default_rng(0)
    >>> maps = ct.AffineMaps(0.5 * rng.normal(size=(3, 2, 2)), rng.normal(size=(3, 2)))
    >>> idx = [2, 0, 1, 1]
    >>> x = ct.backward_iterates(maps, [1.0, -1.0], idx)
    >>> A, b = maps.word(idx)     # T_2 ∘ T_0 ∘ T_1 ∘ T_1
    >>> bool(np.allclose(x[0, -1], A @ [1.0, -1.0] + b))
    True
    """
    idx, theta0, steps = prepare_iteration(maps, theta0, idx, save_steps)
    low_rank = isinstance(maps, LowRankAffineMaps)
    if not (low_rank or isinstance(maps, AffineMaps)):
        return check_diverged(_general_backward(maps, theta0, idx, steps), steps, "backward")
    with single_thread_blas():
        if idx.shape[1] <= recompute_horizon(maps):
            out = _general_backward(maps, theta0, idx, steps)
        else:
            scan = low_rank_backward if low_rank else affine_backward
            out = scan(maps, theta0, idx, steps)
            if all_finite(out):
                return out
            out = _recompute_overflowed(maps, theta0, idx, steps, out)
    return check_diverged(out, steps, "backward")


def recompute_horizon(maps) -> int:
    """The longest sequence whose backward iterates are rebuilt map by map rather than scanned.

    Rebuilding every ``θ̃_k`` of ``n`` steps costs ``~n²/2`` map applications,
    the scan ``n`` products of size ``d + 1`` (low rank: ``O(r d²)`` each):
    short sequences are rebuilt. Decided on the sequence's length, never on
    the steps saved; an iterate of a short sequence can then differ in the
    last bits from the same step of a longer, scanned one. Diagonal maps are
    always scanned.
    """
    if isinstance(maps, LowRankAffineMaps):  # ~4rd²/5e9 + 2e-5 s a scan step, ~4rd/2e9 + 5e-6 s an application
        d, r = maps.dim, maps.rank
        return int((4 * r * d * d / 5e9 + 2e-5) / (4 * r * d / 2e9 + 5e-6))
    return -1 if maps._diagonal is not None else 2 * (maps.dim + 1)
