"""Run the four training methods of the network experiment and return one record.

* ``forward``: plain SGD, ``θ_n = T_{ξ_n} ∘ … ∘ T_{ξ_1}(θ_0)``;
* ``backward``: full backward SGD ``θ̃_n = T_{ξ_1} ∘ … ∘ T_{ξ_n}(θ_0)`` for every
  ``n``, all recomputations side by side (``n(n+1)/2`` gradients);
* ``windowed``: anchored windowed backward (C11a);
* ``bracket_corrected``: bracket-corrected forward SGD (C11c).

The warm-up and every method are watched for divergence
(:mod:`~contraction.experiments._divergence`); the first that diverges stops
the run, which is returned with what finished before it.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..approximations import bracket_corrected_iterates, windowed_backward_iterates
from ..core._validation import check_positive_int, describe
from ..core.iterates import backward_iterates, forward_iterates
from ..nn.lipschitz import estimate_lipschitz
from ._divergence import Watch, finite_prefix
from ._storage import PartialResults, check_out_dir, held_output
from .preparation import (
    DEFAULTS,
    ExperimentSetup,
    _build,
    _initial_point,
    _renamed_seed,
    _seed_sequence,
    _setup,
    _stream,
    _warmup_batches,
)
from .records import METHODS, Contractivity, ExperimentConfig, MethodResult, NNExperimentResult
from .summary import _diverged_summary, summarise, total_variation

__all__ = ["METHODS", "run_nn_experiment"]

# Steps of the forward run where the local Lipschitz constant is estimated (at most this many).
_N_PROBES = 12
# The contractivity of a run that diverged: nothing estimated.
_NOT_ESTIMATED = Contractivity(np.zeros(0, dtype=np.int64), np.zeros(0),
                               note="not estimated: the run diverged before the contractivity stage")


def _run_method(name: str, maps, theta0: np.ndarray, idx: np.ndarray, window: int):
    """Trajectory ``(steps + 1, dim)``, gradient and Hessian-vector evaluations of one method."""
    steps = idx.shape[1]
    if name == "forward":
        return forward_iterates(maps, theta0, idx)[0], steps, 0
    if name == "backward":
        return backward_iterates(maps, theta0, idx)[0], steps * (steps + 1) // 2, 0
    if name == "windowed":
        r = windowed_backward_iterates(maps, theta0, idx, window)
        return r.iterates[0], r.gradient_evals, 0
    r = bracket_corrected_iterates(maps, theta0, idx, window)
    return r.iterates[0], r.gradient_evals, r.hvp_evals


def _watched_method(name: str, setup: ExperimentSetup, window: int, watch: Watch, saved):
    """A method's record, or the report of its divergence: ``(MethodResult | None, Divergence | None)``."""
    maps, theta0, idx = setup.maps, setup.theta0, setup.batches
    steps = idx.shape[1]
    if saved is not None:
        trajectory, grads, hvps = saved.trajectory, saved.gradient_evals, saved.hvp_evals
        nonfinite = None
    else:
        cost = {}

        def run(m):
            trajectory, cost["grads"], cost["hvps"] = _run_method(name, maps, theta0, idx[:, :m], window)
            return trajectory

        trajectory, nonfinite = finite_prefix(run, steps, theta0)
        grads, hvps = cost.get("grads", 0), cost.get("hvps", 0)
    loss, accuracy, step, reason = watch.curves(trajectory)
    if step is None and nonfinite is not None:
        step, reason = nonfinite, "its iterate is not finite"
    if step is not None:
        return None, watch.divergence(name, step, steps, reason)
    return MethodResult(name, trajectory, loss, accuracy, np.linalg.norm(np.diff(trajectory, axis=0), axis=1),
                        total_variation(loss), float(accuracy[-1]), grads, hvps), None


def _contractivity(setup: ExperimentSetup, forward: MethodResult, seq, watch: Watch):
    """``‖I − h ∇²f_{ξ_{n+1}}(θ_n)‖₂`` at up to ``_N_PROBES`` steps of the forward run, or the report of an overflow."""
    steps = setup.batches.shape[1]
    probe = np.unique(np.linspace(0, steps - 1, min(steps, _N_PROBES)).astype(int))
    try:
        lips = np.atleast_1d(estimate_lipschitz(setup.maps, forward.trajectory[probe], setup.batches[0, probe],
                                                rng=_stream(seq, "probe"), max_iter=60))
    except ValueError:
        lips = np.array([np.inf])
    if not np.isfinite(lips).all():
        at = int(probe[np.argmax(~np.isfinite(lips))]) if lips.size == probe.size else int(probe[0])
        return None, watch.divergence("forward", at, steps, "its local Lipschitz estimate overflows")
    return Contractivity(probe, lips), None


def _progress_callback(progress):
    if progress is None or progress is False:
        return lambda label, done, total: None
    if progress is True:
        warnings.warn("run_nn_experiment: progress=True is deprecated and shows nothing; pass a callable "
                      "progress(label, done, total), as the contraction command does", DeprecationWarning,
                      stacklevel=3)
        return lambda label, done, total: None
    if not callable(progress):
        raise TypeError(f"progress: expected None or a callable progress(label, done, total), got "
                        f"{describe(progress)}")
    return progress


def run_nn_experiment(model=DEFAULTS["model"], data=DEFAULTS["data"], steps=DEFAULTS["steps"],
                      batch_size=DEFAULTS["batch_size"], lr=DEFAULTS["lr"], window=DEFAULTS["window"], rng=None,
                      weight_decay=DEFAULTS["weight_decay"], warmup=DEFAULTS["warmup"], hidden=DEFAULTS["hidden"],
                      out_dir=None, progress=None, *, seed=None) -> NNExperimentResult:
    """Train forward, full backward, anchored windowed and bracket-corrected SGD on one batch sequence.

    The start is reached by a warm-up of forward SGD (see
    :func:`prepare_experiment`); the local Lipschitz constants
    ``‖I − h ∇²f_{ξ_{n+1}}(θ_n)‖₂`` along the forward run are reported beside
    the curves. The defaults (:data:`~contraction.experiments.DEFAULTS`)
    start both orders from a trained network: on the digits, an MLP of 64
    tanh units without weight decay, after 2000 warm-up steps at ``h = 0.3``
    with batches of 16, classifies 98-99% of the test images (at least 98%
    for each of the seeds 0 to 19); the whole default run takes under 10 s
    on one core.
    :func:`~contraction.experiments.average_runs` averages the records of several seeds.

    A run that diverges is stopped there and returned, not raised: the
    warm-up or a method *diverges at step n* when ``n`` is the first step
    where its iterate or its loss is not finite (or the loss overflows), or
    its training loss exceeds ``10**6`` times the reference (the larger of
    the untrained network's loss and ``log K``), a bound orders of magnitude
    above the losses of stable runs. The result then has ``diverged=True``,
    keeps the methods that finished, and ``divergence`` says which run
    diverged, at which step and what to change.

    With ``out_dir``, every finished method is saved at once under
    ``out_dir/partial``, so an interrupted run (``KeyboardInterrupt``
    included) with the same settings and seed resumes without redoing it
    (the result's ``reused`` names what was loaded); ``results.json`` is
    written at the end (atomically), with what exists when the run
    diverged, and then the run's partial files are removed. A run holds
    ``out_dir`` from the warm-up to the end: a second run on the same folder
    is refused at once (``ValueError`` naming ``out_dir``), and a killed
    run's lock and temporary files do not outlive it.

    Parameters
    ----------
    model : {"mlp", "cnn"}, default "mlp"
        The network.
    data : {"digits", "synthetic"}, default "digits"
        The data set (the digits need scikit-learn).
    steps : int, default 120
        Length ``N`` of the compared runs (at least 2).
    batch_size : int, default 16
        Examples per batch.
    lr : float, default 0.3
        Constant learning rate ``h``.
    window : int, default 3
        Window of the anchored and corrected methods.
    rng : None, int, numpy.random.SeedSequence or numpy.random.Generator, optional
        Source of the initialisation, the warm-up, the batch sequence, the
        Lipschitz start vectors and the synthetic data; the seed used is
        recorded in ``config.seed`` (resuming needs the same seed).
    weight_decay : float, default 0.0
        ``λ`` in ``f_i = CE_i + λ/2 ‖θ‖²`` (0 by default: the network is
        trained without regularisation).
    warmup : int, default 2000
        Forward SGD steps before the comparison (to start from a trained network).
    hidden : int, default 64
        MLP hidden width.
    out_dir : str or os.PathLike, optional
        Where ``results.json`` and the per-method partial results go (created
        if missing); nothing is written when ``None``. One run at a time.
    progress : callable, optional
        Called as ``progress(label, done, total)`` after each stage.
    seed : int, optional
        Deprecated name of ``rng``.

    Returns
    -------
    NNExperimentResult
        Configuration, one :class:`MethodResult` per method (curves and
        costs), the contractivity estimates, the summary, whether the claims
        hold (``claim_holds``, ``claims_not_holding``) and whether the run
        diverged; ``to_dict()`` is what ``results.json`` holds.

    Notes
    -----
    What holds at the defaults, over seeds 0 to 4
    (:func:`~contraction.experiments.average_runs`):
    the start classifies 98.5% of the test images (standard error 0.2%),
    the backward loss is smoother in every run (total variation 0.06x
    forward's), but backward's last step norms stay at 34% (standard error
    5%) of forward's: the step-norm claim (below 10%) holds in none of the
    five runs. Backward steps do settle, to about 0.01-0.02 as at a
    regularised start, but at a trained start forward's own steps are small
    (about 0.06, against 0.23 with 16 units and weight decay 0.05 after 300
    warm-up steps, where the claim holds in every run with a ratio of 7.5%);
    run for 360 steps (seed 0), the ratio stays between a quarter and a third.

    Examples
    --------
    >>> res = run_nn_experiment(data="synthetic", steps=10, warmup=5, window=5, rng=0)
    >>> res.methods["backward"].gradient_evals == 10 * 11 // 2
    True
    >>> import numpy as np                            # the first step is the same map in both orders
    >>> bool(np.isclose(res.methods["forward"].step_norm[0], res.methods["backward"].step_norm[0]))
    True
    >>> bad = run_nn_experiment(data="synthetic", steps=10, warmup=50, lr=50, weight_decay=0.05, rng=0)
    >>> bad.diverged, list(bad.methods), bad.claim_holds
    (True, [], False)
    >>> bad.divergence.startswith("the warm-up (forward SGD) diverged at step")
    True
    """
    rng = _renamed_seed(seed, rng, "run_nn_experiment")
    steps = check_positive_int(steps, "steps", minimum=2)
    window = check_positive_int(window, "window")
    out_dir = check_out_dir(out_dir)
    report = _progress_callback(progress)
    total = 3 + len(METHODS)
    seq = _seed_sequence(rng)
    dataset, net, maps = _build(model, data, steps=steps, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                                warmup=warmup, hidden=hidden, seq=seq)
    config = ExperimentConfig(model, data, steps, net.batch_size, float(maps.lr), window, int(seq.entropy),
                              net.weight_decay, int(warmup), int(hidden), tuple(seq.spawn_key))
    with held_output(out_dir):
        store = PartialResults(out_dir, config.to_dict())
        theta_init = _initial_point(net, seq)
        watch = Watch(net, dataset, theta_init, config)
        methods, reused, contractivity = {}, [], _NOT_ESTIMATED
        warm = _warmup_batches(net, int(warmup), seq) if warmup else np.zeros((1, 0), dtype=np.int64)
        theta0, divergence = watch.warm_up(maps, theta_init, warm)
        if divergence is None:
            setup = _setup(dataset, net, maps, theta0, steps=steps, seq=seq)
            report("warm-up", 1, total)
        for k, name in enumerate(METHODS if divergence is None else ()):
            saved = store.load(name, (steps + 1, net.dim))
            method, divergence = _watched_method(name, setup, window, watch, saved)
            if divergence is not None:
                break
            if saved is None:
                store.save(name, method.trajectory, method.gradient_evals, method.hvp_evals)
            else:
                reused.append(name)
            methods[name] = method
            report(name, 2 + k, total)
        if divergence is None:
            contractivity, divergence = _contractivity(setup, methods["forward"], seq, watch)
        if divergence is None:
            report("contractivity", total - 1, total)
            result = NNExperimentResult(config, methods, contractivity,
                                        summarise(methods, contractivity.local_lipschitz), reused=reused)
        else:
            result = NNExperimentResult(config, methods, _NOT_ESTIMATED, _diverged_summary(divergence.message),
                                        diverged=True, divergence=divergence.message, reused=reused)
        store.write_results(result.to_dict())
        store.remove()
    report("done", total, total)
    return result
