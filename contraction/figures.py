"""The figures of the examples and of the network experiment: computed by the library, drawn by
:mod:`contraction.plotting`.

``write_figures(out_dir)`` writes every figure of the examples as PNG
(``contraction reproduce`` and ``contraction verify --figures DIR`` call it);
``build_figure(name)`` returns one of them as a
:class:`matplotlib.figure.Figure` without writing it.
``write_experiment_figures(result, out_dir)`` draws a
:func:`contraction.experiments.run_nn_experiment` result (``contraction
experiment nn`` calls it) through :func:`nn_curves_figure` and
:func:`accuracy_figure`, whose titles name the network, the data and the
training settings. The published figures use fixed randomness:
:data:`FIGURE_SEED` is passed down as the ``rng`` of every figure, each
figure drawing from its own spawned stream.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np

from . import plotting
from ._figures_phase import _DIGITS, _heavy_tail_phase, _nn_phase
from .core._fitting import loglog_slope
from .core._validation import as_float_array, as_generator, check_positive_int, describe
from .core.iterates import backward_iterates, forward_iterates
from .core.maps import AffineMaps, GradientMaps
from .core.sampling import sample_batches
from .experiments import NNExperimentResult, run_nn_experiment
from .theory.diagnostics import contraction_constant, lyapunov_exponent, mean_square_radius
from .theory.examples import (
    gaussian_least_squares_1d,
    gaussian_lyapunov_threshold,
    log_cosh_maps,
    mean_estimation,
    two_point_cdf,
    two_point_quadratic,
)
from .theory.samples import stationary_samples

__all__ = [
    "FIGURES",
    "FIGURE_SEED",
    "METHOD_STYLES",
    "LieSlopeData",
    "accuracy_figure",
    "build_figure",
    "lie_slope_data",
    "nn_curves_figure",
    "write_experiment_figures",
    "write_figures",
]

#: The seed of the published figures (the command line's default).
FIGURE_SEED = 0

#: Legend label and colour of each training method of the network experiment.
METHOD_STYLES = {
    "forward": ("forward SGD", "tab:blue"),
    "backward": ("backward SGD", "tab:orange"),
    "windowed": ("anchored window", "tab:green"),
    "bracket_corrected": ("bracket-corrected forward", "tab:red"),
}
_MODELS = {"mlp": "MLP", "cnn": "CNN (4 kernels 3×3)"}
_DATA = {"digits": _DIGITS,
         "synthetic": "synthetic teacher-student data (16 features, 4 classes)"}


def _trajectories(quick, rng):
    g_e1, g_points, g_e2, g_e3 = rng.spawn(4)
    fig, axes = plotting.new_figure(3)
    n = 40
    e1 = two_point_quadratic().sgd_maps(0.5)
    idx = sample_batches(2, n, 3, rng=g_e1)
    plotting.draw_trajectories(axes[0], np.arange(n + 1), forward_iterates(e1, [0.0], idx)[..., 0],
                               backward_iterates(e1, [0.0], idx)[..., 0], r"E1: two-point quadratic, $h = 1/2$",
                               limit=0.0, legend=False)
    pts = g_points.normal(size=(6, 2))
    e2 = mean_estimation(pts).sgd_maps(0.3)
    idx = sample_batches(6, n, 3, rng=g_e2)
    plotting.draw_trajectories(axes[1], np.arange(n + 1), forward_iterates(e2, [3.0, 3.0], idx)[..., 0],
                               backward_iterates(e2, [3.0, 3.0], idx)[..., 0],
                               r"E2: mean of 6 points in $\mathbb{R}^2$, $h = 0.3$",
                               ylabel=r"first coordinate of $\theta_n$", limit=pts[:, 0].mean(), legend=False)
    e3 = gaussian_least_squares_1d(500).sgd_maps(1.0)
    idx = sample_batches(e3.n_maps, 200, 3, probs=e3.probs, rng=g_e3)
    plotting.draw_trajectories(axes[2], np.arange(201), forward_iterates(e3, [1.0], idx)[..., 0],
                               backward_iterates(e3, [1.0], idx)[..., 0],
                               r"E3: least squares, batch 1, $h = 1$ (heavy tails)", legend=False)
    plotting.figure_legend(fig, axes[0])
    return fig


def _laws(quick, rng):
    g_back1, g_fwd1, g_back2, g_fwd2 = rng.spawn(4)
    n = 2000 if quick else 40000
    fig, axes = plotting.new_figure(2)
    labels = [rf"forward SGD $\theta_{{60}}$ ({n} chains)", rf"backward limit $\tilde\theta_\infty$ ({n} samples)"]
    e1 = two_point_quadratic()
    maps = e1.sgd_maps(0.5)
    back = stationary_samples(maps, n, rng=g_back1).samples[:, 0]
    fwd = forward_iterates(maps, [0.0], sample_batches(2, 60, n, rng=g_fwd1), save_steps=[60])[:, 0, 0]
    grid = np.linspace(-1.2, 1.2, 400)
    plotting.draw_histogram_with_density(axes[0], [fwd, back], labels, grid, np.where(np.abs(grid) <= 1, 0.5, 0.0),
                                         r"E1, $h = 1/2$: $\pi$ = Uniform[−1, 1]")
    maps = e1.sgd_maps(2 / 3)
    back = stationary_samples(maps, n, rng=g_back2).samples[:, 0]
    fwd = forward_iterates(maps, [0.0], sample_batches(2, 60, n, rng=g_fwd2), save_steps=[60])[:, 0, 0]
    plotting.draw_cdf_comparison(axes[1], [fwd, back], labels, grid, two_point_cdf(2 / 3)(grid),
                                 r"E1, $h = 2/3$: $\pi$ = Cantor measure on [−1, 1]")
    return fig


def _random_contraction(rng, c=0.85):
    """Four random 3 × 3 affine maps, each linear part scaled to spectral norm ``c``."""
    A = rng.normal(size=(4, 3, 3))
    A *= c / np.linalg.norm(A, 2, axis=(1, 2))[:, None, None]
    return AffineMaps(A, rng.normal(size=(4, 3)))


def _increments(quick, rng):
    g_maps, g_e1, g_random, g_lyap = rng.spawn(4)
    fig, axes = plotting.new_figure(2, height=4.2)
    size = r"\mathrm{max}_i\|T_i(\theta_0) - \theta_0\|"
    fig.suptitle(rf"Backward increments $\|\tilde\theta_{{n+1}} - \tilde\theta_n\|$: the bound $c^n {size}$ "
                 r"assumes that every step contracts by only $c$", fontsize=11)
    n, n_chains = 40, 8
    panels = [(two_point_quadratic().sgd_maps(0.3), r"E1, $h = 0.3$: in one dimension the bound is attained", g_e1),
              (_random_contraction(g_maps), r"4 random affine maps of $\mathbb{R}^3$, all $\|A_i\| = 0.85$",
               g_random)]
    for ax, (maps, name, gen) in zip(axes, panels, strict=True):
        c = contraction_constant(maps)
        theta0 = np.full(maps.dim, 2.0)
        idx = sample_batches(maps.n_maps, n, n_chains, probs=maps.probs, rng=gen)
        x = backward_iterates(maps, theta0, idx)
        inc = np.linalg.norm(np.diff(x, axis=1), axis=-1)
        starts = np.broadcast_to(theta0, (maps.n_maps, maps.dim))
        G = np.linalg.norm(maps.step(starts, np.arange(maps.n_maps)) - theta0, axis=-1).max()
        steps = np.arange(n)
        gamma = lyapunov_exponent(maps, rng=g_lyap).exponent
        typical = typical_label = None
        if gamma < np.log(c) - 0.05:  # the products shrink faster than the worst case c^n
            typical = np.exp(gamma * steps) * G
            typical_label = (rf"typical size $e^{{\gamma n}} {size}$, Lyapunov exponent "
                             rf"$\gamma = {gamma:.2f} < \log c = {np.log(c):.2f}$")
        plotting.draw_increments_with_bound(
            ax, steps, inc, c ** steps * G, name,
            bound_label=rf"bound $c^n {size}$, $c = \mathrm{{max}}_i\|A_i\| = {c:.2f}$",
            typical=typical, typical_label=typical_label)
    return fig


def _stability(quick, rng):
    model = gaussian_least_squares_1d(1000 if quick else 2000)
    lrs = np.linspace(0.05, 2.8, 40 if quick else 120)
    seed = int(rng.integers(2**63))  # one seed for every h: common random numbers along the curve
    lyap = np.array([lyapunov_exponent(model.sgd_maps(h), rng=seed).exponent for h in lrs])
    ms = np.array([mean_square_radius(model.sgd_maps(h)) for h in lrs])
    fig, axes = plotting.new_figure(1, width=6.5, height=4.6)
    plotting.draw_stability_vs_lr(axes[0], lrs, lyap, ms, 2 / 3, gaussian_lyapunov_threshold(),
                                  r"E3: 1-D least squares, $x \sim N(0, 1)$, batch size 1")
    return fig


@dataclass(frozen=True, eq=False)
class LieSlopeData:
    """Forward − backward over one word, and the residual after the bracket term, against h.

    Attributes
    ----------
    hs : ndarray, shape (k,)
        Learning rates.
    difference : ndarray, shape (k,)
        Max norm of ``θ_W − θ̃_W`` over the sequences (``O(h²)``).
    residual : ndarray, shape (k,)
        Max norm of ``θ_W − θ̃_W − h² Σ_{i<j} [g_{ξ_i}, g_{ξ_j}](θ_0)`` (``O(h³)``).
    difference_slope : float
        Fitted log-log slope of ``difference`` (about 2).
    residual_slope : float
        Fitted log-log slope of ``residual`` (about 3).
    """

    hs: np.ndarray
    difference: np.ndarray
    residual: np.ndarray
    difference_slope: float
    residual_slope: float


def lie_slope_data(hs=None, window=4, rng=None, *, seed=None) -> LieSlopeData:
    r"""Measure the orders of forward − backward and of the residual after the Lie-bracket term (SPEC C9).

    Non-quadratic loss ``f_i(θ) = Σ_k log cosh(a_ikᵀ θ − y_ik)`` in d = 2, one
    family of 3 batches for every h; 8 batch sequences of length ``window``
    from ``θ_0 = (0.3, −0.2)``.

    Parameters
    ----------
    hs : array_like, shape (k,), optional
        Positive learning rates (default: 6 values from 0.005 to 0.05).
    window : int, default 4
        Length ``W`` of the sequences (at least 2).
    rng : None, int, numpy.random.SeedSequence or numpy.random.Generator, optional
        Source of the loss family and of the sequences.
    seed : int, optional
        Deprecated name of ``rng``.

    Returns
    -------
    LieSlopeData
        The differences, the residuals and their fitted slopes.

    Examples
    --------
    >>> res = lie_slope_data(rng=0)
    >>> bool(abs(res.difference_slope - 2) < 0.2 and abs(res.residual_slope - 3) < 0.3)
    True
    """
    if seed is not None:
        warnings.warn("lie_slope_data: seed= is deprecated, use rng=", DeprecationWarning, stacklevel=2)
        if rng is not None:
            raise TypeError("seed: pass rng only (seed is its deprecated name)")
        rng = seed
    hs = np.geomspace(0.005, 0.05, 6) if hs is None else as_float_array(hs, "hs", ndim=1)
    if hs.size < 2 or np.any(hs <= 0):
        raise ValueError(f"hs: expected at least 2 positive learning rates, got {describe(hs)}")
    window = check_positive_int(window, "window", minimum=2)
    g_family, g_batches = as_generator(rng).spawn(2)
    family = log_cosh_maps(1.0, g_family)
    idx = sample_batches(family.n_maps, window, 8, rng=g_batches)
    theta0 = np.tile([0.3, -0.2], (8, 1))
    gradient, hvp = family.gradient, family.hvp
    bracket_sum = np.zeros_like(theta0)
    for i in range(window):
        for j in range(i + 1, window):
            gi, gj = gradient(theta0, idx[:, i]), gradient(theta0, idx[:, j])
            bracket_sum += hvp(theta0, gi, idx[:, j]) - hvp(theta0, gj, idx[:, i])  # [g_i, g_j] = H_j g_i − H_i g_j
    diff, resid = [], []
    for h in hs:
        maps = GradientMaps(gradient, h, family.n_maps, hvp=hvp)
        d = (forward_iterates(maps, theta0, idx, save_steps=[window])
             - backward_iterates(maps, theta0, idx, save_steps=[window]))[:, 0]
        diff.append(np.abs(d).max())
        resid.append(np.abs(d - h**2 * bracket_sum).max())
    diff, resid = np.array(diff), np.array(resid)
    return LieSlopeData(hs, diff, resid, loglog_slope(hs, diff), loglog_slope(hs, resid))


def _lie(quick, rng):
    res = lie_slope_data(rng=rng)
    fig, axes = plotting.new_figure(1, width=6.0)
    plotting.draw_loglog_slopes(axes[0], res.hs,
                                [("forward − backward, theory slope 2", res.difference, res.difference_slope),
                                 (r"residual after $h^2\,\Sigma_{i<j}[g_i, g_j]$, theory slope 3", res.residual,
                                  res.residual_slope)],
                                "Lie-bracket expansion (C9): log-cosh loss, 4 steps")
    return fig


# The published network figure: the regularised operating point that claim C13 checks (16 hidden units,
# weight decay 0.05, 300 warm-up steps), not the trained default of ``contraction experiment nn``.
_NN_FIGURE_SETTINGS = {"model": "mlp", "hidden": 16, "weight_decay": 0.05, "warmup": 300}


def _nn(quick, rng):
    return nn_curves_figure(run_nn_experiment(steps=60 if quick else 300, rng=rng, **_NN_FIGURE_SETTINGS))


def _describe_experiment(cfg) -> str:
    """The network, the data and the training settings of an experiment, for a figure title."""
    model = _MODELS.get(cfg.model, cfg.model.upper())
    if cfg.model == "mlp":
        model = f"MLP (one hidden layer of {cfg.hidden})"
    data = _DATA.get(cfg.data, cfg.data)
    warmup = f"after {cfg.warmup} warm-up steps" if cfg.warmup else "no warm-up"
    return (f"{model} on {data}\n"
            f"learning rate $h = {cfg.lr:g}$, batch size {cfg.batch_size}, window $W = {cfg.window}$, "
            f"weight decay {cfg.weight_decay:g}, {warmup}")


def _method_curves(result, field):
    """``({label: values}, {label: colour})`` of the methods the result holds, in their order."""
    curves, colors = {}, {}
    for name, method in result.methods.items():
        label, color = METHOD_STYLES.get(name, (name.replace("_", " "), None))
        curves[label], colors[label] = getattr(method, field), color
    return curves, colors


def _spans_decades(curves) -> bool:
    """True when the positive finite values span more than two decades (a log axis reads better)."""
    values = np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in curves.values()] or [np.zeros(0)])
    values = values[np.isfinite(values)]
    return bool(values.size and values.min() > 0 and values.max() > 100 * values.min())


def _experiment_figure(result, ncols):
    fig, axes = plotting.new_figure(ncols, height=4.0)
    title = _describe_experiment(result.config)
    if getattr(result, "diverged", False):
        title += "\nthe run diverged: only the methods that finished before it are drawn"
    fig.suptitle(title, fontsize=10)
    return fig, axes


def nn_curves_figure(result: NNExperimentResult):
    r"""Loss and step-norm curves of the training methods of an experiment.

    The figure title names the network, the data, the learning rate, the
    batch size and the window; each method the result holds (a diverged run
    may hold fewer than four) is one curve, with a human label
    (:data:`METHOD_STYLES`).

    Parameters
    ----------
    result : NNExperimentResult
        What :func:`contraction.experiments.run_nn_experiment` returned.

    Returns
    -------
    matplotlib.figure.Figure
        Two panels: training loss and step norm ``‖θ_{n+1} − θ_n‖`` (log scale).

    Examples
    --------
    >>> import contraction.experiments as ex
    >>> fig = nn_curves_figure(ex.run_nn_experiment(data="synthetic", steps=6, warmup=0, rng=0))
    >>> len(fig.axes) == 2
    True
    """
    if not isinstance(result, NNExperimentResult):
        raise TypeError(f"result: expected an NNExperimentResult, got {describe(result)}")
    fig, axes = _experiment_figure(result, 2)
    loss, colors = _method_curves(result, "loss")
    plotting.draw_method_curves(axes[0], loss, "training loss (cross-entropy)", "loss",
                                log=_spans_decades(loss), colors=colors)
    norms, colors = _method_curves(result, "step_norm")
    plotting.draw_method_curves(axes[1], norms, r"step norm $\|\theta_{n+1} - \theta_n\|$", "step norm",
                                log=True, colors=colors)
    return fig


def accuracy_figure(result: NNExperimentResult):
    """Test-accuracy curves of the training methods of an experiment.

    Parameters
    ----------
    result : NNExperimentResult
        What :func:`contraction.experiments.run_nn_experiment` returned.

    Returns
    -------
    matplotlib.figure.Figure
        One panel, titled with the network, the data and the training settings.

    Examples
    --------
    >>> import contraction.experiments as ex
    >>> fig = accuracy_figure(ex.run_nn_experiment(data="synthetic", steps=6, warmup=0, rng=0))
    >>> "MLP" in fig.get_suptitle() and "synthetic" in fig.get_suptitle()
    True
    """
    if not isinstance(result, NNExperimentResult):
        raise TypeError(f"result: expected an NNExperimentResult, got {describe(result)}")
    fig, axes = _experiment_figure(result, 1)
    fig.set_size_inches(7.5, 4.4)
    accuracy, colors = _method_curves(result, "test_accuracy")
    plotting.draw_method_curves(axes[0], accuracy, "accuracy on the held-out test set", "test accuracy",
                                colors=colors)
    return fig


def write_experiment_figures(result: NNExperimentResult, out_dir) -> list[str]:
    """Write the PNG figures of an experiment: ``curves.png`` and ``test_accuracy.png``.

    Parameters
    ----------
    result : NNExperimentResult
        What :func:`contraction.experiments.run_nn_experiment` returned.
    out_dir : str or os.PathLike
        Folder (created if missing).

    Returns
    -------
    list of str
        The paths written.

    Examples
    --------
    >>> import os, tempfile
    >>> import contraction.experiments as ex
    >>> res = ex.run_nn_experiment(data="synthetic", steps=6, warmup=0, rng=0)
    >>> paths = write_experiment_figures(res, tempfile.mkdtemp())
    >>> [os.path.basename(p) for p in paths] == ["curves.png", "test_accuracy.png"]
    True
    """
    if not isinstance(result, NNExperimentResult):
        raise TypeError(f"result: expected an NNExperimentResult, got {describe(result)}")
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    return [plotting.save_figure(nn_curves_figure(result), os.path.join(out_dir, "curves.png")),
            plotting.save_figure(accuracy_figure(result), os.path.join(out_dir, "test_accuracy.png"))]


#: Figure file name to the function ``(quick, rng) -> matplotlib.figure.Figure`` that computes and draws it.
FIGURES = {
    "trajectories.png": _trajectories,
    "stationary_laws.png": _laws,
    "backward_increments.png": _increments,
    "stability_vs_lr.png": _stability,
    "lie_slopes.png": _lie,
    "nn_curves.png": _nn,
    "heavy_tail_phase.png": _heavy_tail_phase,
    "nn_phase.png": _nn_phase,
}


def _check_names(names, argument="names") -> list[str]:
    chosen = list(FIGURES) if names is None else list(names)
    for name in chosen:
        if name not in FIGURES:
            raise ValueError(f"{argument}: expected figure names among {list(FIGURES)}, got {name!r}")
    return chosen


def _streams(rng) -> dict:
    """Figure name to its generator: the ``k``-th stream spawned from ``rng`` for the ``k``-th figure."""
    return dict(zip(FIGURES, as_generator(rng).spawn(len(FIGURES)), strict=True))


def build_figure(name, quick=False, rng=FIGURE_SEED):
    """Compute one figure of the examples and return it, without writing a file.

    Parameters
    ----------
    name : str
        A key of :data:`FIGURES` (``"trajectories.png"``, …).
    quick : bool, default False
        Smaller samples.
    rng : None, int, numpy.random.SeedSequence or numpy.random.Generator, default FIGURE_SEED
        The same source as for :func:`write_figures`: the figure is the one
        ``write_figures`` writes with this ``rng``.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (not attached to pyplot).

    Examples
    --------
    >>> fig = build_figure("lie_slopes.png", quick=True)
    >>> fig.axes[0].get_xlabel()
    'learning rate $h$'
    """
    (name,) = _check_names([name], "name")
    return FIGURES[name](bool(quick), _streams(rng)[name])


def write_figures(out_dir, quick=False, names=None, rng=FIGURE_SEED) -> list[str]:
    """Compute the figures of the examples and write them as PNG into ``out_dir``.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Folder (created if missing).
    quick : bool, default False
        Smaller samples.
    names : list of str, optional
        Only these figure files (keys of :data:`FIGURES`); all by default.
    rng : None, int, numpy.random.SeedSequence or numpy.random.Generator, default FIGURE_SEED
        Source of every figure's randomness; figure ``k`` of :data:`FIGURES`
        draws from the ``k``-th spawned stream whichever figures are chosen.

    Returns
    -------
    list of str
        The paths written.

    Examples
    --------
    >>> import os, tempfile
    >>> paths = write_figures(tempfile.mkdtemp(), quick=True, names=["trajectories.png"])
    >>> os.path.basename(paths[0]) == "trajectories.png"
    True
    """
    chosen = _check_names(names)
    streams = _streams(rng)
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    return [plotting.save_figure(FIGURES[name](bool(quick), streams[name]), os.path.join(out_dir, name))
            for name in chosen]
