r"""The explicit examples of the theory, as ready models with their exact laws.

* E1 :func:`two_point_quadratic`: ``f_±(θ) = ½ (θ ∓ 1)²`` in 1-D, ``p = ½``;
  ``T_±(θ) = (1 − h) θ ± h`` and ``θ̃_∞ = h Σ_k (1 − h)^{k−1} ε_k``. The
  stationary law is Uniform[−1, 1] at ``h = ½`` and the middle-thirds Cantor
  measure on [−1, 1] at ``h = ⅔`` (:func:`two_point_cdf`); ``Var π = h/(2 − h)``.
* E2 :func:`mean_estimation`: ``f_i(θ) = ½ ‖θ − x_i‖²``; ``π`` has mean
  ``x̄`` and covariance ``h Σ_x / (2 − h)``.
* E3 :func:`gaussian_least_squares_1d`: least squares with batch size 1 and
  standard normal features, ``T(θ) = (1 − h x²) θ + h x y``; the feature law
  is a dense quantile grid with the moments ``E x²``, ``E x⁴`` matched exactly
  (log-moments only to ``O(1/n)``, :meth:`GaussianNodes.log_moment_error`). The
  covariance is infinite from ``h = ⅔`` on (tail index 2 there), while the
  Gaussian Lyapunov exponent stays negative up to ``h ≈ 2.42``
  (:func:`gaussian_lyapunov_1d`, by quadrature).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.integrate
import scipy.optimize
import scipy.special
import scipy.stats

from ..core._validation import as_float_array, as_generator, check_int, check_lr, check_positive_int, check_real
from ..core.maps import GradientMaps
from ..core.models import LinearRegressionModel, QuadraticModel

__all__ = [
    "MAX_NODES",
    "GaussianNodes",
    "cantor_cdf",
    "gaussian_feature_nodes",
    "gaussian_least_squares_1d",
    "gaussian_lyapunov_1d",
    "gaussian_lyapunov_threshold",
    "log_cosh_maps",
    "mean_estimation",
    "two_point_cdf",
    "two_point_quadratic",
    "two_point_variance",
]


def two_point_quadratic() -> QuadraticModel:
    """E1: ``f_±(θ) = ½ (θ ∓ 1)²`` with equal probabilities (batch 0 is ``+``).

    Returns
    -------
    QuadraticModel
        Two one-dimensional batch losses with centres ``±1``.

    Examples
    --------
    >>> import numpy as np
    >>> maps = two_point_quadratic().sgd_maps(0.5)
    >>> bool(np.allclose(maps.A[:, 0, 0], 0.5) and np.allclose(maps.b[:, 0], [0.5, -0.5]))
    True
    """
    return QuadraticModel([[[1.0]], [[1.0]]], [[1.0], [-1.0]])


def two_point_variance(lr) -> float:
    """``Var π = h / (2 − h)`` for E1."""
    h = check_lr(lr)
    return h / (2.0 - h)


def cantor_cdf(u) -> np.ndarray:
    """The Cantor function on [0, 1] (CDF of the middle-thirds Cantor measure).

    Examples
    --------
    >>> import numpy as np
    >>> bool(np.allclose(cantor_cdf([0.0, 1 / 3, 0.5, 2 / 3, 0.75, 1.0]), [0, 0.5, 0.5, 0.5, 2 / 3, 1]))
    True
    """
    u = np.clip(as_float_array(u, "u"), 0.0, 1.0)
    out = np.zeros_like(u)
    scale = 0.5
    x = u.copy()
    alive = np.ones(u.shape, dtype=bool)
    for _ in range(60):  # 3^{-60} is below double precision
        x3 = 3.0 * x
        digit = np.floor(x3)
        mid = alive & (digit == 1)
        out = np.where(mid, out + scale, out)
        alive &= ~mid
        out = np.where(alive & (digit >= 2), out + scale, out)
        x = np.where(digit >= 3, 1.0, x3 - np.minimum(digit, 2))
        scale *= 0.5
    out = np.where(u >= 1.0, 1.0, out)
    return out


def two_point_cdf(lr):
    """Exact CDF of E1's stationary law for ``lr`` in ``{1/2, 2/3}``.

    ``h = ½``: Uniform[−1, 1]; ``h = ⅔``: the Cantor measure on [−1, 1]
    (``θ̃_∞ = Σ_k 2 ε_k / 3^k``, ternary digits in ``{0, 2}``).

    Parameters
    ----------
    lr : float
        The learning rate, ``1/2`` or ``2/3``.

    Returns
    -------
    callable
        The vectorized CDF ``x ↦ P(Z <= x)``.

    Examples
    --------
    >>> import numpy as np
    >>> bool(np.allclose(two_point_cdf(0.5)([-1.0, 0.0, 0.5]), [0.0, 0.5, 0.75]))
    True
    >>> bool(np.allclose(two_point_cdf(2 / 3)([-1 / 3, 1 / 3, 5 / 9]), [0.5, 0.5, 0.75]))  # flat on the gap
    True
    """
    h = check_lr(lr)
    if np.isclose(h, 0.5, rtol=0, atol=1e-12):
        return lambda x: np.clip((np.asarray(x, dtype=float) + 1.0) / 2.0, 0.0, 1.0)
    if np.isclose(h, 2.0 / 3.0, rtol=0, atol=1e-12):
        return lambda x: cantor_cdf((np.asarray(x, dtype=float) + 1.0) / 2.0)
    raise ValueError(f"lr: the exact CDF is known for lr = 1/2 and lr = 2/3, got {h!r}")


def mean_estimation(points, probs=None) -> QuadraticModel:
    """E2: ``f_i(θ) = ½ ‖θ − x_i‖²`` over the data points ``x_i`` (rows of ``points``).

    Parameters
    ----------
    points : array_like, shape (m, d)
        The data points, one batch each.
    probs : array_like, shape (m,), optional
        Batch sampling probabilities (uniform when omitted).

    Returns
    -------
    QuadraticModel
        Identity Hessians, centres at the points.

    Examples
    --------
    >>> import numpy as np
    >>> import contraction as ct
    >>> x = np.array([[0.0, 1.0], [2.0, 1.0], [1.0, 4.0]])
    >>> mom = ct.stationary_moments(mean_estimation(x).sgd_maps(0.3))
    >>> Sx = np.cov(x.T, bias=True)
    >>> bool(np.allclose(mom.mean, x.mean(0)) and np.allclose(mom.cov, 0.3 * Sx / (2 - 0.3)))
    True
    """
    x = as_float_array(points, "points", ndim=2)
    m, d = x.shape
    if m == 0 or d == 0:
        raise ValueError(f"points: expected at least one point of dimension >= 1, got an array of shape {x.shape}")
    return QuadraticModel(np.broadcast_to(np.eye(d), (m, d, d)), x, probs)


@dataclass(frozen=True)
class GaussianNodes:
    """Nodes and weights standing for ``x ~ N(0, 1)`` (see :func:`gaussian_feature_nodes`).

    Attributes
    ----------
    nodes : ndarray, shape (n,)
        The points ``z_k``.
    weights : ndarray, shape (n,)
        Their probabilities.
    """

    nodes: np.ndarray
    weights: np.ndarray

    def log_moment_error(self, lr) -> float:
        r"""Stated bound on ``|Σ_k w_k log|1 − h z_k²| − E log|1 − h x²||``, ``x ~ N(0, 1)``.

        ``(6 + 2 log(1/δ)) / n`` with ``δ = min(1, min_k |1 − h z_k²|)``: the
        discrete log-moment (the exact Lyapunov exponent of the E3 family)
        misses the Gaussian one by ``O(1/n)``, and by more where a node sits
        near the singularity ``1/√h`` (at ``h = 1/z_k²`` the discrete value is
        ``−∞``). Measured against quadrature (:func:`gaussian_lyapunov_1d`)
        for ``n`` from 50 to 5000 and ``h`` from 1e-3 to 50: the largest
        ``n |error| − 2 log(1/δ)`` found was 5.4.

        Parameters
        ----------
        lr : float
            The learning rate ``h > 0``.

        Returns
        -------
        float
            The bound (``inf`` when some ``1 − h z_k² = 0``).

        Examples
        --------
        >>> import numpy as np
        >>> g = gaussian_feature_nodes(2000)
        >>> discrete = g.weights @ np.log(np.abs(1 - 2.0 * g.nodes**2))
        >>> bool(abs(discrete - gaussian_lyapunov_1d(2.0)) <= g.log_moment_error(2.0))
        True
        """
        h = check_lr(lr)
        delta = float(min(1.0, np.abs(1.0 - h * self.nodes**2).min()))
        if delta == 0.0:
            return float("inf")
        return (6.0 + 2.0 * np.log(1.0 / delta)) / self.nodes.size


#: Largest number of nodes of :func:`gaussian_feature_nodes`.
MAX_NODES = 10**6


def gaussian_feature_nodes(n_nodes=2000) -> GaussianNodes:
    r"""Build nodes and weights standing for ``x ~ N(0, 1)``.

    Quantile midpoints ``z_k = Φ^{-1}((k − ½)/n)`` with weights
    ``w_k ∝ exp(λ₁ z_k² + λ₂ z_k⁴)`` tilted just enough that ``E x² = 1`` and
    ``E x⁴ = 3`` hold exactly (odd moments vanish by symmetry). Exact
    low moments keep the mean-square threshold ``2 E x² / E x⁴ = ⅔`` exact.
    Log-moments are *not* exact: ``Σ_k w_k log|1 − h z_k²|`` (the exact
    Lyapunov exponent of the discrete E3 family) differs from the Gaussian
    ``E log|1 − h x²|`` by up to about ``(6 + 2 log(1/δ))/n``, ``δ`` the
    distance of the nearest ``h z_k²`` to 1 (:meth:`GaussianNodes.log_moment_error`):
    with the default ``n = 2000``, up to about 7.5e-3 at ``h = 2`` (6.4 %), and
    over 1e-3 for many ``h``. Where a Gaussian expectation is meant, use
    quadrature (:func:`gaussian_lyapunov_1d`) or enough nodes for the error
    needed.

    Parameters
    ----------
    n_nodes : int, default 2000
        Number of nodes, in ``[50, MAX_NODES]`` (``10**6``).

    Returns
    -------
    GaussianNodes
        The nodes ``z_k`` and their weights ``w_k``.

    Examples
    --------
    >>> import numpy as np
    >>> g = gaussian_feature_nodes(500); z, w = g.nodes, g.weights
    >>> bool(np.isclose(w @ z**2, 1.0) and np.isclose(w @ z**4, 3.0) and np.isclose(w.sum(), 1.0))
    True
    """
    n = check_int(n_nodes, "n_nodes", 50, MAX_NODES)
    z = scipy.stats.norm.ppf((np.arange(n) + 0.5) / n)

    def weights(lam):
        w = np.exp(lam[0] * z**2 + 1e-2 * lam[1] * z**4)
        return w / w.sum()

    def residual(lam):
        w = weights(lam)
        return [w @ z**2 - 1.0, w @ z**4 - 3.0]

    with warnings.catch_warnings():  # "no further improvement": converged to rounding; the residual decides
        warnings.simplefilter("ignore", RuntimeWarning)
        lam = scipy.optimize.fsolve(residual, [0.0, 0.0], xtol=1e-14)
    w = weights(lam)
    if np.abs(residual(lam)).max() > 1e-10:  # pragma: no cover - fsolve failure
        raise ValueError(f"n_nodes: could not match the Gaussian moments with {n} nodes")
    return GaussianNodes(z, w)


def gaussian_least_squares_1d(n_nodes=2000, noise=0.5, theta_star=1.0) -> LinearRegressionModel:
    r"""E3: 1-D least squares, batch size 1, standard normal features ``x``.

    Targets ``y = θ* x + ε`` with ``ε = ±noise`` (equally likely); the SGD
    maps are ``T(θ) = (1 − h x²) θ + h x y``. The law of ``x`` is the node set of
    :func:`gaussian_feature_nodes` (rows, with their weights as batch
    probabilities), so ``E x² = 1`` and ``E x⁴ = 3`` exactly: the covariance
    is finite exactly for ``h < ⅔``. For Gaussian features the Lyapunov
    exponent ``E log|1 − h x²|`` stays negative up to ``h ≈ 2.42``
    (:func:`gaussian_lyapunov_1d`, by quadrature); the exact exponent of this
    discrete family (:func:`contraction.lyapunov_exponent`) is close to it but
    not equal: see :meth:`GaussianNodes.log_moment_error` for the stated
    difference.

    Parameters
    ----------
    n_nodes : int, default 2000
        Number of feature values (see :func:`gaussian_feature_nodes`).
    noise : float, default 0.5
        Size of the label noise ``ε = ±noise``, ``>= 0``.
    theta_star : float, default 1.0
        The true parameter ``θ*``.

    Returns
    -------
    LinearRegressionModel
        ``2 n_nodes`` rows, batch size 1, with the node weights as batch probabilities.

    Examples
    --------
    >>> import numpy as np
    >>> import contraction as ct
    >>> model = gaussian_least_squares_1d(500)
    >>> bool(np.isclose(ct.max_stable_lr(model).mean_square, 2 / 3))
    True
    """
    nodes = gaussian_feature_nodes(n_nodes)
    noise = check_real(noise, "noise", 0.0, None)
    theta_star = check_real(theta_star, "theta_star")
    x = np.repeat(nodes.nodes, 2)
    eps = np.tile([noise, -noise], nodes.nodes.size)
    y = theta_star * x + eps
    probs = np.repeat(nodes.weights, 2) / 2.0
    return LinearRegressionModel(x[:, None], y, batch_size=1, probs=probs / probs.sum())


def gaussian_lyapunov_1d(lr) -> float:
    r"""``γ(h) = E log|1 − h x²|`` for ``x ~ N(0, 1)`` (numerical quadrature).

    Parameters
    ----------
    lr : float
        The learning rate ``h > 0``.

    Returns
    -------
    float
        The Lyapunov exponent of 1-D Gaussian least squares with batch size 1.

    Examples
    --------
    >>> bool(gaussian_lyapunov_1d(2.3) < 0 < gaussian_lyapunov_1d(2.6))
    True
    """
    h = check_lr(lr)
    pdf = lambda x: np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)
    if h <= 1.0:
        shift, f = 0.0, lambda x: 2.0 * np.log(abs(1.0 - h * x * x)) * pdf(x)
    else:  # log|1 − h x²| = log h + log|1/h − x²|: no overflow for large h
        shift, f = np.log(h), lambda x: 2.0 * np.log(abs(1.0 / h - x * x)) * pdf(x)
    r = 1.0 / np.sqrt(h)  # log singularity at x = 1/sqrt(h)
    a = scipy.integrate.quad(f, 0.0, r, limit=200)[0]
    b = scipy.integrate.quad(f, r, np.inf, limit=200)[0]
    return float(shift + a + b)


def gaussian_lyapunov_threshold() -> float:
    """The ``h`` where ``E log|1 − h x²|`` changes sign (``≈ 2.42``).

    Returns
    -------
    float
        The root of :func:`gaussian_lyapunov_1d` in ``(1, 4)``: backward SGD
        on 1-D Gaussian least squares converges below it.

    Examples
    --------
    >>> h = gaussian_lyapunov_threshold()
    >>> bool(2.4 < h < 2.45 and abs(gaussian_lyapunov_1d(h)) < 1e-8)
    True
    """
    return float(scipy.optimize.brentq(gaussian_lyapunov_1d, 1.0, 4.0, xtol=1e-10))


def log_cosh_maps(lr, rng=None, n_batches=3, n_terms=4, dim=2, *, seed=None) -> GradientMaps:
    r"""SGD maps of a smooth non-quadratic loss: ``f_i(θ) = Σ_k log cosh(a_ikᵀ θ − y_ik)``.

    Gradients ``Σ_k tanh(z_ik) a_ik`` and Hessian-vector products
    ``Σ_k sech²(z_ik) (a_ikᵀ v) a_ik`` are exact; ``a`` and ``y`` are standard
    normal draws from ``rng``. Used where a check needs a nonlinear family
    (the Lie-bracket slopes, the bracket-corrected iteration).

    Parameters
    ----------
    lr : float
        Learning rate ``h > 0``.
    rng : None, int, SeedSequence or Generator, optional
        Source of ``a`` and ``y``. Pass the same seed to get the same loss at
        several learning rates.
    n_batches : int, default 3
        Number of batch losses ``f_i`` (the maps' ``n_maps``).
    n_terms : int, default 4
        Terms ``k`` per batch loss.
    dim : int, default 2
        Dimension ``d`` of ``θ``.
    seed : int, optional
        Deprecated name of ``rng``.

    Returns
    -------
    GradientMaps
        The maps ``T_i(θ) = θ − h ∇f_i(θ)``, with Hessian-vector products.

    Examples
    --------
    >>> import numpy as np
    >>> maps = log_cosh_maps(0.1, rng=0)
    >>> th, v = np.array([[0.3, -0.2]]), np.array([[1.0, 0.5]])
    >>> fd = (maps.gradient(th + 1e-6 * v, [1]) - maps.gradient(th - 1e-6 * v, [1])) / 2e-6
    >>> bool(np.allclose(fd, maps.hvp(th, v, [1]), atol=1e-8))
    True
    """
    if seed is not None:
        warnings.warn("log_cosh_maps(seed=...) is deprecated; use rng=", DeprecationWarning, stacklevel=2)
        if rng is not None:
            raise TypeError("seed: pass rng only (seed is its deprecated name)")
        rng = seed
    h = check_lr(lr)
    gen = as_generator(rng)
    n_batches = check_positive_int(n_batches, "n_batches")
    n_terms = check_positive_int(n_terms, "n_terms")
    dim = check_positive_int(dim, "dim")
    a = gen.normal(size=(n_batches, n_terms, dim))
    y = gen.normal(size=(n_batches, n_terms))

    def gradient(theta, index):
        z = np.einsum("nkd,nd->nk", a[index], theta) - y[index]
        return np.einsum("nk,nkd->nd", np.tanh(z), a[index])

    def hvp(theta, v, index):
        z = np.einsum("nkd,nd->nk", a[index], theta) - y[index]
        av = np.einsum("nkd,nd->nk", a[index], v)
        return np.einsum("nk,nkd->nd", av / np.cosh(z) ** 2, a[index])

    return GradientMaps(gradient, h, n_batches, hvp=hvp, dim=dim)
