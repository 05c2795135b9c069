"""Row steppers: rows of many chains advanced by row products, each a row of a GEMM.

Used by the forward engine (``[θ, 1] @ M_ξ``) and by the backward row scan
(the rows of ``P_n = P_{n−1} E_{ξ_n}``): against all maps side by side
(one GEMM and a gather a step) or grouped by map (one GEMM per map a step).
Both give the same bits (:mod:`contraction.core._kernels`).
"""

from __future__ import annotations

import numpy as np

from ._kernels import _ROW_PAD, _concat_is_cheaper, padded_groups, padded_rows

# Values held by one tile of a row-product engine (its products against all maps) or one chunk of steps.
_TILE_VALUES = 2**17


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
        self.Y = np.zeros((cap, p))  # the products in the first k columns, the constant columns after them
        self.Y[:, k:] = 1.0
        self.Y[:len(start), :k] = start
        self.offsets = np.arange(r)
        self.where = np.arange(self.K) * r

    def _rows(self, first):
        return (first[:, None] + self.offsets).ravel() if self.r > 1 else first

    def step(self, letters, row_letters=None):
        """Advance one step: chain ``c`` by ``M[letters[c]]`` (``row_letters`` is not needed here)."""
        starts, new = padded_groups(letters, self.m, self.r)
        source = np.zeros(starts[-1], dtype=np.int64)  # padding repeats row 0: its products are never read
        source[self._rows(new)] = self._rows(self.where)
        np.take(self.Y, source, axis=0, out=self.X[:starts[-1]], mode="clip")  # whole rows, in range: not buffered
        for i in np.flatnonzero(np.diff(starts)):
            np.matmul(self.X[starts[i]:starts[i + 1]], self.M[i], out=self.Y[starts[i]:starts[i + 1], :self.k])
        self.where = new
        return self

    def chain_rows(self):
        return np.take(self.Y[:, :self.k], self._rows(self.where), axis=0)

    def padded_rows(self):
        """The rows in chain order, padded to a multiple of ``_ROW_PAD`` (the padding repeats row 0)."""
        rows = self._rows(self.where)
        return np.take(self.Y[:, :self.k], np.pad(rows, (0, padded_rows(len(rows)) - len(rows))), axis=0)
