"""Every theorem check passes, and fails when fed a deliberately wrong ingredient."""

import dataclasses
import json

import numpy as np
import pytest

import contraction as ct
import proofs_checks
from contraction.cli import main
from contraction.theory import samples as samples_module
from proofs_checks import (
    c01_backward_contraction,
    c02_forgetting,
    c03_forward_no_pointwise,
    c04_equality_in_law,
    c05_letac,
    c06_geometric_in_law,
    c07_exact_moments,
    c08_average_contraction,
    c09_lie_bracket,
    c10_order_symmetry,
    c11_practical,
    c12_examples,
    c13_neural_networks,
)


def dense(maps):
    """An affine family with its matrices ``A_i`` (low-rank maps made dense)."""
    return maps.to_dense() if isinstance(maps, ct.LowRankAffineMaps) else maps


def increment_without_offsets(maps):
    """Forgets the offsets b_i in E‖(A_i − I)Z + b_i‖²."""
    mom = ct.stationary_moments(maps)
    maps = dense(maps)
    B = maps.A - np.eye(maps.dim)
    return float(maps.probs @ np.einsum("mij,jk,mik->m", B, mom.second_moment, B))


def always_reshuffle(n_batches, n_steps, n_chains=1, scheme="iid", probs=None, rng=None):
    """Reshuffled batches passed off as i.i.d. (the reshuffled mid-epoch law)."""
    return ct.sample_batches(n_batches, n_steps, n_chains, scheme="reshuffle", rng=rng)


def unconverged_sampler(maps, n, rng=None, **kw):
    """Forward iterates after 2 steps passed off as stationary samples."""
    return ct.stationary_samples(maps, n, method="forward", rng=rng, burn_in=2)


def transposed_mean(maps, theta0, n):
    """Mean recursion with Āᵀ instead of Ā."""
    Abar, bbar = maps.mean_map()
    mu = np.asarray(theta0, float)
    for _ in range(n):
        mu = Abar.T @ mu + bbar
    return ct.MomentsAtStep(n, mu, np.zeros((maps.dim, maps.dim)))


def covariance_without_cross_terms(maps):
    """Wrong covariance: S = Σ p A S Aᵀ + Σ p b bᵀ (drops A μ bᵀ + b μᵀ Aᵀ)."""
    right = ct.stationary_moments(maps)
    maps = dense(maps)
    d = maps.dim
    K = np.einsum("m,mij,mkl->ikjl", maps.probs, maps.A, maps.A).reshape(d * d, d * d)
    R = np.einsum("m,mi,mj->ij", maps.probs, maps.b, maps.b)
    S = np.linalg.solve(np.eye(d * d) - K, R.ravel()).reshape(d, d)
    return ct.StationaryMoments(right.mean, S - np.outer(right.mean, right.mean), S, 0.0,
                                right.mean_square_radius, "wrong")


def distance_without_stationary_spread(maps, theta0, n_steps):
    """tr(Q_n M) with M = (θ0 − μ)(θ0 − μ)ᵀ only (drops Σ_π)."""
    mom = ct.stationary_moments(maps)
    maps = dense(maps)
    diff = np.asarray(theta0) - mom.mean
    Q, out = np.eye(maps.dim), []
    for _ in range(n_steps + 1):
        out.append(diff @ Q @ diff)
        Q = np.einsum("m,mji,jk,mkl->il", maps.probs, maps.A, Q, maps.A)
    return np.array(out)


def forward_as_corrected(maps, theta0, idx, window):
    """No bracket correction at all (plain forward SGD)."""
    x = ct.forward_iterates(maps, theta0, idx)
    return ct.ApproximateIterates(x, np.arange(x.shape[1]), "forward", window, 0, 0)


def backward_ignoring_batches(maps, theta0, idx, save_steps=None):
    """Backward SGD on batch 0 repeated (ignores the sampled sequence): a different law."""
    return ct.backward_iterates(maps, theta0, np.zeros_like(idx), save_steps=save_steps)


def swapped_cdf(lr):
    """Uniform and Cantor laws swapped."""
    return ct.two_point_cdf(2 / 3 if np.isclose(lr, 0.5) else 0.5)


def scaled(fn, factor, field=None):
    """A near-miss ingredient: ``fn``'s answer (or one field of it) times ``factor``."""

    def wrong(*args, **kwargs):
        out = fn(*args, **kwargs)
        if field is None:
            return out * factor
        return dataclasses.replace(out, **{field: getattr(out, field) * factor})

    return wrong


CASES = [
    (c01_backward_contraction, {"backward": ct.forward_iterates}),  # swapped composition order
    (c02_forgetting, {"constant": lambda maps: 0.9 * ct.contraction_constant(maps)}),
    (c03_forward_no_pointwise, {"increment": increment_without_offsets}),
    (c04_equality_in_law, {"sample": always_reshuffle}),
    (c05_letac, {"sampler": unconverged_sampler}),
    (c06_geometric_in_law, {"moments": transposed_mean}),
    (c07_exact_moments, {"moments": covariance_without_cross_terms}),
    (c08_average_contraction, {"distance": distance_without_stationary_spread}),
    (c11_practical, {"corrected": forward_as_corrected}),
    (c09_lie_bracket, {"bracket": lambda X, Y, syms: -ct.lie.bracket(X, Y, syms)}),  # wrong bracket sign
    (c10_order_symmetry, {"coefficient": lambda h, m: h / (2 * m)}),  # regulariser coefficient off by 2
    (c12_examples, {"cdf": swapped_cdf}),
    (c13_neural_networks, {"backward": ct.forward_iterates}),  # swapped composition order
    (c13_neural_networks, {"backward": backward_ignoring_batches}),
]
# Near misses: an ingredient off by 10-20 %, which a loosened tolerance would let through.
NEAR_MISSES = [
    (c03_forward_no_pointwise, {"increment": scaled(ct.stationary_mean_squared_increment, 1.2)}),
    (c07_exact_moments, {"moments": scaled(ct.stationary_moments, 1.1, "cov")}),
    (c08_average_contraction, {"distance": scaled(ct.backward_distance_squared, 1.2)}),
    (c10_order_symmetry, {"coefficient": lambda h, m: 1.1 * h / (4 * m)}),
    (c13_neural_networks, {"backward": lambda maps, theta0, idx, save_steps=None: ct.backward_iterates(
        maps, theta0, idx, save_steps=save_steps) * 1.01}),
]
CASES = CASES + NEAR_MISSES
IDS = [f"{m.__name__.split('.')[-1]}-{k}" for k, (m, _) in enumerate(CASES)]
# quick checks over 5 s on two cores run in `contraction verify` and `pytest -m slow`, not by default
SLOW_CHECKS = {"c04_equality_in_law", "c05_letac", "c07_exact_moments", "c12_examples"}
CASES = [pytest.param(m, w, marks=pytest.mark.slow) if m.__name__.split(".")[-1] in SLOW_CHECKS else (m, w)
         for m, w in CASES]


@pytest.mark.parametrize("module,wrong", CASES, ids=IDS)
def test_check_passes(module, wrong):
    result = module.check(quick=True)
    assert result.passed, result
    assert result.claim in proofs_checks.CLAIMS


@pytest.mark.parametrize("module,wrong", CASES, ids=IDS)
def test_check_fails_with_a_wrong_ingredient(module, wrong):
    result = module.check(quick=True, **wrong)
    assert not result.passed, result


def test_run_check_reports_exceptions_as_failures(monkeypatch):
    def boom(quick=False):
        raise RuntimeError("deliberate")

    monkeypatch.setattr(c02_forgetting, "check", boom)
    r = proofs_checks.run_check("C2", quick=True)
    assert not r.passed and "deliberate" in r.details["error"]


def test_verify_cli_writes_json_and_exit_status(tmp_path, capsys):
    out = tmp_path / "res.json"
    assert main(["verify", "--quick", "--only", "C1", "C6", "--json", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert [r["claim"] for r in payload["results"]] == ["C1", "C6"]
    assert all(r["passed"] for r in payload["results"])
    table = capsys.readouterr().out
    assert "C1" in table and "PASS" in table and "2 passed, 0 failed" in table


def test_verify_cli_fails_when_a_check_fails(monkeypatch, capsys):
    monkeypatch.setattr(c02_forgetting, "check", lambda quick=False: c02_forgetting.__dict__["_wrong"]())
    c02_forgetting._wrong = lambda: proofs_checks.make_result("C2", "x", 2.0, 1.0, "<=", 0.0, 0.0)
    try:
        assert main(["verify", "--quick", "--only", "C2"]) == 1
    finally:
        del c02_forgetting._wrong
    assert "FAIL" in capsys.readouterr().out


def test_blocks_of_chains_change_no_draw(monkeypatch):
    """C8 draws its chains block by block: chain i gets the batches it gets in one draw of all chains."""
    monkeypatch.setattr(c08_average_contraction, "BLOCK", 7)
    blocks = list(c08_average_contraction._blocks(20, 82))
    assert [(first, count) for first, count, _ in blocks] == [(0, 7), (7, 7), (14, 6)]
    drawn = np.concatenate([ct.sample_batches(5, 30, count, rng=rng) for _, count, rng in blocks])
    assert np.array_equal(drawn, ct.sample_batches(5, 30, 20, rng=82))


def test_forward_stationary_samples_do_not_depend_on_the_block(monkeypatch):
    """The forward samples of C5 are iterated in blocks of chains; the blocks change no sample."""
    maps = ct.two_point_quadratic().sgd_maps(0.5)
    whole = ct.stationary_samples(maps, 50, method="forward", rng=3, burn_in=40).samples
    monkeypatch.setattr(samples_module, "_BLOCK_VALUES", 40 * 7)  # blocks of 7 chains
    assert np.array_equal(ct.stationary_samples(maps, 50, method="forward", rng=3, burn_in=40).samples, whole)
    assert np.unique(whole).size == 50  # 50 different chains, not one repeated
