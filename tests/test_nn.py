"""The numpy networks: exact derivatives, batching, validation, iteration, data sets."""

import contextlib
import json
import os
import resource
import signal
import sys

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import contraction as ct
import contraction.experiments as ex
from contraction import nn
from contraction.nn import _passes
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


@pytest.mark.parametrize("activation", ["tanh", "softplus"])
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_hvp_includes_the_second_derivative_of_the_activation(kind, activation, monkeypatch):
    """∇²f v has a term σ''(z) · (backpropagated δ) · R{z}; the check is made where that term is large."""
    net = make(kind, activation=activation, weight_decay=0.0)  # no decay: all curvature from the network
    gen = np.random.default_rng(2024)
    theta = 0.8 * gen.normal(size=(2, net.dim))  # pre-activations of order 1, where σ'' is far from 0
    v = gen.normal(size=(2, net.dim))
    index = np.array([1, 4])
    eps = 1e-4
    fd = (net.gradient(theta + eps * v, index) - net.gradient(theta - eps * v, index)) / (2 * eps)

    def error(hv):
        return np.abs(hv - fd).max() / np.abs(fd).max()

    assert error(net.hvp(theta, v, index)) < 1e-6  # central differences are exact to O(eps²)
    # The point is sensitive: the same product without the σ'' term misses by far more than the tolerance.
    real = _passes.second_derivatives
    monkeypatch.setattr(_passes, "second_derivatives", lambda name, z, a: (real(name, z, a)[0], np.zeros_like(z)))
    assert error(net.hvp(theta, v, index)) > 1e-3


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_gradient_includes_the_first_derivative_of_the_activation(kind):
    """∇f back-propagates through σ'(z); checked against differences of the loss along every coordinate."""
    for activation in ("tanh", "softplus"):
        net = make(kind, activation=activation, weight_decay=0.1)
        theta = 0.8 * np.random.default_rng(7).normal(size=net.dim)
        eps = 1e-6
        E = np.eye(net.dim)
        fd = (net.batch_loss(theta + eps * E, 2) - net.batch_loss(theta - eps * E, 2)) / (2 * eps)
        np.testing.assert_allclose(net.gradient(theta, 2), fd, rtol=1e-6, atol=1e-8, err_msg=activation)


def test_hvp_is_symmetric_and_linear(net, rng):
    theta = stack(net, 2, rng)
    index = np.array([0, 3])
    u, v = rng.normal(size=(2, 2, net.dim))
    hu, hv = net.hvp(theta, u, index), net.hvp(theta, v, index)
    np.testing.assert_allclose(np.sum(u * hv, 1), np.sum(v * hu, 1), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(net.hvp(theta, 2 * u - v, index), 2 * hu - hv, atol=1e-10)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_weight_decay_adds_lambda_theta_and_lambda_v(rng, kind):
    plain, decayed = make(kind), make(kind, weight_decay=0.3)
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


# --- fuzz: odd input gives finite, well-shaped output or a ValueError/TypeError naming the argument ---
CALL_SECONDS = 5.0
EXTRA_ADDRESS_SPACE = 2 * 2**30


class Hang(Exception):
    """A call ran past its time limit."""


@contextlib.contextmanager
def bounded(seconds=CALL_SECONDS):
    """A time limit and an address-space limit for one call, so a hang or a blow-up fails fast."""
    if not hasattr(signal, "setitimer") or not os.path.exists("/proc/self/status"):
        yield
        return

    def alarm(signum, frame):
        raise Hang(f"call still running after {seconds} s")

    with open("/proc/self/status") as fh:
        vm = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize"))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = vm + EXTRA_ADDRESS_SPACE if hard == resource.RLIM_INFINITY else min(vm + EXTRA_ADDRESS_SPACE, hard)
    old = signal.signal(signal.SIGALRM, alarm)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        signal.signal(signal.SIGALRM, old)


def outcome(call, names, *, divergence=False):
    """Run ``call`` under the limits: its result, or ``None`` when it refused its input properly.

    A refusal is a ValueError or TypeError whose message starts with one of
    ``names`` (a DivergenceError too, when ``divergence``); anything else fails.
    """
    allowed = (ValueError, TypeError, ct.DivergenceError) if divergence else (ValueError, TypeError)
    with bounded():
        try:
            result = call()
        except allowed as exc:
            message = str(exc)
            if not isinstance(exc, ct.DivergenceError):
                assert message.split(":")[0].split(".")[0] in names, f"{type(exc).__name__}: {message}"
            assert "\n" not in message, message
            event(f"refused: {type(exc).__name__}")
            return None
    event("returned")
    return result


def finite(value, shape):
    arr = np.asarray(value)
    assert arr.shape == shape, (arr.shape, shape)
    assert np.all(np.isfinite(arr)), arr


HUGE = st.sampled_from([10**9, 10**12, 2**62])
RNGS = st.one_of(
    st.none(), st.integers(0, 2**70), st.integers(-5, -1), st.sampled_from([True, False, "x", 1.5, [1, 2]]),
    st.floats(allow_nan=True), st.builds(np.random.PCG64, st.integers(0, 99)),
    st.builds(np.random.default_rng, st.integers(0, 99)), st.builds(np.random.SeedSequence, st.integers(0, 99)),
    st.builds(object),
)
ODD = st.sampled_from([None, "3", 2.5, True, float("nan"), [], (), object()])
DTYPES = st.sampled_from([np.float64, np.float32, np.int64, np.bool_, np.complex128])
FUZZ_DATA = teacher_student_data(n_train=16, n_test=8, n_features=9, n_classes=3, rng=1)
FUZZ_NETS = {
    "mlp": nn.MLP(FUZZ_DATA.X_train, FUZZ_DATA.y_train, hidden=4, batch_size=4, weight_decay=0.1),
    "cnn": nn.CNN(FUZZ_DATA.X_train, FUZZ_DATA.y_train, channels=2, kernel_size=2, batch_size=4,
                  activation="softplus"),
}
NET_ARGS = {"theta", "index", "v", "X", "y", "rng", "lr", "probs"}


def arrays_like(dim, rows=3):
    """Parameter stacks of the right and wrong shapes, dtypes and values (nan, inf, 1e308)."""
    shapes = st.one_of(st.just((dim,)), st.tuples(st.integers(0, rows), st.just(dim)),
                       hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    return st.one_of(hnp.arrays(DTYPES, shapes), hnp.arrays(np.float64, shapes, elements=st.floats(-3.0, 3.0)))


def indices(m, rows=3):
    return st.one_of(st.integers(-2, m + 1), hnp.arrays(np.int64, st.integers(0, rows), elements=st.integers(-1, m)),
                     hnp.arrays(DTYPES, hnp.array_shapes(min_dims=0, max_dims=2, max_side=3)), ODD)


@pytest.mark.parametrize("kind", list(FUZZ_NETS))
@given(data=st.data())
def test_fuzz_network_methods(kind, data):
    net = FUZZ_NETS[kind]
    theta = data.draw(arrays_like(net.dim), label="theta")
    index = data.draw(indices(net.n_batches), label="index")
    v = data.draw(st.one_of(arrays_like(net.dim), ODD), label="v")
    K = np.shape(theta)[0] if np.ndim(theta) == 2 else None
    rows = K if K is not None else (len(index) if isinstance(index, np.ndarray) and index.ndim == 1 else None)
    expected = (net.dim,) if rows is None else (rows, net.dim)
    for method, call in [("gradient", lambda: net.gradient(theta, index)), ("hvp", lambda: net.hvp(theta, v, index)),
                         ("batch_loss", lambda: net.batch_loss(theta, index))]:
        out = outcome(call, NET_ARGS)
        if out is not None:
            want = np.shape(v) if method == "hvp" and np.ndim(v) == 2 else expected
            finite(out, want if method != "batch_loss" else expected[:-1])
    for method, call in [("loss", lambda: net.loss(theta)), ("full_gradient", lambda: net.full_gradient(theta)),
                         ("evaluate", lambda: net.evaluate(theta).loss)]:
        out = outcome(call, NET_ARGS)
        if out is not None:
            finite(out, np.shape(theta) if method == "full_gradient" else np.shape(theta)[:-1])


@pytest.mark.parametrize("kind", list(FUZZ_NETS))
@given(data=st.data())
def test_fuzz_evaluate_logits_and_maps(kind, data):
    net = FUZZ_NETS[kind]
    theta = data.draw(st.one_of(st.just(net.init_params(rng=0)), arrays_like(net.dim)), label="theta")
    n = data.draw(st.integers(0, 5), label="n")
    X = data.draw(st.one_of(hnp.arrays(DTYPES, st.one_of(st.just((n, 9)), hnp.array_shapes(max_dims=3, max_side=4))),
                            ODD), label="X")
    y = data.draw(st.one_of(hnp.arrays(np.int64, st.just((n,)), elements=st.integers(-1, 3)), ODD), label="y")
    ev = outcome(lambda: net.evaluate(theta, X, y), NET_ARGS)
    if ev is not None:
        finite(ev.loss, np.shape(theta)[:-1])
        assert np.all((ev.accuracy >= 0) & (ev.accuracy <= 1))
    z = outcome(lambda: net.logits(theta, X), NET_ARGS)
    if z is not None:
        finite(z, (*np.shape(theta)[:-1], np.shape(X)[0], net.n_classes))
    rng = data.draw(RNGS, label="rng")
    p = outcome(lambda: net.init_params(rng), NET_ARGS)
    if p is not None:
        finite(p, (net.dim,))
    lr = data.draw(st.one_of(st.floats(allow_nan=True, allow_infinity=True), ODD), label="lr")
    probs = data.draw(st.one_of(st.none(), hnp.arrays(np.float64, st.integers(0, 6))), label="probs")
    maps = outcome(lambda: net.sgd_maps(lr, probs), NET_ARGS)
    if maps is not None:
        assert maps.n_maps == net.n_batches and maps.lr == lr > 0


def draw_arguments(data, table):
    """Valid values for every argument of ``table``, except at most one drawn from its odd values.

    Returns the odd argument's name (``None`` for none) and the keyword arguments.
    """
    odd = data.draw(st.sampled_from([None, *table]), label="odd argument")
    return odd, {name: data.draw(bad if name == odd else good, label=name) for name, (good, bad) in table.items()}


SIZES = st.one_of(st.integers(-2, 0), HUGE, ODD)  # odd sizes
FLOAT_ARRAYS = hnp.arrays(DTYPES, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5))
LIPSCHITZ_ARGS = {
    "maps": (st.builds(FUZZ_NETS["mlp"].sgd_maps, st.floats(1e-6, 1e3)),
             st.one_of(st.just(FUZZ_NETS["mlp"].sgd_maps(1e308)), ODD)),
    "theta": (st.one_of(st.just(FUZZ_NETS["mlp"].init_params(rng=0)),
                        hnp.arrays(np.float64, st.tuples(st.integers(0, 3), st.just(FUZZ_NETS["mlp"].dim)),
                                   elements=st.floats(-3, 3))),
              st.one_of(arrays_like(FUZZ_NETS["mlp"].dim), ODD)),
    "index": (st.integers(0, FUZZ_NETS["mlp"].n_batches - 1), indices(FUZZ_NETS["mlp"].n_batches)),
    "rng": (st.one_of(st.none(), st.integers(0, 2**64), st.builds(np.random.PCG64, st.integers(0, 9))), RNGS),
    "max_iter": (st.integers(1, 40), st.one_of(st.integers(-1, 0), ODD)),
    "tol": (st.floats(0.0, 1.0), st.one_of(st.sampled_from([-1.0, float("nan"), float("inf")]), ODD)),
}


@given(data=st.data())
def test_fuzz_estimate_lipschitz(data):
    odd, kw = draw_arguments(data, LIPSCHITZ_ARGS)
    if odd != "theta" and np.ndim(kw["theta"]) == 2:  # one index per row of a stack
        kw["index"] = np.zeros(len(kw["theta"]), dtype=np.int64) if odd != "index" else kw["index"]
    est = outcome(lambda: nn.estimate_lipschitz(**kw), {odd} if odd else set())
    if est is not None:
        assert np.all(np.isfinite(est)) and np.all(np.asarray(est) >= 0)
        assert np.ndim(est) in (0, 1)


def labels(n, classes=3):
    return hnp.arrays(np.int64, n, elements=st.integers(0, classes - 1))


@st.composite
def network_data(draw, features=None):
    features = st.integers(1, 9) if features is None else features
    n = draw(st.sampled_from([4, 8]))
    return draw(hnp.arrays(np.float64, (n, draw(features)), elements=st.floats(-2, 2))), draw(labels(n))


MLP_ARGS = {
    "X": (st.none(), st.one_of(hnp.arrays(DTYPES, st.tuples(st.sampled_from([0, 4, 8]), st.integers(0, 9))),
                               FLOAT_ARRAYS, ODD)),
    "y": (st.none(), st.one_of(hnp.arrays(np.int64, st.sampled_from([4, 8]), elements=st.integers(-1, 4)),
                               FLOAT_ARRAYS, ODD)),
    "hidden": (st.one_of(st.integers(1, 6), st.lists(st.integers(1, 4), max_size=2)),
               st.one_of(SIZES, st.lists(st.one_of(st.integers(-1, 0), HUGE, ODD), min_size=1, max_size=2))),
    "batch_size": (st.sampled_from([1, 2, 4]), SIZES),
    "weight_decay": (st.floats(0.0, 10.0), st.one_of(st.sampled_from([-1.0, float("nan"), float("inf")]), ODD)),
    "activation": (st.sampled_from(["tanh", "softplus"]), st.sampled_from(["relu", None, 3])),
    "n_classes": (st.one_of(st.none(), st.integers(3, 6)), st.one_of(st.integers(-1, 2), HUGE, ODD)),
}
# A wrong number of rows may be blamed on the labels or the batch size as well as on X.
RELATED = {"X": {"X", "y", "batch_size"}, "y": {"y", "n_classes"}, "n_classes": {"n_classes", "y"}}


@given(data=st.data())
def test_fuzz_mlp_constructor(data):
    odd, kw = draw_arguments(data, MLP_ARGS)
    X, y = data.draw(network_data(), label="valid X, y")
    kw["X"] = X if kw["X"] is None and odd != "X" else kw["X"]
    kw["y"] = y if kw["y"] is None and odd != "y" else kw["y"]
    net = outcome(lambda: nn.MLP(**kw), RELATED.get(odd, {odd}))
    if net is not None:
        assert net.dim == sum(fin * fout + fout for fin, fout in net.layer_shapes) <= 2**24
        finite(net.gradient(np.zeros(net.dim), 0), (net.dim,))
    elif odd is None:
        pytest.fail("valid arguments were refused")


CNN_ARGS = {
    "image_shape": (st.sampled_from([None, (3, 3), [3, 3], np.array([3, 3])]),
                    st.one_of(st.tuples(SIZES, SIZES), st.lists(st.integers(0, 5), max_size=3),
                              hnp.arrays(DTYPES, hnp.array_shapes(max_dims=2, max_side=3)), st.just((2, 5)), ODD)),
    "channels": (st.integers(1, 4), SIZES),
    "kernel_size": (st.integers(1, 3), st.one_of(SIZES, st.just(4))),
    "hidden": (st.one_of(st.just(()), st.integers(1, 3)), SIZES),
    "batch_size": (st.sampled_from([1, 2, 4]), SIZES),
    "activation": (st.sampled_from(["tanh", "softplus"]), st.sampled_from(["relu", None, 3])),
}


@given(data=st.data())
def test_fuzz_cnn_constructor(data):
    odd, kw = draw_arguments(data, CNN_ARGS)
    X, y = data.draw(network_data(features=st.just(9)), label="valid 3 × 3 images")
    net = outcome(lambda: nn.CNN(X, y, **kw), {odd})
    if net is not None:
        finite(net.batch_loss(net.init_params(rng=0), 0), ())
        finite(net.hvp(net.init_params(rng=1), np.ones(net.dim), 0), (net.dim,))
    elif odd is None:
        pytest.fail("valid arguments were refused")
    shape, k = kw["image_shape"], kw["kernel_size"]
    idx = outcome(lambda: nn.im2col_indices(shape, k), {"image_shape", "kernel_size"})
    if idx is not None:
        h, w = (int(v) for v in shape)
        assert idx.shape == ((h - k + 1) * (w - k + 1), k * k) and idx.min() >= 0 and idx.max() < h * w


TEACHER_ARGS = {
    "n_train": (st.integers(1, 40), SIZES),
    "n_test": (st.integers(1, 40), SIZES),
    "n_features": (st.integers(1, 20), SIZES),
    "n_classes": (st.integers(2, 6), st.one_of(st.just(1), SIZES)),
    "hidden": (st.integers(1, 10), SIZES),
    "temperature": (st.one_of(st.just(0.0), st.floats(1e-300, 1e300)),
                    st.one_of(st.sampled_from([-1.0, float("nan"), float("inf")]), ODD)),
    "rng": (st.one_of(st.none(), st.integers(0, 2**64), st.builds(np.random.SeedSequence, st.integers(0, 9))), RNGS),
}


@given(data=st.data())
def test_fuzz_teacher_student_data(data):
    odd, kw = draw_arguments(data, TEACHER_ARGS)
    d = outcome(lambda: teacher_student_data(**kw), {odd})
    if d is not None:
        finite(d.X_train, (kw["n_train"], kw["n_features"]))
        finite(d.X_test, (kw["n_test"], kw["n_features"]))
        assert d.y_train.shape == (kw["n_train"],) and d.y_test.shape == (kw["n_test"],)
        assert d.y_train.min() >= 0 and d.y_train.max() < kw["n_classes"]
    elif odd is None:
        pytest.fail("valid arguments were refused")


def test_tiny_temperature_labels_by_the_largest_teacher_logit():
    """``softmax(z / T)`` of a tiny T is one-hot on the largest logit, not ``nan`` (and labels 0)."""
    exact = teacher_student_data(n_train=64, n_test=8, temperature=0.0, rng=5)
    tiny = teacher_student_data(n_train=64, n_test=8, temperature=1e-300, rng=5)
    np.testing.assert_array_equal(tiny.y_train, exact.y_train)


DIGITS_ARGS = {
    "n_train": (st.integers(1, 1796), st.one_of(st.sampled_from([0, 1797]), SIZES)),
    "scaling": (st.sampled_from(["unit", "standard"]), st.sampled_from(["minmax", 3, None])),
    "rng": (st.one_of(st.none(), st.integers(0, 2**64), st.builds(np.random.PCG64, st.integers(0, 9))), RNGS),
}


@given(data=st.data())
def test_fuzz_load_digits_data(data):
    odd, kw = draw_arguments(data, DIGITS_ARGS)
    d = outcome(lambda: load_digits_data(**kw), {odd})
    if d is not None:
        finite(d.X_train, (kw["n_train"], 64))
        assert len(d.y_train) + len(d.y_test) == 1797
    elif odd is None:
        pytest.fail("valid arguments were refused")


EXPERIMENT_ARGS = {  # valid tiny values, and odd ones
    "model": (st.sampled_from(["mlp", "cnn"]), st.one_of(st.sampled_from(["rnn", "MLP"]), ODD)),
    "data": (st.sampled_from(["synthetic", "synthetic", "digits"]), st.one_of(st.just("mnist"), ODD)),
    "steps": (st.integers(2, 5), st.one_of(st.integers(-1, 1), HUGE, ODD)),
    "batch_size": (st.sampled_from([4, 16, 32]), st.one_of(st.sampled_from([0, 7, 5000]), HUGE, ODD)),
    "lr": (st.one_of(st.floats(1e-3, 1.0), st.floats(1e-300, 1e3)),
           st.one_of(st.sampled_from([0.0, -1.0, float("nan"), float("inf")]), ODD)),
    "window": (st.integers(1, 7), st.one_of(st.integers(-1, 0), ODD)),
    "rng": (st.one_of(st.integers(0, 2**64), st.builds(np.random.PCG64, st.integers(0, 9)),
                      st.builds(np.random.default_rng, st.integers(0, 9))),
            st.one_of(st.integers(-5, -1), st.sampled_from([True, "x", 1.5]), st.builds(object))),
    "weight_decay": (st.floats(0.0, 1.0), st.one_of(st.sampled_from([-1.0, float("nan"), float("inf")]), ODD)),
    "warmup": (st.integers(0, 4), st.one_of(st.just(-1), HUGE, ODD)),
    "hidden": (st.integers(1, 6), st.one_of(st.integers(-1, 0), HUGE, ODD)),
}


@given(data=st.data())
def test_fuzz_run_nn_experiment(data):
    """A valid tiny run, or one argument made odd: a finite record, a refusal naming that argument, or divergence."""
    odd = data.draw(st.sampled_from([None, *EXPERIMENT_ARGS]), label="odd argument")
    kwargs = {name: data.draw(bad if name == odd else good, label=name)
              for name, (good, bad) in EXPERIMENT_ARGS.items()}
    res = outcome(lambda: ex.run_nn_experiment(**kwargs), {odd}, divergence=True)
    if res is not None:
        steps = kwargs["steps"]
        for m in res.methods.values():
            finite(m.loss, (steps + 1,))
            finite(m.step_norm, (steps,))
            assert np.all((m.test_accuracy >= 0) & (m.test_accuracy <= 1))
        assert np.all(np.isfinite(res.contractivity.local_lipschitz))
        json.dumps(res.to_dict(), allow_nan=False)  # valid JSON: no NaN or Infinity


@given(curve=st.one_of(hnp.arrays(DTYPES, hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=5)), ODD),
       text=st.one_of(st.floats(allow_nan=True, allow_infinity=True), ODD))
def test_fuzz_summary_functions(curve, text):
    tv = outcome(lambda: ex.total_variation(curve), {"curve"})
    if tv is not None:
        assert np.isfinite(tv) and tv >= 0
    words = {"backward_over_forward_final_step_norm": text, "backward_step_norms_decay": True,
             "backward_over_forward_loss_total_variation": 0.5, "backward_loss_smoother": True,
             "windowed_over_forward_loss_total_variation": 0.9,
             "bracket_corrected_over_forward_loss_total_variation": 1.2, "max_local_lipschitz": 0.9,
             "locally_contractive": True}
    s = outcome(lambda: ex.describe_summary(**words), set(words))
    if s is not None:
        assert isinstance(s, str) and s.count(";") == 3
    assert outcome(lambda: ex.summarise({"forward": 1}, [1.0]), {"methods"}) is None
    assert outcome(lambda: ex.summarise(SUMMARY_RUN.methods, []), {"local_lipschitz"}) is None


SUMMARY_RUN = ex.run_nn_experiment(data="synthetic", steps=3, warmup=0, rng=0)


def test_flat_forward_run_is_reported_as_no_comparison_not_nan_json():
    res = ex.run_nn_experiment(data="synthetic", steps=4, warmup=0, lr=1e-300, rng=0)
    assert res.methods["forward"].loss_total_variation == 0.0
    payload = json.dumps(res.to_dict(), allow_nan=False)
    assert '"backward_over_forward_loss_total_variation": null' in payload
    assert "no total-variation comparison" in res.summary.statement


HUGE_SIZE_CALLS = [
    ("hidden", lambda: nn.MLP(X, Y, hidden=10**9, batch_size=8)),
    ("hidden", lambda: nn.MLP(X, Y, hidden=(10**5, 10**5), batch_size=8)),
    ("y", lambda: nn.MLP(X, np.r_[Y[:-1], 10**9], batch_size=8)),
    ("n_classes", lambda: nn.MLP(X, Y, batch_size=8, n_classes=10**9)),
    ("channels", lambda: nn.CNN(X, Y, channels=10**9, batch_size=8)),
    ("hidden", lambda: nn.CNN(X, Y, hidden=10**9, batch_size=8)),
    ("image_shape", lambda: nn.im2col_indices((10**5, 10**5), 3)),
    ("index", lambda: MLP0.gradient(np.zeros(MLP0.dim), np.zeros(10**7, dtype=np.int64))),
    ("n_train", lambda: teacher_student_data(n_train=10**9)),
    ("n_features", lambda: teacher_student_data(n_features=10**9)),
    ("hidden", lambda: teacher_student_data(hidden=10**9)),
    ("n_classes", lambda: teacher_student_data(n_classes=10**9)),
    ("steps", lambda: ex.run_nn_experiment(data="synthetic", steps=10**9, warmup=0)),
    ("steps", lambda: ex.run_nn_experiment(data="synthetic", steps=10**5, warmup=0)),
    ("warmup", lambda: ex.run_nn_experiment(data="synthetic", steps=3, warmup=10**9)),
    ("hidden", lambda: ex.run_nn_experiment(data="synthetic", steps=3, warmup=0, hidden=10**9)),
    ("steps", lambda: ex.prepare_experiment(data="synthetic", steps=10**9, warmup=0)),
]


@pytest.mark.parametrize("name,call", HUGE_SIZE_CALLS, ids=[f"{c[0]}-{k}" for k, c in enumerate(HUGE_SIZE_CALLS)])
def test_huge_sizes_are_refused_before_allocating(name, call):
    with bounded(seconds=2.0), pytest.raises(ValueError) as info:
        call()
    assert str(info.value).startswith(f"{name}:"), str(info.value)


ODD_ARGUMENT_CALLS = [
    ("hidden", TypeError, lambda: nn.MLP(X, Y, hidden=None, batch_size=8)),
    ("hidden", TypeError, lambda: nn.MLP(X, Y, hidden=2.0, batch_size=8)),
    ("hidden", TypeError, lambda: nn.MLP(X, Y, hidden="16", batch_size=8)),
    ("image_shape", TypeError, lambda: nn.CNN(X, Y, image_shape="4x4", batch_size=8)),
    ("image_shape", TypeError, lambda: nn.CNN(X, Y, image_shape=(4.0, 4), batch_size=8)),
    ("image_shape", TypeError, lambda: nn.CNN(X, Y, image_shape=(np.nan, 4), batch_size=8)),
    ("kernel_size", ValueError, lambda: nn.im2col_indices((4, 4), 0)),
    ("kernel_size", ValueError, lambda: nn.im2col_indices((4, 4), 5)),
    ("image_shape", ValueError, lambda: nn.im2col_indices((-4, 4), 2)),
    ("X", ValueError, lambda: MLP0.evaluate(np.zeros(MLP0.dim), np.zeros((0, 16)), [])),
    ("v", TypeError, lambda: MLP0.hvp(np.zeros(MLP0.dim), None, 0)),
    ("theta", ValueError, lambda: MLP0.batch_loss(np.full(MLP0.dim, 1e300), 0)),
    ("theta", ValueError, lambda: make("mlp").logits(np.full(MLP0.dim, 1e308), X)),
    ("v", ValueError, lambda: MLP0.hvp(np.zeros(MLP0.dim), np.full(MLP0.dim, 1e308), 0)),
    ("maps", ValueError, lambda: nn.estimate_lipschitz(MLP0.sgd_maps(1e308), MLP0.init_params(rng=0), 0)),
    ("maps", TypeError, lambda: nn.estimate_lipschitz(ct.QuadraticModel([np.eye(2)], [[0.0, 0.0]]), [0.0, 0.0], 0)),
    ("out_dir", TypeError, lambda: ex.run_nn_experiment(data="synthetic", steps=3, warmup=0, out_dir=3)),
    ("methods", TypeError, lambda: ex.summarise({}, [1.0])),
    ("curve", TypeError, lambda: ex.total_variation("abc")),
    ("curve", ValueError, lambda: ex.total_variation([np.nan, 1.0])),
    ("curve", ValueError, lambda: ex.total_variation([[1.0, 2.0]])),
    ("backward_over_forward_final_step_norm", TypeError,
     lambda: ex.describe_summary(backward_over_forward_final_step_norm="x", backward_step_norms_decay=True,
                                 backward_over_forward_loss_total_variation=0.5, backward_loss_smoother=True,
                                 windowed_over_forward_loss_total_variation=0.9,
                                 bracket_corrected_over_forward_loss_total_variation=1.2, max_local_lipschitz=0.9,
                                 locally_contractive=True)),
    ("X_train", ValueError, lambda: Dataset(np.zeros((0, 4)), [], np.zeros((2, 4)), [0, 1], n_classes=2)),
    ("y_test", ValueError, lambda: Dataset(np.zeros((2, 4)), [0, 1], np.zeros((2, 4)), [0, 5], n_classes=2)),
    ("image_shape", ValueError, lambda: Dataset(np.zeros((2, 4)), [0, 1], np.zeros((2, 4)), [0, 1], n_classes=2,
                                                image_shape=(3, 3))),
    ("dataset", TypeError, lambda: ex.build_network("mlp", "x")),
]


@pytest.mark.parametrize("name,exc,call", ODD_ARGUMENT_CALLS,
                         ids=[f"{c[0]}-{k}" for k, c in enumerate(ODD_ARGUMENT_CALLS)])
def test_odd_arguments_name_the_argument(name, exc, call):
    with bounded(), pytest.raises(exc) as info:
        call()
    assert str(info.value).split(":")[0].split(".")[0] == name, str(info.value)
