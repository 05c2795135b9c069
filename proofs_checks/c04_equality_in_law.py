"""C4 Equality in law of forward and backward iterates.

Claim: for i.i.d. batches θ_n and θ̃_n have the same law at every n. Under
random reshuffling the equality holds at epoch ends and fails mid-epoch.

Method: 1-D maps with distinct slopes, so each batch word gives its own atom
(m^n atoms). Independent forward and backward samples (different seeds) are
compared by a chi-square test of homogeneity on the atoms. Numerical value:
the smallest p-value among the cases where equality is claimed (i.i.d. at
n = 3, 4 and reshuffling at the epoch end n = 2m); theory: p ≥ α = 1e-3.
Extra condition: the mid-epoch reshuffled case (n = m + 1) is refused with
p < 1e-6. Batch sequences come from the ``sample`` ingredient; the steps
compared under one scheme share its sequences (θ_n depends on the first n
batches only): every test keeps all its chains, and half as many sequences
are drawn.
"""

import numpy as np
import scipy.stats

import contraction as ct

from ._base import Timer, make_result

STATEMENT = "iid: law(θ_n) = law(θ̃_n) for all n; reshuffling: equal at epoch ends, not mid-epoch"
ALPHA = 1e-3
KIND = "p-value"
MEASURES = "two-sample test of forward vs backward laws (i.i.d. and epoch ends)"


def _maps():
    return ct.AffineMaps([[[0.3]], [[-0.5]], [[0.7]]], [[1.0], [-0.4], [0.2]])


def _pvalue(x, y):
    atoms, inverse = np.unique(np.round(np.concatenate([x, y]), 10), return_inverse=True)
    counts = np.zeros((2, atoms.size))
    np.add.at(counts, (np.repeat([0, 1], [x.size, y.size]), inverse), 1)
    return float(scipy.stats.chi2_contingency(counts[:, counts.sum(0) > 0]).pvalue)


def _laws(maps, steps, n_chains, scheme, sample, seed):
    """p-values of forward against backward at each of ``steps``, on sequences of the longest length."""
    fi = sample(maps.n_maps, max(steps), n_chains, scheme=scheme, rng=seed)
    bi = sample(maps.n_maps, max(steps), n_chains, scheme=scheme, rng=seed + 1)
    fwd = ct.forward_iterates(maps, [0.5], fi, save_steps=steps)[:, :, 0]
    bwd = ct.backward_iterates(maps, [0.5], bi, save_steps=steps)[:, :, 0]
    return [_pvalue(fwd[:, k], bwd[:, k]) for k in range(len(steps))]


def check(quick=False, sample=ct.sample_batches):
    with Timer() as t:
        maps = _maps()
        m = maps.n_maps
        n_chains = 20000 if quick else 100000
        p_iid = _laws(maps, [3, 4], n_chains, "iid", sample, 40)
        p_mid, p_end = _laws(maps, [m + 1, 2 * m], n_chains, "reshuffle", sample, 50)
        p_equal = min([*p_iid, p_end])
    return make_result(
        "C4", STATEMENT, p_equal, ALPHA, "p>=", 0.0, t.seconds,
        extra_conditions={"reshuffling mid-epoch refuted (p < 1e-6)": p_mid < 1e-6},
        p_iid=p_iid, p_reshuffle_epoch_end=p_end, p_reshuffle_mid_epoch=p_mid,
    )
