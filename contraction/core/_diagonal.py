"""Elementwise engines for diagonal maps (and ``d = 1``): ``T_i(θ) = a_i ⊙ θ + b_i``.

Forward and backward by words of ``s`` steps when ``m ≤ 64`` (the composed
coefficients of every word's prefixes tabled: the carries at the words'
starts first, then every saved entry of a run of words in a few calls,
written into the output in place), else step by step (forward ``θ ← a_ξ ⊙ θ + b_ξ``, the same bits as
the row product; backward cumulative products and sums). Chains go in
tiles and steps in chunks that stay in cache; each chain's values are
elementwise products of its own, so neither changes a result.
"""

from __future__ import annotations

import numpy as np

from ._kernels import _saved, write_swapped

# Values per step (chains x d) and steps per chunk of the step-by-step engines.
_ELEMENTWISE_VALUES = 4096
_ELEMENTWISE_STEPS = 16
# The engines by words: values per buffer of a run of words (chains x words x s x d), most chains per tile,
# words whose codes are computed at once (long reads of each chain's letters); most words of s maps, values per table.
_WORD_VALUES_ELEMENTWISE = 2**18
_WORD_TILE_CHAINS = 1024
_CODE_WORDS = 256
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
    """Codes ``l_1 m^{s−1} + … + l_s`` of the words of ``s`` steps of each chain: ``letters`` (K, n) to (K, ⌈n/s⌉).

    Steps past ``n`` repeat map 0 (their entries are never read).
    """
    K, n = letters.shape
    U, whole = -(-n // s), n // s
    powers = m ** np.arange(s - 1, -1, -1)
    codes = np.empty((K, U), dtype=np.int64)
    np.matmul(letters[:, :whole * s].reshape(K, whole, s), powers, out=codes[:, :whole])
    if whole < U:
        codes[:, whole] = np.matmul(letters[:, whole * s:], powers[:n - whole * s])
    return codes


class _WordRuns:
    """Tiles of chains and runs of words of the engines by words, and each run's saved steps.

    A run's ``K × words × s × d`` values stay within ``_WORD_VALUES_ELEMENTWISE``
    (``K``: chains per tile); tiles and runs are fixed by ``s`` and ``d``
    alone. Holds the buffers of one tile's run: the gathered table entries
    ``Y, Z`` (flat) and the carries at the start of each word.
    """

    def __init__(self, theta0, n: int, s: int, steps, out, n_carries: int):
        C, d = theta0.shape
        U = -(-n // s)
        save = _saved(steps, U * s + 1)
        pos = int(save[0])
        out[:, :pos] = theta0[:, None]
        self.tile = max(1, min(C, _WORD_TILE_CHAINS, _WORD_VALUES_ELEMENTWISE // (s * d)))
        words = max(1, _WORD_VALUES_ELEMENTWISE // (self.tile * s * d))
        self.runs = []
        for u0 in range(0, U, words):
            u1 = min(U, u0 + words)
            keep = np.flatnonzero(save[u0 * s + 1:min(n, u1 * s) + 1])
            self.runs.append((u0, u1, keep, pos))
            pos += keep.size
        self.s, self.words = s, words
        self.Y = np.empty(self.tile * words * s * d)
        self.Z = np.empty_like(self.Y)
        self.held = np.empty((n_carries, words + 1, self.tile, d))

    def blocks(self, idx, m: int):
        """``(a, b, u0, keep, pos, codes)`` tile by tile and run by run: chains ``a:b``, the run's first word, its
        saved steps (offsets from its first step), their first column in the output and the run's word codes (K, words).

        The codes are computed for ``_CODE_WORDS`` words of a tile at once
        (long runs of each chain's letters).
        """
        C = idx.shape[0]
        s = self.s
        per = max(1, _CODE_WORDS // self.words) * self.words
        for a in range(0, C, self.tile):
            b = min(C, a + self.tile)
            codes = None
            for u0, u1, keep, pos in self.runs:
                if u0 % per == 0:
                    codes = _word_codes(idx[a:b, u0 * s:(u0 + per) * s], m, s)
                yield a, b, u0, keep, pos, codes[:, u0 % per:u0 % per + u1 - u0]

    def carries(self, codes, carry, end_a, end_b, backward: bool):
        """The carries at the start of each word of a run, (K, words, d) views each, and the carry after it.

        Forward: ``θ ← A_s ⊙ θ + B_s`` per word; backward ``(P, q)``:
        ``q ← q + P ⊙ B_s``, ``P ← P ⊙ A_s``; ``codes`` (K, words). The
        carries are held word by word, so each update is one contiguous call.
        """
        K, U = codes.shape
        held = self.held[:len(carry), :U + 1, :K]
        ea = np.take(end_a, codes.T, axis=0, mode="clip")
        eb = np.take(end_b, codes.T, axis=0, mode="clip")
        for h, c in zip(held, carry, strict=True):
            h[0] = c
        for u in range(U):
            if backward:
                P, q = held
                np.multiply(P[u], eb[u], out=eb[u])
                np.add(q[u], eb[u], out=q[u + 1])
                np.multiply(P[u], ea[u], out=P[u + 1])
            else:
                np.multiply(ea[u], held[0][u], out=held[0][u + 1])
                np.add(held[0][u + 1], eb[u], out=held[0][u + 1])
        return [np.swapaxes(h[:U], 0, 1) for h in held], [h[U].copy() for h in held]

    def pieces(self, codes, keep, held, out):
        """How a run's saved entries, their words' carries and the output columns line up, piece by piece.

        Returns ``[(gather, carries, dest)]`` of one shape each:
        ``gather(table, buf)`` gathers the entries of ``table`` (m^s, s, d)
        into ``buf`` (flat, contiguous), ``carries`` the carries broadcast
        over each word's entries, ``dest`` the output columns (``out``: K,
        saved, d). When the saved steps are the run's first ones, whole
        words come in one gather (K, words, s, d), then the last word's
        first entries; otherwise each saved entry on its own (K, saved, d).
        """
        s, J = self.s, keep.size
        K, d = out.shape[0], out.shape[2]
        if keep[-1] + 1 != J:
            flat = np.take(codes, keep // s, axis=1) * s + keep % s
            return [(lambda table, buf: np.take(table.reshape(-1, d), flat, axis=0, mode="clip",
                                                out=buf[:K * J * d].reshape(K, J, d)),
                     [np.take(h, keep // s, axis=1) for h in held], out)]
        W, r = divmod(J, s)
        pieces = []
        if W:
            pieces.append((lambda table, buf: np.take(table, codes[:, :W], axis=0, mode="clip",
                                                      out=buf[:K * W * s * d].reshape(K, W, s, d)),
                           [h[:, :W, None] for h in held], out[:, :W * s].reshape(K, W, s, d)))
        if r:
            pieces.append((lambda table, buf: np.take(table, codes[:, W], axis=0, mode="clip",
                                                      out=buf[:K * s * d].reshape(K, s, d))[:, :r],
                           [h[:, W, None] for h in held], out[:, W * s:]))
        return pieces


def _diagonal_forward_words(A, B, m, theta0, idx, steps, out):
    """``θ_{us+i} = A_i ⊙ θ_{us} + B_i`` with ``(A_i, B_i)`` the word's first ``i`` maps composed, by words of ``s``.

    ``A, B``: :func:`_diagonal_words` for ``m`` maps (all finite). The words
    start at multiples of ``s`` (fixed by ``m`` and ``d``). In each run of
    words the carries ``θ_{us}`` come first (``θ_{(u+1)s} = A_s ⊙ θ_{us} +
    B_s``, the entry ``i = s`` itself), then every saved entry in a few
    calls over the whole run, the last writing into the output. Each chain's values
    are elementwise products of its own, so tiles and runs never change a result.
    """
    n = idx.shape[1]
    s = A.shape[1]
    A_end, B_end = np.ascontiguousarray(A[:, s - 1]), np.ascontiguousarray(B[:, s - 1])
    plan = _WordRuns(theta0, n, s, steps, out, 1)
    theta = None
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        for a, b, u0, keep, pos, codes in plan.blocks(idx, m):
            if u0 == 0:
                theta = theta0[a:b]
            held, (theta,) = plan.carries(codes, [theta], A_end, B_end, backward=False)
            if not keep.size:
                continue
            for gather, (h,), dest in plan.pieces(codes, keep, held, out[a:b, pos:pos + keep.size]):
                Y = gather(A, plan.Y)
                np.multiply(Y, h, out=Y)
                np.add(Y, gather(B, plan.Z), out=dest)


def _diagonal_backward_words(A, B, m, theta0, idx, steps, out):
    """``θ̃_{us+i} = P_{us} ⊙ (A_i ⊙ θ_0 + B_i) + q_{us}``, ``(A_i, B_i)`` the word's first ``i`` maps composed backward.

    ``P_{(u+1)s} = P_{us} ⊙ A_s``, ``q_{(u+1)s} = q_{us} + P_{us} ⊙ B_s``;
    ``A, B``: :func:`_diagonal_words` (backward, all finite) for ``m`` maps.
    The words start at multiples of ``s`` (fixed by ``m`` and ``d``); in each
    run of words the carries come first, then every saved entry in a few
    calls over the whole run. With one start for all chains,
    ``A_i ⊙ θ_0 + B_i`` is tabled once (the same elementwise operations, so
    the same bits as per chain).
    """
    C, n = idx.shape
    d, s = A.shape[2], A.shape[1]
    shared = bool((theta0 == theta0[0]).all()) if C else True
    start = np.multiply(A, theta0[0]) + B if shared and C else None  # every word's prefixes applied to θ_0
    A_end, B_end = np.ascontiguousarray(A[:, s - 1]), np.ascontiguousarray(B[:, s - 1])
    plan = _WordRuns(theta0, n, s, steps, out, 2)
    carry = None
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        for a, b, u0, keep, pos, codes in plan.blocks(idx, m):
            if u0 == 0:
                carry = [np.ones((b - a, d)), np.zeros((b - a, d))]
            held, carry = plan.carries(codes, carry, A_end, B_end, backward=True)
            if not keep.size:
                continue
            for gather, (P, q), dest in plan.pieces(codes, keep, held, out[a:b, pos:pos + keep.size]):
                if start is not None:
                    Y = gather(start, plan.Y)
                else:
                    Y = gather(A, plan.Y)
                    np.multiply(Y, theta0[a:b].reshape((b - a,) + (1,) * (Y.ndim - 2) + (d,)), out=Y)
                    np.add(Y, gather(B, plan.Z), out=Y)
                np.multiply(Y, P, out=Y)
                np.add(Y, q, out=dest)


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
