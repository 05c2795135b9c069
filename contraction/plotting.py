"""Matplotlib drawings of what the library computed (imported lazily).

Every function takes arrays that a computing function returned and an
``Axes``; none computes theory itself.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "draw_cdf_comparison",
    "draw_histogram_with_density",
    "draw_increments_with_bound",
    "draw_loglog_slopes",
    "draw_stability_vs_lr",
    "draw_trajectories",
    "new_figure",
    "save_figure",
]


def new_figure(ncols=1, nrows=1, width=5.0, height=3.6):
    """A figure with a grid of axes (Agg-safe; pyplot is imported here only)."""
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        try:
            matplotlib.use("Agg")
        except Exception:  # pragma: no cover - a backend is already in use
            pass
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    return fig, axes.ravel()


def save_figure(fig, path) -> str:
    """Save as PNG (atomically: temporary file, then rename) and close."""
    import os

    import matplotlib.pyplot as plt

    path = str(path)
    tmp = path + ".tmp.png"
    fig.tight_layout()
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def draw_trajectories(ax, steps, forward, backward, title, ylabel="θ_n", limit=None):
    """Forward (thin, grey-blue) and backward (orange) iterates of a few chains against n."""
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
    """Normalised histograms of sample sets with the exact density on ``grid``."""
    for s, lab in zip(samples, labels):
        ax.hist(s, bins=50, density=True, histtype="step", lw=1.4, label=lab)
    ax.plot(grid, density, "k--", lw=1.2, label="exact density")
    ax.set_xlabel("θ")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize=8)


def draw_cdf_comparison(ax, samples, labels, grid, cdf, title):
    """Empirical CDFs of sample sets with the exact CDF on ``grid``."""
    for s, lab in zip(samples, labels):
        x = np.sort(s)
        ax.step(x, np.arange(1, x.size + 1) / x.size, where="post", lw=1.2, label=lab)
    ax.plot(grid, cdf, "k--", lw=1.0, label="exact CDF")
    ax.set_xlabel("θ")
    ax.set_ylabel("CDF")
    ax.set_title(title)
    ax.legend(fontsize=8)


def draw_increments_with_bound(ax, steps, increments, bound, title):
    """Backward increments ‖θ̃_{n+1} − θ̃_n‖ (chains) and the bound cⁿ‖T(θ0) − θ0‖ (log scale)."""
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
    """Lyapunov exponent and log mean-square radius against h, heavy-tail band shaded."""
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
    """Log-log curves ``(label, values, fitted slope)`` against h, with the fitted lines."""
    for label, values, slope in series:
        line, = ax.loglog(hs, values, "o", label=f"{label} (slope {slope:.2f})")
        coef = np.polyfit(np.log(hs), np.log(values), 1)
        ax.loglog(hs, np.exp(np.polyval(coef, np.log(hs))), "-", color=line.get_color(), lw=1)
    ax.set_xlabel("learning rate h")
    ax.set_ylabel("max-norm difference")
    ax.set_title(title)
    ax.legend(fontsize=8)
