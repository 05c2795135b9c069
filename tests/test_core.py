"""AffineMaps, models and batch sampling."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import affine_map_pairs, affine_maps, points

import contraction as ct


@given(st.data())
def test_compose_matches_applying_one_by_one(data):
    T, S = data.draw(affine_map_pairs())
    if T.dim != S.dim:
        with pytest.raises(ValueError, match=r"^other:"):
            T.compose(S)
        return
    TS = T.compose(S)
    x = data.draw(points(T.dim))
    k = len(x)
    i = data.draw(hnp.arrays(np.int64, k, elements=st.integers(0, T.n_maps - 1)))
    j = data.draw(hnp.arrays(np.int64, k, elements=st.integers(0, S.n_maps - 1)))
    np.testing.assert_allclose(TS.apply(x, i * S.n_maps + j), T.apply(S.apply(x, j), i), atol=1e-12)
    np.testing.assert_allclose(TS.probs.reshape(T.n_maps, S.n_maps), np.outer(T.probs, S.probs))


@given(affine_maps(), st.lists(st.integers(0, 3), max_size=6))
def test_word_is_composition_last_letter_first(maps, word):
    word = [w % maps.n_maps for w in word]
    A, b = maps.word(word)  # the empty word is the identity
    x = np.linspace(-1, 2, maps.dim)
    y = x
    for w in reversed(word):
        y = maps.apply(y, w)
    np.testing.assert_allclose(A @ x + b, y, atol=1e-12)


def test_word_of_a_batch_of_words_and_the_empty_word():
    rng = np.random.default_rng(3)
    maps = ct.AffineMaps(rng.normal(size=(3, 2, 2)), rng.normal(size=(3, 2)))
    empty = maps.word([])
    assert isinstance(empty, ct.AffineMap)
    assert np.array_equal(empty.A, np.eye(2)) and np.array_equal(empty.b, np.zeros(2))
    many = maps.word(np.zeros((4, 0), dtype=int))
    assert many.A.shape == (4, 2, 2) and np.array_equal(many.A, np.broadcast_to(np.eye(2), (4, 2, 2)))
    words = np.array([[[0, 1], [2, 2]], [[1, 0], [0, 2]]])
    batch = maps.word(words)
    assert batch.A.shape == (2, 2, 2, 2) and batch.b.shape == (2, 2, 2)
    one = maps.word(words[1, 0])
    np.testing.assert_allclose(batch.A[1, 0], one.A)
    np.testing.assert_allclose(batch.apply(np.ones(2))[1, 0], one.apply(np.ones(2)))


def test_compose_affine_returns_a_record_and_checks_shapes():
    rng = np.random.default_rng(4)
    A, A2 = rng.normal(size=(2, 5, 3, 3))
    b, b2 = rng.normal(size=(2, 5, 3))
    res = ct.compose_affine(A, b, A2, b2)
    assert isinstance(res, ct.AffineMap)
    x = rng.normal(size=3)
    np.testing.assert_allclose(res.apply(x), np.einsum("kij,kj->ki", A, np.einsum("kij,j->ki", A2, x) + b2) + b)
    Abar, bbar = ct.AffineMaps(A, b).mean_map()
    np.testing.assert_allclose(Abar, A.mean(0))
    np.testing.assert_allclose(bbar, b.mean(0))
    with pytest.raises(ValueError, match=r"^A2:"):
        ct.compose_affine(A, b, A2[:, :2, :2], b2[:, :2])


def test_affine_maps_are_read_only_and_frozen():
    maps = ct.AffineMaps(np.zeros((2, 2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="read-only"):
        maps.A[0, 0, 0] = 1.0
    with pytest.raises(AttributeError, match="cannot assign"):
        maps.A = np.ones((2, 2, 2))
    np.testing.assert_allclose(maps.probs, [0.5, 0.5])


def test_apply_broadcasts_over_leading_axes():
    rng = np.random.default_rng(0)
    maps = ct.AffineMaps(rng.normal(size=(3, 2, 2)), rng.normal(size=(3, 2)))
    x = rng.normal(size=(4, 5, 2))
    i = rng.integers(0, 3, size=(4, 5))
    y = maps.apply(x, i)
    assert y.shape == (4, 5, 2)
    np.testing.assert_allclose(y[2, 3], maps.A[i[2, 3]] @ x[2, 3] + maps.b[i[2, 3]])


def test_linear_regression_maps_match_formula():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(12, 3))
    y = rng.normal(size=12)
    model = ct.LinearRegressionModel(X, y, batch_size=4)
    maps = model.sgd_maps(0.05)
    assert maps.n_maps == 3
    XB, yB = X[4:8], y[4:8]
    np.testing.assert_allclose(maps.A[1], np.eye(3) - 0.05 / 4 * XB.T @ XB)
    np.testing.assert_allclose(maps.b[1], 0.05 / 4 * XB.T @ yB)
    theta = rng.normal(size=3)
    np.testing.assert_allclose(model.batch_loss(theta, 1), np.sum((XB @ theta - yB) ** 2) / 8)
    per_batch = [np.sum((X[4 * k:4 * k + 4] @ theta - y[4 * k:4 * k + 4]) ** 2) / 8 for k in range(3)]
    np.testing.assert_allclose(model.loss(theta), np.mean(per_batch))
    np.testing.assert_allclose(model.full_gradient(model.minimizer()), 0, atol=1e-10)


def test_quadratic_loss_and_gradient_agree():
    rng = np.random.default_rng(2)
    G = rng.normal(size=(3, 2, 2))
    model = ct.QuadraticModel(G @ G.transpose(0, 2, 1), rng.normal(size=(3, 2)))
    theta = rng.normal(size=2)
    eps = 1e-6
    fd = np.array([(model.loss(theta + eps * e) - model.loss(theta - eps * e)) / (2 * eps) for e in np.eye(2)])
    np.testing.assert_allclose(fd, model.full_gradient(theta), rtol=1e-6)
    np.testing.assert_allclose(model.batch_loss(model.centers[1], 1), 0, atol=1e-12)


def test_sample_batches_is_prefix_stable_and_deterministic():
    a = ct.sample_batches(5, 40, n_chains=2, rng=11)
    b = ct.sample_batches(5, 40, n_chains=7, rng=11)
    np.testing.assert_array_equal(a, b[:2])
    np.testing.assert_array_equal(a, ct.sample_batches(5, 40, n_chains=2, rng=11))
    assert not np.array_equal(a[0], a[1])
    g = np.random.default_rng(11)
    assert ct.sample_batches(5, 3, n_chains=2, rng=g).shape == (2, 3)


def test_iid_sampling_follows_probs():
    p = np.array([0.1, 0.6, 0.3])
    idx = ct.sample_batches(3, 20000, probs=p, rng=0)
    freq = np.bincount(idx.ravel(), minlength=3) / idx.size
    se = np.sqrt(p * (1 - p) / idx.size)
    assert np.all(np.abs(freq - p) < 4 * se)


def test_reshuffle_uses_each_batch_once_per_epoch():
    idx = ct.sample_batches(4, 22, n_chains=3, scheme="reshuffle", rng=5)
    for chain in idx:
        for e in range(5):
            assert sorted(chain[4 * e:4 * e + 4]) == [0, 1, 2, 3]
        assert len(set(chain[20:])) == 2
    # epochs differ (fresh permutation each epoch)
    big = ct.sample_batches(4, 400, scheme="reshuffle", rng=6)[0].reshape(100, 4)
    assert len({tuple(r) for r in big}) > 10


# --- models refuse what they cannot answer --------------------------------------------------------------

QUAD = ct.QuadraticModel([[[1.0, 0.0], [0.0, 2.0]], [[3.0, 1.0], [1.0, 1.0]]], [[1.0, 0.0], [0.0, -1.0]])


@pytest.mark.parametrize("gradient", [QUAD.gradient, QUAD.gradient_maps(0.1).gradient], ids=["model", "maps"])
@pytest.mark.parametrize("index", [-1, 2, 5, [0, -1]])
def test_gradient_refuses_batches_out_of_range(gradient, index):
    with pytest.raises(ValueError, match=r"^index: expected batch indices in \[0, 1\]"):
        gradient(np.zeros((2, 2)), index)


@pytest.mark.parametrize("hvp", [QUAD.hvp, QUAD.gradient_maps(0.1).hvp], ids=["model", "maps"])
@pytest.mark.parametrize(("theta", "v", "index", "error", "name"), [
    ("abc", [1.0, 0.0], 0, TypeError, "theta"),
    ([np.nan, 0.0], [1.0, 0.0], 0, ValueError, "theta"),
    ([0.0, 0.0, 0.0], [1.0, 0.0], 0, ValueError, "theta"),
    ([0.0, 0.0], "x", 0, TypeError, "v"),
    ([0.0, 0.0], [np.inf, 0.0], 0, ValueError, "v"),
    ([0.0, 0.0], [1.0], 0, ValueError, "v"),
    ([0.0, 0.0], [1.0, 0.0], -1, ValueError, "index"),
    ([0.0, 0.0], [1.0, 0.0], 5, ValueError, "index"),
])
def test_hvp_validates_its_arguments(hvp, theta, v, index, error, name):
    with pytest.raises(error, match=f"^{name}:"):
        hvp(theta, v, index)


def test_hvp_is_the_hessian_times_v_on_stacks():
    theta = np.zeros((3, 2))
    v = np.arange(6.0).reshape(3, 2)
    np.testing.assert_allclose(QUAD.hvp(theta, v, [0, 1, 1]), np.einsum("kij,kj->ki", QUAD.hessians[[0, 1, 1]], v))


@pytest.mark.parametrize(("make", "name"), [
    (lambda: ct.QuadraticModel([[[1e300]]], [[1e300]]), "centers"),  # linear term H c = inf
    (lambda: ct.QuadraticModel([[[1e200]]], [[1e100]]), "centers"),  # loss constant c H c / 2 = inf
    (lambda: ct.LinearRegressionModel([[1e200]], [1.0]), "X"),  # Hessian x xᵀ = inf
    (lambda: ct.LinearRegressionModel([[1.0]], [1e200]), "y"),  # constant y² / 2 = inf
])
def test_models_refuse_inputs_that_overflow(make, name):
    with pytest.raises(ValueError, match=f"^{name}: .*overflow"):
        make()


@pytest.mark.parametrize("method", ["gradient", "batch_loss", "loss", "full_gradient"])
def test_model_evaluation_that_overflows_is_refused(method):
    model = ct.QuadraticModel([[[1e10]]], [[0.0]])
    args = ([1e300],) if method in ("loss", "full_gradient") else ([1e300], 0)
    with pytest.raises(ValueError, match=r"^theta: .*overflow"):
        getattr(model, method)(*args)


def test_sgd_maps_that_overflow_name_the_learning_rate():
    with pytest.raises(ValueError, match=r"^lr: .*overflow"):
        QUAD.sgd_maps(1e308)


# --- maps refuse to return inf -----------------------------------------------------------------------


def test_apply_that_overflows_raises_divergence():
    maps = ct.AffineMaps([[[1e300]]], [[0.0]])
    with pytest.raises(ct.DivergenceError, match=r"^theta: .*overflow"):
        maps.apply([1e300], 0)
    with pytest.raises(ct.DivergenceError, match=r"^theta: .*overflow"):
        maps.word([0]).apply([1e300])


def test_compositions_that_overflow_raise_divergence():
    big = ct.AffineMaps([[[1e300]]], [[0.0]])
    with pytest.raises(ct.DivergenceError, match=r"^A2?: .*overflow"):
        ct.compose_affine([[1e300]], [0.0], [[1e300]], [0.0])
    with pytest.raises(ct.DivergenceError, match=r"^word: .*overflow"):
        big.word([0, 0])
    with pytest.raises(ct.DivergenceError, match=r"^other: .*overflow"):
        big.compose(big)


@pytest.mark.parametrize(("args", "error", "name"), [
    (([[np.nan]], [0.0], [[1.0]], [0.0]), ValueError, "A"),
    (([[1.0]], [np.inf], [[1.0]], [0.0]), ValueError, "b"),
    (([[1.0]], [0.0], [[1.0]], "b2"), TypeError, "b2"),
    (([[1.0, 2.0]], [0.0], [[1.0]], [0.0]), ValueError, "A"),
    (([[1.0]], [0.0, 1.0], [[1.0]], [0.0]), ValueError, "b"),
    ((np.eye(2), [0.0, 1.0], np.eye(3), np.zeros(3)), ValueError, "A2"),
    ((np.zeros((2, 2, 2)), np.zeros((2, 2)), np.zeros((3, 2, 2)), np.zeros((3, 2))), ValueError, "A2"),
    ((np.eye(2), np.zeros((2, 2)), np.eye(2), np.zeros((3, 2))), ValueError, "b2"),
    ((1.0, [0.0], [[1.0]], [0.0]), ValueError, "A"),
])
def test_compose_affine_validates_every_argument(args, error, name):
    with pytest.raises(error, match=f"^{name}:"):
        ct.compose_affine(*args)


# --- sampling: sizes checked first, every kind of rng, SeedSequences not consumed ------------------------


def test_huge_numbers_of_chains_are_refused_before_any_generator_is_built():
    import time

    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"^n_chains: expected an integer in \[1, \d+\]"):
        ct.sample_batches(2, 10, n_chains=10**7, rng=0)
    with pytest.raises(ValueError, match=r"^n_chains:"):
        ct.chain_generators(10**7, rng=0)
    assert time.perf_counter() - start < 1.0


def test_huge_outputs_are_refused_with_the_limit_stated():
    with pytest.raises(ValueError, match=r"^n_steps: .*1 GiB"):
        ct.sample_batches(2, 10**12, rng=0)
    with pytest.raises(ValueError, match=r"^n_steps: .*1 GiB"):
        ct.sample_batches(2, 2**20, n_chains=2**10, rng=0)


def test_sample_batches_draws_chains_in_chunks_with_the_same_streams(monkeypatch):
    import contraction.core.sampling as sampling

    whole = ct.sample_batches(3, 7, n_chains=10, probs=[0.2, 0.3, 0.5], rng=4)
    monkeypatch.setattr(sampling, "_CHUNK_CHAINS", 3)
    assert np.array_equal(ct.sample_batches(3, 7, n_chains=10, probs=[0.2, 0.3, 0.5], rng=4), whole)
    gens = ct.chain_generators(10, rng=4)
    p = np.array([0.2, 0.3, 0.5])
    assert np.array_equal(whole, np.stack([g.choice(3, size=7, p=p) for g in gens]))


@pytest.mark.parametrize("make", [lambda: np.random.PCG64(0), lambda: np.random.Philox(1)])
def test_bit_generators_are_accepted(make):
    out = ct.sample_batches(3, 5, n_chains=2, rng=make())
    assert out.shape == (2, 5)
    assert len(ct.chain_generators(2, rng=make())) == 2
    assert np.array_equal(ct.sample_batches(3, 5, n_chains=2, rng=make()), out)


@pytest.mark.parametrize("bad", [True, False, np.bool_(True)])
def test_booleans_are_not_seeds(bad):
    with pytest.raises(TypeError, match=r"^rng: expected .*BitGenerator"):
        ct.sample_batches(2, 3, rng=bad)


def test_the_same_seed_sequence_gives_the_same_batches_and_is_not_consumed():
    seq = np.random.SeedSequence(5)
    first = ct.sample_batches(4, 10, n_chains=3, rng=seq)
    assert np.array_equal(ct.sample_batches(4, 10, n_chains=3, rng=seq), first)
    assert seq.n_children_spawned == 0
    assert np.array_equal(ct.sample_batches(4, 10, n_chains=3, rng=np.random.SeedSequence(5)), first)
    gens = ct.chain_generators(2, rng=seq)
    assert [g.random() for g in gens] == [g.random() for g in ct.chain_generators(2, rng=seq)]
    assert seq.n_children_spawned == 0
