"""C6 Geometric convergence in law.

Claim: W_p(law θ_n, π) ≤ c^n W_p(δ_{θ_0}, π); for affine maps the mean gap
is exactly E θ_n − μ = Āⁿ(θ_0 − μ).

Method: (a) E1 at h = ½ (c = ½, π = Uniform[−1, 1]): the law of θ_n is
computed exactly by enumerating all 2ⁿ batch words, and W_1 to the uniform
law is computed exactly from the CDFs; numerical value: the largest ratio
W_1(law θ_n, π) / (cⁿ W_1(δ_0, π)) for n = 1..10 (theory ≤ 1). (b) Extra
condition: for random non-symmetric maps in d = 3 the mean from the
``moments`` ingredient equals Āⁿ(θ_0 − μ) + μ to 1e-12.
"""

import itertools

import numpy as np

import contraction as ct

from ._base import Timer, make_result
from ._models import random_contractive_maps

STATEMENT = "W_1(law θ_n, π) <= c^n W_1(δ_θ0, π); mean gap = Ā^n (θ0 - μ) exactly"
KIND = "ratio"
MEASURES = "worst W_1(law θ_n, π) over c^n W_1(δ_θ0, π)"


def _w1_to_uniform(atoms, weights):
    """Exact W_1 between a discrete law on [−1, 1] and Uniform[−1, 1]: ∫|F − G|."""
    order = np.argsort(atoms)
    x, w = atoms[order], weights[order]
    grid = np.concatenate([[-1.0], x, [1.0]])
    F = np.concatenate([[0.0], np.cumsum(w)])  # value of F on [grid[k], grid[k+1])
    total = 0.0
    for k in range(len(grid) - 1):
        a, b, f = grid[k], grid[k + 1], F[k]
        # ∫_a^b |f − (t + 1)/2| dt, piecewise linear: split at t* = 2f − 1
        ts = np.clip(2 * f - 1, a, b)
        g = lambda t, f=f: (t + 1) / 2 - f
        total += abs(0.5 * (g(a) + g(ts)) * (ts - a)) + abs(0.5 * (g(ts) + g(b)) * (b - ts))
    return total


def check(quick=False, moments=ct.moments_at_step):
    with Timer() as t:
        maps = ct.two_point_quadratic().sgd_maps(0.5)
        c = ct.contraction_constant(maps)
        w0 = _w1_to_uniform(np.array([0.0]), np.array([1.0]))  # E|Z| = ½
        n_max = 8 if quick else 12
        ratios = []
        for n in range(1, n_max + 1):
            words = np.array(list(itertools.product([0, 1], repeat=n)))
            x = ct.forward_iterates(maps, [0.0], words, save_steps=[n])[:, 0, 0]
            ratios.append(_w1_to_uniform(x, np.full(len(x), 0.5**n)) / (c**n * w0))
        worst = max(ratios)
        rand = random_contractive_maps(c=0.9, seed=6, m=3, d=3)
        mu = ct.stationary_moments(rand).mean
        Abar = rand.mean_map().A
        theta0 = np.array([4.0, -1.0, 2.0])
        gaps = [np.abs(moments(rand, theta0, n).mean - (np.linalg.matrix_power(Abar, n) @ (theta0 - mu) + mu)).max()
                for n in (1, 5, 20)]
    return make_result(
        "C6", STATEMENT, worst, 1.0, "<=", 1e-12, t.seconds,
        extra_conditions={"mean gap = Ā^n(θ0 − μ) to 1e-12": max(gaps) < 1e-12},
        w1_ratios=ratios, mean_gap_errors=gaps,
    )
