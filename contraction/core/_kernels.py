"""Batched matrix kernels shared by the iteration engines and the theory layer."""

from __future__ import annotations

import numpy as np

# Group chains by batch (one GEMM per batch) when there are this many chains per batch.
_GROUP_MIN_CHAINS_PER_BATCH = 16


def _sort_by_batch(index: np.ndarray, m: int):
    """Stable order of chains by batch and the group boundaries (length m + 1)."""
    small = index.astype(np.int16) if m < 2**15 else index
    order = np.argsort(small, kind="stable")
    bounds = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(np.bincount(index, minlength=m), out=bounds[1:])
    return order, bounds


def _use_groups(n_chains: int, m: int) -> bool:
    return n_chains >= _GROUP_MIN_CHAINS_PER_BATCH * m


def _grouped_matmul(X: np.ndarray, mats: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``Y[c] = X[c] @ mats[index[c]]`` for ``X`` (C, r, d), ``mats`` (m, d, k).

    With many chains per batch, chains are grouped by batch and each group is
    one GEMM of shape (n_group·r, d) × (d, k); otherwise a gathered batched
    product.
    """
    C, r, d = X.shape
    m, _, k = mats.shape
    if not _use_groups(C, m):
        return X @ mats[index]
    order, bounds = _sort_by_batch(index, m)
    Xs = np.take(X, order, axis=0, mode="clip")
    Ys = np.empty((C, r, k))
    for i in np.flatnonzero(np.diff(bounds)):  # one GEMM per batch, over all its chains
        s, e = bounds[i], bounds[i + 1]
        np.matmul(Xs[s:e].reshape(-1, d), mats[i], out=Ys[s:e].reshape(-1, k))
    Y = np.empty_like(Ys)
    Y[order] = Ys
    return Y
