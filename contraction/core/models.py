"""Models whose SGD maps are affine: quadratics and linear regression.

Both are families of batch losses with constant Hessians,

    f_i(θ) = ½ θᵀ H_i θ − r_iᵀ θ + k_i,   ∇f_i(θ) = H_i θ − r_i,

so the SGD map of batch ``i`` with learning rate ``h`` is
``T_i(θ) = (I − h H_i) θ + h r_i``. Least squares keeps the data, not the
``H_i = X_iᵀ X_i / B``, and its SGD maps are low-rank when that is cheaper.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from ._validation import (
    MAX_OUTPUT_BYTES,
    as_float_array,
    broadcast_indices,
    check_lr,
    check_output_size,
    check_positive_int,
    check_probs,
    describe,
)
from .lowrank import LowRankAffineMaps
from .maps import AffineMaps, GradientMaps

__all__ = ["LinearRegressionModel", "QuadraticModel"]


def _finite(arr, name: str, what: str):
    """Return ``arr``, or raise ValueError naming the argument whose values made ``what`` overflow."""
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name}: expected values for which {what} is finite, got an overflow "
                         f"({bad} entries inf or nan)")
    return arr


def _check_psd(H: np.ndarray, name: str) -> None:
    if not np.allclose(H, np.swapaxes(H, -1, -2), rtol=1e-10, atol=1e-12 * max(1.0, np.abs(H).max())):
        raise ValueError(f"{name}: expected symmetric matrices, got a non-symmetric one")
    eig = np.linalg.eigvalsh(H)
    scale = max(1.0, float(np.abs(eig).max()))
    if eig.min() < -1e-10 * scale:
        i = int(np.unravel_index(np.argmin(eig), eig.shape)[0])
        raise ValueError(
            f"{name}: expected positive semi-definite matrices, got matrix {i} with "
            f"eigenvalue {eig.min():.3g} (indefinite)"
        )


class _AffineGradientModel:
    """Shared part: Hessians ``H_i`` (through :meth:`_hessian_times`), linear terms ``r`` (m, d), constants ``k``."""

    _r: np.ndarray
    _k: np.ndarray
    probs: np.ndarray

    @property
    def n_batches(self) -> int:
        """Number of batches ``m``."""
        return self._r.shape[0]

    @property
    def dim(self) -> int:
        """Parameter dimension ``d``."""
        return self._r.shape[1]

    hessians: np.ndarray  # batch Hessians H_i, shape (m, d, d), read-only
    _hessian_times: object  # (v (..., d), index) -> H_index v, unchecked

    def mean_hessian(self) -> np.ndarray:
        """The Hessian of the training loss, ``Σ p_i H_i``.

        Returns
        -------
        ndarray, shape (d, d)
            ``Σ p_i H_i`` (a new array).

        Examples
        --------
        >>> import numpy as np
        >>> model = QuadraticModel([[[2.0]], [[1.0]]], [[1.0], [-1.0]], probs=[0.25, 0.75])
        >>> model.mean_hessian().tolist()
        [[1.25]]
        """
        raise NotImplementedError

    def hessian_eigenvalues(self) -> np.ndarray:
        """Eigenvalues of each batch Hessian ``H_i``, in ascending order.

        Returns
        -------
        ndarray, shape (m, d)
            Row ``i`` holds the eigenvalues of ``H_i``.

        Examples
        --------
        >>> import numpy as np
        >>> model = QuadraticModel([np.diag([3.0, 1.0])], [[0.0, 0.0]])
        >>> model.hessian_eigenvalues().tolist()
        [[1.0, 3.0]]
        """
        raise NotImplementedError

    @property
    def linear_terms(self) -> np.ndarray:
        """``r_i`` with ``∇f_i(θ) = H_i θ − r_i``, shape (m, d) (read-only)."""
        return self._r

    def _theta(self, theta, name: str = "theta") -> np.ndarray:
        theta = as_float_array(theta, name)
        if theta.ndim == 0 or theta.shape[-1] != self.dim:
            raise ValueError(f"{name}: expected shape (..., {self.dim}), got {describe(theta)}")
        return theta

    def _index(self, index, theta: np.ndarray, name: str = "theta") -> np.ndarray:
        return broadcast_indices(index, self.n_batches, theta, self.dim, name)

    def _gradient(self, theta, index) -> np.ndarray:
        """:meth:`gradient` with its arguments checked but its result unchecked (the map family's callable).

        An overflow comes back as ``inf``, for the iteration functions to
        report as divergence.
        """
        theta = self._theta(theta)
        index = self._index(index, theta)
        with np.errstate(over="ignore", invalid="ignore"):
            return self._hessian_times(theta, index) - self._r[index]

    def _hvp(self, theta, v, index) -> np.ndarray:
        """:meth:`hvp` with its arguments checked but its result unchecked (the map family's callable)."""
        theta = self._theta(theta)
        v = self._theta(v, "v")
        try:
            np.broadcast_shapes(theta.shape, v.shape)
        except ValueError as exc:
            raise ValueError(
                f"v: expected a shape that broadcasts with theta's {theta.shape}, got {describe(v)}"
            ) from exc
        index = self._index(index, v, "v")
        with np.errstate(over="ignore", invalid="ignore"):
            return self._hessian_times(v, index)

    def gradient(self, theta, index) -> np.ndarray:
        """Batch gradients ``∇f_index(θ) = H_index θ − r_index``.

        Parameters
        ----------
        theta : array_like, shape (..., d)
            Points.
        index : int or array_like of int
            Batches, broadcasting with ``theta``'s leading axes.

        Returns
        -------
        ndarray, shape (..., d)
            The gradients.

        Raises
        ------
        ValueError
            Naming ``theta`` when the gradient overflows there, or ``index``
            when a batch is outside ``[0, m − 1]`` (negative indices are refused).

        Examples
        --------
        >>> import numpy as np
        >>> model = QuadraticModel([[[2.0]], [[1.0]]], [[1.0], [-1.0]])
        >>> bool(np.allclose(model.gradient([[0.0], [0.0]], [0, 1]), [[-2.0], [1.0]]))
        True
        """
        return _finite(self._gradient(theta, index), "theta", "the gradient")

    def batch_loss(self, theta, index) -> np.ndarray:
        """Batch losses ``f_index(θ)``.

        Parameters
        ----------
        theta : array_like, shape (..., d)
            Points.
        index : int or array_like of int
            Batches, broadcasting with ``theta``'s leading axes.

        Returns
        -------
        ndarray, shape (...)
            The losses.

        Raises
        ------
        ValueError
            Naming ``theta`` when the loss overflows there.

        Examples
        --------
        >>> import numpy as np
        >>> model = QuadraticModel([[[2.0]], [[1.0]]], [[1.0], [-1.0]])
        >>> bool(np.allclose(model.batch_loss([0.0], 0), 1.0))
        True
        """
        theta = self._theta(theta)
        index = self._index(index, theta)
        with np.errstate(over="ignore", invalid="ignore"):
            Ht = self._hessian_times(theta, index)
            f = 0.5 * np.sum(theta * Ht, -1) - np.sum(self._r[index] * theta, -1) + self._k[index]
        return _finite(f, "theta", "the loss")

    def loss(self, theta) -> np.ndarray:
        """Training loss ``L(θ) = Σ p_i f_i(θ)``.

        Parameters
        ----------
        theta : array_like, shape (..., d)
            Points.

        Returns
        -------
        ndarray, shape (...)
            ``L(θ)``.

        Examples
        --------
        >>> import numpy as np
        >>> model = QuadraticModel([[[2.0]], [[1.0]]], [[1.0], [-1.0]])
        >>> bool(np.allclose(model.loss([0.0]), 0.5 * 1.0 + 0.5 * 0.5))
        True
        """
        theta = self._theta(theta)
        check_output_size((*theta.shape[:-1], self.n_batches, self.dim), "theta", what="the batch losses")
        idx = np.arange(self.n_batches)
        per = self.batch_loss(theta[..., None, :], idx)
        with np.errstate(over="ignore", invalid="ignore"):
            return _finite(per @ self.probs, "theta", "the loss")

    def full_gradient(self, theta) -> np.ndarray:
        """Full gradient ``∇L(θ) = Σ p_i ∇f_i(θ)``.

        Parameters
        ----------
        theta : array_like, shape (..., d)
            Points.

        Returns
        -------
        ndarray, shape (..., d)
            ``∇L(θ)``.

        Examples
        --------
        >>> import numpy as np
        >>> model = QuadraticModel([[[2.0]], [[1.0]]], [[1.0], [-1.0]])
        >>> bool(np.allclose(model.full_gradient(model.minimizer()), 0.0))
        True
        """
        theta = self._theta(theta)
        with np.errstate(over="ignore", invalid="ignore"):
            g = theta @ self._mean_H.T - self.probs @ self._r
        return _finite(g, "theta", "the gradient")

    @cached_property
    def _mean_H(self) -> np.ndarray:
        H = self.mean_hessian()
        H.setflags(write=False)
        return H

    def minimizer(self) -> np.ndarray:
        """A minimiser of ``L`` (least-norm when the mean Hessian is singular).

        Returns
        -------
        ndarray, shape (d,)
            ``θ*`` with ``∇L(θ*) = 0``.
        """
        return np.linalg.lstsq(self._mean_H, self.probs @ self._r, rcond=None)[0]

    def sgd_maps(self, lr) -> AffineMaps:
        """The SGD maps ``T_i(θ) = θ − lr ∇f_i(θ) = (I − lr H_i) θ + lr r_i``.

        Parameters
        ----------
        lr : float
            Learning rate ``h > 0``.

        Returns
        -------
        AffineMaps
            One map per batch, with the batch probabilities.

        Examples
        --------
        >>> import numpy as np
        >>> model = QuadraticModel([[[2.0]], [[1.0]]], [[1.0], [-1.0]])
        >>> maps = model.sgd_maps(0.25)
        >>> x = np.array([0.3])
        >>> bool(np.allclose(maps.apply(x, 0), x - 0.25 * model.gradient(x, 0)))
        True
        """
        h = check_lr(lr)
        with np.errstate(over="ignore", invalid="ignore"):
            A = np.eye(self.dim) - h * self.hessians
            b = h * self._r
        return AffineMaps(_finite(A, "lr", "I − lr H_i"), _finite(b, "lr", "lr r_i"), self.probs)

    def hvp(self, theta, v, index) -> np.ndarray:
        """Hessian-vector products ``∇²f_index(θ) v = H_index v`` (constant Hessians).

        Parameters
        ----------
        theta : array_like, shape (..., d)
            Points (checked like everywhere, then unused: the Hessians are constant).
        v : array_like, shape (..., d)
            Vectors, broadcasting with ``theta``.
        index : int or array_like of int
            Batches in ``[0, m − 1]``, broadcasting with ``v``'s leading axes.

        Returns
        -------
        ndarray, shape (..., d)
            ``H_index v``.

        Raises
        ------
        ValueError
            Naming ``v`` when the product overflows.

        Examples
        --------
        >>> import numpy as np
        >>> model = QuadraticModel([[[2.0, 0.0], [0.0, 1.0]]], [[0.0, 0.0]])
        >>> bool(np.allclose(model.hvp([0.0, 0.0], [1.0, 1.0], 0), [2.0, 1.0]))
        True
        """
        return _finite(self._hvp(theta, v, index), "v", "the Hessian-vector product")

    def gradient_maps(self, lr) -> GradientMaps:
        """The same SGD maps as a general map family (gradient and Hessian-vector products).

        Iterating it gives the same iterates as :meth:`sgd_maps`, through the
        general (non-affine) code paths; used to cross-check them. Its
        ``gradient`` and ``hvp`` check their arguments as :meth:`gradient`
        and :meth:`hvp` do, but return an overflow as ``inf``, which the
        iteration functions report as divergence.

        Parameters
        ----------
        lr : float
            Learning rate ``h > 0``.

        Returns
        -------
        GradientMaps
            With ``hvp`` and ``dim``.

        Examples
        --------
        >>> import numpy as np
        >>> import contraction as ct
        >>> model = QuadraticModel([[[2.0]], [[1.0]]], [[1.0], [-1.0]])
        >>> idx = [0, 1, 1, 0]
        >>> a = ct.forward_iterates(model.gradient_maps(0.1), [0.0], idx)
        >>> bool(np.allclose(a, ct.forward_iterates(model.sgd_maps(0.1), [0.0], idx)))
        True
        """
        return GradientMaps(self._gradient, lr, self.n_batches, self.probs, hvp=self._hvp, dim=self.dim)


class QuadraticModel(_AffineGradientModel):
    r"""Quadratic batch losses ``f_i(θ) = ½ (θ − c_i)ᵀ H_i (θ − c_i)``.

    Parameters
    ----------
    hessians : array_like, shape (m, d, d)
        Symmetric positive semi-definite matrices ``H_i``.
    centers : array_like, shape (m, d)
        Centres ``c_i``.
    probs : array_like, shape (m,), optional
        Batch sampling probabilities (uniform when omitted).

    Examples
    --------
    >>> import numpy as np
    >>> model = QuadraticModel(np.stack([np.eye(2), 2 * np.eye(2)]), [[1.0, 0.0], [0.0, 1.0]])
    >>> bool(np.allclose(model.gradient([1.0, 0.0], 0), 0.0))
    True
    """

    def __init__(self, hessians, centers, probs=None):
        H = as_float_array(hessians, "hessians", ndim=3)
        m, d, d2 = H.shape
        if d != d2 or m == 0 or d == 0:
            raise ValueError(f"hessians: expected shape (m, d, d) with m, d >= 1, got {describe(H)}")
        _check_psd(H, "hessians")
        c = as_float_array(centers, "centers", ndim=2)
        if c.shape != (m, d):
            raise ValueError(f"centers: expected shape ({m}, {d}) to match hessians, got {describe(c)}")
        H = 0.5 * H + 0.5 * np.swapaxes(H, -1, -2)
        self.probs = check_probs(probs, m)
        self._H = H
        with np.errstate(over="ignore", invalid="ignore"):
            self._r = _finite(np.einsum("mij,mj->mi", H, c), "centers", "the linear terms H_i c_i")
            self._k = _finite(0.5 * np.einsum("mi,mi->m", c, self._r), "centers", "the constants c_iᵀ H_i c_i / 2")
        self.centers = c
        for arr in (self._H, self._r, self._k, self.centers, self.probs):
            arr.setflags(write=False)

    @property
    def hessians(self) -> np.ndarray:
        """Batch Hessians ``H_i``, shape (m, d, d) (read-only)."""
        return self._H

    def _hessian_times(self, v, index):
        return np.einsum("...ij,...j->...i", self._H[index], v)

    def mean_hessian(self) -> np.ndarray:
        return np.tensordot(self.probs, self._H, axes=1)

    def hessian_eigenvalues(self) -> np.ndarray:
        return np.linalg.eigvalsh(self._H)

    def __repr__(self) -> str:
        return f"QuadraticModel(n_batches={self.n_batches}, dim={self.dim})"


class LinearRegressionModel(_AffineGradientModel):
    r"""Least squares split into batches: ``f_B(θ) = ‖X_B θ − y_B‖² / (2|B|)``.

    The batches are a fixed partition of the rows into consecutive blocks of
    ``batch_size`` rows: batch ``k`` holds rows ``k·b, …, (k+1)·b − 1``. The
    number of rows must be a multiple of ``batch_size`` (permute the rows
    beforehand for another partition). Batch Hessians ``X_Bᵀ X_B / |B|`` may be
    rank-deficient (rank one for ``batch_size=1``).

    The model keeps ``X`` (read-only, not copied when it is already a float64
    array) and forms the ``(m, d, d)`` Hessians only when :attr:`hessians` is
    read; gradients, losses and :meth:`sgd_maps` work from the data.

    Parameters
    ----------
    X : array_like, shape (n, d)
        Features, one row per example.
    y : array_like, shape (n,)
        Targets.
    batch_size : int, default 1
        Rows per batch; must divide ``n``.
    probs : array_like, shape (n // batch_size,), optional
        Batch sampling probabilities (uniform when omitted).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0, 0.0], [0.0, 2.0]]); y = np.array([1.0, 2.0])
    >>> model = LinearRegressionModel(X, y)
    >>> model.n_batches
    2
    >>> bool(np.allclose(model.gradient([1.0, 1.0], 1), 0.0))
    True
    """

    def __init__(self, X, y, batch_size=1, probs=None):
        X = as_float_array(X, "X", ndim=2)
        n, d = X.shape
        if n == 0 or d == 0:
            raise ValueError(f"X: expected at least one row and one column, got {describe(X)}")
        y = as_float_array(y, "y", ndim=1)
        if y.shape != (n,):
            raise ValueError(f"y: expected shape ({n},) to match X, got {describe(y)}")
        b = check_positive_int(batch_size, "batch_size")
        if n % b:
            raise ValueError(
                f"batch_size: expected a divisor of the number of rows {n} (fixed partition), got {b}"
            )
        m = n // b
        rows = np.ascontiguousarray(X)  # X itself unless X is not C-contiguous
        Xb, yb = rows.reshape(m, b, d), y.reshape(m, b)
        self.probs = check_probs(probs, m)
        with np.errstate(over="ignore", invalid="ignore"):  # diag H_i finite: every entry is (Cauchy–Schwarz)
            _finite(np.einsum("mki,mki->mi", Xb, Xb) / b, "X", "the batch Hessians X_Bᵀ X_B / |B|")
            self._r = _finite(np.einsum("mki,mk->mi", Xb, yb) / b, "y", "the linear terms X_Bᵀ y_B / |B|")
            self._k = _finite(0.5 * np.einsum("mk,mk->m", yb, yb) / b, "y", "the constants ‖y_B‖² / (2|B|)")
        self.X, self.y, self.batch_size = X, y, b
        self._Xb, self._yb = Xb, yb
        for arr in (X, rows, Xb, y, yb, self._r, self._k, self.probs):
            arr.setflags(write=False)

    @cached_property
    def hessians(self) -> np.ndarray:
        """Batch Hessians ``H_i = X_iᵀ X_i / |B|``, shape (m, d, d) (read-only), formed on first use.

        Refused (``ValueError`` naming ``X``) when they would exceed 1 GiB.
        """
        m, b, d = self._Xb.shape
        check_output_size((m, d, d), "X", what="batch Hessians (n_batches x d x d)")
        with np.errstate(over="ignore", invalid="ignore"):
            H = _finite(np.einsum("mki,mkj->mij", self._Xb, self._Xb) / b, "X", "the batch Hessians X_Bᵀ X_B / |B|")
        H.setflags(write=False)
        return H

    def _hessian_times(self, v, index):
        Xi = self._Xb[index]
        return np.einsum("...kd,...k->...d", Xi, np.einsum("...kd,...d->...k", Xi, v)) / self.batch_size

    def batch_loss(self, theta, index) -> np.ndarray:
        theta = self._theta(theta)
        index = self._index(index, theta)
        with np.errstate(over="ignore", invalid="ignore"):
            res = np.einsum("...kd,...d->...k", self._Xb[index], theta) - self._yb[index]
            f = 0.5 * np.sum(res * res, axis=-1) / self.batch_size
        return _finite(f, "theta", "the loss")

    def loss(self, theta) -> np.ndarray:
        theta = self._theta(theta)
        m, b, _ = self._Xb.shape
        check_output_size((*theta.shape[:-1], m * b), "theta", what="the residuals")
        with np.errstate(over="ignore", invalid="ignore"):
            res = (theta @ self.X.T - self.y).reshape(*theta.shape[:-1], m, b)
            return _finite((0.5 / b) * np.sum(res * res, axis=-1) @ self.probs, "theta", "the loss")

    def mean_hessian(self) -> np.ndarray:
        m, b, d = self._Xb.shape
        weights = np.repeat(self.probs / b, b)
        rows = self._Xb.reshape(m * b, d)
        H = np.zeros((d, d))
        step = max(1, (1 << 22) // d)
        with np.errstate(over="ignore", invalid="ignore"):
            for start in range(0, m * b, step):
                part = rows[start:start + step]
                H += (part * weights[start:start + step, None]).T @ part
        return _finite(H, "X", "the mean Hessian")

    def hessian_eigenvalues(self) -> np.ndarray:
        m, b, d = self._Xb.shape
        if b >= d:
            return np.linalg.eigvalsh(self.hessians)
        gram = np.matmul(self._Xb, np.swapaxes(self._Xb, 1, 2)) / b  # X_i X_iᵀ / |B|: the nonzero eigenvalues
        return np.sort(np.concatenate([np.linalg.eigvalsh(gram), np.zeros((m, d - b))], axis=1), axis=1)

    def sgd_maps(self, lr):
        """The SGD maps ``T_i(θ) = θ − (lr/|B|) X_iᵀ (X_i θ − y_i)``, in the cheaper of two forms.

        Low-rank (:class:`LowRankAffineMaps` with ``U_i = V_i = X_iᵀ`` and
        ``s = lr/|B|``, sharing the model's data) when ``2 |B| < d`` or when
        the dense ``(m, d, d)`` matrices would exceed 1 GiB; otherwise
        :class:`AffineMaps` with ``A_i = I − lr H_i``. Every engine accepts
        both; ``.to_dense()`` turns the first into the second.

        Parameters
        ----------
        lr : float
            Learning rate ``h > 0``.

        Returns
        -------
        LowRankAffineMaps or AffineMaps
            One map per batch, with the batch probabilities.

        Examples
        --------
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> X, y = rng.normal(size=(8, 5)), rng.normal(size=8)
        >>> model = LinearRegressionModel(X, y, batch_size=2)
        >>> maps = model.sgd_maps(0.1); type(maps).__name__, maps.rank
        ('LowRankAffineMaps', 2)
        >>> x = rng.normal(size=5)
        >>> bool(np.allclose(maps.apply(x, 3), x - 0.1 * model.gradient(x, 3)))
        True
        """
        h = check_lr(lr)
        m, b, d = self._Xb.shape
        if not (2 * b < d or m * d * d * 8 > MAX_OUTPUT_BYTES):
            return super().sgd_maps(h)
        with np.errstate(over="ignore", invalid="ignore"):
            offsets = _finite(h * self._r, "lr", "lr r_i")
            scale = _finite(np.full(m, h / b), "lr", "lr / |B|")
        offsets.setflags(write=False)
        scale.setflags(write=False)
        return LowRankAffineMaps._wrap(self._Xb, self._Xb, offsets, self.probs, scale)

    def __repr__(self) -> str:
        return (
            f"LinearRegressionModel(n_rows={self.X.shape[0]}, dim={self.dim}, "
            f"batch_size={self.batch_size})"
        )
