"""Kesten's tail index in any dimension: exact in d = 1, the root of the moment Lyapunov exponent for d > 1."""

import json
import pickle

import numpy as np
import pytest

import contraction as ct
from contraction.theory.tails import EXACT_1D, POPULATION, TailIndexResult, tail_index

P = [0.75, 0.25]
EXACT = np.log2(3.0)  # 0.75 · 0.5^α + 0.25 · 2^α = 1


def scalar_maps(d, a=(0.5, 2.0)):
    return ct.AffineMaps([a[0] * np.eye(d), a[1] * np.eye(d)], np.ones((2, d)), probs=P)


def test_one_dimension_is_the_exact_root():
    res = tail_index(scalar_maps(1))
    assert res.exact and res.estimator == EXACT_1D and res.stderr == 0.0
    assert abs(res - EXACT) < 1e-10 and abs(res.alpha - EXACT) < 1e-10
    assert np.isclose(0.75 * 0.5**res + 0.25 * 2.0**res, 1.0)


def test_result_behaves_as_a_float():
    res = tail_index(scalar_maps(1))
    assert isinstance(res, float) and float(res) == res.alpha
    assert f"{res:.3f}" == "1.585" and str(res) == repr(float(res))
    assert json.loads(json.dumps({"a": res}))["a"] == res.alpha
    back = pickle.loads(pickle.dumps(res))
    assert isinstance(back, TailIndexResult) and back.alpha == res.alpha and back.estimator == res.estimator


@pytest.mark.parametrize("d", [2, 3])
def test_scalar_multiples_of_the_identity_give_the_one_dimensional_root(d):
    res = tail_index(scalar_maps(d), rng=d, n_steps=150, n_chains=512, n_batches=12)
    assert res.estimator == POPULATION and not res.exact and res.stderr > 0
    assert abs(res.alpha - EXACT) < 3 * res.stderr, (res.alpha, res.stderr)


def test_diagonal_maps_take_the_heaviest_coordinate():
    A = np.array([np.diag([0.5, 0.6]), np.diag([2.0, 1.5])])
    res = tail_index(ct.AffineMaps(A, np.ones((2, 2)), probs=P), rng=4, n_steps=150, n_chains=512, n_batches=12)
    first = tail_index(ct.AffineMaps(A[:, :1, :1], np.ones((2, 1)), probs=P))
    second = tail_index(ct.AffineMaps(A[:, 1:, 1:], np.ones((2, 1)), probs=P))
    assert first < second
    assert abs(res.alpha - first) < 3 * res.stderr


def test_perturbed_case_is_resolved_as_different():
    res = tail_index(scalar_maps(2, (0.5, 2.1)), rng=5, n_steps=150, n_chains=512, n_batches=12)
    exact = tail_index(scalar_maps(1, (0.5, 2.1)))
    assert abs(res.alpha - exact) < 3 * res.stderr
    assert abs(res.alpha - EXACT) > 10 * res.stderr  # the unperturbed root is clearly rejected


def test_low_rank_maps_agree_with_their_dense_form():
    X, y = np.random.default_rng(0).normal(size=(60, 5)), np.ones(60)
    model = ct.LinearRegressionModel(X, y, batch_size=1)
    maps = model.sgd_maps(0.25)
    assert isinstance(maps, ct.LowRankAffineMaps)
    low = tail_index(maps, rng=6, n_steps=100, n_chains=128)
    dense = tail_index(maps.to_dense(), rng=6, n_steps=100, n_chains=128)
    assert abs(low.alpha - dense.alpha) < 1e-8 * dense.alpha  # the same products, the same draws


def test_determinism_and_batch_streams():
    a = tail_index(scalar_maps(2), rng=7, n_steps=50, n_chains=64)
    b = tail_index(scalar_maps(2), rng=7, n_steps=50, n_chains=64)
    c = tail_index(scalar_maps(2), rng=8, n_steps=50, n_chains=64)
    assert a == b and a.stderr == b.stderr and a != c


@pytest.mark.parametrize("maps, kwargs, match", [
    (scalar_maps(2, (0.5, 0.9)), {}, "^maps: .*bounded support"),
    (scalar_maps(2, (0.9, 3.0)), {}, "^maps: expected a negative Lyapunov exponent"),
    (scalar_maps(1, (0.9, 3.0)), {}, "^maps: expected E log"),
    (scalar_maps(2, (0.5, 1.001)), {"n_steps": 20, "n_chains": 16}, "^s_max: "),
    (scalar_maps(2), {"n_steps": 0}, "^n_steps: "),
    (scalar_maps(2), {"n_chains": 1}, "^n_chains: "),
    (scalar_maps(2), {"n_batches": 1}, "^n_batches: "),
    (scalar_maps(2), {"burn_in": -1}, "^burn_in: "),
    (scalar_maps(2), {"s_max": 0.5}, "^s_max: "),
    (scalar_maps(2), {"n_steps": 10**6, "n_chains": 100}, "^n_steps: "),
])
def test_invalid_input(maps, kwargs, match):
    with pytest.raises(ValueError, match=match):
        tail_index(maps, rng=0, **kwargs)


def test_not_maps():
    with pytest.raises(TypeError, match=r"^maps: "):
        tail_index(np.eye(2))
