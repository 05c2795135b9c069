"""Errors, warnings and deprecations are part of the API.

The table of bad inputs (every argument of the public surface against the same
bad values) is ``tests/test_validation.py``; this module checks the package's
error and warning classes and the deprecation path of renamed names.
"""

import numpy as np
import pytest

import contraction as ct


def test_error_and_warning_classes():
    assert issubclass(ct.NonConvergenceWarning, ct.ContractionWarning)
    assert issubclass(ct.ContractionWarning, UserWarning)
    assert issubclass(ct.DivergenceError, ArithmeticError)
    assert issubclass(ct.StationaryLawError, ValueError)  # a value that does not exist was asked for


def test_old_name_of_the_mean_squared_increment_warns_and_still_works():
    maps = ct.two_point_quadratic().sgd_maps(0.5)
    with pytest.warns(DeprecationWarning, match="stationary_mean_squared_increment"):
        old = ct.stationary_step_size
    assert old is ct.stationary_mean_squared_increment
    assert old(maps) == ct.stationary_mean_squared_increment(maps)
    assert "stationary_step_size" not in ct.__all__


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'stationary_step'"):
        ct.stationary_step  # noqa: B018


def test_affine_maps_n_batches_is_a_deprecated_alias_of_n_maps():
    maps = ct.AffineMaps(np.zeros((3, 2, 2)), np.zeros((3, 2)))
    with pytest.warns(DeprecationWarning, match="n_maps"):
        assert maps.n_batches == maps.n_maps == 3


def test_gradient_maps_n_batches_keyword_is_deprecated():
    with pytest.warns(DeprecationWarning, match="n_maps"):
        maps = ct.GradientMaps(lambda t, i: t, 0.1, n_batches=4)
    assert maps.n_maps == 4
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError, match=r"^n_batches:"):
        ct.GradientMaps(lambda t, i: t, 0.1, 4, n_batches=4)
    assert ct.GradientMaps(lambda t, i: t, 0.1, 5).n_maps == 5


def test_log_cosh_maps_seed_keyword_is_deprecated():
    theta, index = np.ones((3, 2)), np.arange(3)
    with pytest.warns(DeprecationWarning, match="rng="):
        old = ct.log_cosh_maps(0.1, seed=4)
    new = ct.log_cosh_maps(0.1, rng=4)
    assert np.array_equal(old.gradient(theta, index), new.gradient(theta, index))
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError, match=r"^seed:"):
        ct.log_cosh_maps(0.1, rng=0, seed=0)


def test_divergence_and_non_convergence_say_what_to_change():
    with pytest.raises(ct.DivergenceError, match="lower lr"):
        ct.forward_iterates(ct.AffineMaps([[[1e300]]], [[1.0]]), [1.0], [0, 0, 0])
    maps = ct.AffineMaps([[[0.999]], [[0.999]]], [[1.0], [-1.0]])
    with pytest.warns(ct.NonConvergenceWarning, match="raise max_steps"):
        ct.backward_fixed_point(maps, rng=0, tol=1e-12, max_steps=16)
