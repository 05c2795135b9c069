"""Hypothesis strategies that build valid objects directly (no filtering).

Arrays are drawn element by element with ``hypothesis.extra.numpy`` so that a
failure shrinks to a small, readable counterexample; they are then scaled to be
valid (a matrix rescaled to the contraction constant wanted, a Gram matrix for a
positive semi-definite Hessian) instead of being filtered.
"""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import contraction as ct

floats = st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False, allow_subnormal=False)
weights = st.floats(0.1, 1.0, allow_nan=False, allow_infinity=False)


def _array(shape):
    return hnp.arrays(np.float64, shape, elements=floats)


def _scale_to_norm(A, c):
    """Each ``A_i`` rescaled so that ``‖A_i‖₂ = c`` (a (nearly) zero matrix becomes ``c I``)."""
    norms = np.linalg.norm(A, 2, axis=(1, 2))
    zero = norms < 1e-6
    A = np.where(zero[:, None, None], np.eye(A.shape[1]), A)
    norms = np.where(zero, 1.0, norms)
    return A * (c / norms)[:, None, None]


@st.composite
def affine_maps(draw, max_dim=4, max_maps=4, contraction=None, dim=None):
    """Random affine maps; with ``contraction=c`` each ‖A_i‖₂ equals c exactly; ``dim`` fixes d."""
    d = draw(st.integers(1, max_dim)) if dim is None else dim
    m = draw(st.integers(1, max_maps))
    A = draw(_array((m, d, d)))
    c = draw(st.floats(0.05, 0.95)) if contraction is None else contraction
    b = draw(_array((m, d)))
    w = draw(hnp.arrays(np.float64, m, elements=weights))
    return ct.AffineMaps(_scale_to_norm(A, c), b, w / w.sum())


@st.composite
def affine_map_pairs(draw, max_dim=4, max_maps=4):
    """Two families on the same space, except about one time in ten (to exercise the dimension check)."""
    T = draw(affine_maps(max_dim=max_dim, max_maps=max_maps))
    other_dim = draw(st.integers(1, max_dim)) if draw(st.integers(0, 9)) == 0 else T.dim
    S = draw(affine_maps(max_dim=max_dim, max_maps=max_maps, dim=other_dim))
    return T, S


@st.composite
def quadratic_models(draw, max_dim=4, max_maps=4):
    """Quadratic models with Hessians ``G Gᵀ / d`` (positive semi-definite by construction)."""
    d = draw(st.integers(1, max_dim))
    m = draw(st.integers(1, max_maps))
    G = draw(_array((m, d, d)))
    H = G @ np.swapaxes(G, 1, 2) / d
    c = draw(_array((m, d)))
    return ct.QuadraticModel(H, c)


@st.composite
def batch_sequences(draw, n_batches, max_steps=12, max_chains=3):
    """Integer batch sequences of shape (n_chains, n_steps) with entries in ``[0, n_batches)``."""
    n = draw(st.integers(0, max_steps))
    chains = draw(st.integers(1, max_chains))
    return draw(hnp.arrays(np.int64, (chains, n), elements=st.integers(0, n_batches - 1)))


@st.composite
def points(draw, dim, max_points=5):
    """A stack of points of dimension ``dim``, shape (k, dim)."""
    k = draw(st.integers(1, max_points))
    return draw(_array((k, dim)))
