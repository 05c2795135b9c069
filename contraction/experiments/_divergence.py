r"""When a run of the experiment has diverged, where, and what to change.

A run (the warm-up, or one of the compared methods) *diverges at step n*
when ``n`` is the first step where

* the iterate ``θ_n`` is not finite, or its step ``‖θ_n − θ_{n−1}‖`` overflows;
* the network refuses to evaluate ``θ_n`` (its training or test loss overflows);
* the training loss exceeds ``LOSS_FACTOR = 10**6`` times the reference loss,
  the larger of the untrained network's training loss (at the
  initialisation, before the warm-up) and ``log K`` (uniform predictions over
  ``K`` classes).

Why a factor ``10**6``: an SGD step with weight decay ``λ`` multiplies ``θ``
by ``1 − hλ`` before subtracting ``h`` times the cross-entropy gradient. For
``h > 2/λ`` that factor expands, the iterates grow geometrically and the
loss (of the order of the logits) with them; below, the experiment's losses
stay within a few hundred times the reference (about ``10**5`` at the edge
``h = 2/λ`` itself). Growth past the edge is geometric, so the factor only
decides how soon a diverging run is stopped (tens of steps), not whether;
``10**6`` is ten times the loss reached at the edge and thousands of times
the losses of stable runs away from it, and it keeps every reported total
variation finite (at most ``2N`` times the limit).

Without weight decay (``λ = 0``, the experiment's default) there is no such
edge and no ``2/λ`` advice: a learning rate far too large saturates the
tanh units, and the logits, hence the loss, then grow about linearly in
``h`` and in the number of steps rather than geometrically (on the digits
with 64 units and 300 warm-up steps: a final loss near 160 at ``h = 5``,
``1.3·10**5`` at ``h = 5000``). Such a run is stopped only once its loss
passes the bound (at ``h = 10**5`` within the warm-up); below that its
losses would be reported as they are, so a warm-up that ends with a training
loss above the reference (the untrained network's) is reported as diverged
too, at its last step: it did not train, and comparing orders from there
means nothing.

The engines report non-finite iterates by raising
:class:`~contraction.DivergenceError` without the trajectory. Every method is
causal (iterate ``n`` depends on the first ``n`` batches only, the same bit
for bit whatever the length of the run), so the first non-finite step is
found by bisection on the length of the batch sequence; this costs a few
reruns, and only on that path. The compared methods' losses are computed at
every step anyway; the warm-up's loss is checked every 64 steps, and step by
step only inside a block whose end fails, so a warm-up that recovers within
a block is not stopped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..core._validation import DivergenceError
from ..core.iterates import forward_iterates

__all__ = ["LOSS_FACTOR", "Watch", "finite_prefix"]

#: A training loss above this many times the reference loss counts as divergence.
LOSS_FACTOR = 1e6
# The warm-up's loss is checked at the end of every block of this many steps.
_WARMUP_BLOCK = 64
# How a run is named in a divergence message.
_RUN_NAMES = {"warm-up": "the warm-up (forward SGD)", "forward": "forward SGD", "backward": "backward SGD",
              "windowed": "windowed backward SGD", "bracket_corrected": "bracket-corrected SGD"}


def finite_prefix(run: Callable[[int], np.ndarray], n: int, start: np.ndarray) -> tuple[np.ndarray, int | None]:
    """The trajectory of a causal run of ``n`` steps, or its longest finite prefix and the first non-finite step.

    ``run(m)`` returns the iterates ``θ_0, …, θ_m`` (shape ``(m + 1, d)``) or
    raises :class:`~contraction.DivergenceError` when one of them is not
    finite; ``start`` is ``θ_0``. Returns ``(trajectory, None)`` when
    ``run(n)`` succeeds, else ``(θ_0, …, θ_{k−1}), k)`` with ``k`` the first
    non-finite step.
    """
    try:
        return run(n), None
    except DivergenceError:
        pass
    good, lo, hi = np.asarray(start, dtype=np.float64)[None], 0, n  # run(lo) succeeds, run(hi) raises
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            good, lo = run(mid), mid
        except DivergenceError:
            hi = mid
    return good, hi


@dataclass(frozen=True)
class Divergence:
    """Where a run diverged and why; ``message`` is the sentence reported."""

    run: str
    step: int
    message: str


def _rows(net, theta: np.ndarray, X=None, y=None) -> tuple[np.ndarray, np.ndarray]:
    """Loss and accuracy of each row of ``theta``: ``inf`` and 0 where the row is non-finite or refused."""
    loss, accuracy = np.full(theta.shape[0], np.inf), np.zeros(theta.shape[0])
    rows = np.flatnonzero(np.isfinite(theta).all(axis=1))
    if rows.size == theta.shape[0]:  # the usual case: one evaluation of the whole stack
        try:
            ev = net.evaluate(theta, X, y)
            return np.array(ev.loss, dtype=np.float64), np.array(ev.accuracy, dtype=np.float64)
        except ValueError:  # some row overflows: find which, one at a time
            pass
    for r in rows:
        try:
            ev = net.evaluate(theta[r:r + 1], X, y)
        except ValueError:
            continue
        loss[r], accuracy[r] = ev.loss[0], ev.accuracy[0]
    return loss, accuracy


class Watch:
    """The divergence test of one run of the experiment, and its messages.

    Parameters
    ----------
    network : MLP or CNN
        The network (it evaluates on its training set).
    dataset : Dataset
        The data set (its test part gives the test accuracy).
    theta_init : ndarray, shape (dim,)
        The initialisation, before the warm-up: its training loss is the reference.
    config : ExperimentConfig
        The settings, named in the advice of the messages.
    """

    def __init__(self, network, dataset, theta_init: np.ndarray, config):
        self.network, self.dataset, self.config = network, dataset, config
        initial = float(_rows(network, np.asarray(theta_init, dtype=np.float64)[None])[0][0])
        self.reference = max(initial, math.log(network.n_classes))
        self.limit = LOSS_FACTOR * self.reference

    def curves(self, trajectory: np.ndarray, test: bool = True) -> tuple[np.ndarray, np.ndarray, int | None, str]:
        """Training loss and test accuracy along ``trajectory``, and the first row where it diverged, with why.

        Returns ``(loss, test_accuracy, row, reason)``; ``row`` is ``None`` (and
        ``reason`` empty) when every row passes. Without ``test`` the test set
        is not evaluated (the accuracies are 0).
        """
        data = self.dataset
        loss, _ = _rows(self.network, trajectory)
        test_loss, accuracy = np.zeros_like(loss), np.zeros_like(loss)
        if test:
            test_loss, accuracy = _rows(self.network, trajectory, data.X_test, data.y_test)
        with np.errstate(over="ignore", invalid="ignore"):
            step_norm = np.linalg.norm(np.diff(trajectory, axis=0), axis=1)
        reasons = [
            (~np.isfinite(trajectory).all(axis=1), "its iterate is not finite"),
            (~np.isfinite(np.r_[0.0, step_norm]), "its step norm overflows"),
            (~np.isfinite(loss), "its training loss overflows"),
            (~np.isfinite(test_loss), "its test loss overflows"),
            (~(loss <= self.limit), "training loss {loss:.3g}, above 10^6 times the reference {ref:.3g}"),
        ]
        bad = np.logical_or.reduce([flags for flags, _ in reasons])
        if not bad.any():
            return loss, accuracy, None, ""
        step = int(np.argmax(bad))
        reason = next(text for flags, text in reasons if flags[step])
        return loss, accuracy, step, reason.format(loss=float(loss[step]), ref=self.reference)

    def warm_up(self, maps, theta: np.ndarray, batches: np.ndarray) -> tuple[np.ndarray | None, Divergence | None]:
        """Forward SGD from ``theta`` over ``batches`` (1, n), watched every ``_WARMUP_BLOCK`` steps.

        Returns ``(θ_n, None)``, the same bit for bit as
        :func:`~contraction.forward_iterates`, or ``(None, divergence)`` when
        it diverges. The iterates are checked at every step, the loss at the
        end of each block of steps, and at every step of the first block
        whose end fails (to name the first step).
        """
        n = batches.shape[1]
        block = int(max(1, min(_WARMUP_BLOCK, (1 << 21) // max(1, theta.size))))
        final = None  # the training loss at the end of the last block
        for a in range(0, n, block):
            b = min(n, a + block)
            trajectory, nonfinite = finite_prefix(
                lambda m, a=a, start=theta: forward_iterates(maps, start, batches[:, a:a + m])[0], b - a, theta)
            end = None if nonfinite is not None else self.curves(trajectory[-1:], test=False)
            if end is not None and end[2] is None:
                theta, final = trajectory[-1], float(end[0][0])
                continue
            _, _, row, reason = self.curves(trajectory, test=False)  # row 0, the block's start, passed before
            if row is None:  # only the iterate after the block, or the block's end (evaluated alone), failed
                row, reason = (nonfinite, "its iterate is not finite") if end is None else (b - a, end[3])
            return None, self.divergence("warm-up", a + row, n, reason)
        if final is not None and final > self.reference:  # it did not train: it diverged, slowly
            return None, self.divergence("warm-up", n, n, f"training loss {final:.3g} at its end, above the "
                                         f"untrained network's {self.reference:.3g}: it did not train")
        return theta, None

    def divergence(self, run: str, step: int, of: int, reason: str) -> Divergence:
        """The report of ``run`` diverging at ``step`` of ``of`` steps for ``reason``, with what to change."""
        cfg = self.config
        advice = f"lower lr (now {cfg.lr:g})"
        if run == "bracket_corrected":
            advice += f" or window (now {cfg.window})"
        if cfg.weight_decay > 0 and cfg.lr * cfg.weight_decay > 2:  # without weight decay there is no such edge
            advice += (f": above 2/weight_decay = {2 / cfg.weight_decay:g} the weight decay alone multiplies the "
                       f"parameters by 1 - lr*weight_decay = {1 - cfg.lr * cfg.weight_decay:g} at every step")
        return Divergence(run, step, f"{_RUN_NAMES[run]} diverged at step {step} of {of} ({reason}); {advice}")
