"""The figures of the examples: computed by the library, drawn by :mod:`contraction.plotting`.

``write_figures(out_dir)`` writes every figure as PNG; ``contraction
reproduce`` and ``contraction verify --figures DIR`` call it.
"""

from __future__ import annotations

import os

import numpy as np

from . import plotting
from .theory.diagnostics import contraction_constant, lyapunov_exponent, mean_square_radius
from .theory.examples import (
    gaussian_least_squares_1d,
    gaussian_lyapunov_threshold,
    log_cosh_maps,
    mean_estimation,
    two_point_cdf,
    two_point_quadratic,
)
from .core.iterates import backward_iterates, forward_iterates
from .core.sampling import sample_batches
from .theory.moments import stationary_moments
from .theory.samples import stationary_samples

__all__ = ["FIGURES", "write_figures", "lie_slope_data"]


def _trajectories(path, quick):
    fig, axes = plotting.new_figure(3)
    n = 40
    e1 = two_point_quadratic().sgd_maps(0.5)
    idx = sample_batches(2, n, 3, rng=1)
    plotting.draw_trajectories(axes[0], np.arange(n + 1), forward_iterates(e1, [0.0], idx)[..., 0],
                               backward_iterates(e1, [0.0], idx)[..., 0], "E1: two-point quadratic, h = 1/2",
                               limit=0.0)
    pts = np.random.default_rng(2).normal(size=(6, 2))
    e2 = mean_estimation(pts).sgd_maps(0.3)
    idx = sample_batches(6, n, 3, rng=3)
    plotting.draw_trajectories(axes[1], np.arange(n + 1), forward_iterates(e2, [3.0, 3.0], idx)[..., 0],
                               backward_iterates(e2, [3.0, 3.0], idx)[..., 0],
                               "E2: mean estimation, h = 0.3 (1st coordinate)", limit=pts[:, 0].mean())
    e3 = gaussian_least_squares_1d(500).sgd_maps(1.0)
    idx = sample_batches(e3.n_maps, 200, 3, probs=e3.probs, rng=4)
    plotting.draw_trajectories(axes[2], np.arange(201), forward_iterates(e3, [1.0], idx)[..., 0],
                               backward_iterates(e3, [1.0], idx)[..., 0],
                               "E3: least squares, batch 1, h = 1 (heavy tails)")
    return plotting.save_figure(fig, path)


def _laws(path, quick):
    n = 4000 if quick else 40000
    fig, axes = plotting.new_figure(2)
    e1 = two_point_quadratic()
    maps = e1.sgd_maps(0.5)
    back = stationary_samples(maps, n, rng=5).samples[:, 0]
    fwd = forward_iterates(maps, [0.0], sample_batches(2, 60, n, rng=6), save_steps=[60])[:, 0, 0]
    grid = np.linspace(-1.2, 1.2, 400)
    plotting.draw_histogram_with_density(axes[0], [fwd, back], ["forward θ_60", "backward limit θ̃_∞"], grid,
                                         np.where(np.abs(grid) <= 1, 0.5, 0.0), "E1, h = 1/2: π = Uniform[-1, 1]")
    maps = e1.sgd_maps(2 / 3)
    back = stationary_samples(maps, n, rng=7).samples[:, 0]
    fwd = forward_iterates(maps, [0.0], sample_batches(2, 60, n, rng=8), save_steps=[60])[:, 0, 0]
    plotting.draw_cdf_comparison(axes[1], [fwd, back], ["forward θ_60", "backward limit θ̃_∞"], grid,
                                 two_point_cdf(2 / 3)(grid), "E1, h = 2/3: π = Cantor measure on [-1, 1]")
    return plotting.save_figure(fig, path)


def _increments(path, quick):
    fig, axes = plotting.new_figure(2)
    n = 60
    for ax, (maps, name) in zip(axes, [(two_point_quadratic().sgd_maps(0.3), "E1, h = 0.3"),
                                       (_random_contraction(), "random maps, d = 3, c = 0.85")]):
        c = contraction_constant(maps)
        theta0 = np.full(maps.dim, 2.0)
        idx = sample_batches(maps.n_maps, n, 20, probs=maps.probs, rng=9)
        x = backward_iterates(maps, theta0, idx)
        inc = np.linalg.norm(np.diff(x, axis=1), axis=-1)
        G = np.linalg.norm(maps.step(np.broadcast_to(theta0, (maps.n_maps, maps.dim)), np.arange(maps.n_maps))
                           - theta0, axis=-1).max()
        plotting.draw_increments_with_bound(ax, np.arange(n), inc, c ** np.arange(n) * G,
                                            f"Backward increments, {name}")
    return plotting.save_figure(fig, path)


def _random_contraction():
    from .core.maps import AffineMaps

    rng = np.random.default_rng(10)
    A = rng.normal(size=(4, 3, 3))
    A *= 0.85 / np.linalg.norm(A, 2, axis=(1, 2))[:, None, None]
    return AffineMaps(A, rng.normal(size=(4, 3)))


def _stability(path, quick):
    model = gaussian_least_squares_1d(1000 if quick else 2000)
    lrs = np.linspace(0.05, 2.8, 40 if quick else 120)
    lyap = np.array([lyapunov_exponent(model.sgd_maps(h)).exponent for h in lrs])
    ms = np.array([mean_square_radius(model.sgd_maps(h)) for h in lrs])
    fig, axes = plotting.new_figure(1, width=6.5)
    plotting.draw_stability_vs_lr(axes[0], lrs, lyap, ms, 2 / 3, gaussian_lyapunov_threshold(),
                                  "E3: 1-D least squares, x ~ N(0, 1), batch size 1")
    return plotting.save_figure(fig, path)


def lie_slope_data(hs=None, window=4, seed=0):
    """Forward − backward over one word and the residual after the bracket term, against h.

    Non-quadratic loss ``f_i(θ) = Σ_k log cosh(a_ikᵀ θ − y_ik)`` in d = 2.
    Returns ``(hs, difference, residual)`` (max norms over 8 sequences);
    the difference is ``O(h²)`` and the residual after
    ``h² Σ_{i<j} [g_{ξ_i}, g_{ξ_j}](θ_0)`` is ``O(h³)`` (SPEC C9).
    """
    hs = np.geomspace(0.005, 0.05, 6) if hs is None else np.asarray(hs, dtype=float)
    idx = sample_batches(3, window, 8, rng=seed + 1)
    theta0 = np.tile([0.3, -0.2], (8, 1))
    family = log_cosh_maps(1.0, seed=seed)
    gradient, hvp = family.gradient, family.hvp
    bracket_sum = np.zeros_like(theta0)
    for i in range(window):
        for j in range(i + 1, window):
            gi, gj = gradient(theta0, idx[:, i]), gradient(theta0, idx[:, j])
            bracket_sum += hvp(theta0, gi, idx[:, j]) - hvp(theta0, gj, idx[:, i])  # [g_i, g_j] = H_j g_i − H_i g_j
    diff, resid = [], []
    for h in hs:
        maps = log_cosh_maps(h, seed=seed)
        d = (forward_iterates(maps, theta0, idx, save_steps=[window])
             - backward_iterates(maps, theta0, idx, save_steps=[window]))[:, 0]
        diff.append(np.abs(d).max())
        resid.append(np.abs(d - h**2 * bracket_sum).max())
    return hs, np.array(diff), np.array(resid)


def _lie(path, quick):
    hs, diff, resid = lie_slope_data()
    slope = lambda v: float(np.polyfit(np.log(hs), np.log(v), 1)[0])
    fig, axes = plotting.new_figure(1, width=6.0)
    plotting.draw_loglog_slopes(axes[0], hs, [("forward − backward", diff, slope(diff)),
                                              ("residual after h²Σ[g_i, g_j]", resid, slope(resid))],
                                "Lie-bracket expansion (C9), log-cosh loss, 4 steps")
    return plotting.save_figure(fig, path)


def _nn(path, quick):
    from .experiments import run_nn_experiment

    res = run_nn_experiment(model="mlp", steps=120 if quick else 300, seed=0)
    return plotting.save_figure(plotting_nn_curves(res), path)


def plotting_nn_curves(res):
    """Loss and step-norm curves of the four training methods of an experiment result."""
    fig, axes = plotting.new_figure(2)
    for name, data in res["methods"].items():
        axes[0].plot(data["loss"], lw=1.2, label=name)
        axes[1].semilogy(np.maximum(np.asarray(data["step_norm"], dtype=float), 1e-16), lw=1.0, label=name)
    cfg = res["config"]
    axes[0].set_title(f"{cfg['model'].upper()} on {cfg['data']}: training loss (h = {cfg['lr']}, W = {cfg['window']})")
    axes[0].set_xlabel("step n")
    axes[0].set_ylabel("loss")
    axes[0].legend(fontsize=8)
    axes[1].set_title("step norm ‖θ_{n+1} − θ_n‖")
    axes[1].set_xlabel("step n")
    axes[1].set_ylabel("step norm")
    axes[1].legend(fontsize=8)
    return fig


FIGURES = {
    "trajectories.png": _trajectories,
    "stationary_laws.png": _laws,
    "backward_increments.png": _increments,
    "stability_vs_lr.png": _stability,
    "lie_slopes.png": _lie,
    "nn_curves.png": _nn,
}


def write_figures(out_dir, quick=False, names=None) -> list[str]:
    """Compute and write the figures as PNG into ``out_dir``; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    chosen = list(FIGURES) if names is None else list(names)
    paths = []
    for name in chosen:
        if name not in FIGURES:
            raise ValueError(f"names: expected figure names among {list(FIGURES)}, got {name!r}")
        paths.append(FIGURES[name](os.path.join(out_dir, name), quick))
    return paths
