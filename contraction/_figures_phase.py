"""The phase diagrams of the figures: least squares' tail index over learning rate × batch size with its
stability boundaries, and the networks' backward/forward ratios over the same grid.

Builders ``(quick, rng) -> matplotlib.figure.Figure`` listed in :data:`contraction.figures.FIGURES`.
"""

from __future__ import annotations

import numpy as np
import scipy.optimize

from . import plotting
from .core.models import LinearRegressionModel
from .core.regression_data import digits_random_features
from .sweeps import sweep
from .theory.diagnostics import lyapunov_exponent, mean_square_radius
from .theory.ou import mean_square_threshold
from .theory.tails import tail_index

#: The digits as the figure titles name them.
_DIGITS = "scikit-learn digits (8×8 images, 10 classes)"


def _gamma(model, seed, n_steps):
    """``h ↦ γ(h)`` of the SGD maps with one seed for every h (common random numbers along h)."""
    return lambda h: lyapunov_exponent(model.sgd_maps(h), rng=seed, n_steps=n_steps, n_chains=8).exponent


def _lyapunov_boundary(model, lo, hi, seed, n_steps):
    """The learning rate where ``γ(h) = 0`` in ``[lo, hi]`` (common random numbers along h), or nan."""
    gamma = _gamma(model, seed, n_steps)
    if not (gamma(lo) < 0 < gamma(hi)):
        return float("nan")
    return float(scipy.optimize.brentq(gamma, lo, hi, xtol=1e-3 * lo))


_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red")
# Per panel of the heavy-tail diagram: its title, its y label, its stability level and what the level means.
_TAIL_PANELS = (
    (r"tail index $\alpha$ (Kesten–Goldie)", r"tail index $\alpha$", 2.0,
     r"$\alpha = 2$: variance infinite below"),
    (r"Lyapunov exponent $\gamma = \lim\, \frac{1}{n} \log \|A_{\xi_n} \cdots A_{\xi_1}\|$",
     r"Lyapunov exponent $\gamma$", 0.0, r"$\gamma = 0$: almost surely stable below"),
    (r"mean-square radius $\rho$ of $\sum_i\, p_i\, A_i \otimes A_i$", r"mean-square radius $\rho$", 1.0,
     r"$\rho = 1$: mean-square stable below"),
)


def _heavy_tail_phase(quick, rng):
    X, y = digits_random_features(4, n_rows=1680, rng=0)
    batch_sizes = (2, 8) if quick else (2, 4, 8)
    lrs = np.array([0.1, 0.14, 0.2]) if quick else np.geomspace(0.09, 0.3, 7)
    n_steps = 300 if quick else 1500  # of the Lyapunov exponents
    seeds = rng.spawn(2 * len(batch_sizes))
    rows = []
    for k, b in enumerate(batch_sizes):
        model = LinearRegressionModel(X, y, batch_size=b)
        streams = seeds[k].spawn(len(lrs))
        res = [tail_index(model.sgd_maps(h), rng=g, n_steps=60 if quick else 150, n_chains=64 if quick else 128)
               for h, g in zip(lrs, streams, strict=True)]
        seed = int(seeds[len(batch_sizes) + k].integers(2**63))
        rows.append((model, res, seed, mean_square_threshold(model),
                     _lyapunov_boundary(model, float(lrs[-1]), 3.0, seed, n_steps)))
    # γ and ρ over a range that holds both boundaries of every batch size
    h_gammas = [r[4] for r in rows if np.isfinite(r[4])]
    lo = min(float(lrs[0]), *(r[3] for r in rows)) / 1.1
    hi = min(3.0, 1.4 * max(h_gammas)) if h_gammas else 3.0
    hs = np.geomspace(lo, hi, 8 if quick else 16)
    fig, axes = plotting.new_figure(3, width=4.4, height=4.4)
    for k, (b, (model, res, seed, h_ms, h_gamma)) in enumerate(zip(batch_sizes, rows, strict=True)):
        gamma = _gamma(model, seed, n_steps)
        curves = (None, [gamma(h) for h in hs], [mean_square_radius(model.sgd_maps(h)) for h in hs])
        at_ms = (2.0, gamma(h_ms), 1.0)  # where each panel marks the mean-square boundary
        for j, (ax, curve, y_ms) in enumerate(zip(axes, curves, at_ms, strict=True)):
            first = j == 0  # the legend is the α panel's
            if first:
                ax.errorbar(lrs, [r.alpha for r in res], yerr=2 * np.array([r.stderr for r in res]), color=_COLORS[k],
                            marker="o", ms=4, capsize=2,
                            label=rf"$B = {b}$: $\alpha$ (± 2 s.e.), $\gamma$, $\rho$")
            else:
                ax.plot(hs, curve, color=_COLORS[k], marker="o", ms=3)
            ax.plot([h_ms], [y_ms], ls="none", marker="s", ms=7, color=_COLORS[k], mfc="white",
                    label=rf"$B = {b}$: mean-square boundary $h = {h_ms:.3f}$" if first else "_nolegend_")
            if np.isfinite(h_gamma):
                ax.axvline(h_gamma, color=_COLORS[k], ls="--", lw=1,
                           label=rf"$B = {b}$: Lyapunov boundary $\gamma = 0$ at $h = {h_gamma:.2f}$" if first
                           else "_nolegend_")
    for ax, (title, ylabel, level, meaning) in zip(axes, _TAIL_PANELS, strict=True):
        ax.axhline(level, color="0.4", ls=":", lw=1, label=meaning)
        ax.set(xscale="log", xlim=(lo, hi), xlabel=r"learning rate $h$", ylabel=ylabel)
        ax.set_xticks(plotting.log_ticks(lo, hi), [f"{t:g}" for t in plotting.log_ticks(lo, hi)])
        ax.tick_params(axis="x", which="minor", labelbottom=False)
        ax.set_title(title, fontsize=9)
    axes[2].set_yscale("log")
    entries = {}
    for ax in axes:
        entries.update(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    by_b = {rf"$B = {b}$": k for k, b in enumerate(batch_sizes)}  # by B, its curves first; then the levels
    labels = sorted(entries, key=lambda label: (by_b.get(label.split(":")[0], len(by_b)), "boundary" in label))
    fig.suptitle("Heavy-tail phase diagram: least squares on 4 random ReLU features of the digits (1,680 rows); "
                 "SGD with batch size $B$\nmarked per $B$: the mean-square boundary (square) and the Lyapunov "
                 r"boundary (dashed), the same in the three panels; $\gamma$ with common random numbers along $h$",
                 fontsize=10)
    fig.legend([entries[label] for label in labels], labels, loc="outside lower center", ncols=3, fontsize=7,
               frameon=False)
    return fig


# The network phase diagram: a small MLP on the digits, so that the whole grid runs in seconds on one core.
_NN_PHASE = {False: ({"lr": [0.1, 0.3, 1.0], "batch_size": [8, 16, 32], "seed": [0, 1]},
                     {"hidden": 32, "warmup": 300, "steps": 40}),
             True: ({"lr": [0.1, 1.0], "batch_size": [8, 32], "seed": [0]}, {"hidden": 16, "warmup": 100, "steps": 20})}
# Per panel: the value drawn, its title, its y label, the claim's threshold and the claim in words.
_NN_PHASE_PANELS = (
    ("backward_over_forward_final_step_norm", "final step norm, backward / forward",
     r"$\overline{\|\tilde\theta_{n+1} - \tilde\theta_n\|} \,/\, \overline{\|\theta_{n+1} - \theta_n\|}$",
     0.1, "claim: backward steps settle (ratio < 0.1)"),
    ("backward_over_forward_loss_total_variation", "loss total variation, backward / forward",
     r"$\mathrm{TV}(\tilde L) \,/\, \mathrm{TV}(L)$", 1.0, "claim: backward loss smoother (ratio < 1)"),
)


def _nn_phase(quick, rng):
    grid, model = _NN_PHASE[quick]
    spec = {"sweep": {"name": "nn_phase", "seed": int(rng.integers(2**32)), "quantities": ["nn_experiment"]},
            "model": {"kind": "mlp", "data": "digits", "weight_decay": 0.0, **model}, "grid": grid}
    res = sweep(spec, workers=1)  # in this process: the figure is the same on any machine
    lrs, batch_sizes, n_seeds = np.array(grid["lr"]), grid["batch_size"], len(grid["seed"])
    fig, axes = plotting.new_figure(2, width=5.2, height=4.4)
    missing = 0
    for ax, (name, title, ylabel, threshold, claim) in zip(axes, _NN_PHASE_PANELS, strict=True):
        values = res.values(name)  # axes (lr, batch size, seed); nan where a run diverged
        missing = max(missing, int(np.sum(~np.isfinite(values))))
        n = np.sum(np.isfinite(values), axis=-1)
        mean = np.array([[np.mean(v[np.isfinite(v)]) if np.any(np.isfinite(v)) else np.nan for v in row]
                         for row in values])
        err = np.array([[np.std(v[np.isfinite(v)], ddof=1) if np.sum(np.isfinite(v)) > 1 else 0.0 for v in row]
                        for row in values]) / np.sqrt(np.maximum(n, 1))
        for k, b in enumerate(batch_sizes):
            ok = np.isfinite(mean[:, k])
            ax.errorbar(lrs[ok], mean[ok, k], yerr=err[ok, k] if n_seeds > 1 else None, marker="o", ms=4,
                        capsize=2, color=("tab:blue", "tab:orange", "tab:green", "tab:red")[k % 4],
                        label=rf"batch size $B = {b}$")
        ax.axhline(threshold, color="0.2", ls="--", lw=1, label=claim)
        ax.axhline(1.0 if threshold < 1 else 0.1, color="0.6", ls=":", lw=1,
                   label="ratio 1: as large as forward" if threshold < 1 else "ratio 0.1")
        ax.set(xscale="log", yscale="log", xlabel=r"learning rate $h$", ylabel=ylabel)
        ax.set_xticks(lrs, [f"{h:g}" for h in lrs])
        ax.tick_params(axis="x", which="minor", labelbottom=False)
        ax.set_title(title, fontsize=10)
        ax.legend(loc="best", fontsize=7, framealpha=0.85)
    seeds = "one seed" if n_seeds == 1 else f"mean ± s.e. over {n_seeds} seeds"
    title = (f"Backward and forward SGD over learning rate × batch size: MLP (one hidden layer of {model['hidden']}) "
             f"on {_DIGITS}\n{model['warmup']} warm-up steps of forward SGD, then {model['steps']} compared "
             f"steps, no weight decay; {seeds}")
    if missing:
        title += f"\n{missing} of {values.size} runs diverged or had nothing to compare: left out"
    fig.suptitle(title, fontsize=10)
    return fig
