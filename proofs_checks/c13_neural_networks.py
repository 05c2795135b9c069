"""C13 Neural networks (proof of concept).

Claim: on a small MLP and a small CNN trained with constant h and small
batches on a real data set (scikit-learn's digits; the synthetic
teacher–student set, MLP only, when scikit-learn is missing), with the same batch
sequence for both orders: backward iterates settle (step norms decay to a
small fraction of forward's), the backward loss curve has lower total
variation, and averaged over independent sequences the per-step mean losses
of the two orders agree (equality in law, C4).

Method: a warm-up of forward SGD with weight decay puts θ_0 in a basin
(h = 0.3, λ = 0.05, batch 16); data, network, start and batch sequence come
from ``contraction.experiments.prepare_experiment``, as in
``run_nn_experiment``. (1)-(2) on the MLP in quick mode, MLP and CNN in full
mode: the mean of the last step norms of backward over forward below 0.1, and
a smaller loss total variation.
(3) S independent sequences per order (different seeds for the two orders);
training losses at steps n ∈ {10, 30, 60}; z = (mean forward − mean backward)
/ standard error. Numerical value: the largest |z|, theory 0 within 4. The
backward pass comes from the ``backward`` ingredient.
"""

import numpy as np

import contraction as ct
from contraction.experiments import prepare_experiment, total_variation

from ._base import Timer, make_result

STATEMENT = "NN: backward steps settle, lower loss variation; seed-averaged losses of both orders agree"
# The experiment's settings: learning rate, weight decay, batch size, compared steps, warm-up, MLP width, seed.
SETTINGS = {"lr": 0.3, "weight_decay": 0.05, "batch_size": 16, "steps": 120, "warmup": 300, "hidden": 16, "rng": 0}
KIND = "z-score"
MEASURES = "largest |z| between seed-averaged forward and backward losses (pass: |z| <= 4)"


def _data_name():
    try:
        import sklearn  # noqa: F401

        return "digits"
    except ImportError:
        return "synthetic"


def check(quick=False, backward=ct.backward_iterates):
    with Timer() as t:
        data = _data_name()
        settle, smoother, ratios = {}, {}, {}
        # The CNN needs real images: without scikit-learn only the MLP runs (on synthetic data).
        models = ("mlp",) if quick or data != "digits" else ("mlp", "cnn")
        setups = {model: prepare_experiment(model, data, **SETTINGS) for model in models}
        for model, setup in setups.items():
            net, maps = setup.network, setup.maps
            fwd = ct.forward_iterates(maps, setup.theta0, setup.batches)[0]
            bwd = backward(maps, setup.theta0, setup.batches)[0]
            fnorm = np.linalg.norm(np.diff(fwd, axis=0), axis=1)
            bnorm = np.linalg.norm(np.diff(bwd, axis=0), axis=1)
            ratios[model] = float(bnorm[-12:].mean() / fnorm[-12:].mean())
            settle[model] = ratios[model] < 0.1
            smoother[model] = bool(total_variation(net.evaluate(bwd).loss) < total_variation(net.evaluate(fwd).loss))
        # (3) equality of per-step mean losses over independent sequences, from the MLP's start
        setup = setups["mlp"]
        net, maps, theta0 = setup.network, setup.maps, setup.theta0
        S = 48 if quick else 192
        steps = np.array([10, 30, 60])
        fi = ct.sample_batches(net.n_batches, 60, S, rng=131)
        bi = ct.sample_batches(net.n_batches, 60, S, rng=132)
        lf = net.evaluate(ct.forward_iterates(maps, theta0, fi, save_steps=steps).reshape(-1, net.dim)).loss
        lb = net.evaluate(backward(maps, theta0, bi, save_steps=steps).reshape(-1, net.dim)).loss
        lf, lb = lf.reshape(S, -1), lb.reshape(S, -1)
        se = np.sqrt(lf.var(0, ddof=1) / S + lb.var(0, ddof=1) / S)
        z = (lf.mean(0) - lb.mean(0)) / se
    statement = STATEMENT if data == "digits" else (
        STATEMENT + " [synthetic data, MLP only: pip install 'contraction[data]' for the digits and the CNN]")
    return make_result(
        "C13", statement, float(np.abs(z).max()), 0.0, "==", 4.0, t.seconds,
        extra_conditions={**{f"{m}: backward step norms < 10% of forward's": v for m, v in settle.items()},
                          **{f"{m}: backward loss total variation lower": v for m, v in smoother.items()}},
        data=data, step_norm_ratio=ratios, steps=steps, mean_loss_forward=lf.mean(0),
        mean_loss_backward=lb.mean(0), z_scores=z,
    )
