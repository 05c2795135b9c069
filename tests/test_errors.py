"""One table of bad inputs: each raises ValueError/TypeError naming the argument."""

import numpy as np
import pytest

import contraction as ct

I2 = np.stack([np.eye(2), np.eye(2)])
MAPS = ct.AffineMaps(0.5 * I2, np.zeros((2, 2)))
X = np.random.default_rng(0).normal(size=(6, 2))

CASES = [
    ("A", ValueError, lambda: ct.AffineMaps(np.zeros((2, 2, 3)), np.zeros((2, 2)))),
    ("A", ValueError, lambda: ct.AffineMaps(np.zeros((2, 2)), np.zeros((2, 2)))),
    ("A", ValueError, lambda: ct.AffineMaps(np.full((1, 1, 1), np.nan), np.zeros((1, 1)))),
    ("A", TypeError, lambda: ct.AffineMaps("abc", np.zeros((1, 1)))),
    ("b", ValueError, lambda: ct.AffineMaps(I2, np.zeros((2, 3)))),
    ("b", ValueError, lambda: ct.AffineMaps(I2, [[0.0, np.inf], [0.0, 0.0]])),
    ("probs", ValueError, lambda: ct.AffineMaps(I2, np.zeros((2, 2)), probs=[0.7, 0.7])),
    ("probs", ValueError, lambda: ct.AffineMaps(I2, np.zeros((2, 2)), probs=[1.5, -0.5])),
    ("probs", ValueError, lambda: ct.AffineMaps(I2, np.zeros((2, 2)), probs=[1.0])),
    ("hessians", ValueError, lambda: ct.QuadraticModel([[[1.0, 0.0], [0.0, -1.0]]], [[0.0, 0.0]])),
    ("hessians", ValueError, lambda: ct.QuadraticModel([[[1.0, 1.0], [0.0, 1.0]]], [[0.0, 0.0]])),
    ("centers", ValueError, lambda: ct.QuadraticModel(I2, np.zeros((3, 2)))),
    ("lr", ValueError, lambda: ct.QuadraticModel(I2, np.zeros((2, 2))).sgd_maps(0.0)),
    ("lr", ValueError, lambda: ct.QuadraticModel(I2, np.zeros((2, 2))).sgd_maps(-1)),
    ("lr", ValueError, lambda: ct.QuadraticModel(I2, np.zeros((2, 2))).sgd_maps(np.inf)),
    ("lr", TypeError, lambda: ct.QuadraticModel(I2, np.zeros((2, 2))).sgd_maps("0.1")),
    ("X", ValueError, lambda: ct.LinearRegressionModel(np.zeros(4), np.zeros(4))),
    ("y", ValueError, lambda: ct.LinearRegressionModel(X, np.zeros(5))),
    ("batch_size", ValueError, lambda: ct.LinearRegressionModel(X, np.zeros(6), batch_size=4)),
    ("batch_size", TypeError, lambda: ct.LinearRegressionModel(X, np.zeros(6), batch_size=2.0)),
    ("n_batches", ValueError, lambda: ct.sample_batches(0, 5)),
    ("n_steps", ValueError, lambda: ct.sample_batches(2, -1)),
    ("n_chains", TypeError, lambda: ct.sample_batches(2, 5, n_chains=1.5)),
    ("scheme", ValueError, lambda: ct.sample_batches(2, 5, scheme="sorted")),
    ("probs", ValueError, lambda: ct.sample_batches(2, 5, scheme="reshuffle", probs=[0.5, 0.5])),
    ("rng", TypeError, lambda: ct.sample_batches(2, 5, rng="seed")),
    ("idx", ValueError, lambda: ct.forward_iterates(MAPS, [0.0, 0.0], [0, 2])),
    ("idx", ValueError, lambda: ct.backward_iterates(MAPS, [0.0, 0.0], [-1, 0])),
    ("idx", TypeError, lambda: ct.forward_iterates(MAPS, [0.0, 0.0], [0.0, 1.0])),
    ("idx", TypeError, lambda: ct.forward_iterates(MAPS, [0.0, 0.0], [True, False])),
    ("theta0", ValueError, lambda: ct.forward_iterates(MAPS, [0.0, 0.0, 0.0], [0, 1])),
    ("theta0", ValueError, lambda: ct.backward_iterates(MAPS, [np.nan, 0.0], [0, 1])),
    ("theta0", ValueError, lambda: ct.forward_iterates(MAPS, np.zeros((3, 2)), np.zeros((2, 4), int))),
    ("save_steps", ValueError, lambda: ct.forward_iterates(MAPS, [0.0, 0.0], [0, 1], save_steps=[3])),
    ("save_steps", ValueError, lambda: ct.forward_iterates(MAPS, [0.0, 0.0], [0, 1], save_steps=[2, 1])),
    ("maps", TypeError, lambda: ct.forward_iterates(object(), [0.0], [0])),
    ("index", ValueError, lambda: MAPS.apply([0.0, 0.0], 5)),
    ("theta", ValueError, lambda: MAPS.apply([0.0], 0)),
    ("gradient", TypeError, lambda: ct.GradientMaps(None, 0.1, 2)),
    ("lr", ValueError, lambda: ct.GradientMaps(lambda t, i: t, 0.0, 2)),
]


@pytest.mark.parametrize("name,exc,call", CASES, ids=[f"{c[0]}-{k}" for k, c in enumerate(CASES)])
def test_bad_input_names_the_argument(name, exc, call):
    with pytest.raises(exc) as info:
        call()
    assert str(info.value).startswith(f"{name}:"), str(info.value)
