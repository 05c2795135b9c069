"""Run the four training methods of the network experiment and return one record.

* ``forward``: plain SGD, ``θ_n = T_{ξ_n} ∘ … ∘ T_{ξ_1}(θ_0)``;
* ``backward``: full backward SGD ``θ̃_n = T_{ξ_1} ∘ … ∘ T_{ξ_n}(θ_0)`` for every
  ``n``, all recomputations side by side (``n(n+1)/2`` gradients);
* ``windowed``: anchored windowed backward (C11a);
* ``bracket_corrected``: bracket-corrected forward SGD (C11c).
"""

from __future__ import annotations

import warnings

import numpy as np

from ..approximations import bracket_corrected_iterates, windowed_backward_iterates
from ..core._validation import DivergenceError, check_positive_int, describe
from ..core.iterates import backward_iterates, forward_iterates
from ..nn.lipschitz import estimate_lipschitz
from ._storage import PartialResults, check_out_dir, held_output
from .preparation import ExperimentSetup, _build, _renamed_seed, _seed_sequence, _stream, _warm_start
from .records import METHODS, Contractivity, ExperimentConfig, MethodResult, NNExperimentResult
from .summary import summarise, total_variation

__all__ = ["METHODS", "run_nn_experiment"]

# Steps of the forward run where the local Lipschitz constant is estimated (at most this many).
_N_PROBES = 12


def _run_method(name: str, setup: ExperimentSetup, window: int):
    """Trajectory ``(steps + 1, dim)``, gradient and Hessian-vector evaluations of one method."""
    maps, theta0, idx = setup.maps, setup.theta0, setup.batches
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


def _method_result(name, setup: ExperimentSetup, trajectory, gradient_evals, hvp_evals) -> MethodResult:
    net, data = setup.network, setup.dataset
    try:
        loss = net.evaluate(trajectory).loss
        accuracy = net.evaluate(trajectory, data.X_test, data.y_test).accuracy
    except ValueError as exc:  # finite iterates whose logits overflow: the run left every sensible region
        raise DivergenceError(f"{name} iterates reached parameters where the loss overflows ({exc}); "
                              f"lower lr") from exc
    return MethodResult(name, trajectory, loss, accuracy, np.linalg.norm(np.diff(trajectory, axis=0), axis=1),
                        total_variation(loss), float(accuracy[-1]), gradient_evals, hvp_evals)


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


def run_nn_experiment(model="mlp", data="digits", steps=120, batch_size=16, lr=0.3, window=3, rng=None,
                      weight_decay=0.05, warmup=300, hidden=16, out_dir=None, progress=None, *,
                      seed=None) -> NNExperimentResult:
    """Train forward, full backward, anchored windowed and bracket-corrected SGD on one batch sequence.

    The start is reached by a warm-up of forward SGD (see
    :func:`prepare_experiment`); the local Lipschitz constants
    ``‖I − h ∇²f_{ξ_{n+1}}(θ_n)‖₂`` along the forward run are reported beside
    the curves. With ``out_dir``, every finished method is saved at once, so
    an interrupted run with the same settings and seed resumes without
    redoing it, and ``results.json`` is written at the end (atomically).
    A run holds ``out_dir`` from the warm-up to the end: a second run on the
    same folder is refused at once (``ValueError`` naming ``out_dir``), and a
    killed run's lock and temporary files do not outlive it.

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
    weight_decay : float, default 0.05
        ``λ`` in ``f_i = CE_i + λ/2 ‖θ‖²``.
    warmup : int, default 300
        Forward SGD steps before the comparison (to start in a basin).
    hidden : int, default 16
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
        costs), the contractivity estimates and the summary;
        ``to_dict()`` is what ``results.json`` holds.

    Examples
    --------
    >>> res = run_nn_experiment(data="synthetic", steps=10, warmup=5, window=5, rng=0)
    >>> res.methods["backward"].gradient_evals == 10 * 11 // 2
    True
    >>> import numpy as np                            # the first step is the same map in both orders
    >>> bool(np.isclose(res.methods["forward"].step_norm[0], res.methods["backward"].step_norm[0]))
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
        setup = _warm_start(dataset, net, maps, steps=steps, warmup=int(warmup), seq=seq)
        store = PartialResults(out_dir, config.to_dict())
        report("warm-up", 1, total)
        methods = {}
        for k, name in enumerate(METHODS):
            saved = store.load(name, (steps + 1, net.dim))
            if saved is None:
                trajectory, grads, hvps = _run_method(name, setup, window)
                store.save(name, trajectory, grads, hvps)
            else:
                trajectory, grads, hvps = saved.trajectory, saved.gradient_evals, saved.hvp_evals
            methods[name] = _method_result(name, setup, trajectory, grads, hvps)
            report(name, 2 + k, total)

        # How contractive are the maps along the forward run? ‖I − h ∇²f_{ξ_{n+1}}(θ_n)‖₂.
        probe = np.unique(np.linspace(0, steps - 1, min(steps, _N_PROBES)).astype(int))
        try:
            lips = np.atleast_1d(estimate_lipschitz(setup.maps, methods["forward"].trajectory[probe],
                                                    setup.batches[0, probe], rng=_stream(seq, "probe"), max_iter=60))
        except ValueError as exc:
            raise DivergenceError(f"the local Lipschitz estimates overflow along the forward run ({exc})") from exc
        report("contractivity", total - 1, total)
        result = NNExperimentResult(config, methods, Contractivity(probe, lips), summarise(methods, lips))
        store.write_results(result.to_dict())
    report("done", total, total)
    return result
