r"""Affine maps whose linear parts are the identity minus a low-rank update.

``T_i(θ) = θ − s_i U_i (V_iᵀ θ) + b_i`` with ``U_i, V_i`` of shape ``(d, r)``:
``A_i = I − s_i U_i V_iᵀ``. SGD on least squares is of this form, with
``U_i = V_i = X_iᵀ`` (the batch's rows) and ``s_i = h/B``: a step costs
``O(r d)`` per point instead of ``O(d²)``, and the family is stored in
``O(m r d)`` instead of ``O(m d²)``.

Every product is evaluated point by point (one fixed-shape BLAS call per
point, as in :mod:`contraction.core._kernels`), so a point's result never
depends on the others.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ._kernels import _GATHER_MAX_VALUES, _sort_by_batch
from ._validation import (
    as_float_array,
    as_indices,
    check_output_size,
    check_probs,
    check_real,
    describe,
    frozen,
)
from .affine_map import AffineMap, _finite_result
from .maps import AffineMaps, checked_apply

__all__ = ["LowRankAffineMaps", "check_affine_family"]

# Values per chunk when a computation over the whole family is done in pieces of maps (bounded memory).
_CHUNK_VALUES = 1 << 22


def _readonly_rows(arr: np.ndarray) -> np.ndarray:
    """``arr`` (m, d, r) as a read-only C-contiguous copy of its rows, shape (m, r, d)."""
    rows = np.array(np.swapaxes(arr, 1, 2), dtype=np.float64, order="C", copy=True)
    rows.setflags(write=False)
    return rows


def _check_scale(scale, m: int) -> np.ndarray:
    if isinstance(scale, numbers.Real) and not isinstance(scale, (bool, np.bool_)):
        s = np.full(m, check_real(scale, "scale"))
    else:
        s = as_float_array(scale, "scale", ndim=(0, 1))
        s = np.broadcast_to(s, (m,)) if s.ndim == 0 else s
        if s.shape != (m,):
            raise ValueError(f"scale: expected a real number or shape ({m},) (one per map), got {describe(s)}")
    return frozen(s)


def _chunks(m: int, per_map: int):
    """Slices of maps holding about ``_CHUNK_VALUES`` values each."""
    step = max(1, _CHUNK_VALUES // max(1, per_map))
    for start in range(0, m, step):
        yield slice(start, min(m, start + step))


@dataclass(frozen=True, eq=False)
class LowRankAffineMaps:
    r"""An immutable family of ``m`` affine maps ``T_i(θ) = θ − s_i U_i (V_iᵀ θ) + b_i`` on ``R^d``.

    Linear parts ``A_i = I − s_i U_i V_iᵀ``: the identity minus a rank-``r``
    update. Every engine that accepts :class:`AffineMaps` accepts this family
    (iterates, windows, fixed points, diagnostics); a step costs ``O(r d)``
    per point, and :meth:`to_dense` gives the equivalent :class:`AffineMaps`.

    Parameters
    ----------
    U : array_like, shape (m, d, r)
        Left factors. Pass the same array object as ``V`` for a symmetric
        family ``A_i = I − s_i V_i V_iᵀ``: it is then stored once.
    V : array_like, shape (m, d, r)
        Right factors.
    b : array_like, shape (m, d)
        Offsets.
    probs : array_like, shape (m,), optional
        Sampling probabilities of the maps (uniform when omitted).
    scale : float or array_like, shape (m,), default 1.0
        The factors ``s_i`` (one for all maps, or one per map).

    Notes
    -----
    Arrays are validated once and stored read-only; ``U`` and ``V`` are
    views of row-major copies of shape ``(m, r, d)``. SGD on least squares
    (:meth:`contraction.LinearRegressionModel.sgd_maps`) shares the model's
    data instead of copying it.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> V = rng.normal(size=(3, 4, 2)); b = rng.normal(size=(3, 4))
    >>> maps = LowRankAffineMaps(V, V, b, scale=0.1)
    >>> maps.n_maps, maps.dim, maps.rank, maps.U is maps.V
    (3, 4, 2, True)
    >>> x = rng.normal(size=4); dense = maps.to_dense()
    >>> bool(np.allclose(maps.apply(x, 1), dense.A[1] @ x + dense.b[1]))
    True
    """

    U: np.ndarray
    V: np.ndarray
    b: np.ndarray
    probs: np.ndarray | None = field(default=None)
    scale: float | np.ndarray = 1.0

    def __post_init__(self):
        symmetric = self.U is self.V
        V = as_float_array(self.V, "V", ndim=3)
        m, d, r = V.shape
        if min(m, d, r) == 0:
            raise ValueError(f"V: expected shape (m, d, r) with m, d, r >= 1, got {describe(V)}")
        U = V if symmetric else as_float_array(self.U, "U", ndim=3)
        if U.shape != V.shape:
            raise ValueError(f"U: expected shape ({m}, {d}, {r}) to match V, got {describe(U)}")
        b = as_float_array(self.b, "b", ndim=2)
        if b.shape != (m, d):
            raise ValueError(f"b: expected shape ({m}, {d}) to match V, got {describe(b)}")
        right = _readonly_rows(V)
        left = right if symmetric else _readonly_rows(U)
        self._store(left, right, frozen(b), frozen(check_probs(self.probs, m)), _check_scale(self.scale, m))

    def _store(self, left, right, b, probs, scale) -> None:
        """Set the fields from read-only arrays: ``left``/``right`` (m, r, d) rows of ``U``/``V``."""
        for name, value in (("_left", left), ("_right", right), ("b", b), ("probs", probs), ("scale", scale),
                            ("V", np.swapaxes(right, 1, 2))):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "U", self.V if left is right else np.swapaxes(left, 1, 2))

    @classmethod
    def _wrap(cls, left: np.ndarray, right: np.ndarray, b: np.ndarray, probs: np.ndarray,
              scale: np.ndarray) -> LowRankAffineMaps:
        """A family on already validated read-only arrays, without copying them (``right`` may be ``left``)."""
        maps = object.__new__(cls)
        maps._store(left, right, b, probs, scale)
        return maps

    # --- shape ----------------------------------------------------------------
    @property
    def n_maps(self) -> int:
        """Number of maps ``m``."""
        return self._right.shape[0]

    @property
    def dim(self) -> int:
        """Dimension ``d``."""
        return self._right.shape[2]

    @property
    def rank(self) -> int:
        """Rank ``r`` of the updates (the width of ``U_i`` and ``V_i``)."""
        return self._right.shape[1]

    @property
    def symmetric(self) -> bool:
        """Whether ``U`` and ``V`` are the same array (``A_i = I − s_i V_i V_iᵀ``, symmetric)."""
        return self._left is self._right

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
            ``θ − s_index U_index (V_indexᵀ θ) + b_index``.

        Raises
        ------
        DivergenceError
            When the result overflows (never returned as ``inf``).

        Examples
        --------
        >>> import numpy as np
        >>> maps = LowRankAffineMaps([[[1.0], [0.0]]], [[[1.0], [0.0]]], [[0.0, 1.0]], scale=0.5)
        >>> bool(np.array_equal(maps.apply([2.0, 2.0], 0), [1.0, 3.0]))
        True
        """
        return checked_apply(self, theta, index, self.dim + self.rank, "T_index(θ)")

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
            ``T_index(θ)``, each point's products computed on their own, so a
            point's result does not depend on the others.

        Examples
        --------
        >>> import numpy as np
        >>> rng = np.random.default_rng(1)
        >>> maps = LowRankAffineMaps(rng.normal(size=(2, 3, 1)), rng.normal(size=(2, 3, 1)), np.zeros((2, 3)))
        >>> x = rng.normal(size=(5, 3)); many = maps.step(x, np.array([0, 1, 0, 1, 1]))
        >>> bool(np.array_equal(many[3], maps.step(x[3:4], np.array([1]))[0]))
        True
        """
        theta = np.asarray(theta, dtype=np.float64)
        index = np.asarray(index, dtype=np.int64)
        if theta.ndim == 2 and index.shape == theta.shape[:1]:
            return self._rows(theta, index)
        lead = np.broadcast_shapes(theta.shape[:-1], index.shape)
        K = int(np.prod(lead, dtype=np.int64))
        X = np.broadcast_to(theta, (*lead, self.dim)).reshape(K, self.dim)
        return self._rows(X, np.broadcast_to(index, lead).reshape(K)).reshape(*lead, self.dim)

    def _rows(self, X: np.ndarray, index: np.ndarray, offset: bool = True) -> np.ndarray:
        """``X A_indexᵀ (+ b_index)`` for rows ``X`` (K, d): ``x − (s (x V_i) U_iᵀ − b_i)``, one product per row.

        Rows are grouped by map (one stacked call per map present, the map's
        factors broadcast) unless the gathered factors are small; both give
        every row the same bits (the same per-row ``(1, d) × (d, r)`` and
        ``(1, r) × (r, d)`` products, operands of the same layout).
        """
        K, d = X.shape
        X3 = np.ascontiguousarray(X, dtype=np.float64).reshape(K, 1, d)
        T = np.empty((K, 1, d))
        if K * self.rank * d <= _GATHER_MAX_VALUES:
            S = np.matmul(X3, np.swapaxes(np.take(self._right, index, axis=0), 1, 2))
            S *= self.scale[index][:, None, None]
            np.matmul(S, np.take(self._left, index, axis=0), out=T)
            if offset:
                T[:, 0] -= self.b[index]
            return X3[:, 0] - T[:, 0]
        order, bounds = _sort_by_batch(index, self.n_maps)
        Xs = np.take(X3, order, axis=0)
        self._grouped(Xs, index[order], bounds, T, np.empty((K, 1, self.rank)), offset)
        out = np.empty((K, d))
        out[order] = Xs[:, 0] - T[:, 0]
        return out

    def _grouped(self, Xs, index, bounds, T, S, offset: bool = True) -> None:
        """``T = s (X V_i) U_iᵀ (− b_i)`` for rows ``Xs`` (K, 1, d) sorted by map (``bounds``: the groups).

        One stacked call per map present and product, into the buffers ``T`` and ``S`` (K, 1, r).
        """
        groups = np.flatnonzero(np.diff(bounds))
        right = np.swapaxes(self._right, 1, 2)
        for i in groups:
            np.matmul(Xs[bounds[i]:bounds[i + 1]], right[i], out=S[bounds[i]:bounds[i + 1]])
        S *= self.scale[index][:, None, None]
        per_group = offset and 16 * groups.size <= len(Xs)  # else one gather of the offsets (the same bits)
        for i in groups:
            s, e = bounds[i], bounds[i + 1]
            np.matmul(S[s:e], self._left[i], out=T[s:e])
            if per_group:
                T[s:e] -= self.b[i]
        if offset and not per_group:
            T[:, 0] -= self.b[index]

    def _times_linear(self, P: np.ndarray, index: np.ndarray, out: np.ndarray | None = None):
        """``P_c A_{index_c}`` for a stack ``P`` (C, k, d): ``P − (s P U) Vᵀ``; returns it and ``W = s P U``.

        One ``(k, d) × (d, r)`` and one ``(k, r) × (r, d)`` product per item.
        """
        W = np.matmul(P, np.swapaxes(np.take(self._left, index, axis=0), 1, 2))
        W *= self.scale[index][:, None, None]
        T = np.matmul(W, np.take(self._right, index, axis=0), out=out)
        np.subtract(P, T, out=T)
        return T, W

    def _block(self, letters: np.ndarray, theta0: np.ndarray):
        """The composition ``T_{l_1} ∘ … ∘ T_{l_L} = (I − Ū V̄ᵀ) θ + c`` of each row of ``letters`` (t, L).

        ``M_j = M_{j−1} A_{l_j}``: ``Ū`` gains ``u_j = M_{j−1} s U_{l_j}`` and
        ``V̄`` gains ``V_{l_j}``; ``c_j = c_{j−1} + M_{j−1} b_{l_j}``. Returns
        ``F = [Ū, c, Z]`` (t, d, L r + 1 + L), with ``Z[:, :, j − 1] =
        T_{l_1} ∘ … ∘ T_{l_j}(θ_0)`` for ``theta0`` (t, d), and ``V̄ᵀ`` (t, L r, d).
        Every product is one fixed-shape product per row of ``letters``.
        """
        t, L = letters.shape
        d, r = self.dim, self.rank
        F = np.empty((t, d, L * r + 1 + L))
        Vt = np.empty((t, L * r, d))
        x0 = theta0[:, :, None]
        c = np.zeros((t, d, 1))
        y = np.zeros((t, d, 1))  # Σ_l u_l (V_lᵀ θ_0)
        N = np.empty((t, d, r + 1))
        for j in range(L):
            i = letters[:, j]
            Vt[:, j * r:(j + 1) * r] = np.take(self._right, i, axis=0)
            N[:, :, :r] = np.swapaxes(np.take(self._left, i, axis=0), 1, 2) * self.scale[i][:, None, None]
            N[:, :, r] = self.b[i]
            if j:  # M_{j−1} [s U, b] = [s U, b] − Ū (V̄ᵀ [s U, b])
                N -= np.matmul(F[:, :, :j * r], np.matmul(Vt[:, :j * r], N))
            F[:, :, j * r:(j + 1) * r] = N[:, :, :r]
            c += N[:, :, r:]
            y += np.matmul(N[:, :, :r], np.matmul(Vt[:, j * r:(j + 1) * r], x0))
            F[:, :, L * r + 1 + j] = (x0 - y + c)[:, :, 0]
        F[:, :, L * r] = c[:, :, 0]
        return F, Vt

    # --- derived maps -----------------------------------------------------------
    @cached_property
    def A(self) -> np.ndarray:
        """The linear parts ``A_i = I − s_i U_i V_iᵀ``, shape (m, d, d), formed on first use (read-only).

        Refused (``ValueError`` naming ``maps``) above 1 GiB; the engines never need them.
        """
        A = self.to_dense().A
        A.setflags(write=False)
        return A

    def to_dense(self, name: str = "maps") -> AffineMaps:
        """The same family as :class:`AffineMaps`, ``A_i = I − s_i U_i V_iᵀ``.

        Parameters
        ----------
        name : str, default "maps"
            The argument named when the dense family is refused.

        Returns
        -------
        AffineMaps
            Same maps, offsets and probabilities.

        Raises
        ------
        ValueError
            When the linear parts ``(m, d, d)`` would exceed 1 GiB.

        Examples
        --------
        >>> import numpy as np
        >>> maps = LowRankAffineMaps([[[1.0], [1.0]]], [[[1.0], [0.0]]], [[0.0, 0.0]], scale=0.5)
        >>> maps.to_dense().A[0].tolist()
        [[0.5, 0.0], [-0.5, 1.0]]
        """
        m, d = self.n_maps, self.dim
        check_output_size((m, d, d), name, what="the dense linear parts (n_maps x d x d) of the low-rank family")
        with np.errstate(over="ignore", invalid="ignore"):
            A = np.matmul(np.swapaxes(self._left, 1, 2), self._right)
            A *= -self.scale[:, None, None]
            A[:, np.arange(d), np.arange(d)] += 1.0
        return AffineMaps(_finite_result(A, name, "I − s_i U_i V_iᵀ"), self.b, self.probs)

    def word(self, word) -> AffineMap:
        """The affine map ``T_{w_1} ∘ … ∘ T_{w_k}`` of a word (the last letter acts first).

        Parameters
        ----------
        word : array_like of int, shape (k,) or (..., k)
            Map indices; the empty word is the identity.

        Returns
        -------
        AffineMap
            ``A`` of shape ``(..., d, d)`` and ``b`` of shape ``(..., d)``.

        Raises
        ------
        DivergenceError
            When the composition overflows.

        Examples
        --------
        >>> import numpy as np
        >>> rng = np.random.default_rng(2)
        >>> maps = LowRankAffineMaps(rng.normal(size=(3, 3, 1)), rng.normal(size=(3, 3, 1)), rng.normal(size=(3, 3)))
        >>> A, b = maps.word([0, 2, 1]); x = rng.normal(size=3)
        >>> bool(np.allclose(A @ x + b, maps.apply(maps.apply(maps.apply(x, 1), 2), 0)))
        True
        """
        w = as_indices(word, "word", self.n_maps)
        w = w[None] if w.ndim == 0 else w
        if w.shape[-1] > 10**8:
            raise ValueError(f"word: expected words of at most 10**8 letters, got {describe(w)}")
        lead, k, d = w.shape[:-1], w.shape[-1], self.dim
        check_output_size((*lead, d, d + 1), "word", what="the maps of the words")
        w = w.reshape(int(np.prod(lead, dtype=np.int64)), k)
        P = np.broadcast_to(np.eye(d), (w.shape[0], d, d)).copy()
        q = np.zeros((w.shape[0], d, 1))
        with np.errstate(over="ignore", invalid="ignore"):
            for j in range(k):  # P ← P A_{w_j}, q ← q + P b_{w_j}: the first letter acts last
                q += np.matmul(P, self.b[w[:, j], :, None])
                P = self._times_linear(P, w[:, j])[0]
        _finite_result(P, "word", "the composition of the word")
        _finite_result(q, "word", "the composition of the word")
        return AffineMap(P.reshape((*lead, d, d)), q[..., 0].reshape((*lead, d)))

    def mean_map(self) -> AffineMap:
        """The mean map ``(Ā, b̄) = (I − Σ p_i s_i U_i V_iᵀ, Σ p_i b_i)``, formed in ``O(m r d²)``.

        Returns
        -------
        AffineMap
            ``A = Ā`` of shape ``(d, d)`` and ``b = b̄`` of shape ``(d,)``.

        Examples
        --------
        >>> import numpy as np
        >>> rng = np.random.default_rng(3)
        >>> maps = LowRankAffineMaps(rng.normal(size=(4, 3, 2)), rng.normal(size=(4, 3, 2)), rng.normal(size=(4, 3)))
        >>> A, b = maps.mean_map(); D = maps.to_dense().mean_map()
        >>> bool(np.allclose(A, D.A) and np.allclose(b, D.b))
        True
        """
        G = self._update_sum(self.probs)
        with np.errstate(over="ignore", invalid="ignore"):
            A = np.eye(self.dim) - G
            b = self.probs @ self.b
        return AffineMap(_finite_result(A, "maps", "the mean map"), _finite_result(b, "maps", "the mean map"))

    def _update_sum(self, weights: np.ndarray) -> np.ndarray:
        """``Σ_i w_i s_i U_i V_iᵀ`` for weights (m,), shape (d, d), summed in chunks of maps."""
        d = self.dim
        G = np.zeros((d, d))
        with np.errstate(over="ignore", invalid="ignore"):
            for part in _chunks(self.n_maps, self.rank * d):
                left = (self._left[part] * (weights[part] * self.scale[part])[:, None, None]).reshape(-1, d)
                G += left.T @ self._right[part].reshape(-1, d)
        return G

    def _linear_norms(self) -> np.ndarray:
        """``‖A_i‖₂ = ‖I − s_i U_i V_iᵀ‖₂`` per map, from a problem of size ``r`` or ``2r``.

        With ``Q`` an orthonormal basis of a space holding the columns of
        ``U_i`` and ``V_i`` (the QR factorisation ``[U_i V_i] = Q R``), ``A_i``
        is ``Q (I − s_i R_U R_Vᵀ) Qᵀ`` on that space and the identity on its
        complement, so ``‖A_i‖₂ = max(1, ‖I − s_i R_U R_Vᵀ‖₂)`` when ``d > 2r``.
        Symmetric families use the eigenvalues of ``V_iᵀ V_i`` (``r × r``); for
        ``d <= 2r`` the matrices ``A_i`` are formed.
        """
        m, d, r = self.n_maps, self.dim, self.rank
        out = np.empty(m)
        with np.errstate(over="ignore", invalid="ignore"):
            for part in _chunks(m, 4 * r * d + (d * d if d <= 2 * r else 0)):
                s = self.scale[part]
                if d <= 2 * r:
                    A = np.matmul(np.swapaxes(self._left[part], 1, 2), self._right[part]) * -s[:, None, None]
                    A[:, np.arange(d), np.arange(d)] += 1.0
                    norms = np.linalg.norm(A, 2, axis=(1, 2))
                    # r < d: A_i is the identity on the complement of the span of U_i, so ‖A_i‖₂ >= 1 exactly
                    out[part] = np.maximum(1.0, norms) if r < d else norms
                elif self.symmetric:
                    ev = np.linalg.eigvalsh(np.matmul(self._right[part], np.swapaxes(self._right[part], 1, 2)))
                    out[part] = np.maximum(1.0, np.abs(1.0 - s[:, None] * ev).max(axis=1))
                else:
                    R = np.linalg.qr(np.swapaxes(np.concatenate([self._left[part], self._right[part]], axis=1), 1, 2),
                                     mode="r")
                    M = np.matmul(R[:, :, :r], np.swapaxes(R[:, :, r:], 1, 2)) * -s[:, None, None]
                    M[:, np.arange(2 * r), np.arange(2 * r)] += 1.0
                    out[part] = np.maximum(1.0, np.linalg.norm(M, 2, axis=(1, 2)))
        return out

    def _augmented_congruence(self, H: np.ndarray, index: np.ndarray) -> np.ndarray:
        """``E_iᵀ H E_i`` for a stack of symmetric ``H`` (C, d+1, d+1), ``E_i = [[A_i, b_i], [0, 1]]``.

        ``E_i = I − L Rᵀ`` with ``L = [[s U_i, −b_i], [0, 0]]`` and
        ``R = [[V_i, 0], [0, 1]]`` (rank ``r + 1``), so with ``Y = H L`` and
        ``K = Y − R (Lᵀ Y)/2``: ``E_iᵀ H E_i = H − K Rᵀ − R Kᵀ``, ``O(r d²)``.
        """
        d, r, C = self.dim, self.rank, len(index)
        Lt = np.empty((C, r + 1, d))  # Lᵀ without its last (zero) column
        Lt[:, :r] = np.take(self._left, index, axis=0) * self.scale[index][:, None, None]
        Lt[:, r] = -self.b[index]
        Rt = np.zeros((C, r + 1, d + 1))
        Rt[:, :r, :d] = np.take(self._right, index, axis=0)
        Rt[:, r, d] = 1.0
        Y = np.matmul(H[:, :, :d], np.swapaxes(Lt, 1, 2))
        K = Y - 0.5 * np.matmul(np.swapaxes(Rt, 1, 2), np.matmul(Lt, Y[:, :d]))
        KR = np.matmul(K, Rt)
        return H - KR - np.swapaxes(KR, 1, 2)

    def _log_abs_det(self) -> np.ndarray:
        """``log|det A_i| = log|det(I_r − s_i V_iᵀ U_i)|`` per map (Sylvester's identity)."""
        K = np.matmul(self._right, np.swapaxes(self._left, 1, 2)) * -self.scale[:, None, None]
        K[:, np.arange(self.rank), np.arange(self.rank)] += 1.0
        return np.linalg.slogdet(K)[1]

    def __repr__(self) -> str:
        return f"LowRankAffineMaps(n_maps={self.n_maps}, dim={self.dim}, rank={self.rank})"


def check_affine_family(maps, name: str = "maps"):
    """Accept :class:`AffineMaps` or :class:`LowRankAffineMaps` unchanged; refuse anything else.

    Parameters
    ----------
    maps : object
        The argument.
    name : str, default "maps"
        Its name in the message.

    Returns
    -------
    AffineMaps or LowRankAffineMaps
        ``maps`` itself.

    Examples
    --------
    >>> import numpy as np
    >>> maps = LowRankAffineMaps(np.ones((1, 2, 1)), np.ones((1, 2, 1)), np.zeros((1, 2)))
    >>> check_affine_family(maps) is maps
    True
    """
    if not isinstance(maps, (AffineMaps, LowRankAffineMaps)):
        raise TypeError(f"{name}: expected AffineMaps or LowRankAffineMaps (e.g. model.sgd_maps(lr)), "
                        f"got {describe(maps)}")
    return maps
