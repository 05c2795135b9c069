r"""Regression data sets for least squares at real-data scale, nothing downloaded.

Each function returns ``(X, y)`` ready for :class:`contraction.LinearRegressionModel`:
float64 arrays, ``X`` of shape ``(n, d)`` and ``y`` of shape ``(n,)``, standardised.

* :func:`load_diabetes_regression`: scikit-learn's diabetes data (442 × 10);
* :func:`load_digits_regression`: scikit-learn's 8×8 digits (1,797 × 64 pixels,
  the digit as the target);
* :func:`digits_random_features`: random ReLU or Fourier features of the
  digits images, ``d`` from 1 to 2,000;
* :func:`power_law_regression`: a synthetic design of any size (MNIST-sized
  by default, 60,000 × 784) whose feature covariance has a power-law
  spectrum ``λ_k ∝ k^{−α}``.

The first three read the data that ship with scikit-learn (the optional extra
``data``: ``pip install "contraction[data]"``).
"""

from __future__ import annotations

import numpy as np

from ._validation import as_generator, check_choice, check_int, check_output_size, check_real

__all__ = [
    "MAX_RANDOM_FEATURES",
    "digits_random_features",
    "load_diabetes_regression",
    "load_digits_regression",
    "power_law_regression",
]

#: Largest number of random features of :func:`digits_random_features`.
MAX_RANDOM_FEATURES = 2000
_DIGITS_ROWS = 1797
_DIABETES_ROWS = 442


def _sklearn_datasets(caller: str):
    try:
        import sklearn.datasets
    except ImportError as exc:
        raise ImportError(
            f'{caller} needs scikit-learn (the optional extra "data"): pip install "contraction[data]"'
        ) from exc
    return sklearn.datasets


def _standardise_columns(X: np.ndarray, drop_constant: bool, name: str) -> np.ndarray:
    """Centre every column and divide it by its standard deviation; constant columns are dropped or refused."""
    X = X - X.mean(axis=0)
    std = X.std(axis=0)
    constant = std <= 1e-12 * max(1.0, float(std.max()))
    if constant.all():
        raise ValueError(f"{name}: expected at least one non-constant column, got none")
    if constant.any():
        if not drop_constant:
            raise ValueError(f"{name}: expected non-constant columns, got {int(constant.sum())} constant ones "
                             f"(pass drop_constant=True to drop them)")
        X, std = X[:, ~constant], std[~constant]
    return np.ascontiguousarray(X / std)


def _standardise_target(y: np.ndarray) -> np.ndarray:
    y = y - y.mean()
    std = float(y.std())
    return y / std if std > 0 else y


def load_diabetes_regression(n_rows=_DIABETES_ROWS):
    r"""Load scikit-learn's diabetes data: 10 features, disease progression as the target, standardised.

    Every column of ``X`` and the target are centred and scaled to unit
    variance (over the rows kept).

    Parameters
    ----------
    n_rows : int, default 442
        Keep the first ``n_rows`` rows, in ``[2, 442]`` (a number that the
        batch size divides, for example).

    Returns
    -------
    X : ndarray, shape (n_rows, 10)
        Standardised features.
    y : ndarray, shape (n_rows,)
        Standardised target.

    Raises
    ------
    ImportError
        When scikit-learn is missing (the data ship with it; nothing is downloaded).

    Examples
    --------
    >>> import numpy as np
    >>> X, y = load_diabetes_regression()
    >>> X.shape, y.shape
    ((442, 10), (442,))
    >>> bool(np.allclose(X.std(axis=0), 1.0) and abs(y.mean()) < 1e-12)
    True
    """
    n = check_int(n_rows, "n_rows", 2, _DIABETES_ROWS)
    data = _sklearn_datasets("load_diabetes_regression").load_diabetes()
    X = np.asarray(data.data, dtype=np.float64)[:n]
    y = np.asarray(data.target, dtype=np.float64)[:n]
    return _standardise_columns(X, False, "n_rows"), _standardise_target(y)


def _digits(n_rows, drop_constant, caller):
    n = check_int(n_rows, "n_rows", 2, _DIGITS_ROWS)
    if not isinstance(drop_constant, (bool, np.bool_)):
        raise TypeError(f"drop_constant: expected True or False, got {type(drop_constant).__name__}")
    data = _sklearn_datasets(caller).load_digits()
    X = np.asarray(data.data, dtype=np.float64)[:n]
    y = np.asarray(data.target, dtype=np.float64)[:n]
    return X, y


def load_digits_regression(n_rows=_DIGITS_ROWS, drop_constant=True):
    r"""Load scikit-learn's 8×8 digits as a regression: the pixels as features, the digit (0–9) as the target.

    Pixels are centred and scaled to unit variance and the target is
    standardised, over the rows kept. A few border pixels are blank in every
    image: a constant column makes the mean Hessian singular (no stationary
    covariance), so such columns are dropped by default (61 columns remain
    for all 1,797 rows).

    Parameters
    ----------
    n_rows : int, default 1797
        Keep the first ``n_rows`` images, in ``[2, 1797]`` (1797 = 3·599 has
        few divisors; 1792 = 2⁸·7 suits batch sizes that are powers of 2).
    drop_constant : bool, default True
        Drop the constant pixels; ``False`` refuses them with a ``ValueError``
        naming ``n_rows``.

    Returns
    -------
    X : ndarray, shape (n_rows, d)
        Standardised pixels, ``d <= 64``.
    y : ndarray, shape (n_rows,)
        Standardised digits.

    Raises
    ------
    ImportError
        When scikit-learn is missing (the data ship with it; nothing is downloaded).

    Examples
    --------
    >>> import numpy as np
    >>> X, y = load_digits_regression()
    >>> X.shape, y.shape
    ((1797, 61), (1797,))
    >>> bool(np.allclose(X.mean(axis=0), 0.0) and np.isclose(y.std(), 1.0))
    True
    """
    X, y = _digits(n_rows, drop_constant, "load_digits_regression")
    return _standardise_columns(X, bool(drop_constant), "n_rows"), _standardise_target(y)


def digits_random_features(n_features, kind="relu", n_rows=_DIGITS_ROWS, rng=None):
    r"""Draw a random-features regression on the digits: ``φ(x) = σ(W x + c)`` of the standardised pixels.

    With the standardised non-constant pixels ``x`` (``d₀ = 61``), ``W`` has
    i.i.d. ``N(0, 1/d₀)`` entries and

    * ``kind="relu"``: ``φ(x) = max(0, W x + c)`` with ``−c_j`` the ``q_j``-quantile
      of ``(W x)_j`` over the rows kept, ``q_j ~ Uniform[0.2, 0.8]`` (every unit
      active on 20 %–80 % of the rows: no dead unit);
    * ``kind="fourier"``: ``φ(x) = cos(W x + c)`` with ``c ~ Uniform[0, 2π)``
      (random Fourier features of a Gaussian kernel).

    The feature columns and the target (the digit) are then standardised.
    More features than rows (``n_features > n_rows``) gives a singular mean
    Hessian: the over-parametrised regime, where SGD has no stationary
    covariance.

    Parameters
    ----------
    n_features : int
        Number of random features ``d``, in ``[1, MAX_RANDOM_FEATURES]`` (2,000).
    kind : {"relu", "fourier"}, default "relu"
        The nonlinearity.
    n_rows : int, default 1797
        Keep the first ``n_rows`` images, in ``[2, 1797]``.
    rng : None, int, SeedSequence or Generator, optional
        Source of ``W`` and ``c``.

    Returns
    -------
    X : ndarray, shape (n_rows, n_features)
        Standardised random features.
    y : ndarray, shape (n_rows,)
        Standardised digits.

    Raises
    ------
    ImportError
        When scikit-learn is missing.
    ValueError
        Naming ``rng`` when a drawn feature is constant over the rows (which
        happens with probability 0; draw again with another seed).

    Examples
    --------
    >>> import numpy as np
    >>> X, y = digits_random_features(256, rng=0)
    >>> X.shape
    (1797, 256)
    >>> bool(np.array_equal(X, digits_random_features(256, rng=0)[0]))
    True
    """
    d = check_int(n_features, "n_features", 1, MAX_RANDOM_FEATURES)
    kind = check_choice(kind, "kind", ("relu", "fourier"))
    gen = as_generator(rng)
    X0, y = _digits(n_rows, True, "digits_random_features")
    X0 = _standardise_columns(X0, True, "n_rows")
    d0 = X0.shape[1]
    W = gen.normal(size=(d0, d)) / np.sqrt(d0)
    if kind == "relu":
        P = X0 @ W
        rank = np.floor(gen.uniform(0.2, 0.8, size=d) * (len(P) - 1)).astype(np.int64)
        Z = np.maximum(P - np.sort(P, axis=0)[rank, np.arange(d)], 0.0)
    else:
        Z = np.cos(X0 @ W + gen.uniform(0.0, 2 * np.pi, size=d))
    Z = Z - Z.mean(axis=0)
    std = Z.std(axis=0)
    if np.any(std <= 1e-12):
        raise ValueError(f"rng: expected random features that vary over the rows, got {int(np.sum(std <= 1e-12))} "
                         f"constant ones (dead units); use another seed")
    return np.ascontiguousarray(Z / std), _standardise_target(y)


def power_law_regression(n_rows=60000, n_features=784, exponent=1.0, noise=0.5, rng=None):
    r"""A synthetic least-squares design whose feature covariance has a power-law spectrum.

    Rows ``x = Q diag(λ)^{1/2} z`` with ``z ~ N(0, I)``, ``λ_k = k^{−α}``
    (``k = 1, …, d``) and ``Q`` a random rotation; targets
    ``y = xᵀ w* + σ ε`` with ``w* ~ N(0, I/d)`` and ``ε ~ N(0, 1)``. The
    columns are centred and all scaled by one factor, so that the mean
    column variance is 1 (scaling each column on its own would change the
    spectrum); the target is standardised. Rows are drawn in blocks, so the
    peak memory is about that of ``X``.

    Parameters
    ----------
    n_rows : int, default 60000
        Number of rows ``n``, ``>= 2``.
    n_features : int, default 784
        Dimension ``d``, ``>= 1`` (784 = 28², an MNIST-sized design by default).
    exponent : float, default 1.0
        The decay ``α >= 0`` of the spectrum (0 gives isotropic features).
    noise : float, default 0.5
        Standard deviation ``σ >= 0`` of the label noise before standardisation.
    rng : None, int, SeedSequence or Generator, optional
        Source of ``Q``, ``w*``, the rows and the noise.

    Returns
    -------
    X : ndarray, shape (n_rows, n_features)
        The design.
    y : ndarray, shape (n_rows,)
        Standardised targets.

    Examples
    --------
    >>> import numpy as np
    >>> X, y = power_law_regression(4000, 20, exponent=1.0, rng=0)
    >>> X.shape, bool(np.isclose((X**2).mean(axis=0).mean(), 1.0))
    ((4000, 20), True)
    >>> ev = np.linalg.eigvalsh(X.T @ X / len(X))[::-1]
    >>> bool(8 < ev[0] / ev[9] < 12)   # λ_1 / λ_10 ≈ 10
    True
    """
    n = check_int(n_rows, "n_rows", 2)
    d = check_int(n_features, "n_features", 1)
    alpha = check_real(exponent, "exponent", 0.0, 16.0)
    sigma = check_real(noise, "noise", 0.0, None)
    check_output_size((n, d), "n_rows", what="the design (n_rows x n_features)")
    check_output_size((d, d), "n_features", what="the rotation (n_features x n_features)")
    gen = as_generator(rng)
    Q = np.linalg.qr(gen.normal(size=(d, d)))[0]
    scale = np.arange(1, d + 1, dtype=np.float64) ** (-alpha / 2)
    M = scale[:, None] * Q.T  # x = z M, z row vector: covariance Mᵀ M = Q diag(λ) Qᵀ
    w = gen.normal(size=d) / np.sqrt(d)
    X = np.empty((n, d))
    step = max(1, (1 << 21) // d)
    for start in range(0, n, step):
        stop = min(n, start + step)
        X[start:stop] = gen.normal(size=(stop - start, d)) @ M
    y = X @ w + sigma * gen.normal(size=n)
    X -= X.mean(axis=0)
    X /= np.sqrt(np.einsum("ij,ij->", X, X) / X.size)
    return X, _standardise_target(y)
