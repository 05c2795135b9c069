"""Per-chain matrix products: chain c's result never depends on the other chains.

Every product here is evaluated chain by chain with numpy's stacked
``matmul``, which makes one BLAS call per chain on that chain's own
``(r, p) × (p, k)`` product, with C-contiguous operands of the same layout
on every path. The floating-point operations that produce chain ``c`` are
then fixed by the shapes alone: they do not change with the number of
chains, their order, how they are grouped by batch, split into tiles or
threads, or which steps are saved. One 2-D GEMM over all the chains of a
batch is never used: BLAS may sum a row differently depending on the number
of rows (register blocking, a separate kernel for a single row).

BLAS may also split one large product over threads and sum it in another
order; :func:`single_thread_blas` pins it to one thread while an engine
runs, and parallelism comes from slices of chains instead
(:func:`over_chain_slices`).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os

import numpy as np

__all__ = ["chain_matmul", "over_chain_slices", "single_thread_blas", "work_workers"]

# Group chains by batch (one stacked call per batch, the batch's matrix broadcast) from this many chains per batch.
_GROUP_MIN_CHAINS_PER_BATCH = 16
# Gather the chains' matrices when they hold at most this many values (1 MiB); sort by batch beyond.
_GATHER_MAX_VALUES = 2**17
# Split the chains over threads from this many chains on.
_THREAD_MIN_CHAINS = 2048
# Or, for chains whose cost per step is known, from this many flops per step per thread.
_THREAD_MIN_WORK = 1 << 22


def _sort_by_batch(index: np.ndarray, m: int):
    """Stable order of chains by batch and the group boundaries (length m + 1)."""
    small = index.astype(np.int16) if m < 2**15 else index
    order = np.argsort(small, kind="stable")
    bounds = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(np.bincount(index, minlength=m), out=bounds[1:])
    return order, bounds


def _use_groups(n_chains: int, m: int) -> bool:
    return n_chains >= _GROUP_MIN_CHAINS_PER_BATCH * m


@functools.cache
def _blas_controller():
    from threadpoolctl import ThreadpoolController  # a light dependency, read once

    return ThreadpoolController()


@contextlib.contextmanager
def single_thread_blas():
    """Run the block with BLAS on one thread (a product's summation order then never depends on threads)."""
    with _blas_controller().limit(limits=1, user_api="blas"):
        yield


def _contiguous(a: np.ndarray) -> np.ndarray:
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def chain_matmul(X: np.ndarray, mats: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``Y[c] = X[c] @ mats[index[c]]`` for ``X`` (C, r, p), ``mats`` (m, p, k), ``index`` (C,).

    One BLAS call per chain on its own ``(r, p) × (p, k)`` product. With many
    chains per batch, ``r < k`` and more than 1 MiB of matrices to gather,
    chains are sorted by batch and each group is one stacked call with the
    batch's matrix broadcast; otherwise the matrices are gathered. Both give
    the same bits. Returns a new C-contiguous array (C, r, k).
    """
    X = _contiguous(np.asarray(X, dtype=np.float64))
    mats = _contiguous(np.asarray(mats, dtype=np.float64))
    index = np.asarray(index, dtype=np.int64)
    C, r, p = X.shape
    m, _, k = mats.shape
    Y = np.empty((C, r, k))
    if not (_use_groups(C, m) and r < k and C * p * k > _GATHER_MAX_VALUES):
        np.matmul(X, np.take(mats, index, axis=0), out=Y)
        return Y
    order, bounds = _sort_by_batch(index, m)
    Xs = np.take(X, order, axis=0)
    Ys = np.empty_like(Y)
    for i in np.flatnonzero(np.diff(bounds)):  # one stacked call per batch, over all its chains
        s, e = bounds[i], bounds[i + 1]
        np.matmul(Xs[s:e], mats[i], out=Ys[s:e])
    Y[order] = Ys
    return Y


def _workers(n_chains: int, m: int) -> int:
    """Threads for an engine: one per core, each with enough chains (and chains per batch)."""
    cores = os.cpu_count() or 1
    if n_chains < _THREAD_MIN_CHAINS:
        return 1
    return max(1, min(cores, n_chains // (_THREAD_MIN_CHAINS // 2), n_chains // (_GROUP_MIN_CHAINS_PER_BATCH * m)))


def work_workers(n_chains: int, work_per_chain: int) -> int:
    """Threads for chains that each cost ``work_per_chain`` flops a step: one per core, each with enough work."""
    cores = os.cpu_count() or 1
    return max(1, min(cores, n_chains, n_chains * work_per_chain // _THREAD_MIN_WORK))


def over_chain_slices(run, n_chains: int, m: int, workers: int | None = None) -> None:
    """Call ``run(a, b)`` on contiguous slices of chains, in threads when there are many chains.

    Numpy releases the GIL inside its loops, so slices of independent chains
    run in parallel; every product is per chain, so the slicing never
    changes a result. The caller holds :func:`single_thread_blas`.
    ``workers`` overrides the number of threads (default: from the number of
    chains and batches).
    """
    workers = _workers(n_chains, m) if workers is None else workers
    if workers == 1:
        run(0, n_chains)
        return
    from concurrent.futures import ThreadPoolExecutor

    cuts = np.linspace(0, n_chains, workers + 1).astype(int)
    with ThreadPoolExecutor(workers) as pool:
        jobs = [pool.submit(run, a, b) for a, b in itertools.pairwise(cuts)]
        for job in jobs:
            job.result()

