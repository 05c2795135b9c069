import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import affine_maps, batch_sequences, floats, quadratic_models

import contraction as ct


class Wrapped:
    """An affine family seen only through step(): forces the general code path."""

    def __init__(self, maps):
        self.maps = maps
        self.n_maps = maps.n_maps
        self.calls = 0

    def step(self, theta, index):
        self.calls += len(theta)
        return self.maps.step(theta, index)


def loop_forward(maps, theta0, seq):
    out = [np.asarray(theta0, float)]
    for i in seq:
        out.append(maps.A[i] @ out[-1] + maps.b[i])
    return np.array(out)


def composed_backward(maps, theta0, seq):
    """θ̃_n by explicit composition T_{ξ1}∘…∘T_{ξn}(θ0) for every n."""
    out = []
    for n in range(len(seq) + 1):
        x = np.asarray(theta0, float)
        for i in reversed(seq[:n]):  # ξ_n first, ξ_1 last
            x = maps.A[i] @ x + maps.b[i]
        out.append(x)
    return np.array(out)


@given(st.data())
def test_forward_equals_loop_and_backward_equals_composition(data):
    maps = data.draw(affine_maps())
    idx = data.draw(batch_sequences(maps.n_maps))
    theta0 = np.linspace(-1, 1, maps.dim)
    fwd = ct.forward_iterates(maps, theta0, idx)
    bwd = ct.backward_iterates(maps, theta0, idx)
    assert fwd.shape == bwd.shape == (idx.shape[0], idx.shape[1] + 1, maps.dim)
    for c in range(idx.shape[0]):  # loop over chains only in the test oracle
        np.testing.assert_allclose(fwd[c], loop_forward(maps, theta0, idx[c]), atol=1e-12)
        np.testing.assert_allclose(bwd[c], composed_backward(maps, theta0, idx[c]), atol=1e-12)


@given(st.data())
def test_model_maps_iterate_like_gradient_steps(data):
    model = data.draw(quadratic_models())
    h = data.draw(st.floats(0.01, 0.5))
    maps = model.sgd_maps(h)
    seq = data.draw(batch_sequences(model.n_batches, max_chains=1))[0]
    x = np.zeros(model.dim)
    for i in seq:
        x = x - h * model.gradient(x, i)
    np.testing.assert_allclose(ct.forward_iterates(maps, np.zeros(model.dim), seq)[0, -1], x, atol=1e-10)


@given(st.data())
def test_batched_call_equals_loop_over_chains(data):
    maps = data.draw(affine_maps())
    idx = data.draw(batch_sequences(maps.n_maps, max_chains=4))
    theta0 = data.draw(hnp.arrays(np.float64, (idx.shape[0], maps.dim), elements=floats))
    for fn in (ct.forward_iterates, ct.backward_iterates):
        full = fn(maps, theta0, idx)
        for c in range(idx.shape[0]):
            np.testing.assert_allclose(full[c], fn(maps, theta0[c], idx[c])[0], atol=1e-12)


@given(st.data())
def test_general_map_family_matches_affine_closed_forms(data):
    maps = data.draw(affine_maps())
    idx = data.draw(batch_sequences(maps.n_maps))
    theta0 = np.ones(maps.dim)
    for fn in (ct.forward_iterates, ct.backward_iterates):
        np.testing.assert_allclose(fn(Wrapped(maps), theta0, idx), fn(maps, theta0, idx), atol=1e-12)
    # forward: the same per-chain products through step() as in the closed form, bit for bit, except for
    # diagonal maps (and d = 1), whose closed form composes the maps of each word of steps first (to rounding)
    if maps._diagonal is None:
        assert np.array_equal(ct.forward_iterates(Wrapped(maps), theta0, idx), ct.forward_iterates(maps, theta0, idx))


def test_general_backward_cost_is_sum_of_requested_horizons():
    maps = ct.AffineMaps(np.full((2, 1, 1), 0.5), [[1.0], [-1.0]])
    idx = ct.sample_batches(2, 30, n_chains=3, rng=1)
    w = Wrapped(maps)
    last = ct.backward_iterates(w, [0.0], idx, save_steps=[30])
    assert w.calls == 3 * 30
    w.calls = 0
    ct.backward_iterates(w, [0.0], idx)
    assert w.calls == 3 * 30 * 31 // 2
    np.testing.assert_allclose(last[:, 0], ct.backward_iterates(maps, [0.0], idx)[:, -1])


@pytest.mark.parametrize("fn", [ct.forward_iterates, ct.backward_iterates])
def test_save_steps_selects_rows(fn):
    rng = np.random.default_rng(3)
    maps = ct.AffineMaps(0.3 * rng.normal(size=(3, 4, 4)), rng.normal(size=(3, 4)))
    idx = ct.sample_batches(3, 50, n_chains=2, rng=4)
    full = fn(maps, np.zeros(4), idx)
    every = fn(maps, np.zeros(4), idx, save_steps=range(0, 51, 7))
    last = fn(maps, np.zeros(4), idx, save_steps=[50])
    np.testing.assert_allclose(every, full[:, ::7], atol=1e-13)
    np.testing.assert_allclose(last[:, 0], full[:, -1], atol=1e-13)


def test_backward_block_scan_matches_sequential(monkeypatch):
    """Long horizons with tiny tiles of chains (the working-memory budget); every tile must scan alike."""
    import contraction.core._scan as it

    rng = np.random.default_rng(5)
    maps = ct.AffineMaps(0.4 * rng.normal(size=(4, 3, 3)), rng.normal(size=(4, 3)))
    idx = ct.sample_batches(4, 300, n_chains=2, rng=6)
    reference = composed_backward(maps, np.ones(3), idx[1])
    for budget in (8 * 2 * 16 * 2 * 1, 8 * 2 * 16 * 2 * 37, 1 << 24):
        monkeypatch.setattr(it, "_SCAN_BUDGET", budget)
        out = ct.backward_iterates(maps, np.ones(3), idx)
        np.testing.assert_allclose(out[1], reference, atol=1e-11)


def test_grouped_path_for_many_chains_matches_gathered():
    rng = np.random.default_rng(8)
    maps = ct.AffineMaps(0.3 * rng.normal(size=(2, 3, 3)), rng.normal(size=(2, 3)))
    idx = ct.sample_batches(2, 20, n_chains=64, rng=9)  # 32 chains per batch: grouped GEMMs
    theta0 = rng.normal(size=(64, 3))
    for fn in (ct.forward_iterates, ct.backward_iterates):
        grouped = fn(maps, theta0, idx)
        gathered = np.stack([fn(maps, theta0[c], idx[c])[0] for c in range(64)])
        np.testing.assert_allclose(grouped, gathered, atol=1e-12)


def test_same_seed_same_result_bit_for_bit():
    model = ct.LinearRegressionModel(*_data(40, 3), batch_size=4)
    maps = model.sgd_maps(0.1)
    runs = []
    for _ in range(2):
        idx = ct.sample_batches(model.n_batches, 100, n_chains=5, rng=2024)
        runs.append((ct.forward_iterates(maps, np.zeros(3), idx), ct.backward_iterates(maps, np.zeros(3), idx)))
    for a, b in zip(runs[0], runs[1], strict=True):
        assert np.array_equal(a, b)


def _data(n, d, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    return X, X @ rng.normal(size=d) + 0.1 * rng.normal(size=n)


@pytest.mark.parametrize("fn", [ct.forward_iterates, ct.backward_iterates])
def test_overflow_is_reported_not_returned(fn):
    maps = ct.AffineMaps([[[1e200]], [[1e200]]], [[0.0], [1.0]])
    with pytest.raises(ct.DivergenceError, match=r"overflowed.*step 2"):
        fn(maps, [1.0], [0, 1, 0, 1])
    with pytest.raises(ct.DivergenceError, match=r"overflowed.*step 2"):
        fn(Wrapped(maps), [1.0], [0, 1, 0, 1])


def test_backward_converges_forward_does_not_on_two_point_example():
    maps = ct.QuadraticModel([[[1.0]], [[1.0]]], [[1.0], [-1.0]]).sgd_maps(0.5)
    idx = ct.sample_batches(2, 60, n_chains=4, rng=0)
    bwd = ct.backward_iterates(maps, [0.0], idx)
    fwd = ct.forward_iterates(maps, [0.0], idx)
    assert np.abs(np.diff(bwd[:, -10:, 0])).max() < 1e-12 * 2**50  # increments ≤ ½^{50}
    assert np.abs(np.diff(fwd[:, -10:, 0])).max() > 0.1  # forward keeps jumping by ±½


def test_gradient_maps_of_a_model_match_its_affine_maps():
    rng = np.random.default_rng(10)
    G = rng.normal(size=(3, 2, 2))
    model = ct.QuadraticModel(G @ G.transpose(0, 2, 1) / 2, rng.normal(size=(3, 2)))
    idx = ct.sample_batches(3, 15, n_chains=4, rng=11)
    for fn in (ct.forward_iterates, ct.backward_iterates):
        np.testing.assert_allclose(fn(model.gradient_maps(0.2), np.zeros(2), idx),
                                   fn(model.sgd_maps(0.2), np.zeros(2), idx), atol=1e-12)
    v = rng.normal(size=2)
    np.testing.assert_allclose(model.hvp(np.zeros(2), v, 1), model.hessians[1] @ v)


# --- divergence is decided on the iterates, not on the products ------------------------------------


def test_a_constant_first_map_keeps_backward_iterates_finite():
    """T_1 ≡ 1 acts last, so every backward iterate is 1 although A_0^n overflows (issue 10)."""
    maps = ct.AffineMaps([[[2.0]], [[0.0]]], [[0.0], [1.0]])
    idx = np.zeros(3000, dtype=np.int64)
    idx[0] = 1
    out = ct.backward_iterates(maps, [0.0], idx)
    assert np.array_equal(out[0, 1:, 0], np.ones(3000))
    assert np.array_equal(ct.backward_iterates(maps, [0.0], idx, save_steps=[1025, 3000])[0, :, 0], [1.0, 1.0])


def test_overflowing_products_with_finite_iterates_are_recomputed():
    """A = 2, b = 0, θ0 = 0: P_n = 2^n overflows from n = 1024, the iterates stay exactly 0."""
    maps = ct.AffineMaps([[[2.0]]], [[0.0]])
    out = ct.backward_iterates(maps, [0.0], np.zeros((2, 1100), dtype=np.int64))
    assert np.array_equal(out, np.zeros((2, 1101, 1)))


def test_recomputing_too_many_overflowed_products_is_refused_with_the_reason():
    """Finite iterates behind overflowed products are recomputed only within a stated budget."""
    maps = ct.AffineMaps([[[2.0]]], [[0.0]])
    # P_n = 2^n overflows from n = 1024; the first iterate read from an overflowed product is step 1024 step by
    # step, or step 1025 by words of 16 steps (step 1024 is then P_1008 applied to the word's own prefix)
    with pytest.raises(ct.DivergenceError, match=r"products P_n of chain 0 overflow from step 102[45] on.*limit"):
        ct.backward_iterates(maps, [0.0], np.zeros((2, 12000), dtype=np.int64))
    last = ct.backward_iterates(maps, [0.0], np.zeros((2, 12000), dtype=np.int64), save_steps=[12000])
    assert np.array_equal(last, np.zeros((2, 1, 1)))


@pytest.mark.parametrize("fn", [ct.forward_iterates, ct.backward_iterates])
def test_true_divergence_names_the_first_non_finite_step(fn):
    maps = ct.AffineMaps([[[2.0]]], [[1.0]])
    with pytest.raises(ct.DivergenceError, match=r"chain 1 is non-finite at step 1023"):
        fn(maps, [[0.0], [1.0]], np.zeros((2, 1100), dtype=np.int64))


class Checked:
    """A general family whose callables refuse non-finite points, like a model's public methods."""

    def __init__(self, model, lr):
        self.model, self.lr, self.n_maps = model, lr, model.n_batches

    def gradient(self, theta, index):
        return self.model.gradient(theta, index)

    def hvp(self, theta, v, index):
        return self.model.hvp(theta, v, index)

    def step(self, theta, index):
        return theta - self.lr * self.gradient(theta, index)


@pytest.mark.parametrize("fn", [ct.forward_iterates, ct.backward_iterates])
def test_general_families_report_divergence_not_a_refused_point(fn):
    model = ct.QuadraticModel([[[1.0]], [[2.0]]], [[1.0], [-1.0]])
    for maps in (Checked(model, 1e150), ct.GradientMaps(model.gradient, 1e150, 2, hvp=model.hvp)):
        with pytest.raises(ct.DivergenceError, match="overflowed"):
            fn(maps, [1.0], [0, 1] * 6)


# --- the last step of a long sequence ----------------------------------------------------------------


def test_last_step_of_a_long_sequence_uses_the_closed_form(monkeypatch):
    """``save_steps=[n]`` is read from the same products as the full output, not recomputed map by map."""
    rng = np.random.default_rng(6)
    maps = ct.AffineMaps(0.4 * rng.normal(size=(3, 2, 2)), rng.normal(size=(3, 2)))
    idx = ct.sample_batches(3, 5000, n_chains=2, rng=7)
    full = ct.backward_iterates(maps, np.ones(2), idx)
    calls = []
    original = ct.AffineMaps.step
    monkeypatch.setattr(ct.AffineMaps, "step", lambda self, t, i: calls.append(len(t)) or original(self, t, i))
    last = ct.backward_iterates(maps, np.ones(2), idx, save_steps=[5000])
    assert calls == []
    assert np.array_equal(last[:, 0], full[:, -1])


def test_last_step_of_a_hundred_thousand_steps_is_quick():
    maps = ct.two_point_quadratic().sgd_maps(0.5)
    idx = ct.sample_batches(2, 100_000, rng=8)
    last = ct.backward_iterates(maps, [0.0], idx, save_steps=[100_000])
    assert last.shape == (1, 1, 1) and np.isfinite(last).all()


# --- sizes ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [ct.forward_iterates, ct.backward_iterates])
def test_an_output_above_the_limit_is_refused_before_allocating(fn):
    maps = ct.AffineMaps(np.zeros((1, 256, 256)), np.zeros((1, 256)))
    idx = np.zeros((1024, 1024), dtype=np.int64)  # 1024 chains × 1025 steps × 256 floats: 2 GiB
    with pytest.raises(ValueError, match=r"^save_steps: .*1 GiB"):
        fn(maps, np.zeros(256), idx)
    assert fn(maps, np.zeros(256), idx[:2, :4]).shape == (2, 5, 256)


@pytest.mark.parametrize("fn", [ct.forward_iterates, ct.backward_iterates])
def test_a_sequence_above_the_step_limit_is_refused(fn):
    maps = ct.AffineMaps([[[0.5]]], [[0.0]])
    idx = np.broadcast_to(np.int64(0), (1, ct.core.iterates.MAX_STEPS + 1))  # no memory behind it
    with pytest.raises(ValueError, match=r"^idx: expected at most 100000000 steps"):
        fn(maps, [0.0], idx, save_steps=[1])
