"""Elementwise engines for diagonal maps (and ``d = 1``): ``T_i(θ) = a_i ⊙ θ + b_i``.

Forward and backward by words of ``s`` steps when ``m ≤ 64`` (the composed
coefficients of every word's prefixes tabled: one gather and one product
a word), else step by step (forward ``θ ← a_ξ ⊙ θ + b_ξ``, the same bits as
the row product; backward cumulative products and sums). Chains go in
tiles and steps in chunks that stay in cache; each chain's values are
elementwise products of its own, so neither changes a result.
"""

from __future__ import annotations

import numpy as np

from ._kernels import _saved, write_rows, write_swapped

# Values per step (chains x d) and steps per chunk of the step-by-step engines.
_ELEMENTWISE_VALUES = 4096
_ELEMENTWISE_STEPS = 16
# Values per array (chains x s x d) of the engines by words; most words of s maps, and values per table.
_WORD_VALUES_ELEMENTWISE = 32768
_DIAGONAL_WORDS = 4096
_DIAGONAL_TABLE_VALUES = 2**19


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


def _diagonal_word_length(m: int, d: int) -> int:
    """Steps per word of the elementwise engines (1: step by step), fixed by ``m`` and ``d`` alone.

    The longest ``s ≤ 16`` with at most ``_DIAGONAL_WORDS`` words whose
    tables (``m^s s d`` values each) stay within ``_DIAGONAL_TABLE_VALUES``.
    """
    fits = [s for s in range(2, 17) if m ** s <= _DIAGONAL_WORDS and m ** s * s * d <= _DIAGONAL_TABLE_VALUES]
    return max(fits, default=1)


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


def _word_plan(theta0, n: int, s: int, steps, out):
    """The words of a run of ``n`` steps: how many, each one's saved steps, the next column and the tile.

    Returns the number of words, each word's saved steps (offsets within
    it), the output's next column and chains per tile; writes ``θ_0`` into
    the output when step 0 is saved.
    """
    U = -(-n // s)
    save = _saved(steps, U * s + 1)
    keeps = [np.flatnonzero(save[u * s + 1:min(n, u * s + s) + 1]) for u in range(U)]
    pos0 = int(save[0])
    out[:, :pos0] = theta0[:, None]
    return U, keeps, pos0, max(1, _WORD_VALUES_ELEMENTWISE // (s * theta0.shape[1]))


def _write_word(out, pos: int, Y, keep) -> int:
    """Write a word's saved steps ``Y[:, keep]`` (K, s, d) into ``out[:, pos:]``; returns the next column."""
    write_rows(out[:, pos:pos + keep.size], Y[:, :keep.size] if keep[-1] + 1 == keep.size else Y[:, keep])
    return pos + keep.size


def _diagonal_forward_words(A, B, m, theta0, idx, steps, out):
    """``θ_{us+i} = A_i ⊙ θ_{us} + B_i`` with ``(A_i, B_i)`` the word's first ``i`` maps composed, by words of ``s``.

    ``A, B``: :func:`_diagonal_words` for ``m`` maps (all finite). The words start at
    multiples of ``s`` (fixed by ``m`` and ``d``); a sub-step with no saved step only
    advances the carry (``i = s``). Each chain's values
    are elementwise products of its own, so tiles never change a result.
    """
    C, n = idx.shape
    d, s = A.shape[2], A.shape[1]
    U, keeps, pos0, tile = _word_plan(theta0, n, s, steps, out)
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
                pos = _write_word(out[a:b], pos, Y, keep)
                theta = Y[:, s - 1].copy()


def _diagonal_backward_words(A, B, m, theta0, idx, steps, out):
    """``θ̃_{us+i} = P_{us} ⊙ (A_i ⊙ θ_0 + B_i) + q_{us}``, ``(A_i, B_i)`` the word's first ``i`` maps composed backward.

    ``P_{(u+1)s} = P_{us} ⊙ A_s``, ``q_{(u+1)s} = q_{us} + P_{us} ⊙ B_s``;
    ``A, B``: :func:`_diagonal_words` (backward, all finite) for ``m`` maps.
    The words start at multiples of ``s`` (fixed by ``m`` and ``d``). With one start
    for all chains, ``A_i ⊙ θ_0 + B_i`` is tabled once (the same
    elementwise operations, so the same bits as per chain).
    """
    C, n = idx.shape
    d, s = A.shape[2], A.shape[1]
    U, keeps, pos0, tile = _word_plan(theta0, n, s, steps, out)
    shared = bool((theta0 == theta0[0]).all()) if C else True
    start = np.multiply(A, theta0[0]) + B if shared and C else None  # every word's prefixes applied to θ_0
    A_end, B_end = np.ascontiguousarray(A[:, s - 1]), np.ascontiguousarray(B[:, s - 1])
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
                    pos = _write_word(out[a:b], pos, Y, keep)
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


def diagonal_engine(a_, b_, backward: bool = False):
    """The elementwise engine for the maps ``a_ ⊙ θ + b_`` (m, d): ``engine(theta0, idx, steps, out)``.

    By words of ``s`` steps (:func:`_diagonal_forward_words`,
    :func:`_diagonal_backward_words`) when :func:`_diagonal_word_length`
    gives ``s > 1`` and the composed coefficients are finite; otherwise one
    map at a time (:func:`_diagonal_forward`, :func:`_diagonal_backward`).
    The choice depends on the maps alone, never on the chains.
    """
    m, d = a_.shape
    s = _diagonal_word_length(m, d)
    if s > 1:
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            A, B = _diagonal_words(a_, b_, s, backward=backward)
        if np.isfinite(A).all() and np.isfinite(B).all():
            by_words = _diagonal_backward_words if backward else _diagonal_forward_words
            return lambda theta0, idx, steps, out: by_words(A, B, m, theta0, idx, steps, out)
    by_steps = _diagonal_backward if backward else _diagonal_forward
    return lambda theta0, idx, steps, out: by_steps(a_, b_, theta0, idx, steps, out)
