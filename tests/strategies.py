"""Hypothesis strategies that build valid objects directly (no filtering)."""

import numpy as np
from hypothesis import strategies as st

import contraction as ct

floats = st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False)


@st.composite
def affine_maps(draw, max_dim=4, max_maps=4, contraction=None):
    """Random affine maps; with ``contraction=c`` each ‖A_i‖₂ equals c exactly."""
    d = draw(st.integers(1, max_dim))
    m = draw(st.integers(1, max_maps))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(m, d, d))
    c = draw(st.floats(0.05, 0.95)) if contraction is None else contraction
    A *= c / np.linalg.norm(A, 2, axis=(1, 2))[:, None, None]
    b = rng.normal(size=(m, d))
    w = rng.uniform(0.1, 1.0, size=m)
    return ct.AffineMaps(A, b, w / w.sum())


@st.composite
def quadratic_models(draw, max_dim=4, max_maps=4):
    d = draw(st.integers(1, max_dim))
    m = draw(st.integers(1, max_maps))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    G = rng.normal(size=(m, d, d))
    H = G @ np.swapaxes(G, 1, 2) / d
    c = rng.normal(size=(m, d))
    return ct.QuadraticModel(H, c)


@st.composite
def batch_sequences(draw, n_batches, max_steps=12, max_chains=3):
    n = draw(st.integers(0, max_steps))
    chains = draw(st.integers(1, max_chains))
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).integers(0, n_batches, size=(chains, n))
