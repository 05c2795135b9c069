"""C1 Backward contraction principle.

Claim: under strict contraction (c < 1) and any batch sequence, θ̃_n converges
to a limit independent of θ_0, with ‖θ̃_{n+1} − θ̃_n‖ ≤ c^n ‖T_{ξ_{n+1}}(θ_0) − θ_0‖
and ‖θ̃_n − θ̃_∞‖ ≤ c^n G/(1 − c), G = max_i ‖T_i(θ_0) − θ_0‖.

Method: random affine maps with c = 0.8 (d = 3, m = 4), many chains and two
starts. The numerical value is the largest ratio increment / bound over all
n and chains (theory: ≤ 1). Extra conditions: the distance bound holds, limits
from two starts agree, and the certified stopping rule of
``backward_fixed_point`` bounds the true error.
"""

import numpy as np

import contraction as ct

from ._base import Timer, make_result
from ._models import random_contractive_maps

STATEMENT = "backward iterates converge, increments <= c^n |T(θ0) - θ0|, limit independent of θ0"
KIND = "ratio"
MEASURES = "worst backward increment over its bound c^n |T(θ0) − θ0|"


def check(quick=False, backward=ct.backward_iterates, fixed_point=ct.backward_fixed_point):
    with Timer() as t:
        c = 0.8
        maps = random_contractive_maps(c=c, seed=1)
        n_chains, n = (64, 120) if quick else (512, 160)
        idx = ct.sample_batches(maps.n_maps, n, n_chains, probs=maps.probs, rng=11)
        theta0 = np.array([3.0, -2.0, 1.0])
        other = np.array([-5.0, 4.0, 0.5])
        x = backward(maps, theta0, idx)
        y = backward(maps, other, idx)
        inc = np.linalg.norm(np.diff(x, axis=1), axis=-1)  # (C, n): ‖θ̃_{k+1} − θ̃_k‖, k = 0..n-1
        first = np.linalg.norm(maps.A[idx] @ theta0 + maps.b[idx] - theta0, axis=-1)  # ‖T_{ξ_{k+1}}(θ0) − θ0‖
        powers = c ** np.arange(n)
        ratio = inc / (powers * first + 1e-300)
        G = np.linalg.norm(maps.A @ theta0 + maps.b - theta0, axis=-1).max()
        limit = x[:, -1]
        dist = np.linalg.norm(x - limit[:, None], axis=-1)[:, : n // 2]
        dist_ok = bool(np.all(dist <= powers[: n // 2] * G / (1 - c) * (1 + 1e-9) + 1e-12))
        starts_agree = float(np.abs(x[:, -1] - y[:, -1]).max())
        # certified stopping rule against a far iterate of the same (extended) sequence
        fp = fixed_point(maps, theta0, rng=5, tol=1e-9)
        far = backward(maps, other, ct.sample_batches(maps.n_maps, fp.n_steps + 200, probs=maps.probs, rng=5))
        rule_ok = bool(fp.converged and np.linalg.norm(far[0, -1] - fp.x) <= fp.error_bound + 1e-14)
    return make_result(
        "C1", STATEMENT, float(ratio[:, 1:].max()), 1.0, "<=", 1e-9, t.seconds,
        extra_conditions={"distance bound c^n G/(1-c)": dist_ok,
                          "limit independent of θ0 (|diff| < 1e-9)": starts_agree < 1e-9,
                          "certified stopping rule": rule_ok},
        limit_difference_between_starts=starts_agree, certified_bound=fp.error_bound,
    )
