import numpy as np
import pytest

import contraction as ct


@pytest.fixture
def setup():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(3, 2, 2))
    A *= 0.8 / np.linalg.norm(A, 2, axis=(1, 2))[:, None, None]
    maps = ct.AffineMaps(A, rng.normal(size=(3, 2)))
    idx = ct.sample_batches(3, 23, n_chains=4, rng=1)
    return maps, idx


def test_windowed_limits_are_forward_and_backward(setup):
    maps, idx = setup
    theta0 = np.array([1.0, -1.0])
    full = ct.windowed_backward_iterates(maps, theta0, idx, window=23)
    np.testing.assert_allclose(full.iterates, ct.backward_iterates(maps, theta0, idx), atol=1e-12)
    assert full.gradient_evals == 23 * 24 // 2
    one = ct.windowed_backward_iterates(maps, theta0, idx, window=1)
    np.testing.assert_allclose(one.iterates, ct.forward_iterates(maps, theta0, idx), atol=1e-12)
    assert one.gradient_evals == 23


def test_windowed_is_backward_from_the_anchor_in_each_block(setup):
    maps, idx = setup
    W = 5
    win = ct.windowed_backward_iterates(maps, np.zeros(2), idx, window=W).iterates
    for k in range(0, 23, W):
        block = idx[:, k:k + W]
        expected = ct.backward_iterates(maps, win[:, k], block)
        np.testing.assert_allclose(win[:, k:k + block.shape[1] + 1], expected, atol=1e-12)
    part = ct.windowed_backward_iterates(maps, np.zeros(2), idx, window=W, save_steps=[0, 7, 23])
    np.testing.assert_allclose(part.iterates, win[:, [0, 7, 23]], atol=1e-12)


def test_sliding_window_definition_and_edge_cases(setup):
    maps, idx = setup
    theta0 = np.array([0.5, 0.5])
    s = ct.sliding_backward_iterates(maps, theta0, idx, window=4).iterates
    # first W steps: backward from θ0
    np.testing.assert_allclose(s[:, :5], ct.backward_iterates(maps, theta0, idx[:, :4]), atol=1e-12)
    for n in (9, 17, 23):
        A, b = maps.word(idx[:, n - 4:n])  # T_{ξ_{n-3}} ∘ … ∘ T_{ξ_n}
        np.testing.assert_allclose(s[:, n], np.einsum("cij,cj->ci", A, s[:, n - 4]) + b, atol=1e-12)
    one = ct.sliding_backward_iterates(maps, theta0, idx, window=1).iterates
    np.testing.assert_allclose(one, ct.forward_iterates(maps, theta0, idx), atol=1e-12)


def test_anchored_settles_and_sliding_fluctuates_on_two_point_example():
    maps = ct.two_point_quadratic().sgd_maps(0.5)
    idx = ct.sample_batches(2, 64, n_chains=200, rng=3)
    W = 16
    win = ct.windowed_backward_iterates(maps, [0.0], idx, W).iterates[:, :, 0]
    sl = ct.sliding_backward_iterates(maps, [0.0], idx, W).iterates[:, :, 0]
    inc_w = np.abs(np.diff(win, axis=1))
    inc_s = np.abs(np.diff(sl, axis=1))
    last_in_block = np.arange(64) % W == W - 1
    assert inc_w[:, last_in_block].max() <= 0.5 ** (W - 1) + 1e-15  # increments halve inside a block
    assert inc_s[:, last_in_block].mean() > 0.3  # sliding window keeps moving like forward SGD


def test_bracket_corrected_cost_and_window_one_is_forward():
    model = ct.QuadraticModel([[[1.0, 0.2], [0.2, 2.0]], [[3.0, 0.0], [0.0, 0.5]]], [[1.0, 0.0], [0.0, -1.0]])
    idx = ct.sample_batches(2, 10, n_chains=3, rng=4)
    g = model.gradient_maps(0.05)
    one = ct.bracket_corrected_iterates(g, np.zeros(2), idx, window=1)
    np.testing.assert_allclose(one.iterates, ct.forward_iterates(model.sgd_maps(0.05), np.zeros(2), idx), atol=1e-12)
    assert (one.gradient_evals, one.hvp_evals) == (10, 0)
    five = ct.bracket_corrected_iterates(g, np.zeros(2), idx, window=5)
    per_block_grad = 1 + sum(j for j in range(2, 6))
    assert five.gradient_evals == 2 * per_block_grad and five.hvp_evals == 2 * (per_block_grad - 1)


def test_bracket_corrected_saves_the_requested_steps():
    model = ct.QuadraticModel([[[1.0, 0.2], [0.2, 2.0]], [[3.0, 0.0], [0.0, 0.5]]], [[1.0, 0.0], [0.0, -1.0]])
    idx = ct.sample_batches(2, 12, n_chains=2, rng=5)
    g = model.gradient_maps(0.05)
    full = ct.bracket_corrected_iterates(g, np.zeros(2), idx, window=4)
    part = ct.bracket_corrected_iterates(g, np.zeros(2), idx, window=4, save_steps=[0, 5, 12])
    np.testing.assert_array_equal(part.iterates, full.iterates[:, [0, 5, 12]])
    np.testing.assert_array_equal(part.steps, [0, 5, 12])
    assert (part.gradient_evals, part.hvp_evals) == (full.gradient_evals, full.hvp_evals)


def test_bracket_corrected_reports_divergence():
    model = ct.QuadraticModel([[[1.0]], [[2.0]]], [[1.0], [-1.0]])
    with pytest.raises(ct.DivergenceError, match="bracket-corrected iterates overflowed"):
        ct.bracket_corrected_iterates(model.gradient_maps(1e150), [1.0], [0, 1] * 6, window=3)


@pytest.mark.parametrize("fn", [ct.windowed_backward_iterates, ct.sliding_backward_iterates,
                                ct.bracket_corrected_iterates])
def test_divergence_of_families_with_checked_callables_is_reported(fn):
    """A family built from a model's public (validating) methods: overflow is a DivergenceError, not a refused theta."""
    model = ct.QuadraticModel([[[1.0]], [[2.0]]], [[1.0], [-1.0]])
    maps = ct.GradientMaps(model.gradient, 1e150, 2, hvp=model.hvp)
    with pytest.raises(ct.DivergenceError, match="iterates overflowed"):
        fn(maps, [1.0], [0, 1] * 6, 3)
    with pytest.raises(ct.DivergenceError, match="iterates overflowed"):
        fn(model.gradient_maps(1e150), [1.0], [0, 1] * 6, 3)


@pytest.mark.parametrize("fn", [ct.windowed_backward_iterates, ct.sliding_backward_iterates])
def test_affine_overflow_in_windows_is_reported(fn):
    maps = ct.AffineMaps([[[1e200]], [[1e200]]], [[0.0], [1.0]])
    with pytest.raises(ct.DivergenceError, match=r"overflowed.*step 2"):
        fn(maps, [1.0], [0, 1, 0, 1], 2)


def test_sliding_window_longer_than_the_sequence_is_backward_sgd(setup):
    maps, idx = setup
    s = ct.sliding_backward_iterates(maps, np.ones(2), idx, window=10**9)
    np.testing.assert_allclose(s.iterates, ct.backward_iterates(maps, np.ones(2), idx), atol=1e-12)
    assert s.gradient_evals == 23 * 24 // 2
