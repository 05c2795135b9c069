"""One table of bad inputs for the whole public surface of ``contraction``.

Each argument that takes a real number, an integer, probabilities, indices or an
array of reals is listed once with its kind; every kind has the same list of bad
values (``bool``, ``nan``, ``inf``, negative, wrong type, string, wrong shape), and
each bad value must raise ``ValueError``/``TypeError`` whose message starts with
the argument's name. Specific constraints (shapes that must match, positive
semi-definite Hessians, …) are rows of the same table. Numpy scalars
(``np.float32``, ``np.int64``, …) are accepted wherever Python numbers are.

A last test checks that every parameter of every public function and class is
either in the table or named, with the reason, in ``NOT_VALIDATED``.
"""

import dataclasses
import inspect
import os

import numpy as np
import pytest

import contraction as ct

I2 = np.stack([np.eye(2), np.eye(2)])
MAPS = ct.AffineMaps(0.5 * I2, np.zeros((2, 2)))
E1 = ct.two_point_quadratic().sgd_maps(0.5)
SWEEP = {"sweep": {"name": "v", "seed": 1, "quantities": ["stationary_variance"]}, "model": {"kind": "two_point"},
         "grid": {"lr": [0.5]}}
HEAVY2 = ct.AffineMaps([0.5 * np.eye(2), 2.0 * np.eye(2)], np.ones((2, 2)), probs=[0.75, 0.25])  # d = 2, heavy tails
QUAD = ct.QuadraticModel(I2, np.zeros((2, 2)))
GRAD = QUAD.gradient_maps(0.1)
X6 = np.arange(12.0).reshape(6, 2) / 10
Y6 = np.ones(6)
SAMPLES = np.linspace(-1.0, 1.0, 40)
LR_V = np.ones((2, 3, 1))
_DRAW = np.random.default_rng(0)
X8 = _DRAW.normal(size=(8, 3))
LIN = ct.LinearRegressionModel(X8, X8 @ [1.0, -1.0, 0.5] + _DRAW.normal(size=8), batch_size=2)
Z20 = LIN.minimizer() + 0.1 * _DRAW.normal(size=(20, 3))
MEAN3, COV3 = LIN.minimizer(), 0.01 * np.eye(3)


def _with(good, value):
    """``good`` with its first entry replaced by ``value``."""
    arr = np.array(good, dtype=float)
    arr.flat[0] = value
    return arr


# kind -> bad values, each (label, value or function of the good value, exception)
NO = object()
KINDS = {
    "real>0": [("bool", True, TypeError), ("nan", np.nan, ValueError), ("inf", np.inf, ValueError),
               ("negative", -1.0, ValueError), ("zero", 0.0, ValueError), ("object", NO, TypeError),
               ("string", "0.1", TypeError), ("shape", np.array([0.1, 0.2]), TypeError)],
    "real>=0": [("bool", True, TypeError), ("nan", np.nan, ValueError), ("inf", np.inf, ValueError),
                ("negative", -1.0, ValueError), ("object", NO, TypeError), ("string", "0.1", TypeError),
                ("shape", np.array([0.1, 0.2]), TypeError)],
    "real": [("bool", True, TypeError), ("nan", np.nan, ValueError), ("inf", -np.inf, ValueError),
             ("object", NO, TypeError), ("string", "0.1", TypeError), ("shape", [0.1, 0.2], TypeError)],
    "fraction": [("bool", False, TypeError), ("nan", np.nan, ValueError), ("inf", np.inf, ValueError),
                 ("negative", -1e-3, ValueError), ("one", 1.0, ValueError), ("string", "0.1", TypeError),
                 ("shape", np.array([1e-3]), TypeError)],
    "int>=1": [("bool", True, TypeError), ("nan", np.nan, TypeError), ("inf", np.inf, TypeError),
               ("negative", -1, ValueError), ("zero", 0, ValueError), ("float", 2.0, TypeError),
               ("string", "3", TypeError), ("shape", np.array([1, 2]), TypeError)],
    "int>=0": [("bool", False, TypeError), ("nan", np.nan, TypeError), ("inf", np.inf, TypeError),
               ("negative", -1, ValueError), ("float", 1.5, TypeError), ("string", "3", TypeError),
               ("shape", [1, 2], TypeError)],
    "probs": [("bool", [True, False], TypeError), ("nan", [np.nan, 1.0], ValueError),
              ("inf", [np.inf, 0.0], ValueError), ("negative", [1.5, -0.5], ValueError),
              ("sum", [0.7, 0.7], ValueError), ("string", "ab", TypeError), ("object", NO, TypeError),
              ("shape", [0.5, 0.25, 0.25], ValueError), ("2-D", [[0.5, 0.5]], ValueError)],
    "indices": [("bool", [True, False], TypeError), ("nan", [np.nan], TypeError), ("inf", [np.inf], TypeError),
                ("negative", [-1], ValueError), ("too large", [2], ValueError), ("float", [0.0, 1.0], TypeError),
                ("string", "01", TypeError), ("object", NO, TypeError)],
    "steps": [("bool", [True], TypeError), ("nan", [np.nan], TypeError), ("negative", [-1], ValueError),
              ("too large", [99], ValueError), ("float", [1.0], TypeError), ("string", "0", TypeError),
              ("shape", [[0, 1]], ValueError), ("empty", [], ValueError), ("order", [2, 1], ValueError)],
    "array": [("bool", True, TypeError), ("nan", lambda good: _with(good, np.nan), ValueError),
              ("inf", lambda good: _with(good, np.inf), ValueError), ("string", "abc", TypeError),
              ("object", NO, TypeError), ("ragged", [[1.0], [1.0, 2.0]], TypeError),
              ("complex", lambda good: np.asarray(good) + 1j, TypeError)],
    "rng": [("bool", True, TypeError), ("nan", np.nan, TypeError), ("negative", -1, ValueError),
            ("float", 1.5, TypeError), ("string", "seed", TypeError), ("object", NO, TypeError)],
    "choice": [("bool", True, TypeError), ("unknown", "magic", ValueError), ("number", 3, TypeError),
               ("none", None, TypeError)],
    "maps": [("model", QUAD, TypeError), ("object", NO, TypeError), ("array", I2, TypeError)],
    "model": [("maps", MAPS, TypeError), ("gradient maps", GRAD, TypeError), ("object", NO, TypeError),
              ("array", I2, TypeError), ("none", None, TypeError)],
    "bool": [("int", 1, TypeError), ("float", 1.0, TypeError), ("string", "yes", TypeError),
             ("none", None, TypeError), ("shape", np.array([True]), TypeError)],
}
KINDS["int>=2"] = [*KINDS["int>=1"], ("one", 1, ValueError)]
KINDS["int>=50"] = [*KINDS["int>=1"], ("49", 49, ValueError)]
KINDS["positive array"] = [*KINDS["array"], ("negative", lambda good: _with(good, -1.0), ValueError)]

# (public name, argument, kind, call with the argument set to v, good value, wrong shapes)
ARGS = [
    ("AffineMaps", "A", "array", lambda v: ct.AffineMaps(v, np.zeros((2, 2))), 0.5 * I2,
     [np.zeros((2, 2, 3)), np.zeros((2, 2)), np.zeros((0, 2, 2))]),
    ("AffineMaps", "b", "array", lambda v: ct.AffineMaps(I2, v), np.zeros((2, 2)), [np.zeros((2, 3)), np.zeros(2)]),
    ("AffineMaps", "probs", "probs", lambda v: ct.AffineMaps(I2, np.zeros((2, 2)), v), [0.5, 0.5], []),
    ("LowRankAffineMaps", "U", "array", lambda v: ct.LowRankAffineMaps(v, LR_V, np.zeros((2, 3))), LR_V,
     [np.ones((2, 3, 2)), np.ones((2, 3))]),
    ("LowRankAffineMaps", "V", "array", lambda v: ct.LowRankAffineMaps(LR_V, v, np.zeros((2, 3))), LR_V,
     [np.ones((2, 3)), np.ones((2, 3, 0))]),
    ("LowRankAffineMaps", "b", "array", lambda v: ct.LowRankAffineMaps(LR_V, LR_V, v), np.zeros((2, 3)),
     [np.zeros((2, 4)), np.zeros(3)]),
    ("LowRankAffineMaps", "probs", "probs", lambda v: ct.LowRankAffineMaps(LR_V, LR_V, np.zeros((2, 3)), v),
     [0.5, 0.5], []),
    ("LowRankAffineMaps", "scale", "array", lambda v: ct.LowRankAffineMaps(LR_V, LR_V, np.zeros((2, 3)), scale=v),
     [0.1, 0.2], [np.ones(3), np.ones((2, 2))]),
    ("AffineMaps.apply", "theta", "array", lambda v: MAPS.apply(v, 0), [0.0, 0.0], [[0.0], np.zeros((3, 1))]),
    ("AffineMaps.apply", "index", "indices", lambda v: MAPS.apply(np.zeros((4, 2)), v), [1, 0, 1, 0],
     [np.zeros(3, int), np.zeros((4, 3), int)]),
    ("AffineMaps.word", "word", "indices", lambda v: MAPS.word(v), [0, 1], []),
    ("compose_affine", "A", "array", lambda v: ct.compose_affine(v, [0.0], [[1.0]], [0.0]), [[1.0]], [[1.0, 2.0]]),
    ("compose_affine", "b", "array", lambda v: ct.compose_affine([[1.0]], v, [[1.0]], [0.0]), [0.0],
     [[0.0, 1.0]]),
    ("compose_affine", "A2", "array", lambda v: ct.compose_affine([[1.0]], [0.0], v, [0.0]), [[1.0]],
     [np.eye(2)]),
    ("compose_affine", "b2", "array", lambda v: ct.compose_affine([[1.0]], [0.0], [[1.0]], v), [0.0],
     [np.zeros(2)]),
    ("GradientMaps", "lr", "real>0", lambda v: ct.GradientMaps(lambda t, i: t, v, 2), 0.1, []),
    ("GradientMaps", "n_maps", "int>=1", lambda v: ct.GradientMaps(lambda t, i: t, 0.1, v), 2, []),
    ("GradientMaps", "dim", "int>=1", lambda v: ct.GradientMaps(lambda t, i: t, 0.1, 2, dim=v), 2, []),
    ("GradientMaps", "probs", "probs", lambda v: ct.GradientMaps(lambda t, i: t, 0.1, 2, v), [0.5, 0.5], []),
    ("QuadraticModel", "hessians", "array", lambda v: ct.QuadraticModel(v, np.zeros((2, 2))), I2,
     [np.eye(2), np.zeros((2, 2, 3))]),
    ("QuadraticModel", "centers", "array", lambda v: ct.QuadraticModel(I2, v), np.zeros((2, 2)),
     [np.zeros((3, 2)), np.zeros(2)]),
    ("QuadraticModel", "probs", "probs", lambda v: ct.QuadraticModel(I2, np.zeros((2, 2)), v), [0.5, 0.5], []),
    ("QuadraticModel.sgd_maps", "lr", "real>0", lambda v: QUAD.sgd_maps(v), 0.1, []),
    ("QuadraticModel.gradient_maps", "lr", "real>0", lambda v: QUAD.gradient_maps(v), 0.1, []),
    ("QuadraticModel.gradient", "theta", "array", lambda v: QUAD.gradient(v, 0), [1.0, 1.0], [[1.0]]),
    ("QuadraticModel.gradient", "index", "indices", lambda v: QUAD.gradient(np.zeros((3, 2)), v), [0, 1, 1], []),
    ("QuadraticModel.batch_loss", "index", "indices", lambda v: QUAD.batch_loss([1.0, 1.0], v), 1, []),
    ("LinearRegressionModel", "X", "array", lambda v: ct.LinearRegressionModel(v, Y6), X6, [np.zeros(6)]),
    ("LinearRegressionModel", "y", "array", lambda v: ct.LinearRegressionModel(X6, v), Y6, [np.zeros(5)]),
    ("LinearRegressionModel", "batch_size", "int>=1", lambda v: ct.LinearRegressionModel(X6, Y6, v), 2, []),
    ("LinearRegressionModel", "probs", "probs",
     lambda v: ct.LinearRegressionModel(X6, Y6, 3, v), [0.5, 0.5], []),
    ("sample_batches", "n_batches", "int>=1", lambda v: ct.sample_batches(v, 5), 2, []),
    ("sample_batches", "n_steps", "int>=0", lambda v: ct.sample_batches(2, v), 5, []),
    ("sample_batches", "n_chains", "int>=1", lambda v: ct.sample_batches(2, 5, v), 3, []),
    ("sample_batches", "scheme", "choice", lambda v: ct.sample_batches(2, 5, scheme=v), "iid", []),
    ("sample_batches", "probs", "probs", lambda v: ct.sample_batches(2, 5, probs=v), [0.5, 0.5], []),
    ("sample_batches", "rng", "rng", lambda v: ct.sample_batches(2, 5, rng=v), 3, []),
    ("chain_generators", "n_chains", "int>=1", lambda v: ct.chain_generators(v), 2, []),
    ("chain_generators", "rng", "rng", lambda v: ct.chain_generators(2, v), 3, []),
    *[(fn.__name__, arg, kind, call, good, shapes) for fn in (ct.forward_iterates, ct.backward_iterates)
      for arg, kind, call, good, shapes in (
          ("maps", "maps", lambda v, fn=fn: fn(v, [0.0, 0.0], [0, 1]), MAPS, []),
          ("theta0", "array", lambda v, fn=fn: fn(MAPS, v, [0, 1]), [0.0, 0.0],
           [[0.0, 0.0, 0.0], np.zeros((2, 3)), np.zeros((1, 1, 2))]),
          ("idx", "indices", lambda v, fn=fn: fn(MAPS, [0.0, 0.0], v), [0, 1],
           [np.zeros((1, 1, 2), int), np.zeros((0, 2), int)]),
          ("save_steps", "steps", lambda v, fn=fn: fn(MAPS, [0.0, 0.0], [0, 1], save_steps=v), [0, 2], []))],
    *[(fn.__name__, arg, kind, call, good, shapes)
      for fn, maps in ((ct.windowed_backward_iterates, MAPS), (ct.sliding_backward_iterates, MAPS),
                       (ct.bracket_corrected_iterates, GRAD))
      for arg, kind, call, good, shapes in (
          ("maps", "maps", lambda v, fn=fn, maps=maps: fn(v, [0.0, 0.0], [0, 1], 2), maps, []),
          ("theta0", "array", lambda v, fn=fn, maps=maps: fn(maps, v, [0, 1], 2), [0.0, 0.0], [[0.0]]),
          ("idx", "indices", lambda v, fn=fn, maps=maps: fn(maps, [0.0, 0.0], v, 2), [0, 1], []),
          ("window", "int>=1", lambda v, fn=fn, maps=maps: fn(maps, [0.0, 0.0], [0, 1], v), 2, []),
          ("save_steps", "steps", lambda v, fn=fn, maps=maps: fn(maps, [0.0, 0.0], [0, 1], 2, save_steps=v),
           [0, 2], []))],
    ("loglog_slope", "x", "positive array", lambda v: ct.loglog_slope(v, [1.0, 4.0]), [1.0, 2.0],
     [[[1.0, 2.0]]]),
    ("loglog_slope", "y", "positive array", lambda v: ct.loglog_slope([1.0, 2.0], v), [1.0, 4.0], [[1.0]]),
    ("contraction_constant", "maps", "maps", lambda v: ct.contraction_constant(v), MAPS, []),
    ("lyapunov_exponent", "maps", "maps", lambda v: ct.lyapunov_exponent(v), MAPS, []),
    ("lyapunov_exponent", "rng", "rng", lambda v: ct.lyapunov_exponent(MAPS, v, 10, 2), 1, []),
    ("lyapunov_exponent", "n_steps", "int>=1", lambda v: ct.lyapunov_exponent(MAPS, 1, v, 2), 10, []),
    ("lyapunov_exponent", "n_chains", "int>=2", lambda v: ct.lyapunov_exponent(MAPS, 1, 10, v), 2, []),
    ("lyapunov_exponent", "burn_in", "int>=0", lambda v: ct.lyapunov_exponent(MAPS, 1, 10, 2, v), 3, []),
    ("mean_square_radius", "maps", "maps", lambda v: ct.mean_square_radius(v), MAPS, []),
    ("mean_square_radius", "dense_max_dim", "int>=0", lambda v: ct.mean_square_radius(MAPS, v), 4, []),
    ("max_stable_lr", "model", "maps", lambda v: ct.max_stable_lr(v if v is not QUAD else MAPS), QUAD, []),
    ("max_stable_lr", "rtol", "fraction", lambda v: ct.max_stable_lr(QUAD, v), 1e-8, []),
    ("tail_index", "maps", "maps", lambda v: ct.tail_index(v), E1, []),
    ("sweep", "workers", "int>=1", lambda v: ct.sweep(SWEEP, workers=v), 1, []),
    ("tail_index", "rng", "rng", lambda v: ct.tail_index(HEAVY2, v, 10, 8), 1, []),
    ("tail_index", "n_steps", "int>=1", lambda v: ct.tail_index(HEAVY2, 1, v, 8), 10, []),
    ("tail_index", "n_chains", "int>=2", lambda v: ct.tail_index(HEAVY2, 1, 10, v), 8, []),
    ("tail_index", "n_batches", "int>=2", lambda v: ct.tail_index(HEAVY2, 1, 10, 8, v), 2, []),
    ("tail_index", "burn_in", "int>=0", lambda v: ct.tail_index(HEAVY2, 1, 10, 8, 2, v), 3, []),
    ("tail_index", "s_max", "real>0", lambda v: ct.tail_index(HEAVY2, 1, 10, 8, 2, 3, v), 64.0, [0.5, 1.0]),
    ("gaussian_least_squares_1d", "n_nodes", "int>=50", lambda v: ct.gaussian_least_squares_1d(v), 60, []),
    ("gaussian_least_squares_1d", "noise", "real>=0", lambda v: ct.gaussian_least_squares_1d(60, v), 0.5, []),
    ("gaussian_least_squares_1d", "theta_star", "real", lambda v: ct.gaussian_least_squares_1d(60, 0.5, v),
     -1.0, []),
    ("gaussian_lyapunov_1d", "lr", "real>0", lambda v: ct.gaussian_lyapunov_1d(v), 0.5, []),
    ("two_point_cdf", "lr", "real>0", lambda v: ct.two_point_cdf(v), 0.5, []),
    ("log_cosh_maps", "lr", "real>0", lambda v: ct.log_cosh_maps(v, rng=0), 0.1, []),
    ("log_cosh_maps", "rng", "rng", lambda v: ct.log_cosh_maps(0.1, v), 0, []),
    ("log_cosh_maps", "n_batches", "int>=1", lambda v: ct.log_cosh_maps(0.1, 0, v), 3, []),
    ("log_cosh_maps", "n_terms", "int>=1", lambda v: ct.log_cosh_maps(0.1, 0, 3, v), 4, []),
    ("log_cosh_maps", "dim", "int>=1", lambda v: ct.log_cosh_maps(0.1, 0, 3, 4, v), 2, []),
    ("mean_estimation", "points", "array", lambda v: ct.mean_estimation(v), X6, [np.zeros(3), np.zeros((0, 2))]),
    ("mean_estimation", "probs", "probs", lambda v: ct.mean_estimation(X6[:2], v), [0.5, 0.5], []),
    ("backward_fixed_point", "maps", "maps", lambda v: ct.backward_fixed_point(v), MAPS, []),
    ("backward_fixed_point", "theta0", "array", lambda v: ct.backward_fixed_point(MAPS, v, 0), [1.0, 1.0],
     [[1.0], np.ones((2, 2))]),
    ("backward_fixed_point", "rng", "rng", lambda v: ct.backward_fixed_point(MAPS, None, v), 0, []),
    ("backward_fixed_point", "tol", "real>0", lambda v: ct.backward_fixed_point(MAPS, None, 0, v), 1e-6, []),
    ("backward_fixed_point", "max_steps", "int>=1", lambda v: ct.backward_fixed_point(MAPS, None, 0, 1e-3, v),
     100, []),
    ("compare_laws", "x", "array", lambda v: ct.compare_laws(v, SAMPLES), SAMPLES, [np.zeros((2, 2, 2))]),
    ("compare_laws", "y", "array", lambda v: ct.compare_laws(SAMPLES[:, None], v), SAMPLES[:, None],
     [np.zeros((4, 3))]),
    ("compare_laws", "rng", "rng", lambda v: ct.compare_laws(SAMPLES, SAMPLES, v), 1, []),
    ("compare_laws", "n_projections", "int>=1", lambda v: ct.compare_laws(SAMPLES, SAMPLES, 1, v), 3, []),
    ("hill_estimator", "samples", "array", lambda v: ct.hill_estimator(v, 3), SAMPLES, [SAMPLES[:, None]]),
    ("hill_estimator", "k", "int>=1", lambda v: ct.hill_estimator(SAMPLES, v), 3, []),
    ("ks_against_cdf", "samples", "array", lambda v: ct.ks_against_cdf(v, ct.two_point_cdf(0.5)), SAMPLES,
     [SAMPLES[:, None]]),
    ("wasserstein_1d", "x", "array", lambda v: ct.wasserstein_1d(v, SAMPLES), SAMPLES, [SAMPLES[:, None]]),
    ("wasserstein_1d", "y", "array", lambda v: ct.wasserstein_1d(SAMPLES, v), SAMPLES, [SAMPLES[:, None]]),
    ("stationary_moments", "maps", "maps", lambda v: ct.stationary_moments(v), MAPS, []),
    ("stationary_moments", "method", "choice", lambda v: ct.stationary_moments(MAPS, v), "direct", []),
    ("stationary_moments", "tol", "real>0", lambda v: ct.stationary_moments(MAPS, "iterative", v), 1e-10, []),
    ("stationary_moments", "dense_max_dim", "int>=0", lambda v: ct.stationary_moments(MAPS, "auto", 1e-12, v),
     1, []),
    ("moments_at_step", "maps", "maps", lambda v: ct.moments_at_step(v, [0.0, 0.0], 1), MAPS, []),
    ("moments_at_step", "theta0", "array", lambda v: ct.moments_at_step(MAPS, v, 1), [0.0, 0.0],
     [[0.0], np.zeros((1, 2))]),
    ("moments_at_step", "n", "int>=0", lambda v: ct.moments_at_step(MAPS, [0.0, 0.0], v), 3, []),
    ("backward_distance_squared", "maps", "maps", lambda v: ct.backward_distance_squared(v, [0.0, 0.0], 1),
     MAPS, []),
    ("backward_distance_squared", "theta0", "array", lambda v: ct.backward_distance_squared(MAPS, v, 2),
     [0.0, 0.0], [[0.0]]),
    ("backward_distance_squared", "n_steps", "int>=0",
     lambda v: ct.backward_distance_squared(MAPS, [0.0, 0.0], v), 2, []),
    ("stationary_mean_squared_increment", "maps", "maps", lambda v: ct.stationary_mean_squared_increment(v),
     MAPS, []),
    ("stationary_samples", "maps", "maps", lambda v: ct.stationary_samples(v, 3), MAPS, []),
    ("stationary_samples", "n_samples", "int>=1", lambda v: ct.stationary_samples(MAPS, v, rng=0), 3, []),
    ("stationary_samples", "method", "choice", lambda v: ct.stationary_samples(MAPS, 3, v, 0), "forward", []),
    ("stationary_samples", "rng", "rng", lambda v: ct.stationary_samples(MAPS, 3, rng=v), 0, []),
    ("stationary_samples", "theta0", "array", lambda v: ct.stationary_samples(MAPS, 3, rng=0, theta0=v),
     [1.0, 1.0], [[1.0], np.zeros((2, 2, 2))]),
    ("stationary_samples", "tol", "real>0", lambda v: ct.stationary_samples(MAPS, 3, rng=0, tol=v), 1e-6, []),
    ("stationary_samples", "burn_in", "int>=1",
     lambda v: ct.stationary_samples(MAPS, 3, "forward", 0, burn_in=v), 5, []),
    ("stationary_samples", "max_steps", "int>=1", lambda v: ct.stationary_samples(MAPS, 3, rng=0, max_steps=v),
     100, []),
    ("batch_gradient_covariance", "model", "model", lambda v: ct.batch_gradient_covariance(v), LIN, []),
    ("ou_covariance", "model", "model", lambda v: ct.ou_covariance(v, 0.1), LIN, []),
    ("ou_covariance", "lr", "real>0", lambda v: ct.ou_covariance(LIN, v), 0.1, []),
    ("mean_square_threshold", "model", "model", lambda v: ct.mean_square_threshold(v), LIN, []),
    ("fluctuation_dissipation", "model", "model", lambda v: ct.fluctuation_dissipation(v, 0.1, Z20), LIN, []),
    ("fluctuation_dissipation", "lr", "real>0", lambda v: ct.fluctuation_dissipation(LIN, v, Z20), 0.1, []),
    ("fluctuation_dissipation", "samples", "array", lambda v: ct.fluctuation_dissipation(LIN, 0.1, v), Z20,
     [Z20[:, :2], Z20[:1], Z20[:, 0], Z20[None]]),
    ("fluctuation_dissipation_exact", "model", "model",
     lambda v: ct.fluctuation_dissipation_exact(v, 0.1, MEAN3, COV3), LIN, []),
    ("fluctuation_dissipation_exact", "lr", "real>0",
     lambda v: ct.fluctuation_dissipation_exact(LIN, v, MEAN3, COV3), 0.1, []),
    ("fluctuation_dissipation_exact", "mean", "array",
     lambda v: ct.fluctuation_dissipation_exact(LIN, 0.1, v, COV3), MEAN3, [np.zeros(2), np.zeros((1, 3))]),
    ("fluctuation_dissipation_exact", "cov", "array",
     lambda v: ct.fluctuation_dissipation_exact(LIN, 0.1, MEAN3, v), COV3,
     [np.eye(2), np.zeros(3), np.zeros((3, 3, 1)), np.zeros((3, 4))]),
    ("load_diabetes_regression", "n_rows", "int>=2", lambda v: ct.load_diabetes_regression(v), 40, []),
    ("load_digits_regression", "n_rows", "int>=2", lambda v: ct.load_digits_regression(v), 40, []),
    ("load_digits_regression", "drop_constant", "bool", lambda v: ct.load_digits_regression(40, v), True, []),
    ("digits_random_features", "n_features", "int>=1", lambda v: ct.digits_random_features(v, n_rows=40, rng=0),
     8, []),
    ("digits_random_features", "kind", "choice", lambda v: ct.digits_random_features(8, v, 40, 0), "relu", []),
    ("digits_random_features", "n_rows", "int>=2", lambda v: ct.digits_random_features(8, "relu", v, 0), 40, []),
    ("digits_random_features", "rng", "rng", lambda v: ct.digits_random_features(8, "relu", 40, v), 0, []),
    ("power_law_regression", "n_rows", "int>=2", lambda v: ct.power_law_regression(v, 4, rng=0), 20, []),
    ("power_law_regression", "n_features", "int>=1", lambda v: ct.power_law_regression(20, v, rng=0), 4, []),
    ("power_law_regression", "exponent", "real>=0", lambda v: ct.power_law_regression(20, 4, v, rng=0), 1.0, []),
    ("power_law_regression", "noise", "real>=0", lambda v: ct.power_law_regression(20, 4, noise=v, rng=0), 0.5,
     []),
    ("power_law_regression", "rng", "rng", lambda v: ct.power_law_regression(20, 4, rng=v), 0, []),
]

# Constraints beyond the kind of a value: (argument, exception, call)
SPECIFIC = [
    ("spec", TypeError, lambda: ct.sweep(3)),
    ("spec", ValueError, lambda: ct.sweep("no-such-spec.toml")),
    ("grid.lr", ValueError, lambda: ct.sweep({**SWEEP, "grid": {"lr": [-1.0]}})),  # names the spec key
    ("client", TypeError, lambda: ct.sweep(SWEEP, client=3)),
    ("out_dir", TypeError, lambda: ct.sweep(SWEEP, out_dir=3)),
    ("progress", TypeError, lambda: ct.sweep(SWEEP, progress=3)),
    ("registry", TypeError, lambda: ct.sweep(SWEEP, registry=3)),
    ("hessians", ValueError, lambda: ct.QuadraticModel([[[1.0, 0.0], [0.0, -1.0]]], [[0.0, 0.0]])),
    ("hessians", ValueError, lambda: ct.QuadraticModel([[[1.0, 1.0], [0.0, 1.0]]], [[0.0, 0.0]])),
    ("batch_size", ValueError, lambda: ct.LinearRegressionModel(X6, Y6, batch_size=4)),
    ("probs", ValueError, lambda: ct.sample_batches(2, 5, scheme="reshuffle", probs=[0.5, 0.5])),
    ("theta0", ValueError, lambda: ct.forward_iterates(MAPS, np.zeros((3, 2)), np.zeros((2, 4), int))),
    ("maps", TypeError, lambda: ct.forward_iterates(object(), [0.0], [0])),
    ("maps", TypeError, lambda: ct.bracket_corrected_iterates(E1, [0.0], [0, 1], window=2)),
    ("gradient", TypeError, lambda: ct.GradientMaps(None, 0.1, 2)),
    ("hvp", TypeError, lambda: ct.GradientMaps(lambda t, i: t, 0.1, 2, hvp=3)),
    ("other", TypeError, lambda: MAPS.compose(QUAD)),
    ("other", ValueError, lambda: MAPS.compose(E1)),
    ("cdf", TypeError, lambda: ct.ks_against_cdf(SAMPLES, "uniform")),
    ("lr", ValueError, lambda: ct.two_point_cdf(0.3)),
    ("maps", ValueError, lambda: ct.tail_index(MAPS)),
    ("k", ValueError, lambda: ct.hill_estimator(SAMPLES, 40)),
    ("y", ValueError, lambda: ct.compare_laws(SAMPLES[:, None], np.zeros((5, 2)))),
    ("x", ValueError, lambda: ct.loglog_slope([1.0, 1.0], [1.0, 2.0])),
    ("samples", ValueError, lambda: ct.ks_against_cdf([], ct.two_point_cdf(0.5))),
    ("y", ValueError, lambda: ct.wasserstein_1d(SAMPLES, [])),
    ("x", ValueError, lambda: ct.compare_laws(np.zeros((0, 2)), np.zeros((3, 2)))),
    ("model", ValueError, lambda: ct.max_stable_lr(ct.QuadraticModel(np.zeros((2, 1, 1)), np.zeros((2, 1))))),
    ("n_rows", ValueError, lambda: ct.load_diabetes_regression(443)),
    ("n_rows", ValueError, lambda: ct.load_digits_regression(1798)),
    ("n_rows", ValueError, lambda: ct.load_digits_regression(40, drop_constant=False)),
    ("n_features", ValueError, lambda: ct.digits_random_features(2001, n_rows=40, rng=0)),
    ("n_rows", ValueError, lambda: ct.digits_random_features(8, n_rows=1798, rng=0)),
    ("exponent", ValueError, lambda: ct.power_law_regression(20, 4, exponent=16.5, rng=0)),
    ("n_rows", ValueError, lambda: ct.power_law_regression(10**6, 1000, rng=0)),
]

CASES = [
    pytest.param(arg, exc, lambda call=call, bad=bad, good=good: call(bad(good) if callable(bad) else bad),
                 id=f"{name}-{arg}-{label}")
    for name, arg, kind, call, good, shapes in ARGS
    for label, bad, exc in [*KINDS[kind], *[(f"shape{k}", s, ValueError) for k, s in enumerate(shapes)]]
] + [pytest.param(arg, exc, call, id=f"{arg}-specific-{k}") for k, (arg, exc, call) in enumerate(SPECIFIC)]


@pytest.mark.parametrize("arg,exc,call", CASES)
def test_bad_input_names_the_argument(arg, exc, call):
    with pytest.raises(exc) as info:
        call()
    assert str(info.value).startswith(f"{arg}:"), str(info.value)


NUMPY_SCALARS = {
    "real": (np.float64, np.float32, np.int64), "int": (np.int64, np.int32, np.uint16, np.int8),
}
SCALAR_ROWS = [row for row in ARGS if row[2].startswith(("real", "int", "fraction"))]


@pytest.mark.parametrize("row", SCALAR_ROWS, ids=[f"{r[0]}-{r[1]}" for r in SCALAR_ROWS])
def test_numpy_scalars_are_accepted_like_python_numbers(row):
    _name, _arg, kind, call, good, _ = row
    call(good)  # the Python number is accepted
    integer = kind.startswith("int")
    for t in NUMPY_SCALARS["int" if integer else "real"]:
        if not integer and np.issubdtype(t, np.integer) and good != int(good):
            continue  # an integer type cannot hold this real value
        call(t(good))


def test_the_table_covers_every_validated_parameter():
    """Every parameter of a public function or class is in ARGS or SPECIFIC, or listed with its reason."""
    covered = {(name, arg) for name, arg, *_ in ARGS}
    missing = []
    for name in ct.__all__:
        obj = getattr(ct, name)
        if not callable(obj) or (inspect.isclass(obj) and (issubclass(obj, BaseException) or _is_record(obj))):
            continue
        for arg in inspect.signature(obj).parameters:
            if (name, arg) not in covered and (name, arg) not in NOT_VALIDATED:
                missing.append(f"{name}({arg})")
    assert not missing, missing


def _is_record(cls):
    return dataclasses.is_dataclass(cls) and "Attributes" in (inspect.getdoc(cls) or "")


NOT_VALIDATED = {
    ("sweep", "spec"): "a file, a dict or a SweepSpec, not a number (SPECIFIC)",
    ("sweep", "client"): "a Dask client or an address (SPECIFIC)",
    ("sweep", "out_dir"): "a folder (SPECIFIC)",
    ("sweep", "progress"): "a callable (SPECIFIC)",
    ("sweep", "registry"): "a mapping of quantities (SPECIFIC)",
    ("GradientMaps", "gradient"): "a callable, not a number (SPECIFIC)",
    ("GradientMaps", "hvp"): "a callable, not a number (SPECIFIC)",
    ("ks_against_cdf", "cdf"): "a callable, not a number (SPECIFIC)",
    ("GradientMaps", "n_batches"): "deprecated keyword of n_maps (tests/test_errors.py)",
    ("log_cosh_maps", "seed"): "deprecated keyword of rng (tests/test_errors.py)",
}


# --- passes over large arrays, in slices side by side ---------------------------------------------------------


@pytest.mark.parametrize("where", [0, -1], ids=["first-slice", "last-slice"])
def test_large_arrays_are_checked_whole_when_reduced_in_slices(where):
    """Above ``_PARALLEL_REDUCE_BYTES`` the range and finiteness checks run per slice; no slice may be missed."""
    from contraction.core import _validation

    rows = _validation._PARALLEL_REDUCE_BYTES // (8 * 64) + 3  # a little above the threshold, rows of 64 values
    idx = np.zeros((rows, 64), dtype=np.int64)
    idx[where, 5] = 7
    assert len(_validation.reduce_in_slices(np.max, idx)) == min(2, os.cpu_count() or 1)
    with pytest.raises(ValueError, match=r"idx: expected batch indices in \[0, 6\], got values in \[0, 7\]"):
        _validation.as_indices(idx, "idx", 7)
    idx[where, 5] = -1
    with pytest.raises(ValueError, match=r"got values in \[-1, 0\]"):
        _validation.as_indices(idx, "idx", 7)
    out = np.zeros((rows, 64))
    assert _validation.all_finite(out)
    out[where, 3] = np.nan
    assert not _validation.all_finite(out)
    out[where, 3] = 0.0
    out[:, :] = 1e308  # every value finite, every sum overflows
    assert _validation.all_finite(out)
    out[where, 3] = -np.inf
    assert not _validation.all_finite(out)
