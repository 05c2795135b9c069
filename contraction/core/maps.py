"""Families of affine maps ``T_i(θ) = A_i θ + b_i`` and their composition.

Composition convention (used everywhere in the package): the word
``(w_1, …, w_k)`` denotes ``T_{w_1} ∘ T_{w_2} ∘ … ∘ T_{w_k}``, so ``T_{w_k}``
acts first. Forward SGD over the batch sequence ``ξ_1, …, ξ_n`` is the word
``(ξ_n, …, ξ_1)``; backward SGD is the word ``(ξ_1, …, ξ_n)``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ._kernels import chain_matmul
from ._validation import (
    as_float_array,
    as_indices,
    broadcast_indices,
    check_lr,
    check_output_size,
    check_positive_int,
    check_probs,
    describe,
    frozen,
)
from .affine_map import AffineMap, _compose, _finite_result, compose_affine

__all__ = [
    "AffineMap",
    "AffineMaps",
    "GradientMaps",
    "check_affine_maps",
    "check_gradient_family",
    "compose_affine",
    "family_size",
]


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
        object.__setattr__(self, "A", frozen(A))
        object.__setattr__(self, "b", frozen(b))
        object.__setattr__(self, "probs", frozen(p))

    # --- shape ----------------------------------------------------------------
    @property
    def n_maps(self) -> int:
        """Number of maps ``m``."""
        return self.A.shape[0]

    @property
    def n_batches(self) -> int:
        """Deprecated alias of :attr:`n_maps`."""
        warnings.warn("AffineMaps.n_batches is deprecated; use n_maps", DeprecationWarning, stacklevel=2)
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

    @cached_property
    def _row_matrices(self) -> np.ndarray:
        """``[[A_iᵀ], [b_iᵀ]]``, shape (m, d+1, d), C-contiguous: ``[θ, 1] @ M_i = T_i(θ)`` for row vectors."""
        return frozen(np.swapaxes(self.augmented[:, : self.dim, :], 1, 2))

    @cached_property
    def _diagonal(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(a, b)`` with ``A_i = diag(a_i)``, shapes (m, d), when every ``A_i`` is diagonal; else ``None``."""
        diag = np.diagonal(self.A, axis1=1, axis2=2)
        if np.count_nonzero(self.A) != np.count_nonzero(diag):
            return None
        return frozen(diag), self.b

    # --- application ----------------------------------------------------------
    def apply(self, theta, index) -> np.ndarray:
        """Apply ``T_index`` to ``theta``.

        Parameters
        ----------
        theta : array_like, shape (..., d)
            Points.
        index : int or array_like of int
            Map indices, broadcastable to ``theta.shape[:-1]``.

        Returns
        -------
        ndarray, shape (..., d)
            ``A_index θ + b_index``.

        Raises
        ------
        DivergenceError
            When ``A_index θ + b_index`` overflows (never returned as ``inf``).

        Examples
        --------
        >>> import numpy as np
        >>> maps = AffineMaps([[[0.5]], [[2.0]]], [[1.0], [0.0]])
        >>> bool(np.array_equal(maps.apply([[2.0], [2.0]], [0, 1]), [[2.0], [4.0]]))
        True
        """
        return checked_apply(self, theta, index, self.dim + 1, "A_index θ + b_index")

    def step(self, theta: np.ndarray, index) -> np.ndarray:
        """Unchecked :meth:`apply` for the iteration engines.

        Parameters
        ----------
        theta : ndarray, shape (..., d)
            Points (float64, not validated).
        index : int or ndarray of int
            Map indices (not validated).

        Returns
        -------
        ndarray, shape (..., d)
            ``A_index θ + b_index``: each point's ``[θ, 1] @ [[A_iᵀ], [b_iᵀ]]``
            is a row of a GEMM that sums it the same way whatever the other
            rows (elementwise ``a_i ⊙ θ + b_i`` for diagonal maps, the same
            bits), so a point's result does not depend on the others.

        Examples
        --------
        >>> import numpy as np
        >>> maps = AffineMaps([[[0.5]], [[2.0]]], [[1.0], [0.0]])
        >>> many = maps.step(np.arange(6.0)[:, None], np.array([0, 1, 0, 1, 0, 1]))
        >>> bool(np.array_equal(many[3], maps.step(np.array([[3.0]]), np.array([1]))[0]))
        True
        """
        theta = np.asarray(theta, dtype=np.float64)
        index = np.asarray(index, dtype=np.int64)
        d = self.dim
        if self._diagonal is not None:  # a_i ⊙ θ + b_i: what the row product gives (its other terms are zeros)
            a, b = self._diagonal
            with np.errstate(over="ignore", invalid="ignore"):
                return np.add(np.multiply(a[index], theta), b[index])
        if theta.ndim == 2 and index.shape == theta.shape[:1]:  # a stack of points, one map each
            X = np.empty((len(theta), 1, d + 1))
            X[:, 0, :d] = theta
            X[:, 0, d] = 1.0
            return chain_matmul(X, self._row_matrices, index)[:, 0]
        lead = np.broadcast_shapes(theta.shape[:-1], index.shape)
        K = int(np.prod(lead, dtype=np.int64))
        X = np.ones((K, 1, d + 1))
        X[:, 0, :d] = np.broadcast_to(theta, (*lead, d)).reshape(K, d)
        Y = chain_matmul(X, self._row_matrices, np.broadcast_to(index, lead).reshape(K))
        return Y.reshape(*lead, d)

    # --- composition ------------------------------------------------------------
    def compose(self, other: AffineMaps) -> AffineMaps:
        """The family ``{T_i ∘ S_j}`` of all compositions, ``S_j`` acting first.

        Map ``i * other.n_maps + j`` is ``T_i ∘ S_j`` with probability
        ``p_i q_j``: the law of the two-step map when ``S`` is applied first
        and ``T`` second, with independent choices.

        Parameters
        ----------
        other : AffineMaps
            The family ``S`` applied first, on the same space.

        Returns
        -------
        AffineMaps
            ``n_maps * other.n_maps`` maps.

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
        other = check_affine_maps(other, "other")
        if other.dim != self.dim:
            raise ValueError(f"other: expected maps on R^{self.dim}, got maps on R^{other.dim}")
        check_output_size((self.n_maps, other.n_maps, self.dim, self.dim + 1), "other", what="a family of compositions")
        A, b = _compose(self.A[:, None], self.b[:, None], other.A[None, :], other.b[None, :])
        _finite_result(A, "other", "the composition T_i ∘ S_j")
        _finite_result(b, "other", "the composition T_i ∘ S_j")
        p = np.outer(self.probs, other.probs).ravel()
        return AffineMaps(A.reshape(-1, self.dim, self.dim), b.reshape(-1, self.dim), p / p.sum())

    def word(self, word) -> AffineMap:
        """The affine map ``T_{w_1} ∘ … ∘ T_{w_k}`` of a word.

        Parameters
        ----------
        word : array_like of int, shape (k,) or (..., k)
            Map indices; the last letter acts first. The empty word (``k = 0``)
            is the identity.

        Returns
        -------
        AffineMap
            ``A`` of shape ``(..., d, d)`` and ``b`` of shape ``(..., d)``;
            unpacks as ``A, b``.

        Raises
        ------
        DivergenceError
            When the composition overflows.

        Examples
        --------
        >>> import numpy as np
        >>> rng = np.random.default_rng(2)
        >>> maps = AffineMaps(rng.normal(size=(3, 2, 2)), rng.normal(size=(3, 2)))
        >>> A, b = maps.word([0, 2, 1]); x = rng.normal(size=2)
        >>> bool(np.allclose(A @ x + b, maps.apply(maps.apply(maps.apply(x, 1), 2), 0)))
        True
        >>> bool(np.array_equal(maps.word([]).A, np.eye(2)))
        True
        """
        w = as_indices(word, "word", self.n_maps)
        if w.ndim == 0:
            w = w[None]
        if w.shape[-1] > 10**8:
            raise ValueError(f"word: expected words of at most 10**8 letters, got {describe(w)}")
        lead, k = w.shape[:-1], w.shape[-1]
        d = self.dim
        check_output_size((*lead, d, d + 1), "word", what="the maps of the words")
        w = w.reshape(int(np.prod(lead, dtype=np.int64)), k)
        A = np.broadcast_to(np.eye(d), (w.shape[0], d, d)).copy()
        b = np.zeros((w.shape[0], d))
        for j in range(k - 1, -1, -1):  # last letter first
            A, b = _compose(self.A[w[:, j]], self.b[w[:, j]], A, b)
        _finite_result(A, "word", "the composition of the word")
        _finite_result(b, "word", "the composition of the word")
        return AffineMap(A.reshape((*lead, d, d)), b.reshape((*lead, d)))

    def fixed_points(self) -> np.ndarray:
        """Fixed point of each map, ``(I − A_i)^{-1} b_i``.

        Returns
        -------
        ndarray, shape (m, d)
            Row ``i`` is the fixed point of ``T_i``.

        Raises
        ------
        ValueError
            When some ``I − A_i`` is singular.

        Examples
        --------
        >>> import numpy as np
        >>> maps = AffineMaps([[[0.5]], [[0.5]]], [[1.0], [-1.0]])
        >>> bool(np.allclose(maps.fixed_points(), [[2.0], [-2.0]]))
        True
        """
        M = np.eye(self.dim) - self.A
        if np.any(np.linalg.matrix_rank(M) < self.dim):
            raise ValueError("maps: some map has no unique fixed point (I - A_i is singular)")
        with np.errstate(over="ignore", invalid="ignore"):
            x = np.linalg.solve(M, self.b[..., None])[..., 0]
        return _finite_result(x, "maps", "a fixed point (I - A_i)^{-1} b_i")

    def mean_map(self) -> AffineMap:
        """The mean map ``(Ā, b̄) = (Σ p_i A_i, Σ p_i b_i)``.

        Returns
        -------
        AffineMap
            ``A = Ā`` of shape ``(d, d)`` and ``b = b̄`` of shape ``(d,)``; unpacks as ``A, b``.

        Examples
        --------
        >>> import numpy as np
        >>> maps = AffineMaps([[[0.5]], [[1.5]]], [[1.0], [-1.0]], probs=[0.75, 0.25])
        >>> A, b = maps.mean_map()
        >>> bool(np.allclose(A, [[0.75]]) and np.allclose(b, [0.5]))
        True
        """
        with np.errstate(over="ignore", invalid="ignore"):
            A, b = np.tensordot(self.probs, self.A, axes=1), self.probs @ self.b
        return AffineMap(_finite_result(A, "A", "the mean map"), _finite_result(b, "b", "the mean map"))

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
    n_maps : int
        Number of maps ``m`` (one per batch).
    probs : array_like, shape (m,), optional
        Batch sampling probabilities.
    hvp : callable, optional
        ``hvp(theta, v, index)``: Hessian-vector products ``∇²f_index(θ) v`` on
        stacks; needed only by the bracket-corrected iteration.
    dim : int, optional
        Dimension ``d`` of ``θ``; when given, the iteration functions check
        starts against it.
    n_batches : int, optional
        Deprecated keyword for ``n_maps``.

    Attributes
    ----------
    n_maps : int
        Number of maps ``m``; ``n_batches`` holds the same number.
    lr : float
        The learning rate.
    probs : ndarray, shape (m,)
        Sampling probabilities.
    dim : int or None
        Dimension ``d`` of ``θ``, when known.

    Examples
    --------
    >>> import numpy as np
    >>> grad = lambda th, i: np.sinh(th - np.where(i == 0, 1.0, -1.0)[:, None])
    >>> maps = GradientMaps(grad, lr=0.1, n_maps=2)
    >>> bool(np.allclose(maps.step(np.array([[1.0]]), np.array([0])), [[1.0]]))
    True
    """

    def __init__(self, gradient, lr, n_maps=None, probs=None, hvp=None, *, dim=None, n_batches=None):
        if n_batches is not None:
            warnings.warn("GradientMaps(n_batches=...) is deprecated; use n_maps", DeprecationWarning, stacklevel=2)
            if n_maps is not None:
                raise TypeError("n_batches: pass n_maps only (n_batches is its deprecated name)")
            n_maps = n_batches
        if not callable(gradient):
            raise TypeError(f"gradient: expected a callable gradient(theta, index), got {describe(gradient)}")
        if hvp is not None and not callable(hvp):
            raise TypeError(f"hvp: expected a callable hvp(theta, v, index) or None, got {describe(hvp)}")
        self.gradient = gradient
        self.hvp = hvp
        self.lr = check_lr(lr)
        self.n_maps = check_positive_int(n_maps, "n_maps")
        self.n_batches = self.n_maps
        self.probs = check_probs(probs, self.n_maps)
        self.dim = None if dim is None else check_positive_int(dim, "dim")

    def step(self, theta: np.ndarray, index) -> np.ndarray:
        """Apply ``T_index`` to a stack of points.

        Parameters
        ----------
        theta : ndarray, shape (k, d)
            Points.
        index : ndarray of int, shape (k,)
            Map of each point.

        Returns
        -------
        ndarray, shape (k, d)
            ``θ − h ∇f_index(θ)``.

        Examples
        --------
        >>> import numpy as np
        >>> maps = GradientMaps(lambda th, i: th - i[:, None], lr=0.5, n_maps=2)
        >>> bool(np.array_equal(maps.step(np.array([[1.0], [1.0]]), np.array([0, 1])), [[0.5], [1.0]]))
        True
        """
        return theta - self.lr * np.asarray(self.gradient(theta, index), dtype=np.float64)

    def __repr__(self) -> str:
        return f"GradientMaps(n_maps={self.n_maps}, lr={self.lr})"



def checked_apply(maps, theta, index, work: int, formula: str) -> np.ndarray:
    """``maps.step(theta, index)`` after validating both, refusing an overflowing result.

    ``work`` is the number of values per point the step holds at once (for the
    output-size check); ``formula`` names the result in the overflow message.
    """
    theta = as_float_array(theta, "theta")
    if theta.ndim == 0 or theta.shape[-1] != maps.dim:
        raise ValueError(f"theta: expected shape (..., {maps.dim}), got {describe(theta)}")
    index = broadcast_indices(index, maps.n_maps, theta, work)
    with np.errstate(over="ignore", invalid="ignore"):
        out = maps.step(theta, index)
    return _finite_result(out, "theta", formula)


def check_affine_maps(maps, name: str = "maps") -> AffineMaps:
    """:class:`AffineMaps` for the functions that need the matrices ``A_i``; refuse anything else.

    A family with a dense form (``to_dense(name)`` returning :class:`AffineMaps`,
    as :class:`contraction.LowRankAffineMaps`) is converted; its ``to_dense``
    refuses, naming ``name``, when the matrices would exceed 1 GiB.
    """
    if isinstance(maps, AffineMaps):
        return maps
    to_dense = getattr(maps, "to_dense", None)
    if callable(to_dense) and not isinstance(maps, type):
        dense = to_dense(name)
        if isinstance(dense, AffineMaps):
            return dense
    raise TypeError(f"{name}: expected AffineMaps (e.g. model.sgd_maps(lr)), got {describe(maps)}")


def family_size(maps, name: str = "maps") -> int:
    """Number of maps of a map family: ``AffineMaps`` or any object with ``step(theta, index)``.

    A general family states its size as ``n_maps`` (``n_batches`` is read
    when ``n_maps`` is absent).
    """
    if isinstance(maps, AffineMaps):
        return maps.n_maps
    if not callable(getattr(maps, "step", None)):
        raise TypeError(f"{name}: expected AffineMaps or an object with step(theta, index), got {describe(maps)}")
    m = getattr(maps, "n_maps", None)
    if m is None:
        m = getattr(maps, "n_batches", None)
    if m is None:
        raise TypeError(f"{name}: a general map family needs an n_maps attribute, got {describe(maps)} without one")
    return check_positive_int(m, f"{name}.n_maps")


def check_gradient_family(maps, name: str = "maps") -> float:
    """Check a family with ``lr``, ``gradient`` and ``hvp`` (as the bracket correction needs); return ``lr``."""
    for attr in ("gradient", "hvp"):
        if not callable(getattr(maps, attr, None)):
            raise TypeError(
                f"{name}: expected a map family with lr, gradient and hvp (e.g. model.gradient_maps(lr)), "
                f"got {describe(maps)} whose .{attr} is not callable"
            )
    lr = getattr(maps, "lr", None)
    try:
        return check_lr(lr, f"{name}.lr")
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected a positive learning rate .lr, got {describe(lr)}") from exc
