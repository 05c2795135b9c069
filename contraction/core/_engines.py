"""The engines behind :func:`contraction.forward_iterates` and :func:`contraction.backward_iterates`.

Affine maps, picked by shape:

* diagonal maps (and ``d = 1``): elementwise forms
  (:mod:`contraction.core._diagonal`): by words of ``s`` steps,
  ``θ_{us+i} = A_i ⊙ θ_{us} + B_i`` with the coefficients of every word's
  prefixes tabled, or step by step when ``m > 64``;
* forward, rows advanced by row products ``[θ, 1] @ M_ξ``
  (:mod:`contraction.core._rows`), each a row of a GEMM
  (:mod:`contraction.core._kernels`): against all maps side by side when
  ``m`` and ``d`` are small, else grouped by map, one GEMM per map a step;
* backward, a scan in blocks of steps that advance side by side
  (:mod:`contraction.core._scan`): by words of ``s`` steps (the products of
  all ``m^s`` words tabled, one product per chain and word) when ``m^s`` is
  small, else the rows of ``P_n = P_{n−1} E_{ξ_n}`` by row products.

Low-rank maps ``I − s U Vᵀ`` use their factors (``O(r d)`` forward,
``O(r d²)`` backward per step and chain). Every kernel gives chain ``i`` the
same bits whatever the number of chains, tiles, chunks, threads and the
steps saved.
"""

from __future__ import annotations

import numpy as np

from . import _scan
from ._diagonal import diagonal_engine
from ._kernels import (
    _GATHER_MAX_VALUES,
    _saved,
    _sort_by_batch,
    over_chain_slices,
    share_workers,
    work_workers,
    write_swapped,
)
from ._rows import _AllMapsRows, _stepper
from ._scan import _SCAN_BLOCK, _blocked_scan, _scan_units, _word_length, _word_tile, word_tables
from .lowrank import LowRankAffineMaps
from .maps import AffineMaps

__all__ = ["affine_backward", "affine_forward", "iterate_and_save", "low_rank_backward", "low_rank_forward"]

# (Chain, block) pairs per thread of the backward scan: each numpy call then works long enough between calls.
_SCAN_THREAD_PAIRS = 512
# Values held before they are written into the output (saved steps, all chains).
_SAVE_VALUES = 2**20
# Most chains in one tile of the forward engine.
_TILE_CHAINS = 4096
# Values a step (chains x d) from which each thread of the forward engine against all maps side by side pays.
_THREAD_MIN_VALUES = 8192
# Rank of the block updates of the low-rank backward scan (steps per block: this over the maps' rank).
_BLOCK_RANK = 128


def iterate_and_save(advance, state, n_steps: int, steps: np.ndarray, out: np.ndarray, read=None, into=False,
                     share: int = 1):
    """The saved-steps loop of every iteration engine.

    Runs ``state = advance(k, state)`` for ``k = 0, …, n_steps − 1`` (step
    ``k + 1``) and writes ``read(state)`` (default: the state itself) into
    ``out[:, j]`` when step ``steps[j]`` is reached; step 0 is read from the
    initial state. With ``into``, ``advance(k, state, dest)`` writes what is
    saved into ``dest`` itself (``None`` when step ``k + 1`` is not saved).
    Saved steps are held in ``_SAVE_VALUES / share`` values before they are
    written (``share``: the threads running this loop side by side).
    Overflow is left to :func:`check_diverged`. Returns the final state.
    """
    read = (lambda s: s) if read is None else read
    save = _saved(steps, n_steps + 1)
    per_step = max(1, int(np.prod(out.shape[2:], dtype=np.int64)) * out.shape[0])
    buf = np.empty((max(1, min(steps.size, _SAVE_VALUES // (share * per_step))), out.shape[0], *out.shape[2:]))
    held = pos = 0

    def flush():  # a few saved steps at once: each chain's row of out is written in longer runs
        nonlocal held, pos
        write_swapped(out[:, pos:pos + held], buf[:held])
        pos += held
        held = 0

    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        if save[0]:
            buf[0] = read(state)
            held = 1
        for k in range(n_steps):
            if not save[k + 1]:
                state = advance(k, state, None) if into else advance(k, state)
                continue
            if held == len(buf):
                flush()
            if into:
                state = advance(k, state, buf[held])
            else:
                state = advance(k, state)
                buf[held] = read(state)
            held += 1
        flush()
    return state


def affine_forward(maps: AffineMaps, theta0, idx, steps):
    """``θ_k = [θ_{k−1}, 1] @ M_{ξ_k}`` per chain, each a row of a GEMM, chains in tiles and sliced over threads.

    Diagonal maps (and ``d = 1``) take elementwise forms
    (:func:`~contraction.core._diagonal.diagonal_engine`): by words of ``s``
    steps (the same as step by step to rounding) when ``m ≤ 64``, else
    ``a_ξ ⊙ θ + b_ξ`` step by step (the same bits as the row product).
    """
    C = idx.shape[0]
    d, m = maps.dim, maps.n_maps
    out = np.empty((C, steps.size, d))
    if maps._diagonal is not None:
        engine = diagonal_engine(*maps._diagonal)
        over_chain_slices(lambda a, b: engine(theta0[a:b], idx[a:b], steps, out[a:b]), C, m)
        return out
    M = maps._row_matrices

    workers = work_workers(C, 2 * (d + 1) * d)
    if _stepper(M, min(C // 2, _TILE_CHAINS), 1)[0] is _AllMapsRows:  # few, long calls a step: threads pay sooner
        workers = max(workers, share_workers(C, C * d // _THREAD_MIN_VALUES))

    def run(a, b):
        stepper, tile = _stepper(M, min(b - a, _TILE_CHAINS), 1)
        for t in range(a, b, tile):
            K = min(b, t + tile) - t
            _advance_rows(stepper(M, theta0[t:t + K], 1), idx[t:t + K], steps, out[t:t + K], _read_rows, workers)

    over_chain_slices(run, C, m, workers)
    return out


def _read_rows(rows):
    return rows.chain_rows()


def _advance_rows(rows, letters, steps, out, read, share=1):
    """Advance a row stepper through the batch sequences ``letters`` (K, n), saving ``read(rows)``."""
    if isinstance(rows, _AllMapsRows):
        iterate_and_save(lambda k, rows, dest: rows.step(letters[:, k], dest=dest), rows, letters.shape[1], steps,
                         out, read=read, into=True, share=share)
    else:
        iterate_and_save(lambda k, rows: rows.step(letters[:, k]), rows, letters.shape[1], steps, out, read=read,
                         share=share)


def affine_backward(maps: AffineMaps, theta0, idx, steps):
    """``[θ̃_n; 1] = P_n x_0`` with ``P_0 = I``, ``P_n = P_{n−1} E_{ξ_n}`` (left to right, per chain).

    A blocked scan (:func:`_blocked_scan`), by words of ``s`` steps when
    :func:`_word_length` gives one for ``m`` and ``d``, else by row
    products; chains in tiles and over threads. Neither tiles, threads nor
    the steps saved change a result. Diagonal maps use the elementwise engines
    (:func:`~contraction.core._diagonal.diagonal_engine`).
    """
    C = idx.shape[0]
    d, m = maps.dim, maps.n_maps
    D = d + 1
    out = np.empty((C, steps.size, d))
    if maps._diagonal is not None:
        engine = diagonal_engine(*maps._diagonal, backward=True)
        over_chain_slices(lambda a, b: engine(theta0[a:b], idx[a:b], steps, out[a:b]), C, m)
        return out
    E = maps.augmented
    x0 = np.concatenate([theta0, np.ones((C, 1))], axis=1)
    s = _word_length(m, D)
    words = word_tables(E, s) if s else None
    units = _scan_units(D)
    pairs = C * max(1, min(-(-idx.shape[1] // _SCAN_BLOCK), units // C))  # (chain, block) pairs a step
    if words is not None:  # a few long calls a step: threads pay from _SCAN_THREAD_PAIRS pairs each
        workers = share_workers(C, pairs // _SCAN_THREAD_PAIRS)
    else:  # a call per map present a step: threads only for much work
        workers = work_workers(C, 2 * D * D * D)
    units = max(1, units // workers)  # each thread within its share of _SCAN_BUDGET
    tile = units
    if words is not None and not (x0 == x0[0]).all():  # each start holds its words applied (and a GEMM's rows)
        tile = _word_tile(words, D, units, workers)

    def run(a, b):
        for t in range(a, b, tile):
            K = min(b, t + tile) - t
            _blocked_scan(E, idx[t:t + K], steps, x0[t:t + K], out[t:t + K], words, units)

    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        over_chain_slices(run, C, m, workers)
    return out


def low_rank_forward(maps: LowRankAffineMaps, theta0, idx, steps):
    """``θ_k = θ_{k−1} − (s (θ_{k−1} V_i) U_iᵀ − b_i)`` per chain (``O(r d)``), chains sliced over threads.

    Many chains are kept sorted by their current batch (as in
    :class:`_GroupedRows`), in buffers reused at every step; each row gets
    the same per-row products as :meth:`LowRankAffineMaps.step`.
    """
    C, n = idx.shape
    d, r = maps.dim, maps.rank
    out = np.empty((C, steps.size, d))
    workers = work_workers(C, 4 * r * d)

    def run(a, b):
        K = b - a
        if K * r * d <= _GATHER_MAX_VALUES:
            iterate_and_save(lambda k, x: maps._rows(x, idx[a:b, k]), theta0[a:b], n, steps, out[a:b], share=workers)
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

        iterate_and_save(advance, state, n, steps, out[a:b], share=workers,
                         read=lambda state: np.take(state[:, 0], where, axis=0, mode="clip"))

    over_chain_slices(run, C, maps.n_maps, workers)
    return out


def low_rank_backward(maps: LowRankAffineMaps, theta0, idx, steps):
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
    save = _saved(steps, n + 1)
    tile = int(max(1, min(C, _scan._SCAN_BUDGET // (16 * d * d))))

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
