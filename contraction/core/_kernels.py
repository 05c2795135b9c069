"""Per-chain matrix products: chain c's result never depends on the other chains.

Two kinds of product, each with a result fixed by the chain's own values:

* a row times a matrix (the forward step, a backward product's rows): one
  row of a 2-D GEMM (:class:`RowGemm`) whose number of rows is a multiple of
  16. BLAS sums every row of such a GEMM the same way, whatever the other
  rows, their number and the row's place, and whatever other columns sit
  beside its matrix (checked in ``tests/test_determinism.py``); a single row
  goes to a matrix-vector kernel that sums in another order, so it is never
  used. One GEMM over all the chains of a step, against all maps side by
  side or one per map, is then the same, bit for bit, as one chain alone;
* a small matrix times a matrix (:func:`chain_matmul` with ``r > 1``): one
  BLAS call per chain on its own ``(r, p) × (p, k)`` product, with
  C-contiguous operands of the same layout on every path.

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
import weakref

import numpy as np

__all__ = ["RowGemm", "chain_matmul", "over_chain_slices", "padded_groups", "padded_rows", "row_products",
           "single_thread_blas", "work_workers"]

# Every row product is a row of a 2-D GEMM whose number of rows is a multiple of this (and never one row).
_ROW_PAD = 16
# Rows of one GEMM against all stacked maps: at most this many values in its (rows, m k) result.
_ALL_MAPS_VALUES = 2**22
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

    One row (``r == 1``): each chain's product is a row of a 2-D GEMM
    (:class:`RowGemm`). Otherwise one BLAS call per chain on its own
    ``(r, p) × (p, k)`` product. With many
    chains per batch, ``r < k`` and more than 1 MiB of matrices to gather,
    chains are sorted by batch and each group is one stacked call with the
    batch's matrix broadcast; otherwise the matrices are gathered. Both give
    the same bits. Returns a new C-contiguous array (C, r, k).
    """
    X = _contiguous(np.asarray(X, dtype=np.float64))
    mats = _contiguous(np.asarray(mats, dtype=np.float64))
    index = np.asarray(index, dtype=np.int64)
    C, r, p = X.shape
    if r == 1:
        return row_products(X[:, 0], mats, index)[:, None]
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


def padded_rows(n: int) -> int:
    """The smallest multiple of ``_ROW_PAD`` (at least ``_ROW_PAD``) that holds ``n`` rows."""
    return max(_ROW_PAD, -(-n // _ROW_PAD) * _ROW_PAD)


def padded_groups(index: np.ndarray, m: int, r: int = 1):
    """Chains grouped by map, each group's ``r`` rows per chain padded to a multiple of ``_ROW_PAD``.

    Returns ``(starts, place)``: the rows of map ``i``'s group are
    ``starts[i]:starts[i + 1]`` (``m + 1`` bounds), and chain ``c``'s first
    row is ``place[c]`` (chains keep their order within a group).
    """
    order, bounds = _sort_by_batch(index, m)
    starts = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(-(-np.diff(bounds) * r // _ROW_PAD) * _ROW_PAD, out=starts[1:])
    ranked = index[order]
    place = np.empty(len(index), dtype=np.int64)
    place[order] = starts[ranked] + (np.arange(len(index)) - bounds[ranked]) * r
    return starts, place


def _row_product_kind(rows: int, m: int, p: int, k: int) -> str:
    """How :class:`RowGemm` computes ``rows`` row products against ``m`` maps (p, k): the cheapest estimate.

    ``"all"``: one GEMM against all maps side by side (``m`` times the
    flops); ``"grouped"``: one GEMM per map present, rows grouped and padded
    (a call per map); ``"pairs"``: each row, doubled, against its own gathered
    matrix (a call per row). All three give the same bits.
    """
    if m == 1:
        return "all"
    cost = _row_product_costs(rows, m, p, k)
    if rows * p * k <= _GATHER_MAX_VALUES:
        cost["pairs"] = 5e-6 + rows * (2e-7 + 4.0 * p * k / 1.5e10)
    return min(cost, key=cost.get)


def _row_product_costs(rows: int, m: int, p: int, k: int) -> dict:
    """Estimated seconds of one call against all maps side by side and grouped by map (from timings here)."""
    return {
        "all": 5e-6 + rows * m * k * (2.0 * p / 1.5e10 + 8 / 2e10) if rows * m * k <= _ALL_MAPS_VALUES else np.inf,
        "grouped": 1e-5 + min(m, rows) * 2.5e-6 + rows * (5e-9 + 2.0 * p * k / 1.5e10 + (p + k) * 8 / 2e9),
    }


def _concat_is_cheaper(rows: int, m: int, p: int, k: int) -> bool:
    """Whether the engines' row steppers go against all maps side by side rather than grouped by map."""
    if m == 1:
        return True
    cost = _row_product_costs(rows, m, p, k)
    return cost["all"] <= cost["grouped"]


class RowGemm:
    """Row products ``Y[c] = X[c] @ mats[index[c]]`` for ``rows`` rows, each one row of a 2-D GEMM.

    Every product is computed as one row of a two-dimensional GEMM, never a
    single-row one (BLAS hands one row to a matrix-vector kernel that sums in
    another order): against all maps side by side (``[M_0 | … | M_{m−1}]``,
    then the row's block is read) or against ``mats[i]`` with the rows of a
    map grouped and padded to a multiple of ``_ROW_PAD``, or, for few rows
    and many maps, the row doubled against its own matrix. A row of a GEMM is summed the
    same way whatever the other rows and columns, the number of rows and
    where it sits (``tests/test_determinism.py`` checks it), so a row's
    result depends on its own values only: not on the number of chains,
    their order or grouping. ``k == 1`` (one output column, where BLAS uses a
    matrix-vector kernel too) is summed elementwise, term by term in order.
    An instance holds no scratch space, so threads may share it.

    Parameters
    ----------
    mats : ndarray, shape (m, p, k)
        The matrices.
    rows : int
        Rows per call, a multiple of ``_ROW_PAD`` (see :func:`padded_rows`).
    """

    def __init__(self, mats: np.ndarray, rows: int):
        self.mats = _contiguous(np.asarray(mats, dtype=np.float64))
        m, p, k = self.mats.shape
        self.rows = rows
        self.kind = "sum" if k == 1 else _row_product_kind(rows, m, p, k)
        if self.kind == "all":
            self.cat = np.ascontiguousarray(np.swapaxes(self.mats, 0, 1).reshape(p, m * k))
            self.base = np.arange(rows) * m

    def __call__(self, X: np.ndarray, index: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Write ``X[c] @ mats[index[c]]`` into ``out[c]``; ``X`` (rows, p) and ``out`` (rows, k) C-contiguous."""
        m, p, k = self.mats.shape
        if self.kind == "sum":
            col = self.mats[:, :, 0]
            np.multiply(X[:, 0], col[index, 0], out=out[:, 0])
            for j in range(1, p):
                out[:, 0] += X[:, j] * col[index, j]
            return out
        if self.kind == "all":
            Y = np.matmul(X, self.cat)
            np.take(Y.reshape(-1, k), self.base + index, axis=0, out=out, mode="clip")  # in range: not buffered
            return out
        if self.kind == "pairs":  # two rows per call: BLAS gives a single row to another kernel
            doubled = np.empty((len(X), 2, p))
            doubled[:, 0] = doubled[:, 1] = X
            out[:] = np.matmul(doubled, np.take(self.mats, index, axis=0))[:, 0]
            return out
        starts, dest = padded_groups(index, m)
        source = np.zeros(starts[-1], dtype=np.int64)  # padding repeats row 0: its products are never read
        source[dest] = np.arange(self.rows)
        Xs, Ys = np.take(X, source, axis=0), np.empty((starts[-1], k))
        for i in np.flatnonzero(np.diff(starts)):
            s, e = starts[i], starts[i + 1]
            np.matmul(Xs[s:e], self.mats[i], out=Ys[s:e])
        np.take(Ys, dest, axis=0, out=out, mode="clip")  # in range: not buffered
        return out


def row_products(X: np.ndarray, mats: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``X[c] @ mats[index[c]]`` for rows ``X`` (K, p), one call of :class:`RowGemm` (rows padded); (K, k)."""
    K, p = X.shape
    rows = padded_rows(K)
    Xp = np.zeros((rows, p))
    Xp[:K] = X
    ind = np.zeros(rows, dtype=np.int64)
    ind[:K] = index
    out = np.empty((rows, mats.shape[2]))
    return _row_gemm(mats, rows)(Xp, ind, out)[:K]


_ROW_GEMMS: dict = {}


def reused_for(array: np.ndarray, size, build, cache: dict, limit: int = 64):
    """``build(array, size)``, reused from ``cache`` while ``array`` lives and is read-only.

    What is built from a read-only array (a family's maps) stays valid as long
    as the array lives; a writeable one gets a fresh build every time. The
    cache holds at most ``limit`` entries (cleared beyond).
    """
    if array.flags.writeable:
        return build(array, size)
    key = (id(array), size)
    hit = cache.get(key)
    if hit is not None and hit[0]() is array:
        return hit[1]
    if len(cache) >= limit:
        cache.clear()
    made = build(array, size)
    cache[key] = (weakref.ref(array), made)
    return made


def _row_gemm(mats: np.ndarray, rows: int) -> RowGemm:
    """A :class:`RowGemm` for ``mats`` and ``rows``, reused while ``mats`` lives and is read-only.

    Repeated calls on the same read-only family (an engine's step, a
    population's moments) then skip building the maps side by side.
    """
    return reused_for(mats, rows, RowGemm, _ROW_GEMMS)


def _workers(n_chains: int, m: int) -> int:
    """Threads for an engine: one per core, each with enough chains (and chains per batch)."""
    cores = os.cpu_count() or 1
    if n_chains < _THREAD_MIN_CHAINS:
        return 1
    return max(1, min(cores, n_chains // (_THREAD_MIN_CHAINS // 2), n_chains // (_GROUP_MIN_CHAINS_PER_BATCH * m)))


def work_workers(n_chains: int, work_per_chain: int) -> int:
    """Threads for chains that each cost ``work_per_chain`` flops a step: one per core, each with enough work."""
    return share_workers(n_chains, n_chains * work_per_chain // _THREAD_MIN_WORK)


def share_workers(n_chains: int, shares: int) -> int:
    """Threads for ``n_chains`` chains whose work holds ``shares`` threads busy: at most one per core and chain."""
    return max(1, min(os.cpu_count() or 1, n_chains, shares))


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
