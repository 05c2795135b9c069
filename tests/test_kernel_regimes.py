"""The affine iteration engines in every kernel regime, through the public API only.

The engines may pick a different kernel by shape (elementwise closed forms in
one dimension and for diagonal maps, one product against all the stacked
maps, grouped products per batch, blocked scans over steps, chunks of steps,
threads over chains). Whatever they pick, for ``ct.forward_iterates`` and
``ct.backward_iterates``:

1. every iterate agrees with a plain loop (forward ``θ ← A θ + b``; backward
   ``θ̃_n = T_{ξ_1} ∘ … ∘ T_{ξ_n}(θ_0)`` recomputed for each ``n``);
2. chain ``i`` computed alone equals chain ``i`` among ``C`` chains bit for bit;
3. saved steps are bitwise slices of the full output;
4. long sequences agree with the recursion ``P_n = P_{n−1} A_{ξ_n}``,
   ``q_n = q_{n−1} + P_{n−1} b_{ξ_n}``, and ``θ̃_k`` computed from the first ``k``
   batches equals step ``k`` of the long run bit for bit;
5. with few saved steps, memory stays a small multiple of the batch indices
   and the output (no kernel keeps every step);
6. an expanding family raises ``ct.DivergenceError`` (never nan/inf returned).

Tolerance of the loop comparisons. Each iterate is compared with its loop value
to ``1e-12 · s_n``, where ``s_n`` bounds the size of every term it sums: the
same recursion run on norms, ``s_n = ‖A_{ξ_n}‖₂ s_{n−1} + ‖b_{ξ_n}‖`` forward and
``s̃_n = ‖A_{ξ_1}‖ ⋯ ‖A_{ξ_n}‖ ‖θ_0‖ + Σ_k ‖A_{ξ_1}‖ ⋯ ‖A_{ξ_{k−1}}‖ ‖b_{ξ_k}‖``
backward. A rounding error of a step (at most ``(d + 1) u s_n``, ``u = 1.1e-16``)
is carried by the following maps, none of which expands by more than its norm,
so the accumulated error is at most ``n (d + 1) u s_n`` whatever the kernel
associates: at most ``100 · 41 · 1.1e-16 ≈ 4.5e-13 s_n`` for the short runs
here (d ≤ 40, n ≤ 100). The long runs (4) use maps with ``‖A_i‖₂ ≤ 0.7``
(or, in one dimension, a product that contracts on average), so an error made
at step ``k`` is damped geometrically afterwards and the same ``1e-12 s_n``
holds there although ``n (d + 1) u`` alone would not bound it.

Deliberately wrong implementations (each patched into
``contraction.core.iterates`` in a scratch run of this file, then removed)
and the tests that caught them:

* a forward kernel that treats a family as diagonal when its off-diagonal
  entries are below ``1e-6`` (``θ ← diag(A) ⊙ θ + b``): the nearly-diagonal
  forward loop comparison fails (error 3.4e-9 against a bound of 2.3e-11),
  every other regime passes;
* a backward kernel that computes every step and slices ``save_steps``
  afterwards: the memory tests fail (peak 171 MiB against 46 and 50 MiB
  allowed), the loop and slicing tests pass;
* a backward kernel that combines ``⌈n / 8⌉`` steps into a block product
  before applying it to the carried product (the block depends on the length
  of the sequence): the prefix tests fail (steps up to 129 of 4,000 and up to
  2,048 of 20,000 differ), the loop comparisons pass;
* the same with blocks of ``max(1, 64 // C)`` steps (the block shrinks with
  the number of chains ``C``): a chain alone differs from the same chain
  among 2 or 17, in every backward regime (the low-rank one has its own engine);
* an engine that returns its output without the divergence check: every
  divergence test fails (``DID NOT RAISE``).
"""

import tracemalloc

import numpy as np
import pytest

import contraction as ct
from contraction.core.iterates import recompute_horizon

ENGINES = [ct.forward_iterates, ct.backward_iterates]
RTOL = 1e-12


# --- the regimes --------------------------------------------------------------------------------------------


def _dense(m, d, seed, rho=0.8):
    """``m`` random maps on ``R^d`` with ``‖A_i‖₂ = ρ`` and offsets of order one."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(m, d, d))
    A *= rho / np.linalg.norm(A, 2, axis=(1, 2))[:, None, None]
    return ct.AffineMaps(A, rng.normal(size=(m, d)))


def _diagonal(tiny=0.0):
    """Four diagonal maps on ``R^3`` (negative and expanding entries); ``tiny`` adds one off-diagonal entry."""
    diag = np.array([[0.5, -0.9, 1.1], [-0.3, 0.7, 0.2], [0.95, -1.2, 0.4], [0.1, 0.6, -0.8]])
    A = np.zeros((4, 3, 3))
    A[:, np.arange(3), np.arange(3)] = diag
    A[1, 1, 2] = tiny
    b = np.random.default_rng(31).normal(size=(4, 3))
    return ct.AffineMaps(A, b)


def _low_rank(m=20, d=40, r=3, seed=41):
    """``A_i = I − s V_i V_iᵀ`` with ``s λ_max(V_i V_iᵀ) ≤ 1.5``: ``‖A_i‖₂ = 1`` (rank 3 in 40 dimensions)."""
    rng = np.random.default_rng(seed)
    V = rng.normal(size=(m, d, r))
    s = 1.5 / np.linalg.norm(V, 2, axis=(1, 2)).max() ** 2
    return ct.LowRankAffineMaps(V, V, 0.1 * rng.normal(size=(m, d)), scale=s)


REGIMES = {
    "d1-m2-two-point": ct.AffineMaps([[[0.5]], [[0.5]]], [[0.5], [-0.5]]),
    "d1-m2-negative-expanding": ct.AffineMaps([[[-1.5]], [[0.6]]], [[1.0], [-0.3]]),
    "d1-m70": ct.AffineMaps(np.linspace(-1.1, 1.1, 70)[:, None, None], np.linspace(-1.0, 2.0, 70)[:, None]),
    "d1-m5": ct.AffineMaps(np.array([-1.2, -0.5, 0.3, 0.8, 1.1])[:, None, None],
                           [[0.7], [-1.0], [0.2], [1.5], [-0.4]]),
    "diagonal-d3": _diagonal(),
    "nearly-diagonal-d3": _diagonal(tiny=1e-9),
    "d4-m3": _dense(3, 4, seed=4),
    "d8-m4": _dense(4, 8, seed=8),
    "d32-m8": _dense(8, 32, seed=32),
    "d5-m2": _dense(2, 5, seed=5),
    "d6-m20": _dense(20, 6, seed=6),
    "d2-m40": _dense(40, 2, seed=2),
    "low-rank-d40-r3": _low_rank(),
}
NAMES = list(REGIMES)


def _dense_parts(maps):
    dense = maps.to_dense() if isinstance(maps, ct.LowRankAffineMaps) else maps
    return dense.A, dense.b


def _start(maps, n_chains, seed):
    return np.random.default_rng(seed).normal(size=(n_chains, maps.dim))


def _steps_for(maps):
    """Steps of the short runs: beyond ``2 (d + 1)``, so backward is a scan and not a recomputation."""
    return max(100, 2 * maps.dim + 20)


# --- plain loops and the size of their terms -----------------------------------------------------------------


def loop_forward(A, b, theta0, seq):
    out = [np.asarray(theta0, dtype=float)]
    for i in seq:
        out.append(A[i] @ out[-1] + b[i])
    return np.array(out)


def loop_backward(A, b, theta0, seq):
    """``θ̃_n = T_{ξ_1} ∘ … ∘ T_{ξ_n}(θ_0)`` recomputed map by map for every ``n``."""
    out = []
    for n in range(len(seq) + 1):
        x = np.asarray(theta0, dtype=float)
        for i in reversed(seq[:n]):  # ξ_n first, ξ_1 last
            x = A[i] @ x + b[i]
        out.append(x)
    return np.array(out)


def loop_products(A, b, theta0, seq):
    """``θ̃_n = P_n θ_0 + q_n`` with ``P_n = P_{n−1} A_{ξ_n}``, ``q_n = q_{n−1} + P_{n−1} b_{ξ_n}``."""
    d = len(theta0)
    P, q = np.eye(d), np.zeros(d)
    out = [np.asarray(theta0, dtype=float)]
    for i in seq:
        q = q + P @ b[i]
        P = P @ A[i]
        out.append(P @ theta0 + q)
    return np.array(out)


def term_size(A, b, theta0, seq, order):
    """``s_n`` of the module docstring: the loop run on ``‖A_i‖₂``, ``‖b_i‖`` and ``‖θ_0‖`` (shape (n + 1,))."""
    a, beta, t0 = np.linalg.norm(A, 2, axis=(1, 2)), np.linalg.norm(b, axis=1), np.linalg.norm(theta0)
    sizes, s, p, q = [t0], t0, 1.0, 0.0
    for i in seq:
        if order == "forward":
            s = a[i] * s + beta[i]
        else:
            q, p = q + p * beta[i], p * a[i]
            s = p * t0 + q
        sizes.append(s)
    return np.array(sizes)


def assert_agrees(actual, expected, sizes):
    """Every iterate within ``RTOL · s_n`` of the loop's (each coordinate)."""
    assert actual.shape == expected.shape
    err = np.abs(actual - expected).max(axis=-1)
    ratio = err / (RTOL * sizes)
    worst = int(np.argmax(ratio))
    assert ratio[worst] <= 1.0, f"step {worst}: error {err[worst]:.3e} above {RTOL} x {sizes[worst]:.3e}"


def _order(fn):
    return "forward" if fn is ct.forward_iterates else "backward"


# --- 1. agreement with a plain loop ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("fn", ENGINES, ids=_order)
def test_iterates_agree_with_a_plain_loop(fn, name):
    maps = REGIMES[name]
    A, b = _dense_parts(maps)
    n = _steps_for(maps)
    idx = ct.sample_batches(maps.n_maps, n, n_chains=3, rng=101)
    theta0 = _start(maps, 3, seed=102)
    out = fn(maps, theta0, idx)
    loop = loop_forward if fn is ct.forward_iterates else loop_backward
    for c in range(3):
        assert_agrees(out[c], loop(A, b, theta0[c], idx[c]), term_size(A, b, theta0[c], idx[c], _order(fn)))


def test_a_tiny_off_diagonal_entry_matters():
    """The nearly-diagonal family is not the diagonal one: its loop differs far beyond the tolerance."""
    A, b = _dense_parts(REGIMES["nearly-diagonal-d3"])
    A0, _ = _dense_parts(REGIMES["diagonal-d3"])
    idx = ct.sample_batches(4, 100, rng=101)[0]
    theta0 = _start(REGIMES["diagonal-d3"], 1, seed=102)[0]
    for loop in (loop_forward, loop_backward):
        gap = np.abs(loop(A, b, theta0, idx) - loop(A0, b, theta0, idx)).max(axis=1)
        assert (gap / (RTOL * term_size(A, b, theta0, idx, loop.__name__[5:]))).max() > 50


# --- 2. a chain alone equals the same chain among many --------------------------------------------------------

CHAIN_COUNTS = [1, 2, 17, 300, 5000]
WATCHED = [0, 1, 16, 299, 4999]  # chains compared, where present


def _chain_counts(maps, fn):
    """The counts of chains that fit in about a second: backward at d ≥ 32 costs O(d³) (O(r d²)) per step."""
    if fn is ct.backward_iterates and maps.dim >= 32:
        return CHAIN_COUNTS[:-1]
    return CHAIN_COUNTS


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("fn", ENGINES, ids=_order)
def test_a_chain_alone_equals_the_chain_among_many(fn, name):
    maps = REGIMES[name]
    counts = _chain_counts(maps, fn)
    n = 2 * maps.dim + 10 if fn is ct.backward_iterates else 30
    idx = ct.sample_batches(maps.n_maps, n, n_chains=counts[-1], rng=201)
    theta0 = _start(maps, counts[-1], seed=202)
    alone = {i: fn(maps, theta0[i], idx[i])[0] for i in WATCHED if i < counts[-1]}
    for C in counts:
        out = fn(maps, theta0[:C], idx[:C])
        for i in (i for i in alone if i < C):
            assert np.array_equal(out[i], alone[i]), f"chain {i} among {C} chains differs from chain {i} alone"


# --- 3. saved steps are slices of the full output -------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("fn", ENGINES, ids=_order)
def test_saved_steps_are_bitwise_slices(fn, name):
    maps = REGIMES[name]
    n = _steps_for(maps)
    C = 3 if maps.dim >= 32 else 17 * maps.n_maps  # the grouped paths, where affordable
    idx = ct.sample_batches(maps.n_maps, n, n_chains=C, rng=301)
    theta0 = _start(maps, C, seed=302)
    full = fn(maps, theta0, idx)
    chosen = np.flatnonzero(np.random.default_rng(303).random(n + 1) < 0.2)
    for steps in ([n], [0], [1, n - 1], range(0, n + 1, 10), range(3, n + 1, 7), chosen):
        steps = np.asarray(steps)
        assert np.array_equal(fn(maps, theta0, idx, save_steps=steps), full[:, steps]), steps[:8]


# --- 4. long sequences --------------------------------------------------------------------------------------

LONG = {
    "d8": (_dense(4, 8, seed=18, rho=0.7), 4000),
    # slopes contract on average (E log|a| ≈ −0.12) with expanding runs of −1.3
    "d1": (ct.AffineMaps(np.array([-1.3, 0.6, 0.9])[:, None, None], [[1.0], [-0.5], [0.25]]), 20000),
}
PREFIXES = [1, 2, 3, 4, 5, 9, 18, 19, 63, 64, 65, 127, 128, 129, 400, 1000, 1025, 2048, 3999, 4000, 12345, 19999, 20000]
PREFIX_CASES = {**LONG, "low-rank-d40-r3": (REGIMES["low-rank-d40-r3"], 400)}


@pytest.mark.parametrize("case", list(LONG))
@pytest.mark.parametrize("fn", ENGINES, ids=_order)
def test_a_long_sequence_agrees_with_the_recursion(fn, case):
    maps, n = LONG[case]
    idx = ct.sample_batches(maps.n_maps, n, rng=401)
    theta0 = _start(maps, 1, seed=402)[0]
    out = fn(maps, theta0, idx)[0]
    loop = loop_forward if fn is ct.forward_iterates else loop_products
    sizes = term_size(maps.A, maps.b, theta0, idx[0], _order(fn))
    assert sizes.max() < 1e4  # the tolerance stays meaningful
    assert_agrees(out, loop(maps.A, maps.b, theta0, idx[0]), sizes)


@pytest.mark.parametrize("case", list(PREFIX_CASES))
@pytest.mark.parametrize("fn", ENGINES, ids=_order)
def test_an_iterate_does_not_depend_on_later_batches(fn, case):
    """``θ_k`` (``θ̃_k``) from ``idx[:, :k]`` is step ``k`` of the long run, bit for bit, saved alone or with all.

    Backward sequences of at most ``recompute_horizon(maps)`` steps are
    rebuilt map by map (documented): those agree with the scanned run to
    rounding only, and with each other bit for bit.
    """
    maps, n = PREFIX_CASES[case]
    idx = ct.sample_batches(maps.n_maps, n, rng=401)
    theta0 = _start(maps, 1, seed=402)[0]
    full = fn(maps, theta0, idx)[0]
    short = recompute_horizon(maps) if fn is ct.backward_iterates else 0
    differ = []
    for k in (k for k in PREFIXES if k <= n):
        alone, saved = fn(maps, theta0, idx[:, :k])[0, k], fn(maps, theta0, idx[:, :k], save_steps=[k])[0, 0]
        if k <= short:
            assert np.array_equal(alone, saved)
            np.testing.assert_allclose(alone, full[k], rtol=1e-13, atol=1e-13 * np.abs(full[:k + 1]).max())
        elif not (np.array_equal(alone, full[k]) and np.array_equal(saved, full[k])):
            differ.append(k)
    assert not differ, f"step k computed from the first k batches differs from the {n}-step run for k in {differ}"


# --- 5. memory ------------------------------------------------------------------------------------------------

MEMORY_FACTOR = 3  # peak ≤ 3 × (indices + output); every step kept would be ≈ d = 10 times the indices


def _peak_during(call):
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        out = call()
        return out, tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_tracemalloc_sees_array_allocations():
    """The memory tests measure numpy's buffers (else they could not fail)."""
    _, peak = _peak_during(lambda: np.ones(10**7).sum())
    assert peak >= 8 * 10**7


def _memory_case(n_chains, n):
    maps = _dense(4, 10, seed=510)
    idx = ct.sample_batches(4, n, n_chains=n_chains, rng=511)
    theta0 = _start(maps, n_chains, seed=512)
    return maps, theta0, idx


def _assert_bounded_memory(fn, maps, theta0, idx, steps):
    out, peak = _peak_during(lambda: fn(maps, theta0, idx, save_steps=steps))
    allowed = MEMORY_FACTOR * (idx.nbytes + out.nbytes)
    every_step = idx.shape[0] * (idx.shape[1] + 1) * maps.dim * 8
    assert allowed < every_step  # a kernel keeping every step cannot pass
    assert peak <= allowed, f"peak {peak / 2**20:.1f} MiB above {allowed / 2**20:.1f} MiB"


@pytest.mark.parametrize("every", [False, True], ids=["last", "every-100th"])
@pytest.mark.parametrize("fn", ENGINES, ids=_order)
def test_memory_stays_bounded_with_few_saved_steps(fn, every):
    maps, theta0, idx = _memory_case(400, 5000)
    _assert_bounded_memory(fn, maps, theta0, idx, range(0, 5001, 100) if every else [5000])


@pytest.mark.slow
@pytest.mark.parametrize("every", [False, True], ids=["last", "every-100th"])
@pytest.mark.parametrize("fn", ENGINES, ids=_order)
def test_memory_stays_bounded_with_few_saved_steps_at_scale(fn, every):
    maps, theta0, idx = _memory_case(2000, 5000)
    _assert_bounded_memory(fn, maps, theta0, idx, range(0, 5001, 100) if every else [5000])


# --- 6. divergence ----------------------------------------------------------------------------------------------

EXPANDING = {
    "d1": ct.AffineMaps([[[1e10]], [[-3e10]]], [[1.0], [-2.0]]),
    "diagonal-d3": ct.AffineMaps(np.array([np.diag([0.5, 1e10, -0.2]), np.diag([-0.4, -3e10, 0.9])]),
                                 [[1.0, 1.0, 0.0], [0.0, -2.0, 1.0]]),
    "d4": _dense(3, 4, seed=64, rho=1e10),
}


def _first_overflow(maps, theta0, idx, fn):
    """(chain, step) of the first non-finite iterate by the plain loops: earliest step, then lowest chain."""
    A, b = maps.A, maps.b

    def apply(x, letters):  # T_{letters[c]}(x[c]) for every chain c
        return np.einsum("cij,cj->ci", A[letters], x) + b[letters]

    with np.errstate(over="ignore", invalid="ignore"):
        x = theta0
        for n in range(1, idx.shape[1] + 1):
            if fn is ct.forward_iterates:
                x = apply(x, idx[:, n - 1])
                y = x
            else:
                y = theta0
                for j in range(n, 0, -1):  # ξ_n first, ξ_1 last
                    y = apply(y, idx[:, j - 1])
            bad = ~np.isfinite(y).all(axis=1)
            if bad.any():
                return int(np.argmax(bad)), n
    return None, None


def test_forward_words_whose_coefficients_overflow_fall_back_to_single_steps():
    """Coefficients composed over a word (``1e50^s``, s = 12 here) overflow: ``inf · 0 = nan`` where steps give 0."""
    maps = ct.AffineMaps([[[1e50]], [[0.5]]], [[0.0], [0.0]])
    idx = np.zeros((3, 40), dtype=np.int64)
    assert np.array_equal(ct.forward_iterates(maps, [0.0], idx), np.zeros((3, 41, 1)))
    with pytest.raises(ct.DivergenceError, match="non-finite at step 13"):  # 1e-300 · 1e50^k overflows at k = 13
        ct.forward_iterates(maps, [1e-300], idx)


@pytest.mark.parametrize("shared", [True, False], ids=["shared-start", "own-starts"])
@pytest.mark.parametrize("fn", ENGINES, ids=_order)
def test_word_tiles_never_change_a_result(fn, shared, monkeypatch):
    """The elementwise engines by words, in tiles of 3 chains and a last tile of 1, and a last word cut short.

    The result must be the default layout's (one tile), bit for bit, for
    every pattern of saved steps.
    """
    from contraction.core import _diagonal

    maps = REGIMES["diagonal-d3"]
    n, C = 203, 10
    idx = ct.sample_batches(maps.n_maps, n, n_chains=C, rng=401)
    theta0 = _start(maps, 1, seed=402)[0] if shared else _start(maps, C, seed=402)
    chosen = np.flatnonzero(np.random.default_rng(403).random(n + 1) < 0.2)
    patterns = [None, [n], [0, 5, 6, 7], range(0, n + 1, 10), range(3, n + 1, 7), chosen]
    default = [fn(maps, theta0, idx, save_steps=steps) for steps in patterns]
    s = _diagonal._diagonal_word_length(maps.n_maps, maps.dim)
    assert n % s and C * s * maps.dim <= _diagonal._WORD_VALUES_ELEMENTWISE  # by default: one tile
    monkeypatch.setattr(_diagonal, "_WORD_VALUES_ELEMENTWISE", 3 * s * maps.dim)
    for steps, expected in zip(patterns, default, strict=True):
        assert np.array_equal(fn(maps, theta0, idx, save_steps=steps), expected), steps


@pytest.mark.parametrize("name", ["d8-m4", "d6-m20"])
def test_backward_blocks_per_call_never_change_a_result(name, monkeypatch):
    """The backward scan's iterates of one block per call or of all blocks in one call: the same bits.

    ``_SCAN_OUT_VALUES`` sets how many blocks of 64 steps have their
    iterates computed by one (batched) product; every saving pattern must
    give the same bits either way.
    """
    from contraction.core import _scan

    maps = REGIMES[name]
    n, C = 64 * 5 + 17, 6
    idx = ct.sample_batches(maps.n_maps, n, n_chains=C, rng=501)
    theta0 = _start(maps, C, seed=502)
    chosen = np.flatnonzero(np.random.default_rng(503).random(n + 1) < 0.05)
    patterns = [None, [n], [1, 64, 65, 200], range(0, n + 1, 10), chosen]
    results = {}
    for values in (1, 2**30):
        monkeypatch.setattr(_scan, "_SCAN_OUT_VALUES", values)
        results[values] = [ct.backward_iterates(maps, theta0, idx, save_steps=steps) for steps in patterns]
    for steps, one, every in zip(patterns, results[1], results[2**30], strict=True):
        assert np.array_equal(one, every), steps


@pytest.mark.parametrize("name", list(EXPANDING))
@pytest.mark.parametrize("fn", ENGINES, ids=_order)
@pytest.mark.parametrize("n_chains", [1, 300])
def test_an_expanding_family_raises(fn, name, n_chains):
    maps = EXPANDING[name]
    n = 60
    idx = ct.sample_batches(maps.n_maps, n, n_chains=n_chains, rng=601)
    theta0 = 1.0 + np.abs(_start(maps, n_chains, seed=602))
    chain, step = _first_overflow(maps, theta0, idx, fn)
    assert step <= 40
    with pytest.raises(ct.DivergenceError, match=f"chain {chain} is non-finite at step {step}"):
        fn(maps, theta0, idx)
    with pytest.raises(ct.DivergenceError, match=f"non-finite at step {n}"):
        fn(maps, theta0, idx, save_steps=[n])
    with pytest.raises(ct.DivergenceError, match="overflowed"):
        fn(maps, theta0, idx, save_steps=range(0, n + 1, 10))
    assert np.isfinite(fn(maps, theta0, idx, save_steps=range(step))).all()  # up to the overflow: finite
