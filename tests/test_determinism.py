"""Chain i is the same, bit for bit, whatever else is computed beside it.

Whatever the number of chains (including the grouped path, ``n_chains >= 16 m``,
and the threaded one), the memory budget of the backward engine (chains per
tile, steps per block) and the steps saved, every iterate of chain ``i`` is
``np.array_equal`` to the one computed for chain ``i`` alone with every step
saved. The engines evaluate each chain's products with a per-chain product of
fixed shape (see ``contraction/core/_kernels.py``).
"""

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import affine_maps, floats

import contraction as ct
import contraction.core._engines as engines
import contraction.core._kernels as kernels
import contraction.core._scan as scan

ENGINES = [ct.forward_iterates, ct.backward_iterates]
APPROXIMATIONS = [ct.windowed_backward_iterates, ct.sliding_backward_iterates]


@st.composite
def family_and_chains(draw, min_chains=1, max_chains=24, max_steps=40):
    """Maps, one start per chain and batch sequences; ``many=True`` asks for ``n_chains >= 16 m``."""
    maps = draw(affine_maps(max_dim=3, max_maps=3))
    m = maps.n_maps
    n_chains = draw(st.integers(min_chains(m) if callable(min_chains) else min_chains,
                                max_chains(m) if callable(max_chains) else max_chains))
    n = draw(st.integers(0, max_steps))
    idx = draw(hnp.arrays(np.int64, (n_chains, n), elements=st.integers(0, m - 1)))
    theta0 = draw(hnp.arrays(np.float64, (n_chains, maps.dim), elements=floats))
    return maps, theta0, idx


def _alone(fn, maps, theta0, idx, i):
    return fn(maps, theta0[i], idx[i])[0]


@pytest.mark.parametrize("fn", ENGINES, ids=lambda f: f.__name__)
@given(case=family_and_chains(min_chains=lambda m: 16 * m, max_chains=lambda m: 16 * m + 12))
def test_chain_alone_equals_chain_among_many_grouped(fn, case):
    maps, theta0, idx = case
    full = fn(maps, theta0, idx)
    for i in {0, len(idx) // 2, len(idx) - 1}:
        assert np.array_equal(full[i], _alone(fn, maps, theta0, idx, i))
    assert np.array_equal(fn(maps, theta0[:3], idx[:3]), full[:3])


@pytest.mark.parametrize("fn", ENGINES + APPROXIMATIONS, ids=lambda f: f.__name__)
@given(case=family_and_chains(max_chains=6))
def test_chain_alone_equals_chain_among_few(fn, case):
    maps, theta0, idx = case
    extra = (3,) if fn in APPROXIMATIONS else ()
    full = fn(maps, theta0, idx, *extra)
    full = full.iterates if fn in APPROXIMATIONS else full
    for i in range(len(idx)):
        alone = fn(maps, theta0[i], idx[i], *extra)
        alone = alone.iterates if fn in APPROXIMATIONS else alone
        assert np.array_equal(full[i], alone[0])


@pytest.mark.parametrize("fn", ENGINES, ids=lambda f: f.__name__)
@given(case=family_and_chains(max_chains=5), data=st.data())
def test_saved_steps_are_slices_of_the_full_output(fn, case, data):
    maps, theta0, idx = case
    n = idx.shape[1]
    full = fn(maps, theta0, idx)
    chosen = data.draw(hnp.arrays(np.bool_, n + 1, elements=st.booleans()))
    chosen[n] |= not chosen.any()
    steps = np.flatnonzero(chosen)
    assert np.array_equal(fn(maps, theta0, idx, save_steps=steps), full[:, steps])
    assert np.array_equal(fn(maps, theta0, idx, save_steps=[n])[:, 0], full[:, -1])


BUDGETS = [1, 8 * 16 * 5, 8 * 16 * 3 * 40, 1 << 24]  # a chain per tile and a step per block, ..., the default


@given(case=family_and_chains(max_chains=40, max_steps=60))
@settings(max_examples=25)
def test_backward_is_the_same_for_every_memory_budget(case):
    maps, theta0, idx = case
    results = []
    for budget in BUDGETS:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(scan, "_SCAN_BUDGET", budget)
            results.append(ct.backward_iterates(maps, theta0, idx))
    for other in results[1:]:
        assert np.array_equal(other, results[0])


_THREAD_THRESHOLDS = [(kernels, "_THREAD_MIN_CHAINS", 64), (kernels, "_THREAD_MIN_WORK", 1),
                      (engines, "_THREAD_MIN_VALUES", 1), (engines, "_SCAN_THREAD_PAIRS", 1)]


@pytest.mark.parametrize("d", [2, 4], ids=["row-scan", "word-scan"])
@pytest.mark.parametrize("fn", ENGINES, ids=lambda f: f.__name__)
def test_threads_do_not_change_a_chain(fn, d):
    rng = np.random.default_rng(12)
    maps = ct.AffineMaps(0.3 * rng.normal(size=(3, d, d)), rng.normal(size=(3, d)))
    idx = ct.sample_batches(3, 25, n_chains=200, rng=13)
    theta0 = rng.normal(size=(200, d))
    used = []

    def spy(run, n_chains, m, workers=None):
        used.append(kernels._workers(n_chains, m) if workers is None else workers)
        kernels.over_chain_slices(run, n_chains, m, workers)

    with pytest.MonkeyPatch.context() as mp:
        for module, name, _ in _THREAD_THRESHOLDS:
            mp.setattr(module, name, 10**18)
        single = fn(maps, theta0, idx)
        for module, name, low in _THREAD_THRESHOLDS:
            mp.setattr(module, name, low)
        mp.setattr(engines, "over_chain_slices", spy)
        threaded = fn(maps, theta0, idx)
    assert max(used) >= 2 or (os.cpu_count() or 1) == 1  # the threaded run was threaded
    assert np.array_equal(threaded, single)
    assert np.array_equal(single[7], fn(maps, theta0[7], idx[7])[0])


# --- the three defects as reported, on fixed inputs ---------------------------------------------------


def _family(m=2, d=3, seed=0):
    rng = np.random.default_rng(seed)
    return ct.AffineMaps(0.3 * rng.normal(size=(m, d, d)), rng.normal(size=(m, d)))


def test_forward_grouped_path_equals_one_chain_at_a_time():
    maps = _family()
    idx = ct.sample_batches(2, 30, n_chains=64, rng=1)  # 32 chains per batch: the grouped path
    theta0 = np.random.default_rng(2).normal(size=(64, 3))
    full = ct.forward_iterates(maps, theta0, idx)
    one = np.stack([ct.forward_iterates(maps, theta0[c], idx[c])[0] for c in range(64)])
    assert np.array_equal(full, one)


def test_backward_last_step_equals_the_full_output():
    maps = _family()
    idx = ct.sample_batches(2, 30, n_chains=3, rng=1)
    theta0 = np.random.default_rng(2).normal(size=(3, 3))
    full = ct.backward_iterates(maps, theta0, idx)
    assert np.array_equal(ct.backward_iterates(maps, theta0, idx, save_steps=[30])[:, 0], full[:, -1])


def test_backward_block_size_does_not_change_the_iterates():
    maps = _family()
    idx = ct.sample_batches(2, 30, n_chains=2, rng=1)
    theta0 = np.random.default_rng(2).normal(size=(2, 3))
    reference = ct.backward_iterates(maps, theta0, idx)
    for budget in (8 * 2 * 16 * 2, 8 * 2 * 16 * 2 * 37):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(scan, "_SCAN_BUDGET", budget)
            assert np.array_equal(ct.backward_iterates(maps, theta0, idx), reference)


def test_blas_threads_do_not_change_a_large_product():
    """A product large enough for BLAS to split over threads is summed the same way on one thread."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    rng = np.random.default_rng(3)
    d = 129
    A = rng.normal(size=(2, d, d))
    A *= 0.9 / np.linalg.norm(A, 2, axis=(1, 2))[:, None, None]
    maps = ct.AffineMaps(A, rng.normal(size=(2, d)))
    idx = ct.sample_batches(2, 2 * (d + 1) + 4, rng=4)
    theta0 = rng.normal(size=d)
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        two = ct.backward_iterates(maps, theta0, idx)
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        one = ct.backward_iterates(maps, theta0, idx)
    assert np.array_equal(one, two)


@given(case=family_and_chains(min_chains=lambda m: 16 * m, max_chains=lambda m: 16 * m + 12, max_steps=1))
def test_a_point_is_mapped_alike_sorted_by_batch_or_gathered(case):
    """``AffineMaps.step`` (the engines' recomputation and the windows) gives each row the same bits either way."""
    maps, theta, _ = case
    index = np.arange(len(theta)) % maps.n_maps
    gathered = maps.step(theta, index)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(kernels, "_GATHER_MAX_VALUES", 0)  # sort by batch, one stacked call per batch
        grouped = maps.step(theta, index)
    assert np.array_equal(grouped, gathered)
    for i in (0, len(theta) - 1):
        assert np.array_equal(maps.step(theta[i:i + 1], index[i:i + 1])[0], gathered[i])


# --- the BLAS property the row products rely on ------------------------------------------------------


@pytest.mark.parametrize(("p", "k", "m"), [(2, 2, 3), (5, 4, 4), (9, 8, 4), (9, 9, 4), (33, 32, 8), (65, 64, 16)])
def test_a_row_of_a_gemm_is_the_same_whatever_the_other_rows_and_maps(p, k, m):
    """Rows of GEMMs (all maps side by side, one map at a time, or a row pair per call) give a row the same bits.

    This is what makes chain ``i`` independent of the other chains; a BLAS
    that sums a row differently with the number of rows or columns fails here.
    """
    threadpoolctl = pytest.importorskip("threadpoolctl")
    rng = np.random.default_rng(p * k + m)
    mats = rng.normal(size=(m, p, k))
    X = rng.normal(size=(3000, p))
    index = rng.integers(0, m, size=3000)
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        results = []
        for kind in ("all", "grouped", "pairs"):
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(kernels, "_row_product_kind", lambda *args, kind=kind: kind)
                results.append(kernels.row_products(X, mats, index))
                for size in (1, 2, 17, 333):
                    for start in (0, 5, 2999 - size):
                        part = kernels.row_products(X[start:start + size], mats, index[start:start + size])
                        assert np.array_equal(part, results[-1][start:start + size])
        assert np.array_equal(results[0], results[1])
        assert np.array_equal(results[0], results[2])
        np.testing.assert_allclose(results[0], np.einsum("cp,cpk->ck", X, mats[index]), rtol=1e-12, atol=1e-12)
