"""The backward scan of dense affine maps: ``[θ̃_n; 1] = P_n x_0``, ``P_n = P_{n−1} E_{ξ_n}``.

Blocks of ``_SCAN_BLOCK`` steps advance side by side, then are joined
(:func:`_blocked_scan`); within a block, by words of ``s`` steps whose
products are tabled (:class:`_Words`, :func:`_word_group`) or by row
products (:func:`_row_group`). Blocks and words start at fixed multiples,
so an iterate depends on its own batches and step number only.
"""

from __future__ import annotations

import numpy as np

from ._kernels import _saved, padded_rows, reused_for
from ._rows import _stepper

# Working memory of the backward scan (bytes): the chains and blocks handled together hold their
# products within it. The budget changes the tiles and groups of blocks, never a result.
_SCAN_BUDGET = 1 << 24
# Steps per block of the backward scan (the blocks start at multiples of it, whatever else is computed),
# and saved products held before they are read out.
_SCAN_BLOCK = 64
# Values of the iterates of the blocks computed by one call (chains x blocks x steps x (d + 1)).
_SCAN_OUT_VALUES = 2**16
_SCAN_HELD = 4
# Word scan: at most this many words of s maps, their products within this many values, maps of size between these.
_WORDS = 256
_WORD_VALUES = 2**21
_WORD_MIN_DIM, _WORD_MAX_DIM = 5, 65


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
        for table in (self.transposed, self.columns, self.offsets):  # shared between calls (word_tables)
            table.setflags(write=False)

    def codes(self, letters):
        """Table rows of the prefixes of each word of ``s`` letters: ``letters`` (..., s) to (..., s).

        A prefix's code is the word's code with its last letters dropped: ``code // m^{s−j}``.
        """
        powers = self.m ** np.arange(self.s - 1, -1, -1)
        codes = np.matmul(letters, powers)[..., None] // powers
        return codes + self.offsets[:self.s]

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


_WORD_TABLES: dict = {}


def word_tables(E, s: int) -> _Words:
    """:class:`_Words` for ``E`` and ``s``, reused while ``E`` lives and is read-only (a family's ``augmented``).

    Repeated calls on one family (one chain, many calls) then skip building
    the ``Σ_j m^j`` products; the table is the same whichever call built it.
    """
    return reused_for(E, s, _Words, _WORD_TABLES, limit=16)


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
    (one fixed-shape product per chain and block, the blocks of
    ``_SCAN_OUT_VALUES`` in one batched call). All are carried
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
        keep = np.flatnonzero(save[first + 1:last + 1])  # the group's saved steps (offsets from `first`)
        per = max(1, _SCAN_OUT_VALUES // (K * L * D))  # blocks whose iterates come from one call
        for c0 in range(0, g, per):
            c1 = min(g, c0 + per)
            lo, hi = np.searchsorted(keep, [c0 * L, c1 * L])
            sel = keep[lo:hi] - c0 * L
            holds = np.bincount(sel // L, minlength=c1 - c0) > 0  # the blocks holding saved steps
            carries = []  # R_bᵀ of those blocks
            for b, has in enumerate(holds.tolist(), start=c0):
                if has:
                    carries.append(Rt)
                Rt = np.matmul(ends[:, b], Rt)  # a new array: the carries kept are not overwritten
            if sel.size:  # one (L, D) x (D, d) product per chain and block, the blocks in one call
                held = np.flatnonzero(holds)
                W = np.matmul(Vt[:, c0:c1] if held.size == c1 - c0 else Vt[:, c0 + held], np.stack(carries, axis=1))
                W = W.reshape(K, held.size * L, D - 1)
                cols = np.searchsorted(held, sel // L) * L + sel % L
                out[:, pos:pos + sel.size] = W[:, :sel.size] if cols[-1] + 1 == sel.size else W[:, cols]
                pos += sel.size


def _word_tile(words, D: int, units: int, workers: int) -> int:
    """Chains per tile when the starts differ: each holds its words applied (``Σ_j m^j`` rows of ``D``)."""
    return max(1, min(units, _SCAN_BUDGET // workers // (8 * D * len(words.transposed))))
