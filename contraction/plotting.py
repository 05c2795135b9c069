"""Matplotlib drawings of what the library computed (matplotlib is imported lazily).

Every ``draw_*`` function takes arrays that a computing function returned and
an ``Axes``; none computes theory itself. Figures are built with
:class:`matplotlib.figure.Figure` directly, without pyplot, so nothing here
selects or changes a backend (notebooks keep showing their own figures).
"""

from __future__ import annotations

import os

import numpy as np

__all__ = [
    "draw_cdf_comparison",
    "draw_histogram_with_density",
    "draw_increments_with_bound",
    "draw_loglog_slopes",
    "draw_method_curves",
    "draw_stability_vs_lr",
    "draw_trajectories",
    "new_figure",
    "save_figure",
]


def new_figure(ncols=1, nrows=1, width=5.0, height=3.6):
    """A figure with a grid of axes, independent of pyplot and of the backend.

    Parameters
    ----------
    ncols, nrows : int
        Grid of axes.
    width, height : float
        Size of one panel in inches.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure.
    axes : ndarray of matplotlib.axes.Axes, shape (nrows * ncols,)
        Its axes, row by row.

    Examples
    --------
    >>> fig, axes = new_figure(2)
    >>> axes.shape == (2,) and list(fig.get_size_inches()) == [10.0, 3.6]
    True
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes.ravel()


def save_figure(fig, path) -> str:
    """Save a figure as PNG atomically (a temporary file, then a rename).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    path : str or os.PathLike
        Target file.

    Returns
    -------
    str
        The path written.

    Examples
    --------
    >>> import os, tempfile
    >>> fig, axes = new_figure()
    >>> path = save_figure(fig, os.path.join(tempfile.mkdtemp(), "empty.png"))
    >>> import pathlib
    >>> pathlib.Path(path).read_bytes()[1:4] == b"PNG"
    True
    """
    path = os.fspath(path)
    tmp = path + ".tmp.png"
    fig.tight_layout()
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)
    return path


def draw_trajectories(ax, steps, forward, backward, title, ylabel="θ_n", limit=None):
    """Draw forward (thin, blue) and backward (orange) iterates of a few chains against n.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    steps : array_like, shape (n,)
        The steps ``n``.
    forward, backward : ndarray, shape (n_chains, n)
        One coordinate of the iterates of each chain.
    title, ylabel : str
        Labels.
    limit : float, optional
        A horizontal reference line (the stationary mean).

    Examples
    --------
    >>> import numpy as np
    >>> fig, axes = new_figure()
    >>> draw_trajectories(axes[0], np.arange(3), np.zeros((2, 3)), np.ones((2, 3)), "t", limit=0.5)
    >>> len(axes[0].get_lines()) == 5
    True
    """
    for k in range(forward.shape[0]):
        ax.plot(steps, forward[k], color="tab:blue", lw=0.9, alpha=0.7, label="forward θ_n" if k == 0 else None)
        ax.plot(steps, backward[k], color="tab:orange", lw=1.4, label="backward θ̃_n" if k == 0 else None)
    if limit is not None:
        ax.axhline(limit, color="k", lw=0.6, ls=":", label="stationary mean")
    ax.set_xlabel("step n")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)


def draw_histogram_with_density(ax, samples, labels, grid, density, title):
    """Draw normalised histograms of sample sets with the exact density on ``grid``.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    samples : sequence of array_like
        The sample sets.
    labels : sequence of str
        One label per sample set.
    grid, density : array_like, shape (k,)
        The exact density at the grid points.
    title : str
        Title.

    Examples
    --------
    >>> import numpy as np
    >>> fig, axes = new_figure()
    >>> grid = np.linspace(-1, 1, 5)
    >>> draw_histogram_with_density(axes[0], [np.zeros(10)], ["a"], grid, 0.5 + 0 * grid, "t")
    >>> len(axes[0].patches) == 1 and len(axes[0].get_lines()) == 1
    True
    """
    for s, lab in zip(samples, labels, strict=True):
        ax.hist(s, bins=50, density=True, histtype="step", lw=1.4, label=lab)
    ax.plot(grid, density, "k--", lw=1.2, label="exact density")
    ax.set_xlabel("θ")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize=8)


def draw_cdf_comparison(ax, samples, labels, grid, cdf, title):
    """Draw the empirical CDFs of sample sets with the exact CDF on ``grid``.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    samples : sequence of array_like
        The sample sets.
    labels : sequence of str
        One label per sample set.
    grid, cdf : array_like, shape (k,)
        The exact CDF at the grid points.
    title : str
        Title.

    Examples
    --------
    >>> import numpy as np
    >>> fig, axes = new_figure()
    >>> draw_cdf_comparison(axes[0], [np.arange(4.0)], ["a"], np.arange(4.0), np.arange(4) / 3, "t")
    >>> len(axes[0].get_lines()) == 2
    True
    """
    for s, lab in zip(samples, labels, strict=True):
        x = np.sort(s)
        ax.step(x, np.arange(1, x.size + 1) / x.size, where="post", lw=1.2, label=lab)
    ax.plot(grid, cdf, "k--", lw=1.0, label="exact CDF")
    ax.set_xlabel("θ")
    ax.set_ylabel("CDF")
    ax.set_title(title)
    ax.legend(fontsize=8)


def draw_increments_with_bound(ax, steps, increments, bound, title):
    """Draw backward increments ‖θ̃_{n+1} − θ̃_n‖ (chains) and the bound cⁿ‖T(θ0) − θ0‖ (log scale).

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    steps : array_like, shape (n,)
        The steps ``n``.
    increments : ndarray, shape (n_chains, n)
        The increments of each chain; those below rounding of the largest are not drawn.
    bound : array_like, shape (n,)
        The bound at each step.
    title : str
        Title.

    Examples
    --------
    >>> import numpy as np
    >>> fig, axes = new_figure()
    >>> draw_increments_with_bound(axes[0], np.arange(3), np.ones((2, 3)), 0.5 ** np.arange(3), "t")
    >>> len(axes[0].get_lines()) == 3
    True
    """
    # increments below rounding of the iterate itself are not drawn
    shown = np.where(increments > 1e-15 * np.max(increments), increments, np.nan)
    for k in range(increments.shape[0]):
        ax.semilogy(steps, shown[k], color="tab:orange", lw=0.8, alpha=0.6,
                    label="‖θ̃_{n+1} − θ̃_n‖ (chains)" if k == 0 else None)
    ax.semilogy(steps, bound, "k--", lw=1.4, label="bound cⁿ max‖T_i(θ0) − θ0‖")
    ax.set_xlabel("step n")
    ax.set_ylabel("increment")
    ax.set_title(title)
    ax.legend(fontsize=8)


def draw_stability_vs_lr(ax, lrs, lyapunov, ms_radius, ms_threshold, lyap_threshold, title):
    """Draw the Lyapunov exponent and the log mean-square radius against h, heavy-tail band shaded.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    lrs : array_like, shape (k,)
        Learning rates.
    lyapunov, ms_radius : array_like, shape (k,)
        The exponent and the mean-square spectral radius at each learning rate.
    ms_threshold, lyap_threshold : float
        Where the mean-square radius and the exponent reach their critical values.
    title : str
        Title.

    Examples
    --------
    >>> import numpy as np
    >>> fig, axes = new_figure()
    >>> h = np.linspace(0.1, 2, 5)
    >>> draw_stability_vs_lr(axes[0], h, -1 + h / 2, 0.5 + h / 2, 1.0, 2.0, "t")
    >>> len(axes[0].get_lines()) == 3
    True
    """
    ax.plot(lrs, lyapunov, color="tab:orange", lw=1.6, label="Lyapunov exponent γ(h)")
    ax.plot(lrs, np.log(ms_radius), color="tab:blue", lw=1.6, label="log ρ(Σ p A⊗A)")
    ax.axhline(0, color="k", lw=0.6)
    ax.axvspan(ms_threshold, lyap_threshold, color="tab:red", alpha=0.12,
               label=f"heavy tails: {ms_threshold:.3g} ≤ h < {lyap_threshold:.3g}")
    ax.set_ylim(-1.0, 1.0)
    ax.set_xlabel("learning rate h")
    ax.set_ylabel("exponent")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower left")


def draw_loglog_slopes(ax, hs, series, title):
    """Draw log-log points against h, each series with its fitted line.

    The line of slope ``p`` passes through the centroid of ``(log h, log values)``,
    which is where the least-squares line of that slope passes.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    hs : array_like, shape (k,)
        Learning rates.
    series : sequence of (str, array_like, float)
        ``(label, values, fitted slope)`` of each series.
    title : str
        Title.

    Examples
    --------
    >>> import numpy as np
    >>> fig, axes = new_figure()
    >>> h = np.geomspace(0.01, 0.1, 4)
    >>> draw_loglog_slopes(axes[0], h, [("h²", h**2, 2.0)], "t")
    >>> bool(np.allclose(axes[0].get_lines()[1].get_ydata(), h**2))
    True
    """
    log_h = np.log(hs)
    for label, values, slope in series:
        line, = ax.loglog(hs, values, "o", label=f"{label} (slope {slope:.2f})")
        intercept = np.mean(np.log(values)) - slope * np.mean(log_h)
        ax.loglog(hs, np.exp(intercept + slope * log_h), "-", color=line.get_color(), lw=1)
    ax.set_xlabel("learning rate h")
    ax.set_ylabel("max-norm difference")
    ax.set_title(title)
    ax.legend(fontsize=8)


def draw_method_curves(ax, curves, title, ylabel, log=False):
    """Draw one curve per training method against the step ``n``.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    curves : Mapping of str to array_like
        Method name to its values at ``n = 0, 1, …``.
    title, ylabel : str
        Labels.
    log : bool, default False
        Logarithmic y axis (values below 1e-16 are drawn at 1e-16).

    Examples
    --------
    >>> fig, axes = new_figure()
    >>> draw_method_curves(axes[0], {"forward": [1.0, 0.5], "backward": [1.0, 0.2]}, "loss", "loss")
    >>> [line.get_label() for line in axes[0].get_lines()] == ["forward", "backward"]
    True
    """
    for name, values in curves.items():
        values = np.asarray(values, dtype=np.float64)
        if log:
            ax.semilogy(np.maximum(values, 1e-16), lw=1.0, label=name)
        else:
            ax.plot(values, lw=1.2, label=name)
    ax.set_xlabel("step n")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
