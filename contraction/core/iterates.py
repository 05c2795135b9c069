r"""Forward and backward SGD iterates, vectorized over chains.

For a batch sequence ``ξ_1, …, ξ_n`` and start ``θ_0``:

* forward  ``θ_n = T_{ξ_n} ∘ … ∘ T_{ξ_1}(θ_0)``   (newest batch applied last);
* backward ``θ̃_n = T_{ξ_1} ∘ … ∘ T_{ξ_n}(θ_0)``  (newest batch applied first).

For affine maps both have closed forms. Backward iterates are read from
prefix products of augmented matrices ``E_i = [[A_i, b_i], [0, 1]]``:
``[θ̃_n; 1] = P_n [θ_0; 1]`` with ``P_n = P_{n−1} E_{ξ_n}``, a prefix scan
carried left to right in blocks of steps, over tiles of chains, so that
memory stays bounded (``_SCAN_BUDGET``).

Every result is reproducible bit for bit: each chain's products are
per-chain products of fixed shape (:mod:`contraction.core._kernels`), and
the order in which a chain's products are associated is fixed by the
step numbers alone (left to right), so chain ``i`` is the same whatever the
number of chains, the tile and block sizes, the threads and the steps saved.

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

from ._kernels import (
    _GATHER_MAX_VALUES,
    _ROW_PAD,
    RowGemm,
    _concat_is_cheaper,
    _sort_by_batch,
    over_chain_slices,
    padded_rows,
    single_thread_blas,
    work_workers,
)
from ._validation import DivergenceError, as_float_array, as_indices, check_output_size, describe
from .lowrank import LowRankAffineMaps
from .maps import AffineMaps, family_size

__all__ = ["MAX_STEPS", "apply_words", "backward_iterates", "check_diverged", "forward_iterates", "iterate_and_save",
           "prepare_iteration", "step_finite"]

# Working memory of the backward scan (bytes): a tile of chains holds its products and one block of
# gathered factors within it. The budget changes the tiles and blocks, never a result.
_SCAN_BUDGET = 1 << 24
# Values held by one tile of a row-product engine (its products against all maps) or one chunk of steps.
_TILE_VALUES = 2**17
# Values held before they are written into the output (saved steps, all chains).
_SAVE_VALUES = 2**17
# Values per step (chains x d) and steps per chunk of the elementwise (diagonal) engines.
_ELEMENTWISE_VALUES = 4096
_ELEMENTWISE_STEPS = 16
# Most chains in one tile of the forward engine.
_TILE_CHAINS = 4096
# Rank of the block updates of the low-rank backward scan (steps per block: this over the maps' rank).
_BLOCK_RANK = 128
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
    per_step = max(1, int(np.prod(out.shape[2:], dtype=np.int64)) * out.shape[0])
    buf = np.empty((max(1, min(steps.size, _SAVE_VALUES // per_step)), out.shape[0], *out.shape[2:]))
    held = pos = 0

    def flush():  # a few saved steps at once: each chain's row of out is written in longer runs
        nonlocal held, pos
        out[:, pos:pos + held] = np.swapaxes(buf[:held], 0, 1)
        pos += held
        held = 0

    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        if save[0]:
            buf[0] = read(state)
            held = 1
        for k in range(n_steps):
            state = advance(k, state)
            if save[k + 1]:
                if held == len(buf):
                    flush()
                buf[held] = read(state)
                held += 1
        flush()
    return state


def _diverged(order: str, chain: int, step: int) -> DivergenceError:
    return DivergenceError(
        f"{order} iterates overflowed: chain {chain} is non-finite at step {step} "
        f"(saved steps only). The maps expand there; lower lr or start inside a "
        f"contractive region."
    )


def check_diverged(out: np.ndarray, steps: np.ndarray, order: str) -> np.ndarray:
    """Return ``out``, or raise :class:`DivergenceError` naming the first non-finite saved step (and its chain)."""
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.add.reduce(out, axis=None)  # one pass, no copy: finite whenever every value is (or overflows)
    if np.isfinite(total):
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


def _affine_forward(maps: AffineMaps, theta0, idx, steps):
    """``θ_k = [θ_{k−1}, 1] @ M_{ξ_k}`` per chain, each a row of a GEMM (:class:`RowGemm`), chains sliced over threads.

    Diagonal maps (and ``d = 1``) take the elementwise form ``a_ξ ⊙ θ + b_ξ``
    (:func:`_diagonal_forward`), which gives the same bits.
    """
    C = idx.shape[0]
    d, m = maps.dim, maps.n_maps
    out = np.empty((C, steps.size, d))
    if maps._diagonal is not None:
        a_, b_ = maps._diagonal
        over_chain_slices(lambda a, b: _diagonal_forward(a_, b_, theta0[a:b], idx[a:b], steps, out[a:b]),
                          C, m)
        return out
    M = maps._row_matrices

    def run(a, b):
        concat = _concat_is_cheaper(padded_rows(min(b - a, _TILE_CHAINS)), m, d + 1, d)
        tile = _tile_rows(m, d + 1, d) if concat else _TILE_CHAINS  # all maps' products stay in cache
        for t in range(a, b, tile):
            K = min(b, t + tile) - t
            (_concat_forward if concat else _sorted_forward)(M, theta0[t:t + K], idx[t:t + K], steps, out[t:t + K])

    over_chain_slices(run, C, m, work_workers(C, 2 * (d + 1) * d))
    return out


def _concat_forward(M, theta0, idx, steps, out):
    """Forward rows ``[θ, 1]`` against all maps side by side (one GEMM a step), then each row's block is read."""
    K, n = idx.shape
    m, D, d = M.shape
    rows = padded_rows(K)
    cat = np.ascontiguousarray(np.swapaxes(M, 0, 1).reshape(D, m * d))
    X = np.zeros((rows, D))
    X[:, d] = 1.0
    X[:K, :d] = theta0
    Y = np.empty((rows, m * d))
    flat = Y.reshape(rows * m, d)
    pick = np.arange(rows) * m
    base = pick[:K].copy()

    def advance(k, X):
        np.matmul(X, cat, out=Y)
        np.add(base, idx[:, k], out=pick[:K])
        np.take(flat, pick, axis=0, out=X[:, :d])
        return X

    iterate_and_save(advance, X, n, steps, out, read=lambda X: X[:K, :d])


def _sorted_forward(M, theta0, idx, steps, out):
    """Forward rows grouped by the step's map: one gather and one GEMM per map present, a step.

    The iterates stay where the last step's GEMMs wrote them (``where[c]``:
    the row of chain ``c``); each step gathers them into groups by map,
    every group padded to a multiple of ``_ROW_PAD`` rows, so each row is a
    row of a GEMM against its map, as in :class:`RowGemm`.
    """
    K, n = idx.shape
    m, D, d = M.shape
    cap = padded_rows(K) + _ROW_PAD * m
    X = np.empty((cap, D))
    X[:, d] = 1.0
    Y = np.zeros((cap, d))
    Y[:K] = theta0
    where = np.arange(K)
    ranks = np.arange(K)
    starts = np.zeros(m + 1, dtype=np.int64)

    def advance(k, Y):
        nonlocal where
        order, bounds = _sort_by_batch(idx[:, k], m)
        sizes = np.diff(bounds)
        np.cumsum(-(-sizes // _ROW_PAD) * _ROW_PAD, out=starts[1:])
        ranked = idx[order, k]
        new = np.empty(K, dtype=np.int64)
        new[order] = starts[ranked] + (ranks - bounds[ranked])
        source = np.zeros(starts[-1], dtype=np.int64)  # padding repeats row 0: its products are never read
        source[new] = where
        np.take(Y, source, axis=0, out=X[:starts[-1], :d])
        for i in np.flatnonzero(sizes):
            np.matmul(X[starts[i]:starts[i + 1]], M[i], out=Y[starts[i]:starts[i + 1]])
        where = new
        return Y

    iterate_and_save(advance, Y, n, steps, out, read=lambda Y: np.take(Y, where, axis=0))


def _tile_rows(m: int, p: int, k: int) -> int:
    """Chains per tile of the row-product engines: their products against all maps stay within ``_TILE_VALUES``."""
    return int(max(_ROW_PAD, min(_TILE_CHAINS, _TILE_VALUES // (m * k + p + k))))


def _elementwise_blocks(C: int, n: int, d: int):
    """Tiles of chains and chunks of steps of the elementwise engines: ``(a, b, start, stop)``, tile by tile.

    A tile's chunk (``_ELEMENTWISE_STEPS`` steps of ``_ELEMENTWISE_VALUES / d``
    chains) stays in cache; the blocks are fixed by ``d`` alone, and the
    engines carry their state across chunks exactly, so they never change a result.
    """
    tile = max(1, _ELEMENTWISE_VALUES // d)
    for a in range(0, C, tile):
        for start in range(0, n, _ELEMENTWISE_STEPS):
            yield a, min(C, a + tile), start, min(n, start + _ELEMENTWISE_STEPS)


def _diagonal_forward(a_, b_, theta0, idx, steps, out):
    """``θ_k = a_{ξ_k} ⊙ θ_{k−1} + b_{ξ_k}`` (rounded product, then rounded sum), in tiles and chunks of steps.

    This is what a row of the GEMM gives for a diagonal matrix (the other
    terms are exact zeros), so both forms give the same bits.
    """
    C, n = idx.shape
    d = a_.shape[1]
    save = np.zeros(n + 1, dtype=bool)
    save[steps] = True
    table = np.ascontiguousarray(np.stack([a_, b_], axis=1))  # (m, 2, d)
    pos0 = int(save[0])
    out[:, :pos0] = theta0[:, None]
    theta, pos = None, pos0
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        for a, b, start, stop in _elementwise_blocks(C, n, d):
            if start == 0:
                theta, pos = theta0[a:b].copy(), pos0
            G = np.take(table, idx[a:b, start:stop].T, axis=0)  # (L, K, 2, d): step-major
            marks = save[start + 1:stop + 1]
            kept = np.empty((int(marks.sum()), b - a, d))
            slot = 0
            for j in range(stop - start):
                np.multiply(G[j, :, 0], theta, out=theta)
                np.add(theta, G[j, :, 1], out=theta)
                if marks[j]:
                    kept[slot] = theta
                    slot += 1
            out[a:b, pos:pos + slot] = np.swapaxes(kept, 0, 1)
            pos += slot


def _diagonal_backward(a_, b_, theta0, idx, steps, out):
    """``θ̃_n = P_n ⊙ θ_0 + q_n``, ``P_n = P_{n−1} ⊙ a_{ξ_n}``, ``q_n = q_{n−1} + P_{n−1} ⊙ b_{ξ_n}``.

    Cumulative products and sums along the steps, sequential (left to
    right), in tiles and chunks of steps that carry ``P`` and ``q`` into
    their first term, so blocks never change a result.
    """
    C, n = idx.shape
    d = a_.shape[1]
    save = np.zeros(n + 1, dtype=bool)
    save[steps] = True
    pos0 = int(save[0])
    out[:, :pos0] = theta0[:, None]
    P = q = None
    pos = pos0
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        for a, b, start, stop in _elementwise_blocks(C, n, d):
            if start == 0:
                P, q, pos = np.ones((b - a, d)), np.zeros((b - a, d)), pos0
            letters = idx[a:b, start:stop].T
            A, W = np.take(a_, letters, axis=0), np.take(b_, letters, axis=0)  # (L, K, d)
            np.multiply(P, A[0], out=A[0])
            np.multiply(P, W[0], out=W[0])
            np.add(q, W[0], out=W[0])
            for j in range(1, stop - start):  # row by row: numpy's accumulate is slow along a short first axis
                np.multiply(A[j - 1], A[j], out=A[j])
                np.multiply(A[j - 1], W[j], out=W[j])
                np.add(W[j - 1], W[j], out=W[j])
            P, q = A[-1].copy(), W[-1].copy()
            marks = np.flatnonzero(save[start + 1:stop + 1])
            if marks.size:
                th = A[marks]
                th *= theta0[a:b]
                th += W[marks]
                out[a:b, pos:pos + marks.size] = np.swapaxes(th, 0, 1)
                pos += marks.size


def _backward_tile(C: int, D: int, m: int) -> int:
    """Chains per tile of the backward scan: rows of the products (and against all maps) within ``_TILE_VALUES``."""
    return int(max(1, min(C, _TILE_VALUES // (D * (m * D + 2 * D)))))


def _affine_backward(maps: AffineMaps, theta0, idx, steps):
    """``[θ̃_n; 1] = P_n x_0`` with ``P_1 = E_{ξ_1}``, ``P_n = P_{n−1} E_{ξ_n}`` (left to right, per chain).

    The rows of every chain's ``P_{n−1}`` go through one :class:`RowGemm`
    per step (each row a row of a GEMM), chains in tiles; the products of
    the saved steps are kept (within ``_SCAN_BUDGET``) and read out together,
    one fixed-shape product per chain. Neither tiles nor the steps saved
    change a result. Diagonal maps use :func:`_diagonal_backward`.
    """
    C, n = idx.shape
    d, m = maps.dim, maps.n_maps
    D = d + 1
    out = np.empty((C, steps.size, d))
    if maps._diagonal is not None:
        a_, b_ = maps._diagonal
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            over_chain_slices(lambda a, b: _diagonal_backward(a_, b_, theta0[a:b], idx[a:b], steps, out[a:b]),
                              C, m)
        return out
    E = maps.augmented
    x0 = np.concatenate([theta0, np.ones((C, 1))], axis=1)
    save = np.zeros(n + 1, dtype=bool)
    save[steps] = True
    tile = _backward_tile(C, D, m)

    def run_tile(a, b):
        K = b - a
        rows = padded_rows(K * D)
        P = np.zeros((rows, D))
        P[:K * D] = np.tile(np.eye(D), (K, 1))
        nxt = np.empty_like(P)
        ind = np.zeros(rows, dtype=np.int64)
        product = RowGemm(E, rows)
        keep = max(1, _SCAN_BUDGET // (8 * K * D * D))
        kept = np.empty((K, min(keep, int(save.sum())), D, D))
        slot, pos = 0, 0
        if save[0]:
            out[a:b, 0] = theta0[a:b]
            pos = 1
        for k in range(n):
            ind[:K * D] = np.repeat(idx[a:b, k], D)
            product(P, ind, nxt)
            P, nxt = nxt, P
            if save[k + 1]:
                kept[:, slot] = P[:K * D].reshape(K, D, D)
                slot += 1
            if slot == kept.shape[1] or (k == n - 1 and slot):
                out[a:b, pos:pos + slot] = np.matmul(kept[:, :slot], x0[a:b, None, :, None])[:, :, :d, 0]
                pos += slot
                slot = 0

    def run(a, b):
        for t in range(a, b, tile):
            run_tile(t, min(b, t + tile))

    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        over_chain_slices(run, C, m, work_workers(C, 2 * D * D * D))
    return out


def _low_rank_forward(maps: LowRankAffineMaps, theta0, idx, steps):
    """``θ_k = θ_{k−1} − (s (θ_{k−1} V_i) U_iᵀ − b_i)`` per chain (``O(r d)``), chains sliced over threads.

    Many chains are kept sorted by their current batch (as in
    :func:`_grouped_forward`), in buffers reused at every step; each row gets
    the same per-row products as :meth:`LowRankAffineMaps.step`.
    """
    C, n = idx.shape
    d, r = maps.dim, maps.rank
    out = np.empty((C, steps.size, d))

    def run(a, b):
        K = b - a
        if K * r * d <= _GATHER_MAX_VALUES:
            iterate_and_save(lambda k, x: maps._rows(x, idx[a:b, k]), theta0[a:b], n, steps, out[a:b])
            return
        state = np.empty((K, 1, d))
        state[:, 0] = theta0[a:b]
        gathered, T, S = np.empty_like(state), np.empty_like(state), np.empty((K, 1, r))
        where, rows = np.arange(K), np.arange(K)  # where[c]: row of chain c in `state`

        def advance(k, state):
            index = idx[a:b, k]
            order, bounds = _sort_by_batch(index, maps.n_maps)
            np.take(state, where[order], axis=0, out=gathered, mode="clip")
            maps._grouped(gathered, index[order], bounds, T, S)
            np.subtract(gathered, T, out=state)
            where[order] = rows
            return state

        iterate_and_save(advance, state, n, steps, out[a:b],
                         read=lambda state: np.take(state[:, 0], where, axis=0, mode="clip"))

    over_chain_slices(run, C, maps.n_maps, work_workers(C, 4 * r * d))
    return out


def _low_rank_backward(maps: LowRankAffineMaps, theta0, idx, steps):
    """``θ̃_n = P_n θ_0 + q_n`` with ``P`` carried over blocks of ``k`` steps, ``k r ≈ min(_BLOCK_RANK, d)``.

    A block ``T_{ξ_{n+1}} ∘ … ∘ T_{ξ_{n+k}} = (I − Ū V̄ᵀ) θ + c`` (rank ``k r``,
    :meth:`LowRankAffineMaps._block`) updates ``P ← P − (P Ū) V̄ᵀ``,
    ``q ← q + P c``, and gives its iterates as ``P z_j + q`` from the same
    product ``P [Ū, c, Z]``: ``O(r d²)`` per step in matrix products of inner
    size ``k r``. The blocks start at multiples of ``k`` (fixed by ``d`` and
    ``r``), chains go in tiles of ``_SCAN_BUDGET``; every product is one
    fixed-shape product per chain, so neither tiles nor saved steps change a result.
    """
    C, n = idx.shape
    d, r = maps.dim, maps.rank
    k = max(1, min(_BLOCK_RANK, d) // r)
    out = np.empty((C, steps.size, d))
    save = np.zeros(n + 1, dtype=bool)
    save[steps] = True
    tile = int(max(1, min(C, _SCAN_BUDGET // (16 * d * d))))

    def run_tile(a, b):
        P = np.broadcast_to(np.eye(d), (b - a, d, d)).copy()
        spare = np.empty_like(P)
        q = np.zeros((b - a, d, 1))
        pos = int(save[0])
        out[a:b, :pos] = theta0[a:b, None]
        for start in range(0, n, k):
            L = min(k, n - start)
            F, Vt = maps._block(idx[a:b, start:start + L], theta0[a:b])
            X = np.matmul(P, F)
            marks = np.flatnonzero(save[start + 1:start + L + 1])
            out[a:b, pos:pos + marks.size] = np.swapaxes(X[:, :, L * r + 1 + marks] + q, 1, 2)
            pos += marks.size
            q = q + X[:, :, L * r:L * r + 1]
            np.subtract(P, np.matmul(X[:, :, :L * r], Vt, out=spare), out=spare)
            P, spare = spare, P

    def run(a, b):
        for t in range(a, b, tile):
            run_tile(t, min(b, t + tile))

    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        over_chain_slices(run, C, maps.n_maps, work_workers(C, 4 * r * d * d))
    return out


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
        vectorized over chains (low-rank maps in ``O(r d)`` per step); any object with ``step(theta, index)`` and
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
        engine = _affine_forward if isinstance(maps, AffineMaps) else _low_rank_forward
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
    memory), ``n_steps`` products of size ``d + 1`` per chain whatever is
    saved; diagonal maps (and ``d = 1``) use cumulative products and sums
    instead. Each chain's iterates are the same bit for bit whatever the
    number of chains, the steps saved and the length of the sequence
    (``θ̃_k`` from the first ``k`` batches is column ``k`` of a longer run). An iterate is
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
        scan = _low_rank_backward if low_rank else _affine_backward
        out = _recompute_overflowed(maps, theta0, idx, steps, scan(maps, theta0, idx, steps))
    return check_diverged(out, steps, "backward")
