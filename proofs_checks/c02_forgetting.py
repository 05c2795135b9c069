"""C2 Forgetting the start.

Claim: forward and backward iterates both satisfy
‖x_n(θ_0) − x_n(θ_0')‖ ≤ c^n ‖θ_0 − θ_0'‖ along the same batch sequence.

Method: random affine maps with c = 0.85, many chains, two starts; the
numerical value is the largest ratio of the left side to the right side over
n, chains and both orders (theory: ≤ 1). The constant c comes from the
``constant`` ingredient.
"""

import numpy as np

import contraction as ct

from ._base import Timer, make_result
from ._models import random_contractive_maps

STATEMENT = "|x_n(θ0) - x_n(θ0')| <= c^n |θ0 - θ0'| for forward and backward"
KIND = "ratio"
MEASURES = "worst |x_n(θ0) − x_n(θ0')| over c^n |θ0 − θ0'|"


def check(quick=False, constant=ct.contraction_constant):
    with Timer() as t:
        maps = random_contractive_maps(c=0.85, seed=2, m=5, d=4)
        c = constant(maps)
        n_chains, n = (64, 60) if quick else (1024, 80)
        idx = ct.sample_batches(maps.n_maps, n, n_chains, probs=maps.probs, rng=21)
        rng = np.random.default_rng(22)
        a, b = rng.normal(size=(2, n_chains, maps.dim)) * 3
        gap0 = np.linalg.norm(a - b, axis=-1)[:, None]
        worst = 0.0
        for fn in (ct.forward_iterates, ct.backward_iterates):
            gap = np.linalg.norm(fn(maps, a, idx) - fn(maps, b, idx), axis=-1)
            bound = c ** np.arange(n + 1) * gap0
            worst = max(worst, float((gap / bound)[:, 1:].max()))
    return make_result("C2", STATEMENT, worst, 1.0, "<=", 1e-9, t.seconds, contraction_constant=c)
