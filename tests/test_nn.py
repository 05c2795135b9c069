"""The numpy networks: exact derivatives, batching, validation, iteration, data sets."""

import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import contraction as ct
from contraction import nn
from contraction.nn.datasets import Dataset, load_digits_data, teacher_student_data

DATA = teacher_student_data(n_train=48, n_test=24, n_features=16, n_classes=3, rng=7)


def make(kind, **kw):
    if kind == "mlp":
        return nn.MLP(DATA.X_train, DATA.y_train, **{"hidden": 6, "batch_size": 8, **kw})
    if kind == "mlp2":
        return nn.MLP(DATA.X_train, DATA.y_train, **{"hidden": (5, 4), "batch_size": 8, **kw})
    return nn.CNN(DATA.X_train, DATA.y_train, **{"channels": 2, "hidden": 3, "batch_size": 8, **kw})


NETS = [
    ("mlp", "tanh", 0.0),
    ("mlp", "softplus", 0.05),
    ("mlp2", "tanh", 0.01),
    ("mlp2", "softplus", 0.0),
    ("cnn", "tanh", 0.01),
    ("cnn", "softplus", 0.0),
]
NET_IDS = [f"{k}-{a}-wd{w}" for k, a, w in NETS]


@pytest.fixture(params=NETS, ids=NET_IDS)
def net(request):
    kind, act, wd = request.param
    return make(kind, activation=act, weight_decay=wd)


NET2 = make("mlp2", activation="softplus", weight_decay=0.01)


def stack(net, K, rng, scale=0.7):
    return scale * rng.normal(size=(K, net.dim))


# --- exact derivatives --------------------------------------------------------------------
def test_gradient_matches_central_differences(net, rng):
    theta = stack(net, 3, rng)
    index = np.array([0, 2, 5])
    g = net.gradient(theta, index)
    eps = 1e-5
    for _ in range(3):
        u = rng.normal(size=net.dim)
        up, down = net.batch_loss(theta + eps * u, index), net.batch_loss(theta - eps * u, index)
        fd = (up - down) / (2 * eps)
        np.testing.assert_allclose(g @ u, fd, rtol=1e-6, atol=1e-8)


def test_gradient_matches_coordinate_differences(rng):
    net = make("cnn", weight_decay=0.02)
    theta = stack(net, 1, rng)[0]
    eps = 1e-6
    E = np.eye(net.dim)
    fd = (net.batch_loss(theta + eps * E, 1) - net.batch_loss(theta - eps * E, 1)) / (2 * eps)
    np.testing.assert_allclose(net.gradient(theta, 1), fd, rtol=1e-5, atol=1e-8)


def test_hvp_matches_differences_of_gradients(net, rng):
    theta = stack(net, 3, rng)
    index = np.array([1, 1, 4])
    v = rng.normal(size=(3, net.dim))
    hv = net.hvp(theta, v, index)
    # Central differences have error O(eps²); the exact R-operator must agree to it.
    errors = []
    for eps in (1e-3, 1e-4):
        up, down = net.gradient(theta + eps * v, index), net.gradient(theta - eps * v, index)
        fd = (up - down) / (2 * eps)
        errors.append(np.abs(fd - hv).max() / np.abs(hv).max())
    assert errors[1] < 1e-5
    assert errors[1] < errors[0] / 50  # the differences converge to hv at second order


def test_hvp_is_symmetric_and_linear(net, rng):
    theta = stack(net, 2, rng)
    index = np.array([0, 3])
    u, v = rng.normal(size=(2, 2, net.dim))
    hu, hv = net.hvp(theta, u, index), net.hvp(theta, v, index)
    np.testing.assert_allclose(np.sum(u * hv, 1), np.sum(v * hu, 1), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(net.hvp(theta, 2 * u - v, index), 2 * hu - hv, atol=1e-10)


def test_weight_decay_adds_lambda_theta_and_lambda_v(rng):
    plain, decayed = make("mlp"), make("mlp", weight_decay=0.3)
    theta, v = rng.normal(size=(2, plain.dim))
    dg = decayed.gradient(theta, 2) - plain.gradient(theta, 2)
    np.testing.assert_allclose(dg, 0.3 * theta, atol=1e-12)
    dh = decayed.hvp(theta, v, 2) - plain.hvp(theta, v, 2)
    np.testing.assert_allclose(dh, 0.3 * v, atol=1e-12)
    df = decayed.batch_loss(theta, 2) - plain.batch_loss(theta, 2)
    assert np.isclose(df, 0.15 * theta @ theta)


def test_dense_hessian_from_hvp_and_lipschitz_estimate(rng):
    net = make("mlp", weight_decay=0.05)
    theta = stack(net, 1, rng)[0]
    P = net.dim
    H = net.hvp(np.broadcast_to(theta, (P, P)), np.eye(P), np.full(P, 3))  # all columns at once
    np.testing.assert_allclose(H, H.T, atol=1e-10)
    h = 0.4
    exact = np.abs(1 - h * np.linalg.eigvalsh(H)).max()
    est = nn.estimate_lipschitz(net.sgd_maps(h), theta, 3, rng=0, max_iter=2000, tol=1e-12)
    assert est <= exact * (1 + 1e-9)
    assert est >= exact * (1 - 1e-3)


def test_lipschitz_estimate_is_vectorized(rng):
    net = make("mlp", weight_decay=0.05)
    theta = stack(net, 3, rng)
    maps = net.sgd_maps(0.2)
    est = nn.estimate_lipschitz(maps, theta, np.array([0, 1, 2]), rng=1, max_iter=30)
    assert est.shape == (3,)
    one = nn.estimate_lipschitz(maps, theta[1], 1, rng=1, max_iter=30)
    assert np.ndim(one) == 0 and np.isfinite(one)


# --- batching and shapes ---------------------------------------------------------------------
def test_stack_equals_loop_over_rows(net, rng):
    K = 4
    theta = stack(net, K, rng)
    v = rng.normal(size=(K, net.dim))
    index = np.array([5, 0, 5, 2])
    g, hv, f = net.gradient(theta, index), net.hvp(theta, v, index), net.batch_loss(theta, index)
    ev = net.evaluate(theta, DATA.X_test, DATA.y_test)
    for k in range(K):  # loop over rows only in the test oracle
        np.testing.assert_allclose(g[k], net.gradient(theta[k], index[k]), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(hv[k], net.hvp(theta[k], v[k], index[k]), rtol=1e-12, atol=1e-14)
        assert np.isclose(f[k], net.batch_loss(theta[k], index[k]), rtol=1e-13)
        one = net.evaluate(theta[k], DATA.X_test, DATA.y_test)
        assert np.isclose(ev.loss[k], one.loss, rtol=1e-12) and ev.accuracy[k] == one.accuracy


@given(theta=hnp.arrays(np.float64, (3, NET2.dim), elements=st.floats(-2.0, 2.0)),
       v=hnp.arrays(np.float64, NET2.dim, elements=st.floats(-1.0, 1.0)),
       index=hnp.arrays(np.int64, 3, elements=st.integers(0, NET2.n_batches - 1)))
def test_a_stack_is_computed_row_by_row(theta, v, index):
    net = NET2
    g, hv = net.gradient(theta, index), net.hvp(theta, v, index)
    for k in range(3):  # loop over rows only in the test oracle
        np.testing.assert_allclose(g[k], net.gradient(theta[k], index[k]), rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(hv[k], net.hvp(theta[k], v, index[k]), rtol=1e-12, atol=1e-13)


def test_large_stacks_are_split_into_blocks_consistently(rng):
    net = make("mlp")
    K = 3 * net._block_rows + 5
    theta = stack(net, K, rng)
    index = rng.integers(net.n_batches, size=K)
    g = net.gradient(theta, index)
    sel = np.array([0, net._block_rows, K - 1])
    np.testing.assert_allclose(g[sel], net.gradient(theta[sel], index[sel]), rtol=1e-12, atol=1e-14)


def test_shapes_and_broadcasting(net, rng):
    theta = stack(net, 3, rng)
    assert net.init_params(rng=0).shape == (net.dim,)
    assert net.gradient(theta[0], 1).shape == (net.dim,)
    assert net.gradient(theta, 1).shape == (3, net.dim)
    assert net.gradient(theta[0], [0, 1]).shape == (2, net.dim)
    assert net.hvp(theta, theta[0], [0, 1, 2]).shape == (3, net.dim)
    assert np.shape(net.batch_loss(theta[0], 0)) == ()
    assert net.loss(theta).shape == (3,) and np.shape(net.loss(theta[0])) == ()
    assert net.logits(theta, DATA.X_test).shape == (3, len(DATA.y_test), net.n_classes)
    assert net.batches.shape == (net.n_batches, net.batch_size)
    sizes = [fin * fout + fout for fin, fout in net.layer_shapes]
    assert sum(sizes) == net.dim
    layers = net.unpack(theta)
    assert [W.shape[1:] for W, _ in layers] == net.layer_shapes
    assert np.shares_memory(layers[0][0], theta)


def test_training_loss_and_gradient_are_batch_means(net, rng):
    theta = stack(net, 2, rng)
    m = net.n_batches
    per = np.stack([net.batch_loss(theta, i) for i in range(m)], axis=1)
    np.testing.assert_allclose(net.loss(theta), per.mean(axis=1), rtol=1e-12)
    grads = np.mean([net.gradient(theta, i) for i in range(m)], axis=0)
    np.testing.assert_allclose(net.full_gradient(theta), grads, rtol=1e-10, atol=1e-13)
    ev = net.evaluate(theta)
    decay = 0.5 * net.weight_decay * np.sum(theta**2, 1)
    np.testing.assert_allclose(ev.loss + decay, net.loss(theta))
    assert np.all((ev.accuracy >= 0) & (ev.accuracy <= 1))


def test_batches_are_consecutive_rows(rng):
    net = make("mlp", batch_size=4)
    theta = stack(net, 1, rng)[0]
    # Batch 3 is rows 12..15: a one-batch network on those rows has the same loss.
    sub = nn.MLP(DATA.X_train[12:16], DATA.y_train[12:16], hidden=6, batch_size=4,
                 n_classes=net.n_classes)
    assert np.isclose(net.batch_loss(theta, 3), sub.batch_loss(theta, 0))
    np.testing.assert_array_equal(net.batches[3], np.arange(12, 16))


def test_mlp_logits_match_explicit_formula(rng):
    net = make("mlp2")
    theta = stack(net, 1, rng)[0]
    (W1, b1), (W2, b2), (W3, b3) = net.unpack(theta)
    X = DATA.X_test
    z = np.tanh(np.tanh(X @ W1 + b1) @ W2 + b2) @ W3 + b3
    np.testing.assert_allclose(net.logits(theta, X), z, atol=1e-12)


def test_cnn_logits_match_direct_convolution(rng):
    net = nn.CNN(DATA.X_train, DATA.y_train, channels=3, kernel_size=2, batch_size=8)
    theta = stack(net, 1, rng)[0]
    (Kmat, beta), (W2, b2) = net.unpack(theta)
    kernel = Kmat.reshape(2, 2, 3)
    images = DATA.X_test.reshape(-1, 4, 4)
    conv = np.zeros((len(images), 3, 3, 3))
    for i in range(3):  # direct valid cross-correlation, stride 1
        for j in range(3):
            conv[:, i, j] = np.einsum("nab,abc->nc", images[:, i:i + 2, j:j + 2], kernel) + beta
    z = np.tanh(conv).reshape(len(images), -1) @ W2 + b2  # (position, channel) order
    np.testing.assert_allclose(net.logits(theta, DATA.X_test), z, atol=1e-12)


def test_im2col_indices_gather_patches():
    idx = nn.im2col_indices((3, 4), 2)
    assert idx.shape == (2 * 3, 4)
    np.testing.assert_array_equal(idx[4], [5, 6, 9, 10])  # row 1, column 1


def test_init_params_is_reproducible_and_scaled():
    net = nn.MLP(np.zeros((4, 400)), np.array([0, 1, 0, 1]), hidden=300, batch_size=2)
    a, b = net.init_params(rng=5), net.init_params(rng=5)
    np.testing.assert_array_equal(a, b)
    W1, b1 = net.unpack(a)[0]
    assert np.all(b1 == 0) and abs(W1.std() * np.sqrt(400) - 1) < 0.02


def test_softmax_is_stable_for_huge_logits():
    net = make("mlp", hidden=(), batch_size=8)
    theta = np.zeros(net.dim)
    (_, b), = net.unpack(theta)
    b[:] = [1e4, 0.0, -1e4]  # logits far beyond exp's range; every example predicts class 0
    loss = net.evaluate(theta).loss
    expected = np.mean(np.where(DATA.y_train == 0, 0.0, np.where(DATA.y_train == 1, 1e4, 2e4)))
    assert np.isclose(loss, expected)
    g = net.gradient(theta, 0)
    assert np.all(np.isfinite(g)) and np.all(np.isfinite(net.hvp(theta, theta + 1.0, 0)))


def test_softplus_is_finite_for_large_inputs():
    X = np.full((2, 3), 1e3)
    net = nn.MLP(X, np.array([0, 1]), hidden=2, batch_size=2, activation="softplus")
    theta = np.ones(net.dim)
    assert np.all(np.isfinite(net.gradient(theta, 0)))
    assert np.all(np.isfinite(net.hvp(theta, theta, 0)))


# --- randomness: only from the rng argument ---------------------------------------------------
def _draws(rng):
    net = make("mlp")
    theta = net.init_params(rng=rng)
    maps = net.sgd_maps(0.2)
    return {
        "init_params": theta,
        "estimate_lipschitz": nn.estimate_lipschitz(maps, theta, 0, rng=rng, max_iter=3),
        "teacher_student_data": teacher_student_data(n_train=16, n_test=8, temperature=1.0, rng=rng).y_train,
        "load_digits_data": load_digits_data(rng=rng).y_test,
    }


def test_every_draw_comes_from_the_rng():
    a, b, c = _draws(3), _draws(3), _draws(4)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
        assert not np.array_equal(a[name], c[name]), name
    gen_a, gen_b = np.random.default_rng(9), np.random.default_rng(9)
    np.testing.assert_array_equal(MLP0.init_params(rng=gen_a), MLP0.init_params(rng=gen_b))


def test_lipschitz_n_iter_is_a_deprecated_alias(rng):
    maps = MLP0.sgd_maps(0.2)
    theta = MLP0.init_params(rng=0)
    with pytest.warns(DeprecationWarning, match="max_iter"):
        old = nn.estimate_lipschitz(maps, theta, 1, rng=0, n_iter=5)
    assert old == nn.estimate_lipschitz(maps, theta, 1, rng=0, max_iter=5)


def test_public_names_are_importable():
    import contraction.nn.datasets as datasets

    for name in nn.__all__:
        assert getattr(nn, name).__doc__, name
    assert {"MLP", "CNN", "Evaluation", "estimate_lipschitz", "im2col_indices"} <= set(nn.__all__)
    assert nn.Dataset is datasets.Dataset and nn.load_digits_data is datasets.load_digits_data


# --- validation ------------------------------------------------------------------------------
MLP0 = make("mlp")
X, Y = DATA.X_train, DATA.y_train
BAD = [
    ("X", ValueError, lambda: nn.MLP(X[:, 0], Y)),
    ("X", TypeError, lambda: nn.MLP("x", Y)),
    ("X", ValueError, lambda: nn.MLP(np.full((48, 16), np.nan), Y)),
    ("y", ValueError, lambda: nn.MLP(X, Y[:-1], batch_size=8)),
    ("y", TypeError, lambda: nn.MLP(X, Y.astype(float), batch_size=8)),
    ("y", ValueError, lambda: nn.MLP(X, Y - 5, batch_size=8)),
    ("y", ValueError, lambda: nn.MLP(X, Y, batch_size=8, n_classes=2)),
    ("batch_size", ValueError, lambda: nn.MLP(X, Y, batch_size=7)),
    ("batch_size", TypeError, lambda: nn.MLP(X, Y, batch_size=8.0)),
    ("weight_decay", ValueError, lambda: nn.MLP(X, Y, batch_size=8, weight_decay=-1.0)),
    ("weight_decay", TypeError, lambda: nn.MLP(X, Y, batch_size=8, weight_decay="0")),
    ("activation", ValueError, lambda: nn.MLP(X, Y, batch_size=8, activation="relu")),
    ("hidden", ValueError, lambda: nn.MLP(X, Y, batch_size=8, hidden=0)),
    ("n_classes", ValueError, lambda: nn.MLP(X, Y, batch_size=8, n_classes=1)),
    ("image_shape", ValueError, lambda: nn.CNN(X[:, :15], Y, batch_size=8)),
    ("image_shape", ValueError, lambda: nn.CNN(X, Y, image_shape=(3, 5), batch_size=8)),
    ("kernel_size", ValueError, lambda: nn.CNN(X, Y, kernel_size=5, batch_size=8)),
    ("channels", ValueError, lambda: nn.CNN(X, Y, channels=0, batch_size=8)),
    ("theta", ValueError, lambda: MLP0.gradient(np.zeros(3), 0)),
    ("theta", ValueError, lambda: MLP0.gradient(np.zeros((2, 2, MLP0.dim)), 0)),
    ("theta", ValueError, lambda: MLP0.loss(np.full(MLP0.dim, np.inf))),
    ("index", ValueError, lambda: MLP0.gradient(np.zeros(MLP0.dim), MLP0.n_batches)),
    ("index", ValueError, lambda: MLP0.gradient(np.zeros((2, MLP0.dim)), [0, 1, 2])),
    ("index", TypeError, lambda: MLP0.gradient(np.zeros(MLP0.dim), 0.5)),
    ("index", TypeError, lambda: MLP0.batch_loss(np.zeros(MLP0.dim), None)),
    ("v", ValueError, lambda: MLP0.hvp(np.zeros(MLP0.dim), np.zeros(2), 0)),
    ("X", ValueError, lambda: MLP0.evaluate(np.zeros(MLP0.dim), np.zeros((3, 2)), [0, 1, 2])),
    ("y", ValueError, lambda: MLP0.evaluate(np.zeros(MLP0.dim), X, None)),
    ("y", ValueError, lambda: MLP0.evaluate(np.zeros(MLP0.dim), X, np.full(48, 9))),
    ("lr", ValueError, lambda: MLP0.sgd_maps(0.0)),
    ("maps", TypeError, lambda: nn.estimate_lipschitz(object(), np.zeros(3), 0)),
    ("index", ValueError, lambda: nn.estimate_lipschitz(MLP0.sgd_maps(0.1), np.zeros((2, MLP0.dim)), [0, 1, 2])),
    ("index", ValueError, lambda: nn.estimate_lipschitz(MLP0.sgd_maps(0.1), np.zeros(MLP0.dim), 99)),
    ("max_iter", ValueError, lambda: nn.estimate_lipschitz(MLP0.sgd_maps(0.1), np.zeros(MLP0.dim), 0, max_iter=0)),
    ("tol", ValueError, lambda: nn.estimate_lipschitz(MLP0.sgd_maps(0.1), np.zeros(MLP0.dim), 0, tol=-1.0)),
    ("rng", TypeError, lambda: MLP0.init_params(rng="seed")),
    ("activation", TypeError, lambda: nn.MLP(X, Y, batch_size=8, activation=None)),
    ("weight_decay", TypeError, lambda: nn.MLP(X, Y, batch_size=8, weight_decay=True)),
    ("n_train", ValueError, lambda: load_digits_data(n_train=5000)),
    ("scaling", ValueError, lambda: load_digits_data(scaling="minmax")),
    ("n_classes", ValueError, lambda: teacher_student_data(n_classes=1)),
    ("temperature", ValueError, lambda: teacher_student_data(temperature=-1.0)),
    ("n_train", TypeError, lambda: teacher_student_data(n_train=2.5)),
]


@pytest.mark.parametrize("name,exc,call", BAD, ids=[f"{c[0]}-{k}" for k, c in enumerate(BAD)])
def test_bad_input_names_the_argument(name, exc, call):
    with pytest.raises(exc) as info:
        call()
    assert str(info.value).startswith(f"{name}:"), str(info.value)


def test_map_family_rejects_wrong_parameter_length():
    with pytest.raises(ValueError, match=r"^theta:"):
        ct.forward_iterates(MLP0.sgd_maps(0.1), np.zeros(3), [0, 1])


# --- the map family and the iteration engines --------------------------------------------------
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_backward_all_n_equals_separate_restarts(kind, rng):
    net = make(kind, weight_decay=0.01)
    maps = net.sgd_maps(0.3)
    assert isinstance(maps, ct.GradientMaps) and maps.n_maps == net.n_batches
    theta0 = net.init_params(rng=1)
    idx = ct.sample_batches(net.n_batches, 12, rng=2)
    fwd = ct.forward_iterates(maps, theta0, idx)
    bwd = ct.backward_iterates(maps, theta0, idx)
    assert fwd.shape == bwd.shape == (1, 13, net.dim)
    for n in (1, 4, 12):
        alone = ct.backward_iterates(maps, theta0, idx, save_steps=[n])[0, 0]
        np.testing.assert_allclose(bwd[0, n], alone, rtol=0, atol=1e-13)
        x = theta0
        for i in idx[0, :n][::-1]:  # T_{ξ1} ∘ … ∘ T_{ξn}: ξ_n first
            x = x - 0.3 * net.gradient(x, i)
        np.testing.assert_allclose(bwd[0, n], x, atol=1e-13)
    y = theta0
    for i in idx[0]:
        y = y - 0.3 * net.gradient(y, i)
    np.testing.assert_allclose(fwd[0, -1], y, atol=1e-13)


def test_iterates_with_many_chains(rng):
    net = make("mlp", weight_decay=0.01)
    maps = net.sgd_maps(0.2)
    theta0 = np.stack([net.init_params(rng=s) for s in range(3)])
    idx = ct.sample_batches(net.n_batches, 6, n_chains=3, rng=4)
    bwd = ct.backward_iterates(maps, theta0, idx, save_steps=[2, 6])
    for c in range(3):
        one = ct.backward_iterates(maps, theta0[c], idx[c], save_steps=[2, 6])[0]
        np.testing.assert_allclose(bwd[c], one, atol=1e-13)


def test_map_hvp_matches_network_hvp(rng):
    net = make("cnn", weight_decay=0.01)
    maps = net.sgd_maps(0.1)
    theta, v = stack(net, 2, rng), rng.normal(size=(2, net.dim))
    np.testing.assert_allclose(maps.hvp(theta, v, np.array([0, 3])), net.hvp(theta, v, [0, 3]))
    np.testing.assert_allclose(maps.gradient(theta[0], 2), net.gradient(theta[0], 2))


# --- data sets -----------------------------------------------------------------------------------
def test_digits_split_is_fixed_and_scaled():
    a, b = load_digits_data(), load_digits_data()
    assert a.X_train.shape == (1440, 64) and a.X_test.shape == (357, 64)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert a.image_shape == (8, 8) and a.n_classes == 10
    assert set(np.unique(a.y_train)) == set(range(10))
    s = load_digits_data(n_train=1000, scaling="standard")
    assert np.allclose(s.X_train.mean(0), 0, atol=1e-12)
    assert not np.array_equal(load_digits_data(rng=1).y_train, a.y_train)


def test_digits_without_scikit_learn_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r'pip install "contraction\[data\]"'):
        load_digits_data()


def test_teacher_student_data():
    d = teacher_student_data(n_train=200, n_test=100, n_features=9, n_classes=3, rng=0)
    assert isinstance(d, Dataset) and d.image_shape == (3, 3)
    assert d.X_train.shape == (200, 9) and d.y_test.shape == (100,)
    assert len(np.unique(d.y_train)) == 3
    noisy = teacher_student_data(n_train=200, n_test=100, n_features=9, n_classes=3,
                                 temperature=1.0, rng=0)
    assert 0 < np.mean(noisy.y_train != d.y_train) < 0.8
    assert teacher_student_data(n_features=10, rng=0).image_shape is None
    with pytest.raises(ValueError, match="read-only"):
        d.X_train[0, 0] = 1.0


# --- the proof-of-concept claim (SPEC C13), on the digits ------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_backward_iterates_settle_on_digits(kind):
    data = load_digits_data()
    if kind == "mlp":
        net = nn.MLP(data.X_train, data.y_train, hidden=16, batch_size=16, weight_decay=1e-2)
    else:
        net = nn.CNN(data.X_train, data.y_train, channels=4, batch_size=16, weight_decay=1e-2)
    maps = net.sgd_maps(0.5)
    warm = ct.sample_batches(net.n_batches, 1000, rng=1000)
    theta0 = ct.forward_iterates(maps, net.init_params(rng=0), warm, save_steps=[1000])[0, 0]
    idx = ct.sample_batches(net.n_batches, 200, rng=0)
    fwd = ct.forward_iterates(maps, theta0, idx)[0]
    bwd = ct.backward_iterates(maps, theta0, idx)[0]
    step_f = np.linalg.norm(np.diff(fwd, axis=0), axis=1)
    step_b = np.linalg.norm(np.diff(bwd, axis=0), axis=1)
    assert step_b[-50:].mean() < 0.25 * step_f[-50:].mean()
    assert step_b[-50:].mean() < 0.25 * step_b[:10].mean()
    tv_f, tv_b = (np.abs(np.diff(net.loss(x))).sum() for x in (fwd, bwd))
    assert tv_b < 0.25 * tv_f
