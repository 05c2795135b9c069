"""The engines behind :func:`contraction.forward_iterates` and :func:`contraction.backward_iterates`.

Affine maps, picked by shape:

* diagonal maps (and ``d = 1``): elementwise forms; forward by words of
  ``s`` steps, ``θ_{us+i} = A_i ⊙ θ_{us} + B_i`` with the coefficients of
  every word's prefixes tabled (:func:`_diagonal_forward_words`; ``θ ←
  a_ξ ⊙ θ + b_ξ`` step by step when ``m > 16``); backward cumulative
  products and sums; in tiles of chains and chunks of steps that stay in cache;
* forward, rows advanced by row products ``[θ, 1] @ M_ξ``, each a row of a
  GEMM (:mod:`contraction.core._kernels`): against all maps side by side
  when ``m`` and ``d`` are small, else grouped by map, one GEMM per map a step;
* backward, a scan in blocks of steps that advance side by side: by words of
  ``s`` steps (the products of all ``m^s`` words tabled, one product per chain
  and word) when ``m^s`` is small, else the rows of ``P_n = P_{n−1} E_{ξ_n}``
  by row products as forward.

Low-rank maps ``I − s U Vᵀ`` use their factors (``O(r d)`` forward,
``O(r d²)`` backward per step and chain). Every kernel gives chain ``i`` the
same bits whatever the number of chains, tiles, chunks, threads and the
steps saved.
"""

from __future__ import annotations

import numpy as np

from ._kernels import (
    _GATHER_MAX_VALUES,
    _ROW_PAD,
    _concat_is_cheaper,
    _sort_by_batch,
    over_chain_slices,
    padded_groups,
    padded_rows,
    share_workers,
    work_workers,
)
from .lowrank import LowRankAffineMaps
from .maps import AffineMaps

__all__ = ["affine_backward", "affine_forward", "iterate_and_save", "low_rank_backward", "low_rank_forward"]

# Working memory of the backward scan (bytes): the chains and blocks handled together hold their
# products within it. The budget changes the tiles and groups of blocks, never a result.
_SCAN_BUDGET = 1 << 24
# Values held by one tile of a row-product engine (its products against all maps) or one chunk of steps.
_TILE_VALUES = 2**17
# Steps per block of the backward scan (the blocks start at multiples of it, whatever else is computed),
# and saved products held before they are read out.
_SCAN_BLOCK = 64
_SCAN_HELD = 4
# (Chain, block) pairs per thread of the backward scan: each numpy call then works long enough between calls.
_SCAN_THREAD_PAIRS = 512
# Values held before they are written into the output (saved steps, all chains).
_SAVE_VALUES = 2**20
# Values per step (chains x d) and steps per chunk of the elementwise (diagonal) engines.
_ELEMENTWISE_VALUES = 4096
_ELEMENTWISE_STEPS = 16
# Values per array (chains x s x d) of the elementwise forward engine by words.
_WORD_VALUES_ELEMENTWISE = 32768
# Most chains in one tile of the forward engine.
_TILE_CHAINS = 4096
# Values a step (chains x d) from which each thread of the forward engine against all maps side by side pays.
_THREAD_MIN_VALUES = 8192
# Word scan: at most this many words of s maps, their products within this many values, maps of size between these.
_WORDS = 256
_WORD_VALUES = 2**21
_WORD_MIN_DIM, _WORD_MAX_DIM = 5, 65
# Rank of the block updates of the low-rank backward scan (steps per block: this over the maps' rank).
_BLOCK_RANK = 128

def _saved(steps: np.ndarray, length: int) -> np.ndarray:
    """Boolean mask of length ``length``: ``True`` at the saved step numbers ``steps``."""
    save = np.zeros(length, dtype=bool)
    save[steps] = True
    return save


def write_swapped(dst: np.ndarray, src: np.ndarray) -> None:
    """``dst[...] = src`` with the first two axes swapped: ``dst`` (C, L, d), ``src`` (L, C, d).

    Each chain's ``d`` values at a step are moved as one item (a ``d``-value
    record), so the copy is a transposition of records rather than of
    ``d``-value runs: the same bits, fewer and longer moves.
    """
    if dst.ndim == 3 and dst.shape[2] > 1 and dst.strides[2] == dst.itemsize and src.flags.c_contiguous:
        record = np.dtype((np.void, dst.shape[2] * dst.itemsize))
        dst.view(record)[..., 0] = np.swapaxes(src.view(record)[..., 0], 0, 1)
    else:
        dst[...] = np.swapaxes(src, 0, 1)


def write_rows(dst: np.ndarray, src: np.ndarray) -> None:
    """``dst[...] = src`` for ``dst`` (C, L, d) whose rows' ``L d`` values are contiguous: a row moved as one record."""
    if dst.ndim == 3 and dst.strides[2] == dst.itemsize and dst.strides[1] == dst.shape[2] * dst.itemsize \
            and src.flags.c_contiguous and dst.shape[1] * dst.shape[2] > 1:
        record = np.dtype((np.void, dst.shape[1] * dst.shape[2] * dst.itemsize))
        dst.reshape(dst.shape[0], -1).view(record)[:, 0] = src.reshape(src.shape[0], -1).view(record)[:, 0]
    else:
        dst[...] = src


def iterate_and_save(advance, state, n_steps: int, steps: np.ndarray, out: np.ndarray, read=None, into=False):
    """The saved-steps loop of every iteration engine.

    Runs ``state = advance(k, state)`` for ``k = 0, …, n_steps − 1`` (step
    ``k + 1``) and writes ``read(state)`` (default: the state itself) into
    ``out[:, j]`` when step ``steps[j]`` is reached; step 0 is read from the
    initial state. With ``into``, ``advance(k, state, dest)`` writes what is
    saved into ``dest`` itself (``None`` when step ``k + 1`` is not saved).
    Overflow is left to :func:`check_diverged`. Returns the final state.
    """
    read = (lambda s: s) if read is None else read
    save = _saved(steps, n_steps + 1)
    per_step = max(1, int(np.prod(out.shape[2:], dtype=np.int64)) * out.shape[0])
    buf = np.empty((max(1, min(steps.size, _SAVE_VALUES // per_step)), out.shape[0], *out.shape[2:]))
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

    Diagonal maps (and ``d = 1``) take elementwise forms: by words of ``s``
    steps (:func:`_diagonal_forward_words`, the same as step by step to
    rounding) when ``m ≤ 16``, else ``a_ξ ⊙ θ + b_ξ`` step by step
    (:func:`_diagonal_forward`, the same bits as the row product).
    """
    C = idx.shape[0]
    d, m = maps.dim, maps.n_maps
    out = np.empty((C, steps.size, d))
    if maps._diagonal is not None:
        a_, b_ = maps._diagonal
        s = _diagonal_word_length(m)
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            words = _diagonal_words(a_, b_, s) if s > 1 else None
        if words is not None and np.isfinite(words[0]).all() and np.isfinite(words[1]).all():
            over_chain_slices(lambda a, b: _diagonal_forward_words(*words, m, theta0[a:b], idx[a:b], steps, out[a:b]),
                              C, m)
        else:  # one map at a time: composed coefficients would overflow (or m > 16)
            over_chain_slices(lambda a, b: _diagonal_forward(a_, b_, theta0[a:b], idx[a:b], steps, out[a:b]), C, m)
        return out
    M = maps._row_matrices

    def run(a, b):
        stepper, tile = _stepper(M, min(b - a, _TILE_CHAINS), 1)
        for t in range(a, b, tile):
            K = min(b, t + tile) - t
            _advance_rows(stepper(M, theta0[t:t + K], 1), idx[t:t + K], steps, out[t:t + K], _read_rows)

    workers = work_workers(C, 2 * (d + 1) * d)
    if _stepper(M, min(C // 2, _TILE_CHAINS), 1)[0] is _AllMapsRows:  # few, long calls a step: threads pay sooner
        workers = max(workers, share_workers(C, C * d // _THREAD_MIN_VALUES))
    over_chain_slices(run, C, m, workers)
    return out


def _read_rows(rows):
    return rows.chain_rows()


def _advance_rows(rows, letters, steps, out, read):
    """Advance a row stepper through the batch sequences ``letters`` (K, n), saving ``read(rows)``."""
    if isinstance(rows, _AllMapsRows):
        iterate_and_save(lambda k, rows, dest: rows.step(letters[:, k], dest=dest), rows, letters.shape[1], steps,
                         out, read=read, into=True)
    else:
        iterate_and_save(lambda k, rows: rows.step(letters[:, k]), rows, letters.shape[1], steps, out, read=read)


def _stepper(M, chains: int, r: int):
    """The row stepper for up to ``chains`` chains of ``r`` rows against ``M`` (m, p, k), and chains per tile.

    Against all maps side by side (tiles whose products stay within
    ``_TILE_VALUES``) or grouped by map (``chains`` per tile). Both give the
    same bits; the choice is only a matter of speed.
    """
    m, p, k = M.shape
    if _concat_is_cheaper(padded_rows(chains * r), m, p, k):
        return _AllMapsRows, int(max(1, min(chains, _TILE_VALUES // (r * (m * k + p + k)))))
    return _GroupedRows, chains


class _AllMapsRows:
    """Rows of ``K`` chains (``r`` each), advanced by one GEMM against all maps side by side and a gather.

    ``X`` (rows, p) holds the state in its first ``k`` columns (chain order)
    and the constant columns after them (the ``1`` of ``[θ, 1]``); every
    step computes ``X @ [M_0 | … | M_{m−1}]`` and reads each row's block.
    """

    def __init__(self, M, start, r):
        m, p, k = M.shape
        self.K, self.r, self.k, self.m = len(start) // r, r, k, m
        rows = padded_rows(len(start))
        self.cat = np.ascontiguousarray(np.swapaxes(M, 0, 1).reshape(p, m * k))
        self.X = np.zeros((rows, p))
        self.X[:, k:] = 1.0 if p > k else 0.0
        self.X[:len(start), :k] = start
        self.Y = np.empty((rows, m * k))
        self.Z = np.empty((len(start), k))
        self.pick = np.arange(len(start)) * m  # the rows' blocks in Y, chain order (indices in range)
        self.base = self.pick.copy()

    def step(self, letters, row_letters=None, dest=None):
        """Advance one step: chain ``c`` by ``M[letters[c]]`` (``row_letters``: the same, one per row).

        The new rows are gathered into ``dest`` (rows, k) when given (and
        copied into the state), so that a saved step is written once. The
        padding rows keep their start: their products are never read.
        """
        np.matmul(self.X, self.cat, out=self.Y)
        if row_letters is None:
            row_letters = letters if self.r == 1 else np.repeat(letters, self.r)
        n = len(self.base)
        np.add(self.base, row_letters, out=self.pick[:n])
        if dest is None and self.X.shape[1] == self.k:
            np.take(self.Y.reshape(-1, self.k), self.pick[:n], axis=0, out=self.X[:n], mode="clip")
            return self
        dest = self.Z if dest is None else dest
        np.take(self.Y.reshape(-1, self.k), self.pick[:n], axis=0, out=dest, mode="clip")
        self.X[:n, :self.k] = dest
        return self

    def chain_rows(self):
        return self.X[:len(self.base), :self.k]

    def padded_rows(self):
        """The rows in chain order, padded to a multiple of ``_ROW_PAD`` (C-contiguous when ``p == k``)."""
        return self.X[:, :self.k]


class _GroupedRows:
    """Rows of ``K`` chains (``r`` each), grouped by the step's map: one gather and one GEMM per map present.

    The rows stay where the last step's GEMMs wrote them (``where[c]``: the
    first row of chain ``c``); each step gathers them into groups by map,
    every group padded to a multiple of ``_ROW_PAD`` rows, so each row is a
    row of a GEMM against its map, as in :class:`RowGemm`.
    """

    def __init__(self, M, start, r):
        m, p, k = M.shape
        self.M, self.K, self.r, self.k, self.m = M, len(start) // r, r, k, m
        cap = padded_rows(len(start)) + _ROW_PAD * m
        self.X = np.empty((cap, p))
        self.X[:, k:] = 1.0
        self.Y = np.zeros((cap, k))
        self.Y[:len(start)] = start
        self.offsets = np.arange(r)
        self.where = np.arange(self.K) * r

    def _rows(self, first):
        return (first[:, None] + self.offsets).ravel() if self.r > 1 else first

    def step(self, letters, row_letters=None):
        """Advance one step: chain ``c`` by ``M[letters[c]]`` (``row_letters`` is not needed here)."""
        starts, new = padded_groups(letters, self.m, self.r)
        source = np.zeros(starts[-1], dtype=np.int64)  # padding repeats row 0: its products are never read
        source[self._rows(new)] = self._rows(self.where)
        np.take(self.Y, source, axis=0, out=self.X[:starts[-1], :self.k])
        for i in np.flatnonzero(np.diff(starts)):
            np.matmul(self.X[starts[i]:starts[i + 1]], self.M[i], out=self.Y[starts[i]:starts[i + 1]])
        self.where = new
        return self

    def chain_rows(self):
        return np.take(self.Y, self._rows(self.where), axis=0)

    def padded_rows(self):
        """The rows in chain order, padded to a multiple of ``_ROW_PAD`` (the padding repeats row 0)."""
        rows = self._rows(self.where)
        return np.take(self.Y, np.pad(rows, (0, padded_rows(len(rows)) - len(rows))), axis=0)


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
    save = _saved(steps, n + 1)
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
            kept = np.empty((int(marks.sum()) + 1, b - a, d))
            slot = 0
            for j in range(stop - start):  # a saved step is computed in its place in `kept`
                new = kept[slot]
                np.multiply(G[j, :, 0], theta, out=new)
                np.add(new, G[j, :, 1], out=new)
                if marks[j]:
                    slot += 1
                theta = new
            theta = theta.copy()
            write_swapped(out[a:b, pos:pos + slot], kept[:slot])
            pos += slot


def _diagonal_word_length(m: int) -> int:
    """Steps per word of the elementwise forward engine: the longest ``s`` in 8, 4, 2 with at most ``_WORDS`` words."""
    return next((s for s in (8, 4, 2) if m ** s <= _WORDS), 1)


def _diagonal_words(a_, b_, s: int, backward: bool = False):
    """``θ ↦ A ⊙ θ + B`` for the first ``i`` maps of every word of ``s`` maps: ``A, B`` (m^s, s, d), by the word's code.

    The maps composed forward, ``T_{l_i} ∘ … ∘ T_{l_1}`` (``A ← a_l ⊙ A``,
    ``B ← a_l ⊙ B + b_l``), or backward, ``T_{l_1} ∘ … ∘ T_{l_i}``
    (``B ← B + A ⊙ b_l``, ``A ← A ⊙ a_l``), prefix by prefix, so a word's
    first ``i`` entries depend on its first ``i`` maps only.
    """
    m, d = a_.shape
    A, B = a_[:, None, :].copy(), b_[:, None, :].copy()
    for _ in range(1, s):
        nA = np.multiply(a_[None, :, None, :], A[:, None, -1:, :])  # (words, m, 1, d): word then map l
        if backward:
            nB = np.multiply(A[:, None, -1:, :], b_[None, :, None, :])
            nB += B[:, None, -1:, :]
        else:
            nB = np.multiply(a_[None, :, None, :], B[:, None, -1:, :])
            nB += b_[None, :, None, :]
        k = A.shape[1]
        A = np.concatenate([np.broadcast_to(A[:, None], (len(A), m, k, d)), nA], axis=2).reshape(-1, k + 1, d)
        B = np.concatenate([np.broadcast_to(B[:, None], (len(B), m, k, d)), nB], axis=2).reshape(-1, k + 1, d)
    return np.ascontiguousarray(A), np.ascontiguousarray(B)


def _word_codes(letters, m: int, s: int) -> np.ndarray:
    """Codes ``l_1 m^{s−1} + … + l_s`` of the words of ``s`` steps of each chain: ``letters`` (K, n) to (⌈n/s⌉, K).

    Steps past ``n`` repeat map 0 (their entries are never read).
    """
    K, n = letters.shape
    U, whole = -(-n // s), n // s
    powers = m ** np.arange(s - 1, -1, -1)
    codes = np.empty((U, K), dtype=np.int64)
    codes[:whole] = np.matmul(letters[:, :whole * s].reshape(K, whole, s), powers).T
    if whole < U:
        last = np.zeros((K, s), dtype=np.int64)
        last[:, :n - whole * s] = letters[:, whole * s:]
        codes[whole] = np.matmul(last, powers)
    return codes


def _diagonal_forward_words(A, B, m, theta0, idx, steps, out):
    """``θ_{us+i} = A_i ⊙ θ_{us} + B_i`` with ``(A_i, B_i)`` the word's first ``i`` maps composed, by words of ``s``.

    ``A, B``: :func:`_diagonal_words` for ``m`` maps (all finite). The words start at
    multiples of ``s`` (fixed by ``m``); a sub-step with no saved step only
    advances the carry (``i = s``). Each chain's values
    are elementwise products of its own, so tiles never change a result.
    """
    C, n = idx.shape
    d, s = A.shape[2], A.shape[1]
    U = -(-n // s)
    save = _saved(steps, U * s + 1)
    keeps = [np.flatnonzero(save[u * s + 1:min(n, u * s + s) + 1]) for u in range(U)]
    pos0 = int(save[0])
    out[:, :pos0] = theta0[:, None]
    tile = max(1, _WORD_VALUES_ELEMENTWISE // (s * d))
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        for a in range(0, C, tile):
            b = min(C, a + tile)
            codes = _word_codes(idx[a:b], m, s)
            theta, pos = theta0[a:b].copy(), pos0
            Y, Z = np.empty((b - a, s, d)), np.empty((b - a, s, d))
            for u in range(U):
                code, keep = codes[u], keeps[u]
                if not keep.size:
                    theta = np.multiply(A[code, s - 1], theta)
                    theta += B[code, s - 1]
                    continue
                np.take(A, code, axis=0, out=Y, mode="clip")
                np.multiply(Y, theta[:, None, :], out=Y)
                np.take(B, code, axis=0, out=Z, mode="clip")
                Y += Z
                write_rows(out[a:b, pos:pos + keep.size], Y[:, :keep.size] if keep[-1] + 1 == keep.size else Y[:, keep])
                pos += keep.size
                theta = Y[:, s - 1].copy()


def _diagonal_backward_words(A, B, m, theta0, idx, steps, out):
    """``θ̃_{us+i} = P_{us} ⊙ (A_i ⊙ θ_0 + B_i) + q_{us}``, ``(A_i, B_i)`` the word's first ``i`` maps composed backward.

    ``P_{(u+1)s} = P_{us} ⊙ A_s``, ``q_{(u+1)s} = q_{us} + P_{us} ⊙ B_s``;
    ``A, B``: :func:`_diagonal_words` (backward, all finite) for ``m`` maps.
    The words start at multiples of ``s`` (fixed by ``m``). With one start
    for all chains, ``A_i ⊙ θ_0 + B_i`` is tabled once (the same
    elementwise operations, so the same bits as per chain).
    """
    C, n = idx.shape
    d, s = A.shape[2], A.shape[1]
    U = -(-n // s)
    save = _saved(steps, U * s + 1)
    keeps = [np.flatnonzero(save[u * s + 1:min(n, u * s + s) + 1]) for u in range(U)]
    pos0 = int(save[0])
    out[:, :pos0] = theta0[:, None]
    shared = bool((theta0 == theta0[0]).all()) if C else True
    start = np.multiply(A, theta0[0]) + B if shared and C else None  # every word's prefixes applied to θ_0
    A_end, B_end = np.ascontiguousarray(A[:, s - 1]), np.ascontiguousarray(B[:, s - 1])
    tile = max(1, _WORD_VALUES_ELEMENTWISE // (s * d))
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        for a in range(0, C, tile):
            b = min(C, a + tile)
            codes = _word_codes(idx[a:b], m, s)
            P, q, pos = np.ones((b - a, d)), np.zeros((b - a, d)), pos0
            Y, Z = np.empty((b - a, s, d)), np.empty((b - a, s, d))
            G, H = np.empty((b - a, d)), np.empty((b - a, d))
            for u in range(U):
                code, keep = codes[u], keeps[u]
                if keep.size:
                    if start is not None:
                        np.take(start, code, axis=0, out=Y, mode="clip")
                    else:
                        np.take(A, code, axis=0, out=Y, mode="clip")
                        np.multiply(Y, theta0[a:b, None, :], out=Y)
                        np.take(B, code, axis=0, out=Z, mode="clip")
                        Y += Z
                    np.multiply(Y, P[:, None, :], out=Y)
                    np.add(Y, q[:, None, :], out=Y)
                    write_rows(out[a:b, pos:pos + keep.size],
                               Y[:, :keep.size] if keep[-1] + 1 == keep.size else Y[:, keep])
                    pos += keep.size
                np.take(B_end, code, axis=0, out=H, mode="clip")
                np.multiply(P, H, out=H)
                q += H
                np.take(A_end, code, axis=0, out=G, mode="clip")
                P *= G


def _diagonal_backward(a_, b_, theta0, idx, steps, out):
    """``θ̃_n = P_n ⊙ θ_0 + q_n``, ``P_n = P_{n−1} ⊙ a_{ξ_n}``, ``q_n = q_{n−1} + P_{n−1} ⊙ b_{ξ_n}``.

    Cumulative products and sums along the steps, sequential (left to
    right), in tiles and chunks of steps that carry ``P`` and ``q`` into
    their first term, so blocks never change a result.
    """
    C, n = idx.shape
    d = a_.shape[1]
    save = _saved(steps, n + 1)
    pos0 = int(save[0])
    out[:, :pos0] = theta0[:, None]
    table = np.ascontiguousarray(np.stack([a_, b_], axis=1))  # (m, 2, d)
    P = q = None
    pos = pos0
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        for a, b, start, stop in _elementwise_blocks(C, n, d):
            if start == 0:
                P, q, pos = np.ones((b - a, d)), np.zeros((b - a, d)), pos0
            G = np.take(table, idx[a:b, start:stop].T, axis=0)  # (L, K, 2, d): step-major
            A, W = G[:, :, 0], G[:, :, 1]
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
                th = A if marks.size == stop - start else A[marks]  # every step saved: in place
                np.multiply(th, theta0[a:b], out=th)
                np.add(th, W if th is A else W[marks], out=th)
                out[a:b, pos:pos + marks.size] = np.swapaxes(th, 0, 1)
                pos += marks.size


def affine_backward(maps: AffineMaps, theta0, idx, steps):
    """``[θ̃_n; 1] = P_n x_0`` with ``P_0 = I``, ``P_n = P_{n−1} E_{ξ_n}`` (left to right, per chain).

    A blocked scan (:func:`_blocked_scan`), by words of ``s`` steps when
    :func:`_word_length` gives one for ``m`` and ``d``, else by row
    products; chains in tiles and over threads. Neither tiles, threads nor
    the steps saved change a result. Diagonal maps use :func:`_diagonal_backward`.
    """
    C = idx.shape[0]
    d, m = maps.dim, maps.n_maps
    D = d + 1
    out = np.empty((C, steps.size, d))
    if maps._diagonal is not None:
        a_, b_ = maps._diagonal
        s = _diagonal_word_length(m)
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            words = _diagonal_words(a_, b_, s, backward=True) if s > 1 else None
            if words is not None and np.isfinite(words[0]).all() and np.isfinite(words[1]).all():
                over_chain_slices(
                    lambda a, b: _diagonal_backward_words(*words, m, theta0[a:b], idx[a:b], steps, out[a:b]), C, m)
            else:  # one map at a time: composed coefficients would overflow (or m > 16)
                over_chain_slices(lambda a, b: _diagonal_backward(a_, b_, theta0[a:b], idx[a:b], steps, out[a:b]),
                                  C, m)
        return out
    E = maps.augmented
    x0 = np.concatenate([theta0, np.ones((C, 1))], axis=1)
    s = _word_length(m, D)
    words = _Words(E, s) if s else None
    units = _scan_units(D)
    pairs = C * max(1, min(-(-idx.shape[1] // _SCAN_BLOCK), units // C))  # (chain, block) pairs a step
    workers = share_workers(C, pairs // _SCAN_THREAD_PAIRS)
    units = max(1, units // workers)  # each thread within its share of _SCAN_BUDGET
    tile = units
    if words is not None and not (x0 == x0[0]).all():  # each start holds its words applied (and a GEMM's rows)
        tile = max(1, min(units, _SCAN_BUDGET // workers // (8 * D * len(words.transposed))))

    def run(a, b):
        for t in range(a, b, tile):
            K = min(b, t + tile) - t
            _blocked_scan(E, idx[t:t + K], steps, x0[t:t + K], out[t:t + K], words, units)

    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        over_chain_slices(run, C, m, workers)
    return out


def _scan_units(D: int) -> int:
    """(Chain, block) pairs that :func:`_blocked_scan` holds at once within ``_SCAN_BUDGET``."""
    per_pair = 8 * (D * D * (_SCAN_HELD + 2) + D * _SCAN_BLOCK)
    return max(1, _SCAN_BUDGET // per_pair)


def _word_length(m: int, D: int) -> int:
    """Steps per word of the word scan for ``m`` maps of size ``D`` (0: the row scan instead).

    The longest ``s`` in 8, 4, 2 (dividing ``_SCAN_BLOCK``) with at most
    ``_WORDS`` words (each start holds every word's prefixes applied to it)
    whose products fit in ``_WORD_VALUES``, for ``_WORD_MIN_DIM ≤ D ≤
    _WORD_MAX_DIM`` (outside, the row scan is as fast or faster). Fixed by
    ``m`` and ``D`` alone, so it never depends on the chains, their starts or the steps.
    """
    if not _WORD_MIN_DIM <= D <= _WORD_MAX_DIM:
        return 0
    for s in (8, 4, 2):
        if m ** s <= _WORDS and sum(m ** j for j in range(1, s + 1)) * D * D <= _WORD_VALUES:
            return s
    return 0


class _Words:
    """The products of every word of 1 to ``s`` maps, left to right, transposed: ``(E_{i_1} ⋯ E_{i_j})ᵀ``.

    Words of length ``j`` have codes ``i_1 m^{j−1} + … + i_j`` and sit at
    ``offsets[j] + code`` in ``transposed`` (``Σ_j m^j`` matrices). Each is one
    fixed-shape product per word, so the table is the same whatever uses it.
    """

    def __init__(self, E, s: int):
        m, D, _ = E.shape
        Et = np.swapaxes(E, 1, 2)
        tables = [np.ascontiguousarray(Et)]
        for _ in range(1, s):  # (W E_i)ᵀ = E_iᵀ Wᵀ
            tables.append(np.matmul(Et[None], tables[-1][:, None]).reshape(-1, D, D))
        self.m, self.s, self.D = m, s, D
        self.transposed = np.ascontiguousarray(np.concatenate(tables))
        self.columns = np.ascontiguousarray(np.swapaxes(self.transposed, 0, 1).reshape(D, -1))  # [W_1ᵀ W_2ᵀ …]
        self.offsets = np.concatenate([[0], np.cumsum([m ** j for j in range(1, s + 1)])])

    def codes(self, letters):
        """Table rows of the prefixes of each word of ``s`` letters: ``letters`` (..., s) to (..., s)."""
        codes = np.empty(letters.shape, dtype=np.int64)
        codes[..., 0] = letters[..., 0]
        for j in range(1, self.s):
            np.multiply(codes[..., j - 1], self.m, out=codes[..., j])
            codes[..., j] += letters[..., j]
        codes += self.offsets[:self.s]
        return codes

    def rows(self, tx):
        """For one start, per word of ``s`` maps: its prefixes applied to ``x_0`` (``tx`` rows), then its product.

        ``(m^s, s + D, D)``, by the word's code, so that one gather reads all a word needs.
        """
        m, s = self.m, self.s
        full = np.arange(m ** s)
        table = np.empty((m ** s, s + self.D, self.D))
        for i in range(1, s + 1):
            table[:, i - 1] = tx[self.offsets[i - 1] + full // m ** (s - i)]
        table[:, s:] = self.transposed[self.offsets[s - 1]:]
        return table

    def applied(self, x0):
        """Every word applied to each start, ``(W x_0)ᵀ = x_0ᵀ Wᵀ``: ``x0`` (K, D) to (K, words, D).

        Each start's products are a row of one GEMM (rows padded to a multiple
        of ``_ROW_PAD``), so a start gets the same bits alone or among others.
        """
        X = np.zeros((padded_rows(len(x0)), self.D))
        X[:len(x0)] = x0
        return np.matmul(X, self.columns)[:len(x0)].reshape(len(x0), -1, self.D)


def _word_group(words, tx, shared, block, marks, K, g, n_steps):
    """``v_{b,j} = Q_{b,j} x_0`` (rows of ``Vᵀ``) for the saved ``j`` and ``Q_{b,L}ᵀ``, by words of ``s`` steps.

    ``Q_{b,us+i} x_0 = Q_{b,us} (W_i x_0)`` with ``W_i`` the product of the
    word's first ``i`` maps (applied to ``x_0`` in ``tx``), and
    ``Q_{b,(u+1)s} = Q_{b,us} W_s``, all transposed (``Qᵀ ← W_sᵀ Qᵀ``,
    ``v_jᵀ = (W_i x_0)ᵀ Qᵀ``): one fixed-shape product per (chain, block)
    and word, whatever is saved; the first word of a block (``Q = I``) is
    read from the tables. ``block`` (K·g, L) holds the letters; ``shared``:
    :meth:`_Words.rows` when all chains share ``x_0`` (one gather a word), else ``None``.
    """
    s, D = words.s, words.D
    L = block.shape[1]
    P = K * g
    codes = words.codes(block.reshape(P, L // s, s))
    codes_x = codes + (np.arange(K) * tx.shape[1]).repeat(g)[:, None, None] if len(tx) > 1 else codes
    need = np.zeros(L // s, dtype=bool)
    need[marks // s] = True
    flat = tx.reshape(-1, D)
    d = D - 1
    Vt = (np.empty if need.all() and n_steps == L else np.zeros)((K, g, L, D))
    Vt[..., d] = 1.0  # the last coordinate of every [θ, 1]
    rows = Vt.reshape(P, L // s, s, D)[..., :d]
    G = np.empty((P, s + D, D))  # a word's prefixes applied to x_0 (s rows), then its product (transposed)
    H, spare = np.empty((P, s + D, d)), np.empty((P, s + D, d))  # the last column of every Qᵀ is e_D: not kept
    for u in range(-(-n_steps // s)):
        if shared is not None:
            np.take(shared, codes[:, u, s - 1] - words.offsets[s - 1], axis=0, out=G)
        else:
            np.take(flat, codes_x[:, u], axis=0, out=G[:, :s])
            np.take(words.transposed, codes[:, u, s - 1], axis=0, out=G[:, s:])
        if u == 0:  # Q_{b,0} = I: the first word's rows are the tables' own
            H[...] = G[..., :d]
        else:  # [v_{us+1} … v_{us+s}, Q_{b,(u+1)s}]ᵀ = [T; W_sᵀ] Q_{b,us}ᵀ: one (s + D, D) x (D, d) product
            np.matmul(G, H[:, s:], out=spare)
            H, spare = spare, H
        if need[u]:
            rows[:, u] = H[:, :s]
    ends = np.zeros((P, D, D))
    ends[:, :, :d] = H[:, s:]
    ends[:, d, d] = 1.0
    return Vt, ends.reshape(K, g, D, D)


def _row_group(E, block, marks, x0s, shared, K, g, n_steps):
    """``v_{b,j} = Q_{b,j} x_0`` (rows of ``Vᵀ``) for the saved ``j`` and ``Q_{b,L}ᵀ``, the rows of ``Q`` map by map.

    Each row of ``Q`` is advanced as a row of a GEMM (the row stepper), and
    ``v = Q x_0`` is each row of ``Q`` a row of a GEMM against ``[x_0, 0]``:
    one GEMM over all chains when they share ``x_0``, else one per chain,
    the same bits. ``block`` (K·g, L) holds the letters.
    """
    D = E.shape[1]
    L = block.shape[1]
    block = np.ascontiguousarray(block.T)
    per_row = np.repeat(block, D, axis=1)
    slots = np.full(L, -1)
    slots[marks] = np.arange(marks.size)
    stepper, _ = _stepper(E, K * g, D)
    rows = stepper(E, np.tile(np.eye(D), (K * g, 1)), D)
    Vt = np.zeros((K, g, L, D))
    x0c = np.ascontiguousarray(np.swapaxes(x0s, 1, 2))  # [x_0, 0] as columns
    held_max = min(_SCAN_HELD, max(1, marks.size))
    Q = np.zeros((K, padded_rows(held_max * g * D), D))  # each chain's rows of the held Q_{b,j}
    done = 0
    for j in range(n_steps):
        rows.step(block[j], per_row[j])
        slot = slots[j]
        if slot >= 0 and shared:  # one start: v for every chain and block from one GEMM, the same rows
            v = np.matmul(rows.padded_rows(), x0c[0])[:K * g * D, 0]
            Vt[:, :, j] = v.reshape(K, g, D)
        elif slot >= 0:
            h = slot - done
            Q[:, h * g * D:(h + 1) * g * D] = rows.chain_rows().reshape(K, g * D, D)
            if h + 1 == held_max or slot + 1 == marks.size:  # v_{b,j} = Q_{b,j} x_0: rows of a GEMM per chain
                v = np.matmul(Q[:, :padded_rows((h + 1) * g * D)], x0c)[:, :(h + 1) * g * D, 0]
                Vt[:, :, marks[done:slot + 1]] = np.moveaxis(v.reshape(K, h + 1, g, D), 1, 2)
                done = slot + 1
    return Vt, np.swapaxes(rows.chain_rows().reshape(K, g, D, D), 2, 3)


def _blocked_scan(E, letters, steps, x0, out, words=None, units=None):
    """Backward iterates by blocks of ``L = _SCAN_BLOCK`` steps: ``θ̃_{bL+j} = R_b (Q_{b,j} x_0)``.

    ``Q_{b,j} = E_{ξ_{bL+1}} ⋯ E_{ξ_{bL+j}}`` (left to right) is computed for
    all blocks of all chains side by side: by words of ``s`` steps from a
    table of their products when ``words`` is given (:func:`_word_group`),
    else each block a chain of the row stepper (:func:`_row_group`); the
    carries ``R_{b+1} = R_b Q_{b,L}`` follow, one fixed-shape product per
    chain; then ``R_b [v_{b,1} … v_{b,L}]`` with ``v_{b,j} = Q_{b,j} x_0``
    (one fixed-shape product per chain and block). All are carried
    transposed, so that iterates come out as rows. The blocks (and words)
    start at multiples of ``L`` (and ``s``) whatever the length of the
    sequence, so every iterate depends on its own batches and step number
    only: not on the number of chains, the blocks handled together, the
    steps saved or the steps after it. Blocks are handled a group at a time
    (``units`` (chain, block) pairs at once, default: within ``_SCAN_BUDGET``).
    """
    K, n = letters.shape
    D = x0.shape[1]
    L = _SCAN_BLOCK
    n_blocks = -(-n // L)
    save = _saved(steps, n_blocks * L + 1)
    group = max(1, min(n_blocks, (units or _scan_units(D)) // K))
    group = -(-n_blocks // -(-n_blocks // group)) if n_blocks else 1  # groups of even size
    Rt = np.broadcast_to(np.eye(D)[:, :D - 1], (K, D, D - 1)).copy()  # R_bᵀ without its last column (e_D)
    x0s = np.zeros((K, 2, D))  # [x_0, 0]ᵀ: two rows, so that BLAS runs a GEMM
    x0s[:, 0] = x0
    shared = bool((x0 == x0[0]).all())
    if words is not None:
        tx = words.applied(x0[:1] if shared else x0)
        word_rows = words.rows(tx[0]) if shared else None
    pos = 0
    if save[0]:
        out[:, 0] = x0[:, :D - 1]
        pos = 1
    for g0 in range(0, n_blocks, group):
        g = min(group, n_blocks - g0)
        first, last = g0 * L, min(n, (g0 + g) * L)
        block = np.zeros((K, g * L), dtype=np.int64)  # steps past n repeat map 0: never read
        block[:, :last - first] = letters[:, first:last]
        block = block.reshape(K * g, L)
        marks = np.flatnonzero(save[first + 1:first + g * L + 1].reshape(g, L).any(axis=0))
        n_steps = L if g > 1 else last - first  # a lone last block stops at the last step
        if words is not None:
            Vt, ends = _word_group(words, tx, word_rows, block, marks, K, g, n_steps)
        else:
            Vt, ends = _row_group(E, block, marks, x0s, shared, K, g, n_steps)
        for b in range(g):
            start = first + b * L
            keep = np.flatnonzero(save[start + 1:min(last, start + L) + 1])
            if keep.size:  # one (L, D) x (D, d) product per chain and block
                W = np.matmul(Vt[:, b], Rt)
                out[:, pos:pos + keep.size] = W[:, :keep.size] if keep[-1] + 1 == keep.size else W[:, keep]
                pos += keep.size
            Rt = np.matmul(ends[:, b], Rt)


def low_rank_forward(maps: LowRankAffineMaps, theta0, idx, steps):
    """``θ_k = θ_{k−1} − (s (θ_{k−1} V_i) U_iᵀ − b_i)`` per chain (``O(r d)``), chains sliced over threads.

    Many chains are kept sorted by their current batch (as in
    :class:`_GroupedRows`), in buffers reused at every step; each row gets
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


