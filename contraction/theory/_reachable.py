"""The reachable subspace of an affine family: where the noise and the mean offsets can go.

The smallest subspace invariant under every ``A_i`` that contains the offsets
``c_i = A_i μ + b_i − μ``; the stationary covariance of
:func:`contraction.theory.moments.stationary_moments` is decided and solved there.
"""

from __future__ import annotations

import numpy as np

from ..core.maps import AffineMaps

__all__ = ["RANK_RTOL"]

#: Relative tolerance of the rank decisions that build the reachable subspace (see :func:`stationary_moments`).
RANK_RTOL = 1e-10


def _reachable_subspace(A: np.ndarray, offsets: np.ndarray, sizes: np.ndarray, noises: np.ndarray) -> np.ndarray:
    r"""Orthonormal basis ``Q`` (d, k) of the smallest subspace invariant under every ``A_i`` with the offsets.

    Starting from ``span{c_i}``, every basis vector ``q`` is mapped by every
    ``A_i``. The part ``r`` of a candidate orthogonal to the basis so far
    (Gram-Schmidt, twice) makes a new basis vector when ``‖r‖`` exceeds both
    ``RANK_RTOL`` times the size of the candidate (``sizes[i]`` for the
    offset ``c_i``, ``‖A_i‖₂`` for an image ``A_i q``) and 100 times its own
    rounding error: ``noises[i]`` for an offset, ``‖A_i‖₂ (ε_q + (d + 2) u)``
    for an image, where ``ε_q`` is the error of the direction ``q`` (its
    error over its norm when it was kept), plus the errors brought in by the
    orthogonalisation. ``k = 0``: the subspace is ``{0}``.

    Examples
    --------
    >>> import numpy as np
    >>> A = np.array([np.diag([0.5, 0.1]), np.diag([0.3, 1.8])])
    >>> Q = _reachable_subspace(A, np.array([[1.0, 0.0], [-1.0, 0.0]]), np.ones(2), np.full(2, 1e-16))
    >>> Q.shape == (2, 1) and bool(np.allclose(np.abs(Q[:, 0]), [1.0, 0.0]))
    True
    """
    d = A.shape[1]
    u = np.finfo(float).eps / 2
    basis: list = []
    errors: list = []  # error of the direction of each basis vector

    def consider(v, size, noise):
        for _ in range(2):
            for q, err in zip(basis, errors, strict=True):
                coeff = q @ v
                v = v - coeff * q
                noise += abs(coeff) * err
        norm = float(np.linalg.norm(v))
        if norm > RANK_RTOL * size and norm > 100.0 * noise:
            basis.append(v / norm)
            errors.append((noise + (d + 2) * u * norm) / norm)

    for c, size, noise in zip(offsets, sizes, noises, strict=True):
        if len(basis) == d:
            break
        consider(c, size, noise)
    norms = np.linalg.norm(A, 2, axis=(1, 2))
    j = 0
    while j < len(basis) < d:
        q, err = basis[j], errors[j]
        for image, norm in zip(A @ q, norms, strict=True):
            if len(basis) == d:
                break
            consider(image, norm, norm * (err + (d + 2) * u))
        j += 1
    return np.array(basis).T if basis else np.zeros((d, 0))


def _offset_sizes(maps: AffineMaps, mu: np.ndarray):
    """Size of the terms that form each offset ``c_i = A_i μ + b_i − μ``, and a bound on its rounding error.

    The error has two parts: forming ``c_i`` from ``μ`` (``(d + 2) u`` times the
    size) and the error of ``μ`` itself, about ``cond(I − Ā) d u ‖μ‖``, carried
    by ``A_i − I``.
    """
    d = maps.dim
    u = np.finfo(float).eps / 2
    norm_mu = float(np.linalg.norm(mu))
    norms = np.linalg.norm(maps.A, 2, axis=(1, 2))
    sizes = norms * norm_mu + np.linalg.norm(maps.b, axis=1) + norm_mu
    Abar = maps.mean_map().A
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        cond = float(np.linalg.cond(np.eye(d) - Abar))
    mu_error = min(cond, 1.0 / u) * d * u * norm_mu
    return sizes, (d + 2) * u * sizes + (norms + 1.0) * mu_error
