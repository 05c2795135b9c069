"""C8 Average contraction.

Claim: in least squares with batch size 1 (d ≥ 2) no single map is a strict
contraction (each A_i = I − h x_i x_iᵀ has eigenvalue 1), yet the top
Lyapunov exponent is negative, backward iterates converge, and
E‖θ̃_n − θ̃_∞‖² = tr(Q_n M).

Method: d = 3 least squares with batch size 1 and h = 1/max‖x_i‖², so every
map is non-expansive with contraction constant exactly 1; the Lyapunov
estimate plus four standard errors is below 0. For many chains, θ̃_∞ is
θ̃_N on the same (extended) sequence with tr(Q_N M) below 1e-20; the Monte
Carlo mean of ‖θ̃_n − θ̃_∞‖² at several n is compared with the
``distance`` ingredient (relative error in standard errors). Numerical
value: the largest |z|; theory 0 within 4. The chains run in blocks of
``BLOCK`` (chain i draws from the i-th stream spawned from the seed whatever
the block), so only one block's batch sequences are held at a time.
"""

import numpy as np

import contraction as ct

from ._base import Timer, make_result
from ._models import random_regression

STATEMENT = "batch-size-1 least squares: c = 1 but γ < 0; E|θ̃_n - θ̃_∞|^2 = tr(Q_n M)"
KIND = "z-score"
MEASURES = "largest |z| of E|θ̃_n − θ̃_∞|² against tr(Q_n M) (pass: |z| <= 4)"
BLOCK = 8192


def _blocks(n_chains, seed):
    """``(first, count, rng)`` per block: ``rng`` gives the streams of chains ``first, …`` of ``rng=seed``."""
    for first in range(0, n_chains, BLOCK):
        yield first, min(BLOCK, n_chains - first), np.random.SeedSequence(seed, n_children_spawned=first)


def check(quick=False, distance=ct.backward_distance_squared):
    with Timer() as t:
        model = random_regression(n=8, d=3, batch_size=1, seed=9)
        h = 1.0 / np.max(np.sum(model.X**2, axis=1))  # every |1 − h‖x_i‖²| <= 1: non-expansive maps
        maps = model.sgd_maps(h)
        c = ct.contraction_constant(maps)
        gamma = ct.lyapunov_exponent(maps, rng=81, n_steps=2000 if quick else 5000)
        mom = ct.stationary_moments(maps)
        theta0 = mom.mean + np.array([0.2, -0.2, 0.2])  # both parts of M matter
        steps = np.array([0, 5, 10, 20, 40])
        theory_full = distance(maps, theta0, 5000)
        small = np.flatnonzero(theory_full < 1e-20 * theory_full[0])
        N = int(small[0]) if small.size else 5000
        n_chains = 8000 if quick else 80000
        d2 = np.empty((n_chains, steps.size))  # ‖θ̃_n − θ̃_N‖² per chain and step
        for first, count, rng in _blocks(n_chains, 82):
            idx = ct.sample_batches(maps.n_maps, N, count, probs=maps.probs, rng=rng)
            x = ct.backward_iterates(maps, theta0, idx, save_steps=np.append(steps, N))
            d2[first:first + count] = np.sum((x[:, :-1] - x[:, -1:]) ** 2, axis=-1)
        mc, se = d2.mean(0), d2.std(0, ddof=1) / np.sqrt(n_chains)
        theory = theory_full[steps]
        z = (mc - theory) / se
    return make_result(
        "C8", STATEMENT, float(np.abs(z).max()), 0.0, "==", 4.0, t.seconds,
        extra_conditions={"maps non-expansive, not strict (c = 1)": abs(c - 1) < 1e-12,
                          "Lyapunov exponent + 4 SE < 0": gamma.exponent + 4 * gamma.stderr < 0},
        contraction_constant=c, lyapunov=gamma.exponent, lyapunov_stderr=gamma.stderr,
        steps=steps, monte_carlo=mc, theory=theory, horizon=N,
    )
