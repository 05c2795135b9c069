"""Matplotlib drawings of what the library computed (matplotlib is imported lazily).

Every ``draw_*`` function takes arrays that a computing function returned and
an ``Axes``; none computes theory itself. Figures are built with
:class:`matplotlib.figure.Figure` directly, without pyplot, so nothing here
selects or changes a backend (notebooks keep showing their own figures).
Labels are matplotlib mathtext (``$\\tilde\\theta_n$``), never raw
subscripts, and every curve stays inside its axes.
"""

from __future__ import annotations

import numpy as np

from .core._io import write_atomic

__all__ = [
    "draw_cdf_comparison",
    "draw_histogram_with_density",
    "draw_increments_with_bound",
    "draw_loglog_slopes",
    "draw_method_curves",
    "draw_stability_vs_lr",
    "draw_trajectories",
    "figure_legend",
    "log_ticks",
    "new_figure",
    "save_figure",
]

_LEGEND = {"fontsize": 8, "framealpha": 0.85}


def new_figure(ncols=1, nrows=1, width=5.0, height=3.6):
    """A figure with a grid of axes, independent of pyplot and of the backend.

    The figure uses matplotlib's constrained layout, so titles, a figure title
    and legends keep their room.

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

    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes.ravel()


def save_figure(fig, path) -> str:
    """Save a figure as PNG atomically: the file appears under ``path`` only when complete.

    The image is written through :func:`contraction.core._io.write_atomic` (a
    hidden temporary file in the same folder, then a rename), so an
    interrupted or failed drawing leaves any earlier file at ``path`` as it was.

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
    >>> import os, pathlib, tempfile
    >>> fig, axes = new_figure()
    >>> folder = tempfile.mkdtemp()
    >>> path = save_figure(fig, os.path.join(folder, "empty.png"))
    >>> pathlib.Path(path).read_bytes()[1:4] == b"PNG" and os.listdir(folder) == ["empty.png"]
    True
    """
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    return write_atomic(path, lambda fh: fig.savefig(fh, format="png", dpi=110))


# Values larger than this (a diverged run) are not drawn: axis margins around them would overflow.
_DRAWABLE = 1e100


def _finite(values) -> np.ndarray:
    """``values`` as float64, entries that are not finite or beyond ``_DRAWABLE`` replaced by nan (not drawn)."""
    values = np.array(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        values[~(np.abs(values) <= _DRAWABLE)] = np.nan
    return values


def draw_trajectories(ax, steps, forward, backward, title, ylabel=r"$\theta_n$", limit=None,
                      labels=(r"forward SGD $\theta_n$", r"backward SGD $\tilde\theta_n$"), legend=True):
    r"""Draw forward (thin, blue) and backward (orange) iterates of a few chains against n.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    steps : array_like, shape (n,)
        The steps ``n``.
    forward, backward : ndarray, shape (n_chains, n)
        One coordinate of the iterates of each chain.
    title, ylabel : str
        Labels (mathtext allowed).
    limit : float, optional
        A horizontal reference line (the stationary mean).
    labels : (str, str)
        Legend entries of the forward and the backward chains.
    legend : bool, default True
        Draw a legend inside the axes (panels of one figure may share one
        legend instead: :func:`figure_legend`).

    Examples
    --------
    >>> import numpy as np
    >>> fig, axes = new_figure()
    >>> draw_trajectories(axes[0], np.arange(3), np.zeros((2, 3)), np.ones((2, 3)), "t", limit=0.5)
    >>> len(axes[0].get_lines()) == 5
    True
    """
    for k in range(forward.shape[0]):
        ax.plot(steps, _finite(forward[k]), color="tab:blue", lw=0.9, alpha=0.7,
                label=labels[0] if k == 0 else None)
        ax.plot(steps, _finite(backward[k]), color="tab:orange", lw=1.4, label=labels[1] if k == 0 else None)
    if limit is not None:
        ax.axhline(limit, color="k", lw=0.6, ls=":", label="stationary mean")
    ax.set_xlabel("step $n$")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if legend:
        ax.legend(loc="best", **_LEGEND)


def figure_legend(fig, ax):
    r"""One legend for the whole figure, below its panels, with the entries of ``ax``.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure (made by :func:`new_figure`, whose layout keeps room for the legend).
    ax : matplotlib.axes.Axes
        The axes whose labelled artists the legend lists.

    Returns
    -------
    matplotlib.legend.Legend
        The legend.

    Examples
    --------
    >>> import numpy as np
    >>> fig, axes = new_figure(2)
    >>> draw_trajectories(axes[0], np.arange(3), np.zeros((1, 3)), np.ones((1, 3)), "t", legend=False)
    >>> [t.get_text() for t in figure_legend(fig, axes[0]).get_texts()]
    ['forward SGD $\\theta_n$', 'backward SGD $\\tilde\\theta_n$']
    """
    handles, labels = ax.get_legend_handles_labels()
    return fig.legend(handles, labels, loc="outside lower center", ncols=max(len(labels), 1), **_LEGEND)


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
    ax.set_xlabel(r"$\theta$")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(loc="lower center", **_LEGEND)


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
    ax.set_xlabel(r"$\theta$")
    ax.set_ylabel("CDF")
    ax.set_title(title)
    ax.legend(loc="upper left", **_LEGEND)


def draw_increments_with_bound(ax, steps, increments, bound, title, bound_label=None, typical=None,
                               typical_label=None):
    r"""Draw backward increments ``‖θ̃_{n+1} − θ̃_n‖`` as dots, with their bound (log scale).

    Each chain's increments are dots (no joining lines: consecutive
    increments may jump between levels); the bound is a dashed line and an
    optional typical rate a dotted one.

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
    bound_label : str, optional
        Legend entry of the bound (default: the bound ``c^n max_i‖T_i(θ_0) − θ_0‖``).
    typical : array_like, shape (n,), optional
        A typical size at each step (e.g. from the Lyapunov exponent), drawn dotted.
    typical_label : str, optional
        Its legend entry.

    Examples
    --------
    >>> import numpy as np
    >>> fig, axes = new_figure()
    >>> draw_increments_with_bound(axes[0], np.arange(3), np.ones((2, 3)), 0.5 ** np.arange(3), "t")
    >>> len(axes[0].get_lines()) == 3
    True
    """
    increments = _finite(increments)
    # increments below rounding of the iterate itself are not drawn
    shown = np.where(increments > 1e-15 * np.nanmax(increments), increments, np.nan)
    n_chains = increments.shape[0]
    for k in range(n_chains):
        ax.semilogy(steps, shown[k], ls="none", marker="o", ms=2.6, color="tab:orange", alpha=0.55,
                    label=(rf"$\|\tilde\theta_{{n+1}} - \tilde\theta_n\|$ ({n_chains} chains)" if k == 0 else None))
    if bound_label is None:
        bound_label = r"bound $c^n \max_i \|T_i(\theta_0) - \theta_0\|$"
    ax.semilogy(steps, _finite(bound), "k--", lw=1.4, label=bound_label)
    if typical is not None:
        ax.semilogy(steps, _finite(typical), ":", color="tab:purple", lw=1.8,
                    label=typical_label if typical_label is not None else "typical size")
    ax.set_xlabel("step $n$")
    ax.set_ylabel("increment")
    ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.17), **_LEGEND)


def draw_stability_vs_lr(ax, lrs, lyapunov, ms_radius, ms_threshold, lyap_threshold, title):
    r"""Draw the Lyapunov exponent and the mean-square exponent against h, heavy-tail band shaded.

    The mean-square exponent is ``½ log ρ(Σ p_i A_i ⊗ A_i)``, the growth rate
    per step of ``(E‖θ_n‖²)^{1/2}``: it bounds the Lyapunov exponent ``γ``
    from above (Jensen), and the two cross zero at ``ms_threshold`` and
    ``lyap_threshold``. The y axis covers both curves.

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
    with np.errstate(divide="ignore"):
        ms_exponent = 0.5 * np.log(np.asarray(ms_radius, dtype=np.float64))
    ax.plot(lrs, _finite(lyapunov), color="tab:orange", lw=1.6,
            label=r"Lyapunov exponent $\gamma(h)$ (backward SGD converges where $\gamma < 0$)")
    ax.plot(lrs, _finite(ms_exponent), color="tab:blue", lw=1.6,
            label=r"mean-square exponent $\frac{1}{2}\log\rho(\mathbb{E}\,A \otimes A)$ "
                  "(finite variance where negative)")
    ax.axhline(0, color="k", lw=0.6)
    ax.axvspan(ms_threshold, lyap_threshold, color="tab:red", alpha=0.12,
               label=rf"heavy tails (infinite variance): ${ms_threshold:.3g} \leq h < {lyap_threshold:.3g}$")
    ax.margins(x=0.02, y=0.06)
    ax.set_xlabel("learning rate $h$")
    ax.set_ylabel("exponent per step")
    ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.17), **_LEGEND)


def log_ticks(lo, hi, max_ticks=6) -> np.ndarray:
    """Readable tick positions ``1, 2, 5 × 10^k`` within ``[lo, hi]`` for a logarithmic axis.

    Parameters
    ----------
    lo, hi : float
        The positive range to cover.
    max_ticks : int, default 6
        At most this many ticks: ``1, 2, 5``, then ``1, 3``, then ``1`` per decade.

    Returns
    -------
    ndarray
        The tick positions, increasing; the two ends when no round value lies between.

    Examples
    --------
    >>> [float(t) for t in log_ticks(0.005, 0.05)]
    [0.005, 0.01, 0.02, 0.05]
    >>> [float(t) for t in log_ticks(1e-6, 1.0)]
    [1e-06, 0.0001, 0.01, 1.0]
    """
    lo, hi = float(lo), float(hi)
    if not (0 < lo <= hi < np.inf):
        raise ValueError(f"lo, hi: expected 0 < lo <= hi < inf, got {lo!r}, {hi!r}")
    decades = np.arange(np.floor(np.log10(lo)) - 1, np.ceil(np.log10(hi)) + 1)
    ticks = np.array([])
    for mantissas in ((1, 2, 5), (1, 3), (1,)):
        ticks = np.array([m * 10.0**k for k in decades for m in mantissas])
        ticks = ticks[(ticks >= lo * (1 - 1e-9)) & (ticks <= hi * (1 + 1e-9))]
        if ticks.size <= max_ticks:
            break
    if ticks.size > max_ticks:  # very wide ranges: every few decades
        ticks = ticks[:: -(-ticks.size // max_ticks)]
    return ticks if ticks.size >= 2 else np.array([lo, hi])


def draw_loglog_slopes(ax, hs, series, title):
    """Draw log-log points against h, each series with its fitted line.

    The line of slope ``p`` passes through the centroid of ``(log h, log values)``,
    which is where the least-squares line of that slope passes. The h axis is
    labelled at a few round values (:func:`log_ticks`), written as decimals.

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
    >>> [t.get_text() for t in axes[0].get_xticklabels()]
    ['0.01', '0.02', '0.05', '0.1']
    """
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    hs = np.asarray(hs, dtype=np.float64)
    log_h = np.log(hs)
    for label, values, slope in series:
        line, = ax.loglog(hs, values, "o", label=f"{label} (fitted slope {slope:.2f})")
        intercept = np.mean(np.log(values)) - slope * np.mean(log_h)
        ax.loglog(hs, np.exp(intercept + slope * log_h), "-", color=line.get_color(), lw=1)
    ax.xaxis.set_major_locator(FixedLocator(log_ticks(hs.min(), hs.max())))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("learning rate $h$")
    ax.set_ylabel("max-norm difference")
    ax.set_title(title)
    ax.legend(loc="upper left", **_LEGEND)


def draw_method_curves(ax, curves, title, ylabel, log=False, colors=None):
    """Draw one curve per training method against the step ``n``.

    Values that are not finite or beyond ``1e100`` in size (a diverged run)
    are not drawn; without any curve the axes say so instead of showing an
    empty legend.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    curves : Mapping of str to array_like
        Legend label to the values at ``n = 0, 1, …``.
    title, ylabel : str
        Labels.
    log : bool, default False
        Logarithmic y axis (values below 1e-16 are drawn at 1e-16).
    colors : Mapping of str to str, optional
        A colour per label (so that one method keeps its colour whichever others are drawn).

    Examples
    --------
    >>> fig, axes = new_figure()
    >>> draw_method_curves(axes[0], {"forward": [1.0, 0.5], "backward": [1.0, 0.2]}, "loss", "loss")
    >>> [line.get_label() for line in axes[0].get_lines()] == ["forward", "backward"]
    True
    """
    colors = {} if colors is None else colors
    for name, values in curves.items():
        values = _finite(values)
        if log:
            ax.semilogy(np.maximum(values, 1e-16), lw=1.0, label=name, color=colors.get(name))
        else:
            ax.plot(values, lw=1.2, label=name, color=colors.get(name))
    ax.set_xlabel("step $n$")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if curves:
        ax.legend(loc="best", **_LEGEND)
    else:
        ax.text(0.5, 0.5, "no method finished before the run stopped", transform=ax.transAxes, ha="center", va="center")
