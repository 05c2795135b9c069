"""Families of affine maps ``T_i(θ) = A_i θ + b_i`` and their composition.

Composition convention (used everywhere in the package): the word
``(w_1, …, w_k)`` denotes ``T_{w_1} ∘ T_{w_2} ∘ … ∘ T_{w_k}``, so ``T_{w_k}``
acts first. Forward SGD over the batch sequence ``ξ_1, …, ξ_n`` is the word
``(ξ_n, …, ξ_1)``; backward SGD is the word ``(ξ_1, …, ξ_n)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ._kernels import _grouped_matmul, _use_groups
from ._validation import as_float_array, as_int_array, check_lr, check_positive_int, check_probs, describe

__all__ = ["AffineMaps", "GradientMaps", "compose_affine", "as_indices"]


def compose_affine(A, b, A2, b2):
    """Compose affine maps: ``(A, b) ∘ (A2, b2) = (A A2, A b2 + b)``.

    Broadcasts over leading axes (core-plus-batch shapes ``(..., d, d)`` and
    ``(..., d)``); the right-hand map acts first.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> A, A2 = rng.normal(size=(2, 3, 3)); b, b2, x = rng.normal(size=(3, 3))
    >>> C, c = compose_affine(A, b, A2, b2)
    >>> bool(np.allclose(C @ x + c, A @ (A2 @ x + b2) + b))
    True
    """
    return A @ A2, np.einsum("...ij,...j->...i", A, b2) + b


def as_indices(idx, n_batches: int, name: str = "idx") -> np.ndarray:
    """Validate batch indices; return an int64 array of shape ``(n_chains, n_steps)``.

    A 1-D sequence is one chain.
    """
    arr = as_int_array(idx, name, "integer batch indices")
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected shape (n_steps,) or (n_chains, n_steps), got {describe(arr)}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one chain, got {describe(arr)}")
    if arr.size and (arr.min() < 0 or arr.max() >= n_batches):
        raise ValueError(
            f"{name}: expected indices in [0, {n_batches - 1}], got values in "
            f"[{arr.min()}, {arr.max()}]"
        )
    return arr


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr = np.array(arr, dtype=np.float64, copy=True)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class AffineMaps:
    r"""An immutable family of ``m`` affine maps on ``R^d``: ``T_i(θ) = A_i θ + b_i``.

    Parameters
    ----------
    A : array_like, shape (m, d, d)
        Linear parts.
    b : array_like, shape (m, d)
        Offsets.
    probs : array_like, shape (m,), optional
        Sampling probabilities of the maps (uniform when omitted).

    Notes
    -----
    Arrays are validated once (shapes, finiteness, probabilities) and stored
    read-only. ``AffineMaps`` is also a map family in the sense of
    :func:`contraction.forward_iterates`: ``step(theta, index)`` applies
    ``T_index`` to a stack of vectors.

    Examples
    --------
    >>> import numpy as np
    >>> maps = AffineMaps(A=[[[0.5]], [[0.5]]], b=[[0.5], [-0.5]])
    >>> maps.n_maps, maps.dim
    (2, 1)
    >>> bool(np.allclose(maps.apply([1.0], 0), [1.0]))
    True
    """

    A: np.ndarray
    b: np.ndarray
    probs: np.ndarray | None = field(default=None)

    def __post_init__(self):
        A = as_float_array(self.A, "A", ndim=3)
        m, d, d2 = A.shape
        if d != d2 or m == 0 or d == 0:
            raise ValueError(f"A: expected shape (m, d, d) with m, d >= 1, got {describe(A)}")
        b = as_float_array(self.b, "b", ndim=2)
        if b.shape != (m, d):
            raise ValueError(f"b: expected shape ({m}, {d}) to match A, got {describe(b)}")
        p = check_probs(self.probs, m)
        object.__setattr__(self, "A", _readonly(A))
        object.__setattr__(self, "b", _readonly(b))
        object.__setattr__(self, "probs", _readonly(p))

    # --- shape ----------------------------------------------------------------
    @property
    def n_maps(self) -> int:
        """Number of maps ``m``."""
        return self.A.shape[0]

    @property
    def n_batches(self) -> int:
        """Alias of :attr:`n_maps` (one map per batch)."""
        return self.A.shape[0]

    @property
    def dim(self) -> int:
        """Dimension ``d``."""
        return self.A.shape[1]

    @cached_property
    def augmented(self) -> np.ndarray:
        """``E_i = [[A_i, b_i], [0, 1]]``, shape (m, d+1, d+1): composition is matrix product.

        Computed once (derived from ``A`` and ``b``) and read-only.
        """
        d = self.dim
        E = np.zeros((self.n_maps, d + 1, d + 1))
        E[:, :d, :d] = self.A
        E[:, :d, d] = self.b
        E[:, d, d] = 1.0
        E.setflags(write=False)
        return E

    @property
    def _row_matrices(self) -> np.ndarray:
        """``[[A_iᵀ], [b_iᵀ]]``, shape (m, d+1, d): ``[θ, 1] @ M_i = T_i(θ)`` for row vectors."""
        return np.swapaxes(self.augmented[:, : self.dim, :], 1, 2)

    # --- application ----------------------------------------------------------
    def apply(self, theta, index) -> np.ndarray:
        """Apply ``T_index`` to ``theta``.

        Parameters
        ----------
        theta : array_like, shape (..., d)
        index : int or int array broadcastable to ``theta.shape[:-1]``

        Returns
        -------
        ndarray, shape (..., d)
        """
        theta = as_float_array(theta, "theta")
        if theta.ndim == 0 or theta.shape[-1] != self.dim:
            raise ValueError(f"theta: expected shape (..., {self.dim}), got {describe(theta)}")
        index = np.asarray(index)
        if index.dtype == bool or not np.issubdtype(index.dtype, np.integer):
            raise TypeError(f"index: expected integer batch indices, got {describe(index)}")
        if index.size and (index.min() < 0 or index.max() >= self.n_maps):
            raise ValueError(f"index: expected values in [0, {self.n_maps - 1}], got {describe(index)}")
        return self.step(theta, index)

    def step(self, theta: np.ndarray, index) -> np.ndarray:
        """Unchecked :meth:`apply` for the iteration engines."""
        index = np.asarray(index)
        if theta.ndim == 2 and index.shape == theta.shape[:1] and _use_groups(len(theta), self.n_maps):
            X = np.concatenate([theta, np.ones((len(theta), 1))], axis=1)[:, None, :]
            return _grouped_matmul(X, self._row_matrices, index)[:, 0]
        A = self.A[index]
        return np.einsum("...ij,...j->...i", A, theta) + self.b[index]

    # --- composition ------------------------------------------------------------
    def compose(self, other: "AffineMaps") -> "AffineMaps":
        """The family ``{T_i ∘ S_j}`` of all compositions, ``S_j`` acting first.

        Map ``i * other.n_maps + j`` is ``T_i ∘ S_j`` with probability
        ``p_i q_j``: the law of the two-step map when ``S`` is applied first
        and ``T`` second, with independent choices.

        Examples
        --------
        >>> import numpy as np
        >>> rng = np.random.default_rng(1)
        >>> T = AffineMaps(rng.normal(size=(2, 3, 3)), rng.normal(size=(2, 3)))
        >>> S = AffineMaps(rng.normal(size=(3, 3, 3)), rng.normal(size=(3, 3)))
        >>> TS = T.compose(S); x = rng.normal(size=3)
        >>> bool(np.allclose(TS.apply(x, 1 * 3 + 2), T.apply(S.apply(x, 2), 1)))
        True
        """
        if not isinstance(other, AffineMaps):
            raise TypeError(f"other: expected AffineMaps, got {describe(other)}")
        if other.dim != self.dim:
            raise ValueError(f"other: expected maps on R^{self.dim}, got maps on R^{other.dim}")
        A, b = compose_affine(self.A[:, None], self.b[:, None], other.A[None, :], other.b[None, :])
        p = np.outer(self.probs, other.probs).ravel()
        return AffineMaps(A.reshape(-1, self.dim, self.dim), b.reshape(-1, self.dim), p / p.sum())

    def word(self, word) -> tuple[np.ndarray, np.ndarray]:
        """The affine map ``T_{w_1} ∘ … ∘ T_{w_k}`` of a word, as ``(A, b)``.

        ``word`` is a sequence of indices, shape ``(k,)`` or ``(..., k)``; the
        last letter acts first. The empty word is the identity.

        Examples
        --------
        >>> import numpy as np
        >>> rng = np.random.default_rng(2)
        >>> maps = AffineMaps(rng.normal(size=(3, 2, 2)), rng.normal(size=(3, 2)))
        >>> A, b = maps.word([0, 2, 1]); x = rng.normal(size=2)
        >>> bool(np.allclose(A @ x + b, maps.apply(maps.apply(maps.apply(x, 1), 2), 0)))
        True
        """
        w = np.asarray(word)
        if w.ndim == 0:
            w = w[None]
        w = as_indices(w.reshape(-1, w.shape[-1]), self.n_maps, name="word")
        lead = np.asarray(word).shape[:-1] if np.ndim(word) else ()
        d = self.dim
        A = np.broadcast_to(np.eye(d), (w.shape[0], d, d)).copy()
        b = np.zeros((w.shape[0], d))
        for k in range(w.shape[1] - 1, -1, -1):  # last letter first
            A, b = compose_affine(self.A[w[:, k]], self.b[w[:, k]], A, b)
        return A.reshape(lead + (d, d)), b.reshape(lead + (d,))

    def fixed_points(self) -> np.ndarray:
        """Fixed point of each map, ``(I − A_i)^{-1} b_i``, shape ``(m, d)``.

        Raises ``ValueError`` when some ``I − A_i`` is singular.
        """
        M = np.eye(self.dim) - self.A
        if np.any(np.linalg.matrix_rank(M) < self.dim):
            raise ValueError("maps: some map has no unique fixed point (I - A_i is singular)")
        return np.linalg.solve(M, self.b[..., None])[..., 0]

    def mean_map(self) -> tuple[np.ndarray, np.ndarray]:
        """``(Ā, b̄) = (Σ p_i A_i, Σ p_i b_i)``."""
        return np.tensordot(self.probs, self.A, axes=1), self.probs @ self.b

    def __repr__(self) -> str:
        return f"AffineMaps(n_maps={self.n_maps}, dim={self.dim})"


class GradientMaps:
    r"""SGD maps of general (nonlinear) batch losses: ``T_i(θ) = θ − h ∇f_i(θ)``.

    Parameters
    ----------
    gradient : callable
        ``gradient(theta, index) -> array``: the gradients ``∇f_{index[k]}(theta[k])``
        for a stack ``theta`` of shape ``(k, d)`` and integer ``index`` of
        shape ``(k,)``; must be vectorized over the stack.
    lr : float
        Learning rate ``h > 0``.
    n_batches : int
        Number of batches ``m``.
    probs : array_like, shape (m,), optional
        Batch sampling probabilities.
    hvp : callable, optional
        ``hvp(theta, v, index)``: Hessian-vector products ``∇²f_index(θ) v`` on
        stacks; needed only by the bracket-corrected iteration.

    Examples
    --------
    >>> import numpy as np
    >>> grad = lambda th, i: np.sinh(th - np.where(i == 0, 1.0, -1.0)[:, None])
    >>> maps = GradientMaps(grad, lr=0.1, n_batches=2)
    >>> bool(np.allclose(maps.step(np.array([[1.0]]), np.array([0])), [[1.0]]))
    True
    """

    def __init__(self, gradient, lr, n_batches, probs=None, hvp=None):
        if not callable(gradient):
            raise TypeError(f"gradient: expected a callable gradient(theta, index), got {describe(gradient)}")
        if hvp is not None and not callable(hvp):
            raise TypeError(f"hvp: expected a callable hvp(theta, v, index) or None, got {describe(hvp)}")
        self.gradient = gradient
        self.hvp = hvp
        self.lr = check_lr(lr)
        self.n_batches = check_positive_int(n_batches, "n_batches")
        self.probs = check_probs(probs, self.n_batches)

    def step(self, theta: np.ndarray, index) -> np.ndarray:
        """Apply ``T_index`` to a stack ``theta`` of shape (k, d)."""
        return theta - self.lr * np.asarray(self.gradient(theta, index), dtype=np.float64)

    def __repr__(self) -> str:
        return f"GradientMaps(n_batches={self.n_batches}, lr={self.lr})"
