r"""Forward and backward SGD iterates, vectorized over chains.

For a batch sequence ``ξ_1, …, ξ_n`` and start ``θ_0``:

* forward  ``θ_n = T_{ξ_n} ∘ … ∘ T_{ξ_1}(θ_0)``   (newest batch applied last);
* backward ``θ̃_n = T_{ξ_1} ∘ … ∘ T_{ξ_n}(θ_0)``  (newest batch applied first).

For affine maps both have closed forms. Backward iterates are prefix
products of augmented matrices ``E_i = [[A_i, b_i], [0, 1]]``:
``[θ̃_n; 1] = E_{ξ_1} ⋯ E_{ξ_n} [θ_0; 1]``. The products are an associative
prefix scan over steps, evaluated in blocks (Hillis–Steele within a block,
a carried product between blocks) so that memory stays bounded.

Any other object with ``step(theta, index)`` (for instance
:class:`contraction.GradientMaps`) is iterated directly: forward by
iteration; backward by recomputation, where every requested ``θ̃_n`` is
rebuilt from ``θ_0`` and all of them advance side by side, one vectorized
``step`` call per round.
"""

from __future__ import annotations

import itertools
import os

import numpy as np

from ._kernels import _GROUP_MIN_CHAINS_PER_BATCH, _grouped_matmul, _sort_by_batch, _use_groups
from ._validation import DivergenceError, as_float_array, as_indices, describe
from .maps import AffineMaps, family_size

__all__ = ["apply_words", "backward_iterates", "check_diverged", "forward_iterates", "iterate_and_save",
           "prepare_iteration"]

# Memory allowed for one block of the backward prefix scan (bytes).
_SCAN_BUDGET = 1 << 24
# Split the grouped forward pass over threads from this many chains on.
_THREAD_MIN_CHAINS = 2048


def prepare_iteration(maps, theta0, idx, save_steps=None):
    """Validate the common arguments of the iteration functions.

    Returns ``(idx, theta0, save_steps)`` with ``idx`` of shape
    ``(n_chains, n_steps)``, ``theta0`` of shape ``(n_chains, d)`` and
    ``save_steps`` a sorted int array of step numbers in ``[0, n_steps]``.
    A 1-D ``idx`` is one chain; one ``theta0`` row is shared by all chains,
    and one ``idx`` row by all rows of ``theta0``.
    """
    m = family_size(maps)
    idx = as_indices(idx, "idx", m, ndim=(1, 2))
    if idx.ndim == 1:
        idx = idx[None, :]
    if idx.shape[0] == 0:
        raise ValueError(f"idx: expected at least one chain, got {describe(idx)}")
    theta0 = as_float_array(theta0, "theta0", ndim=(1, 2))
    dim = getattr(maps, "dim", None)
    if dim is not None and theta0.shape[-1] != dim:
        raise ValueError(f"theta0: expected last axis of length {dim}, got {describe(theta0)}")
    n_chains = idx.shape[0]
    if theta0.ndim == 2:
        if idx.shape[0] == 1 and theta0.shape[0] > 1:
            idx = np.broadcast_to(idx, (theta0.shape[0], idx.shape[1]))
            n_chains = theta0.shape[0]
        elif theta0.shape[0] != n_chains:
            raise ValueError(
                f"theta0: expected one vector or one per chain ({n_chains}, d), got {describe(theta0)}"
            )
    theta0 = np.broadcast_to(theta0, (n_chains, theta0.shape[-1])).copy()
    n = idx.shape[1]
    if save_steps is None:
        steps = np.arange(n + 1)
    else:
        steps = np.atleast_1d(as_indices(save_steps, "save_steps", n + 1, ndim=(0, 1), what="step numbers"))
        if steps.size == 0:
            raise ValueError(f"save_steps: expected a non-empty 1-D list of steps, got {describe(steps)}")
        if np.any(np.diff(steps) <= 0):
            raise ValueError(f"save_steps: expected strictly increasing step numbers, got {steps.tolist()[:8]}")
    return idx, theta0, steps


def iterate_and_save(advance, state, n_steps: int, steps: np.ndarray, out: np.ndarray, read=None):
    """The saved-steps loop of every iteration engine.

    Runs ``state = advance(k, state)`` for ``k = 0, …, n_steps − 1`` (step
    ``k + 1``) and writes ``read(state)`` (default: the state itself) into
    ``out[:, j]`` when step ``steps[j]`` is reached; step 0 is read from the
    initial state. Overflow is left to :func:`check_diverged`. Returns the
    final state.
    """
    read = (lambda s: s) if read is None else read
    save = np.zeros(n_steps + 1, dtype=bool)
    save[steps] = True
    pos = 0
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        if save[0]:
            out[:, 0] = read(state)
            pos = 1
        for k in range(n_steps):
            state = advance(k, state)
            if save[k + 1]:
                out[:, pos] = read(state)
                pos += 1
    return state


def check_diverged(out: np.ndarray, steps: np.ndarray, order: str) -> np.ndarray:
    """Return ``out``, or raise :class:`DivergenceError` naming the first non-finite saved step."""
    finite = np.isfinite(out).all(axis=-1)
    if not finite.all():
        chain, pos = np.argwhere(~finite)[np.argsort(np.argwhere(~finite)[:, 1], kind="stable")][0]
        raise DivergenceError(
            f"{order} iterates overflowed: chain {chain} is non-finite at step {steps[pos]} "
            f"(saved steps only). The maps expand there; lower lr or start inside a "
            f"contractive region."
        )
    return out


def _affine_forward(maps: AffineMaps, theta0, idx, steps):
    C, n = idx.shape
    d, m = maps.dim, maps.n_maps
    out = np.empty((C, steps.size, d))
    if not _use_groups(C, m):
        def advance(k, theta):
            i = idx[:, k]
            return np.einsum("cij,cj->ci", maps.A[i], theta) + maps.b[i]

        iterate_and_save(advance, theta0, n, steps, out)
        return out
    M = maps._row_matrices
    workers = _forward_workers(C, m)
    if workers == 1:
        _grouped_forward(M, theta0, idx, steps, out)
        return out
    # Independent chains: contiguous slices run in threads (numpy releases the
    # GIL), each with single-threaded BLAS; small per-batch GEMMs do not gain
    # from BLAS threads, slices of chains do.
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    cuts = np.linspace(0, C, workers + 1).astype(int)
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
        jobs = [pool.submit(_grouped_forward, M, theta0[a:b], idx[a:b], steps, out[a:b])
                for a, b in itertools.pairwise(cuts)]
        for job in jobs:
            job.result()
    return out


def _forward_workers(n_chains: int, m: int) -> int:
    """Threads for the grouped forward pass: one per core, each with enough chains per batch."""
    cores = os.cpu_count() or 1
    if n_chains < _THREAD_MIN_CHAINS:
        return 1
    return max(1, min(cores, n_chains // (_THREAD_MIN_CHAINS // 2), n_chains // (_GROUP_MIN_CHAINS_PER_BATCH * m)))


def _grouped_forward(M, theta0, idx, steps, out):
    """Forward iterates of many chains, kept sorted by the current step's batch.

    Each step is one row gather plus one GEMM per batch on augmented rows
    ``[θ, 1] @ [[A_iᵀ], [b_i]]``; ``out`` receives the saved steps.
    """
    C, n = idx.shape
    m, d = M.shape[0], M.shape[2]
    chains = np.arange(C)
    state = np.ones((C, d + 1))
    state[:, :d] = theta0
    where = chains.copy()  # where[c]: row of chain c in `state`
    gathered = np.ones((C, d + 1))

    def advance(k, state):
        order, bounds = _sort_by_batch(idx[:, k], m)
        np.take(state, where[order], axis=0, out=gathered, mode="clip")
        for i in np.flatnonzero(np.diff(bounds)):
            s, e = bounds[i], bounds[i + 1]
            np.matmul(gathered[s:e], M[i], out=state[s:e, :d])
        where[order] = chains
        return state

    iterate_and_save(advance, state, n, steps, out,
                     read=lambda state: np.take(state[:, :d], where, axis=0, mode="clip"))


def _affine_backward(maps: AffineMaps, theta0, idx, steps):
    C, n = idx.shape
    d = maps.dim
    E = maps.augmented
    x0 = np.concatenate([theta0, np.ones((C, 1))], axis=1)  # (C, d+1)
    out = np.empty((C, steps.size, d))
    carry = np.broadcast_to(np.eye(d + 1), (C, d + 1, d + 1)).copy()
    block = int(max(1, min(n, _SCAN_BUDGET // (8 * C * (d + 1) ** 2 * 2))))
    if block == 1:
        # Many chains: sequential prefix product, grouped GEMM per step.
        iterate_and_save(lambda k, P: _grouped_matmul(P, E, idx[:, k]), carry, n, steps, out,
                         read=lambda P: np.einsum("cij,cj->ci", P[:, :d], x0))
        return out
    pos = 0
    if steps[0] == 0:
        out[:, 0] = theta0
        pos = 1
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        for start in range(0, n, block):
            stop = min(n, start + block)
            sel = steps[(steps > start) & (steps <= stop)]
            # Inclusive Hillis–Steele scan of E_{ξ_{start+1}} ⋯ E_{ξ_j} within the block.
            P = E[idx[:, start:stop]]  # (C, B, d+1, d+1)
            s = 1
            while s < P.shape[1]:
                P[:, s:] = P[:, :-s] @ P[:, s:]
                s *= 2
            if sel.size:
                prod = carry[:, None] @ P[:, sel - start - 1]  # (C, k, d+1, d+1)
                out[:, pos:pos + sel.size] = np.einsum("ckij,cj->cki", prod[:, :, :d], x0)
                pos += sel.size
            carry = carry @ P[:, -1]
    return out


def _recomputation_is_cheaper(d: int, n: int, steps: np.ndarray) -> bool:
    """Flop counts: prefix products cost ~n (d+1)³, recomputation Σ_n n d²."""
    return float(steps.sum()) * d * d < float(n) * (d + 1) ** 3


def _general_forward(maps, theta0, idx, steps):
    out = np.empty((idx.shape[0], steps.size, *theta0.shape[1:]))
    iterate_and_save(lambda k, theta: np.asarray(maps.step(theta, idx[:, k]), dtype=np.float64),
                     theta0, idx.shape[1], steps, out)
    return out


def apply_words(maps, starts, idx, first, last):
    """Apply ``T_{ξ_first} ∘ … ∘ T_{ξ_last}`` to ``starts``, many words side by side.

    ``starts`` (C, k, d); ``idx`` (C, n) batch sequences; ``first``, ``last``
    int arrays (k,) of 1-based step numbers (a word is empty when
    ``first > last``). Round ``r`` applies, for every word still active, its
    letter ``ξ_{last − r}`` (the newest first): one vectorized ``step`` call
    per round over all active words of all chains. Returns (C, k, d).
    """
    C = idx.shape[0]
    d = starts.shape[-1]
    states = np.array(starts, dtype=np.float64, copy=True)
    first = np.asarray(first, dtype=np.int64)
    last = np.asarray(last, dtype=np.int64)
    lengths = np.maximum(last - first + 1, 0)
    with np.errstate(over="ignore", invalid="ignore"):
        for r in range(int(lengths.max(initial=0))):
            cols = np.flatnonzero(lengths > r)
            letters = last[cols] - r - 1  # 0-based column of ξ_{last − r}
            active = states[:, cols].reshape(-1, d)
            index = idx[:, letters].reshape(-1)
            states[:, cols] = np.asarray(maps.step(active, index), dtype=np.float64).reshape(C, -1, d)
    return states


def _general_backward(maps, theta0, idx, steps):
    """All requested ``θ̃_n`` side by side: at round r every ``n ≥ r`` applies ``ξ_{n−r+1}``."""
    starts = np.broadcast_to(theta0[:, None, :], (idx.shape[0], steps.size, theta0.shape[1]))
    return apply_words(maps, starts, idx, np.ones_like(steps), steps)


def forward_iterates(maps, theta0, idx, *, save_steps=None) -> np.ndarray:
    r"""Forward SGD iterates ``θ_n = T_{ξ_n} ∘ … ∘ T_{ξ_1}(θ_0)``.

    Parameters
    ----------
    maps : AffineMaps or map family
        Affine maps use the closed form ``θ_n = A_{ξ_n} θ_{n−1} + b_{ξ_n}``,
        vectorized over chains; any object with ``step(theta, index)`` and
        ``n_maps`` (such as :class:`contraction.GradientMaps`) is iterated directly.
    theta0 : array_like, shape (d,) or (n_chains, d)
        Start, shared by all chains or one per chain.
    idx : array_like of int, shape (n_steps,) or (n_chains, n_steps)
        Batch sequences (see :func:`contraction.sample_batches`).
    save_steps : array_like of int, optional
        Strictly increasing step numbers to return (default all,
        ``0, …, n_steps``). ``[n_steps]`` keeps only the last iterate;
        ``range(0, n_steps + 1, k)`` every k-th.

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
    if isinstance(maps, AffineMaps):
        out = _affine_forward(maps, theta0, idx, steps)
    else:
        out = _general_forward(maps, theta0, idx, steps)
    return check_diverged(out, steps, "forward")


def backward_iterates(maps, theta0, idx, *, save_steps=None) -> np.ndarray:
    r"""Backward SGD iterates ``θ̃_n = T_{ξ_1} ∘ … ∘ T_{ξ_n}(θ_0)``.

    Same batches and start as :func:`forward_iterates`, opposite composition:
    the newest batch ``ξ_n`` acts first on ``θ_0``.

    Parameters
    ----------
    maps : AffineMaps or map family
        Affine maps use the closed form below; any object with
        ``step(theta, index)`` and ``n_maps`` is iterated by recomputation.
    theta0 : array_like, shape (d,) or (n_chains, d)
        Start, shared by all chains or one per chain.
    idx : array_like of int, shape (n_steps,) or (n_chains, n_steps)
        Batch sequences (see :func:`contraction.sample_batches`).
    save_steps : array_like of int, optional
        Strictly increasing step numbers to return (default all, ``0, …, n_steps``).

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
    ``q_n = q_{n−1} + P_{n−1} b_{ξ_n}``, computed as a blocked associative
    prefix scan of augmented matrices. General maps: recomputation,
    ``Σ_n n`` evaluations of ``step`` for the requested ``n``, all ``n``
    advancing side by side (SPEC C13); requesting only the last step costs
    ``n_steps`` evaluations.

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
    if isinstance(maps, AffineMaps) and not _recomputation_is_cheaper(maps.dim, idx.shape[1], steps):
        out = _affine_backward(maps, theta0, idx, steps)
    else:
        out = _general_backward(maps, theta0, idx, steps)
    return check_diverged(out, steps, "backward")
