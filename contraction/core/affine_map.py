"""One affine map ``T(θ) = A θ + b`` as a record, and the composition of affine maps.

Convention: ``(A, b) ∘ (A2, b2) = (A A2, A b2 + b)``; the right-hand map acts first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import (
    DivergenceError,
    as_float_array,
    check_output_size,
    describe,
)

__all__ = ["AffineMap", "compose_affine"]


@dataclass(frozen=True, eq=False)
class AffineMap:
    r"""One affine map ``θ ↦ A θ + b``, or a batch of them (shapes ``(..., d, d)`` and ``(..., d)``).

    Returned by :func:`compose_affine`, :meth:`AffineMaps.word` and
    :meth:`AffineMaps.mean_map`. It unpacks as ``A, b = result``.

    Attributes
    ----------
    A : ndarray, shape (..., d, d)
        Linear parts.
    b : ndarray, shape (..., d)
        Offsets.
    """

    A: np.ndarray
    b: np.ndarray

    def __iter__(self):
        """Unpack as ``A, b``."""
        return iter((self.A, self.b))

    def apply(self, theta) -> np.ndarray:
        """Apply the map (or each map of the batch) to ``theta``.

        Parameters
        ----------
        theta : array_like, shape (..., d)
            Points; leading axes broadcast with those of the batch.

        Returns
        -------
        ndarray, shape (..., d)
            ``A θ + b``.

        Raises
        ------
        DivergenceError
            When ``A θ + b`` overflows (never returned as ``inf``).

        Examples
        --------
        >>> import numpy as np
        >>> T = AffineMap(np.array([[2.0, 0.0], [0.0, 1.0]]), np.array([1.0, -1.0]))
        >>> bool(np.array_equal(T.apply([1.0, 1.0]), [3.0, 0.0]))
        True
        """
        theta = as_float_array(theta, "theta")
        d = self.A.shape[-1]
        if theta.ndim == 0 or theta.shape[-1] != d:
            raise ValueError(f"theta: expected shape (..., {d}), got {describe(theta)}")
        maps_lead = np.broadcast_shapes(self.A.shape[:-2], self.b.shape[:-1])
        try:
            lead = np.broadcast_shapes(theta.shape[:-1], maps_lead)
        except ValueError as exc:
            raise ValueError(
                f"theta: expected leading axes that broadcast with the maps' {maps_lead}, got {describe(theta)}"
            ) from exc
        check_output_size((*lead, d), "theta", what="an output")
        with np.errstate(over="ignore", invalid="ignore"):
            out = np.einsum("...ij,...j->...i", self.A, theta) + self.b
        return _finite_result(out, "theta", "A θ + b")


def _finite_result(arr: np.ndarray, name: str, what: str) -> np.ndarray:
    """Return ``arr``, or raise :class:`DivergenceError` naming ``name`` when it overflowed."""
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise DivergenceError(
            f"{name}: {what} overflows ({bad} non-finite entries); float64 cannot hold the result"
        )
    return arr


def _compose(A, b, A2, b2):
    with np.errstate(over="ignore", invalid="ignore"):
        return A @ A2, np.einsum("...ij,...j->...i", A, b2) + b


def compose_affine(A, b, A2, b2) -> AffineMap:
    """Compose affine maps: ``(A, b) ∘ (A2, b2) = (A A2, A b2 + b)``.

    The right-hand map acts first. Broadcasts over leading axes
    (core-plus-batch shapes ``(..., d, d)`` and ``(..., d)``).

    Parameters
    ----------
    A : array_like, shape (..., d, d)
        Linear part of the map applied second.
    b : array_like, shape (..., d)
        Offset of the map applied second.
    A2 : array_like, shape (..., d, d)
        Linear part of the map applied first.
    b2 : array_like, shape (..., d)
        Offset of the map applied first.

    Returns
    -------
    AffineMap
        The composition, ``A = A A2`` and ``b = A b2 + b``.

    Raises
    ------
    ValueError, TypeError
        Naming the argument whose shape, kind or values are wrong (all four
        must be finite; leading axes must broadcast).
    DivergenceError
        When the composition overflows.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> A, A2 = rng.normal(size=(2, 3, 3)); b, b2, x = rng.normal(size=(3, 3))
    >>> C, c = compose_affine(A, b, A2, b2)
    >>> bool(np.allclose(C @ x + c, A @ (A2 @ x + b2) + b))
    True
    """
    A = as_float_array(A, "A")
    b = as_float_array(b, "b")
    A2 = as_float_array(A2, "A2")
    b2 = as_float_array(b2, "b2")
    for name, mat in (("A", A), ("A2", A2)):
        if mat.ndim < 2 or mat.shape[-1] != mat.shape[-2]:
            raise ValueError(f"{name}: expected square matrices of shape (..., d, d), got {describe(mat)}")
    d = A.shape[-1]
    if A2.shape[-1] != d:
        raise ValueError(f"A2: expected matrices of shape (..., {d}, {d}) like A, got {describe(A2)}")
    for name, vec in (("b", b), ("b2", b2)):
        if vec.ndim < 1 or vec.shape[-1] != d:
            raise ValueError(f"{name}: expected vectors of shape (..., {d}), got {describe(vec)}")
    lead = A.shape[:-2]
    for name, arr, own in (("A2", A2, A2.shape[:-2]), ("b", b, b.shape[:-1]), ("b2", b2, b2.shape[:-1])):
        try:
            lead = np.broadcast_shapes(lead, own)
        except ValueError as exc:
            raise ValueError(
                f"{name}: expected leading axes that broadcast with those of the other arguments {lead}, "
                f"got {describe(arr)}"
            ) from exc
    check_output_size((*lead, d, d + 1), "A2", what="a composition")
    C, c = _compose(A, b, A2, b2)
    return AffineMap(_finite_result(C, "A2", "the composition A A2"),
                     _finite_result(c, "b2", "the composition A b2 + b"))
