"""Seeded test models shared by the checks."""

import numpy as np

import contraction as ct


def random_contractive_maps(m=4, d=3, c=0.8, seed=0, noise=1.0) -> ct.AffineMaps:
    """``m`` affine maps on ``R^d`` whose largest operator norm is exactly ``c``."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(m, d, d))
    A *= c / np.linalg.norm(A, 2, axis=(1, 2))[:, None, None]
    A[1:] *= rng.uniform(0.6, 1.0, size=(m - 1, 1, 1))
    return ct.AffineMaps(A, noise * rng.normal(size=(m, d)))


def random_quadratic(m=4, d=2, seed=0) -> ct.QuadraticModel:
    rng = np.random.default_rng(seed)
    G = rng.normal(size=(m, d, d))
    H = G @ np.swapaxes(G, 1, 2) / d + 0.2 * np.eye(d)
    return ct.QuadraticModel(H, rng.normal(size=(m, d)))


def random_regression(n=12, d=2, batch_size=2, seed=0) -> ct.LinearRegressionModel:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = X @ rng.normal(size=d) + 0.5 * rng.normal(size=n)
    return ct.LinearRegressionModel(X, y, batch_size=batch_size)
