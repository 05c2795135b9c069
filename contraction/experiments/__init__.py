"""Neural-network proof of concept (SPEC C13): forward, backward, windowed and corrected SGD.

``run_nn_experiment`` trains a small numpy MLP or CNN with constant
learning rate and small batches, from one start and one batch sequence, with
four methods:

* ``forward``: plain SGD, ``θ_n = T_{ξ_n} ∘ … ∘ T_{ξ_1}(θ_0)``;
* ``backward``: full backward SGD ``θ̃_n = T_{ξ_1} ∘ … ∘ T_{ξ_n}(θ_0)`` for every
  ``n``, all recomputations side by side (``n(n+1)/2`` gradients);
* ``windowed``: anchored windowed backward (C11a);
* ``bracket_corrected``: bracket-corrected forward SGD (C11c).

The theory speaks of contractive regions: the start ``θ_0`` is reached by a
warm-up of forward SGD (with weight decay), and the local Lipschitz constants
``‖I − h ∇²f_{ξ_n}(θ_n)‖₂`` along the forward run are reported beside the
results. Results are written atomically; an interrupted run resumes without
redoing finished methods.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time

import numpy as np

from ..core._io import write_json_atomic
from ..core._validation import check_lr, check_positive_int
from ..approximations import bracket_corrected_iterates, windowed_backward_iterates
from ..core.iterates import backward_iterates, forward_iterates
from ..core.sampling import sample_batches

__all__ = ["METHODS", "run_nn_experiment", "total_variation", "load_experiment_data"]

METHODS = ("forward", "backward", "windowed", "bracket_corrected")


def total_variation(curve) -> float:
    """``Σ_n |L_{n+1} − L_n|`` of a curve."""
    c = np.asarray(curve, dtype=np.float64)
    return float(np.abs(np.diff(c)).sum())


def load_experiment_data(data="digits", seed=0):
    """The data set of an experiment: ``"digits"`` (needs scikit-learn) or ``"synthetic"``."""
    from ..nn.datasets import load_digits_data, teacher_student_data

    if data == "digits":
        return load_digits_data()
    if data == "synthetic":
        return teacher_student_data(n_train=512, n_test=512, rng=seed)
    raise ValueError(f"data: expected 'digits' or 'synthetic', got {data!r}")


def _network(model, dataset, batch_size, weight_decay, hidden):
    from ..nn import CNN, MLP

    if model == "mlp":
        return MLP(dataset.X_train, dataset.y_train, hidden=hidden, batch_size=batch_size,
                   weight_decay=weight_decay, n_classes=dataset.n_classes)
    if model == "cnn":
        if dataset.image_shape is None:
            raise ValueError("model: the CNN needs image data (data='digits')")
        return CNN(dataset.X_train, dataset.y_train, image_shape=dataset.image_shape, channels=4, kernel_size=3,
                   batch_size=batch_size, weight_decay=weight_decay, n_classes=dataset.n_classes)
    raise ValueError(f"model: expected 'mlp' or 'cnn', got {model!r}")


class _Progress:
    """A one-line text progress bar on stderr (silent when ``enabled`` is false)."""

    def __init__(self, total, enabled):
        self.total, self.done, self.enabled, self.start = total, 0, enabled, time.perf_counter()

    def update(self, label):
        self.done += 1
        if not self.enabled:
            return
        width = 30
        filled = int(width * self.done / self.total)
        elapsed = time.perf_counter() - self.start
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {label:<28} "
                         f"{elapsed:6.1f} s")
        if self.done == self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _method_summary(net, dataset, traj, cost):
    """Curves of one method's trajectory (n_steps + 1, P)."""
    train = net.evaluate(traj)
    test = net.evaluate(traj, dataset.X_test, dataset.y_test)
    step_norm = np.linalg.norm(np.diff(traj, axis=0), axis=1)
    return {
        "loss": train.loss.tolist(),
        "test_accuracy": test.accuracy.tolist(),
        "step_norm": step_norm.tolist(),
        "loss_total_variation": total_variation(train.loss),
        "final_test_accuracy": float(test.accuracy[-1]),
        "cost": cost,
    }


def run_nn_experiment(model="mlp", data="digits", steps=120, batch_size=16, lr=0.3, window=3, seed=0,
                      weight_decay=0.05, warmup=300, hidden=16, out_dir=None, progress=False):
    """Train forward, full backward, anchored windowed and bracket-corrected SGD on one batch sequence.

    Parameters
    ----------
    model : {"mlp", "cnn"}
    data : {"digits", "synthetic"}
    steps : int
        Length ``N`` of the compared runs.
    batch_size : int
    lr : float
        Constant learning rate ``h``.
    window : int
        Window of the anchored and corrected methods.
    seed : int
        Seeds the initialisation, the warm-up and the batch sequence.
    weight_decay : float
        ``λ`` in ``f_i = CE_i + λ/2 ‖θ‖²``.
    warmup : int
        Forward SGD steps before the comparison (to start in a basin).
    hidden : int
        MLP width.
    out_dir : str, optional
        Where ``results.json`` (and per-method partial results, for resuming)
        are written; nothing is written when ``None``.
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    dict
        ``{"config": {...}, "methods": {name: {"loss", "test_accuracy",
        "step_norm", "cost", ...}}, "contractivity": {...}, "summary": {...}}``.
    """
    steps = check_positive_int(steps, "steps", minimum=2)
    window = check_positive_int(window, "window")
    warmup = check_positive_int(warmup, "warmup", minimum=0)
    lr = check_lr(lr)
    config = {"model": model, "data": data, "steps": steps, "batch_size": int(batch_size), "lr": lr,
              "window": window, "seed": int(seed), "weight_decay": float(weight_decay), "warmup": warmup,
              "hidden": int(hidden)}
    key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    partial_dir = None
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        partial_dir = os.path.join(out_dir, "partial")
        os.makedirs(partial_dir, exist_ok=True)

    bar = _Progress(3 + len(METHODS), progress)
    dataset = load_experiment_data(data, seed)
    net = _network(model, dataset, batch_size, weight_decay, hidden)
    maps = net.sgd_maps(lr)
    seq = np.random.SeedSequence(seed)
    s_init, s_warm, s_run = seq.spawn(3)
    theta_init = net.init_params(np.random.default_rng(s_init))
    if warmup:
        widx = sample_batches(net.n_batches, warmup, rng=s_warm)
        theta0 = forward_iterates(maps, theta_init, widx, save_steps=[warmup])[0, 0]
    else:
        theta0 = theta_init
    bar.update("warm-up")
    idx = sample_batches(net.n_batches, steps, rng=s_run)

    def run(name):
        if name == "forward":
            return forward_iterates(maps, theta0, idx)[0], {"gradient": steps, "hvp": 0}
        if name == "backward":
            return backward_iterates(maps, theta0, idx)[0], {"gradient": steps * (steps + 1) // 2, "hvp": 0}
        if name == "windowed":
            r = windowed_backward_iterates(maps, theta0, idx, window)
            return r.iterates[0], {"gradient": r.gradient_evals, "hvp": 0}
        r = bracket_corrected_iterates(maps, theta0, idx, window)
        return r.iterates[0], {"gradient": r.gradient_evals, "hvp": r.hvp_evals}

    methods, trajectories = {}, {}
    for name in METHODS:
        path = None if partial_dir is None else os.path.join(partial_dir, f"{name}-{key}.npz")
        if path is not None and os.path.exists(path):
            with np.load(path) as f:
                traj, cost = f["trajectory"], json.loads(str(f["cost"]))
        else:
            traj, cost = run(name)
            if path is not None:
                tmp = path + ".tmp.npz"
                np.savez(tmp, trajectory=traj, cost=json.dumps(cost))
                os.replace(tmp, path)
        trajectories[name] = traj
        methods[name] = _method_summary(net, dataset, traj, cost)
        bar.update(name)

    # How contractive are the maps along the forward run? ‖I − h ∇²f_{ξ_n}(θ_{n−1})‖₂.
    from ..nn import estimate_lipschitz

    fwd = trajectories["forward"]
    probe = np.unique(np.linspace(0, steps - 1, min(steps, 12)).astype(int))
    lips = np.atleast_1d(estimate_lipschitz(maps, fwd[probe], idx[0, probe], rng=np.random.default_rng(1),
                                            n_iter=60))
    bar.update("contractivity")
    tail = max(5, steps // 10)
    fw_tail = float(np.mean(methods["forward"]["step_norm"][-tail:]))
    bw_tail = float(np.mean(methods["backward"]["step_norm"][-tail:]))
    tv_f = methods["forward"]["loss_total_variation"]
    tv_b = methods["backward"]["loss_total_variation"]
    summary = {
        "backward_over_forward_final_step_norm": bw_tail / fw_tail if fw_tail > 0 else float("nan"),
        "backward_step_norms_decay": bool(bw_tail < 0.1 * fw_tail),
        "backward_over_forward_loss_total_variation": tv_b / tv_f if tv_f > 0 else float("nan"),
        "backward_loss_smoother": bool(tv_b < tv_f),
        "windowed_over_forward_loss_total_variation": methods["windowed"]["loss_total_variation"] / tv_f,
        "bracket_corrected_over_forward_loss_total_variation":
            methods["bracket_corrected"]["loss_total_variation"] / tv_f,
        "max_local_lipschitz": float(lips.max()),
        "locally_contractive": bool(lips.max() < 1.0),
    }
    summary["statement"] = _honest_statement(summary)
    result = {
        "config": config,
        "methods": methods,
        "contractivity": {"steps": probe.tolist(), "local_lipschitz": lips.tolist(),
                          "note": "power-iteration estimates of ||I - h Hess f_xi(theta)||_2 at forward iterates"},
        "summary": summary,
    }
    bar.update("done")
    if out_dir is not None:
        write_json_atomic(os.path.join(out_dir, "results.json"), result)
    return result


def _honest_statement(s):
    parts = []
    parts.append("backward step norms decayed to {:.1%} of forward's".format(s["backward_over_forward_final_step_norm"])
                 + ("" if s["backward_step_norms_decay"] else " (NOT below 10%: the claim does not hold here)"))
    parts.append("backward loss total variation is {:.2f}x forward's".format(
        s["backward_over_forward_loss_total_variation"])
        + ("" if s["backward_loss_smoother"] else " (NOT smoother: the claim does not hold here)"))
    parts.append("windowed / bracket-corrected loss total variation {:.2f}x / {:.2f}x forward's".format(
        s["windowed_over_forward_loss_total_variation"], s["bracket_corrected_over_forward_loss_total_variation"])
        + ("" if s["bracket_corrected_over_forward_loss_total_variation"] < 1 else
           " (the bracket correction is an O(h^2) expansion: at this learning rate it overshoots)"))
    parts.append("largest local Lipschitz estimate {:.3f}".format(s["max_local_lipschitz"])
                 + (" (maps contract locally)" if s["locally_contractive"] else
                    " (some maps expand locally: outside the strictly contractive regime of the theory)"))
    return "; ".join(parts)


def write_experiment_figures(result, out_dir) -> list[str]:
    """PNG figures of an experiment result: loss, test accuracy and step-norm curves."""
    from .. import plotting
    from ..figures import plotting_nn_curves

    os.makedirs(out_dir, exist_ok=True)
    paths = [plotting.save_figure(plotting_nn_curves(result), os.path.join(out_dir, "curves.png"))]
    fig, axes = plotting.new_figure(1)
    for name, data in result["methods"].items():
        axes[0].plot(data["test_accuracy"], lw=1.2, label=name)
    axes[0].set_xlabel("step n")
    axes[0].set_ylabel("test accuracy")
    axes[0].set_title("test accuracy")
    axes[0].legend(fontsize=8)
    paths.append(plotting.save_figure(fig, os.path.join(out_dir, "test_accuracy.png")))
    return paths
