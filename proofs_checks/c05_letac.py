"""C5 Letac's principle: backward limits are exact samples of the stationary law.

Claim: the law of θ̃_∞ is the unique stationary law π of the forward chain:
if Z ~ π and ξ is an independent batch, T_ξ(Z) ~ π. Backward limits over
independent sequences are perfect samples of π (up to the certified bound).

Method: (a) E1 at h = ½, where π = Uniform[−1, 1] exactly: KS test of the
backward limits against the exact CDF, and of T_ξ(Z) for those samples;
(b) a 2-D quadratic model: backward limits against long forward runs
(two-sample KS on random projections) and T_ξ(Z) against fresh backward
limits. Numerical value: the smallest p-value; theory: p ≥ α = 1e-3.
Samples come from the ``sampler`` ingredient.
"""

import contraction as ct

from ._base import Timer, make_result
from ._models import random_quadratic

STATEMENT = "law of the backward limit = stationary law π (T_ξ(Z) ~ π); perfect samples"
ALPHA = 1e-3
KIND = "p-value"
MEASURES = "smallest p-value of the tests backward limit vs stationary law"


def _push(maps, z, seed):
    xi = ct.sample_batches(maps.n_maps, 1, len(z), probs=maps.probs, rng=seed)
    return ct.forward_iterates(maps, z, xi)[:, 1]


def check(quick=False, sampler=ct.stationary_samples):
    with Timer() as t:
        n = 4000 if quick else 40000
        e1 = ct.two_point_quadratic().sgd_maps(0.5)
        cdf = ct.two_point_cdf(0.5)
        z = sampler(e1, n, rng=51).samples
        p_exact = ct.ks_against_cdf(z[:, 0], cdf).pvalue
        p_push = ct.ks_against_cdf(_push(e1, z, 52)[:, 0], cdf).pvalue
        quad = random_quadratic(seed=5).sgd_maps(0.3)
        zb = sampler(quad, n, rng=53).samples
        zf = ct.stationary_samples(quad, n, method="forward", rng=54, burn_in=400).samples
        p_fwd = ct.compare_laws(zb, zf, rng=55).pvalue
        p_push2 = ct.compare_laws(_push(quad, zb, 56), sampler(quad, n, rng=57).samples, rng=58).pvalue
        pmin = min(p_exact, p_push, p_fwd, p_push2)
    return make_result(
        "C5", STATEMENT, pmin, ALPHA, "p>=", 0.0, t.seconds,
        p_backward_vs_exact_uniform=p_exact, p_pushforward_vs_exact=p_push,
        p_backward_vs_long_forward=p_fwd, p_pushforward_vs_backward=p_push2,
    )
