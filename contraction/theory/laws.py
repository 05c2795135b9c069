"""Tests of equality in law and tail estimates (built on scipy.stats)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.stats

from ..core._validation import as_float_array, as_generator, check_positive_int, describe


def _samples(value, name: str, ndim=1) -> np.ndarray:
    """A non-empty sample of finite reals."""
    x = as_float_array(value, name, ndim=ndim)
    if x.shape[0] == 0 or x.size == 0:
        raise ValueError(f"{name}: expected at least one sample, got {describe(x)}")
    return x

__all__ = ["LawComparison", "compare_laws", "hill_estimator", "ks_against_cdf", "wasserstein_1d"]


@dataclass(frozen=True)
class LawComparison:
    """Result of a test of equality of laws.

    Attributes
    ----------
    statistic : float
        The test statistic (a Kolmogorov–Smirnov distance).
    pvalue : float
        The p-value of the hypothesis of equal laws.
    method : str
        The test used.
    """

    statistic: float
    pvalue: float
    method: str


def ks_against_cdf(samples, cdf) -> LawComparison:
    """One-sample Kolmogorov–Smirnov test of 1-D ``samples`` against an exact ``cdf``.

    Parameters
    ----------
    samples : array_like, shape (n,)
        Finite real samples.
    cdf : callable
        The cumulative distribution function of the hypothesised law, vectorized.

    Returns
    -------
    LawComparison
        The KS distance and its p-value.

    Examples
    --------
    >>> import numpy as np
    >>> u = np.random.default_rng(0).uniform(-1, 1, 2000)
    >>> ks_against_cdf(u, lambda x: (x + 1) / 2).pvalue > 0.01 > ks_against_cdf(u**3, lambda x: (x + 1) / 2).pvalue
    True
    """
    x = _samples(samples, "samples")
    if not callable(cdf):
        raise TypeError(f"cdf: expected a callable cumulative distribution function, got {describe(cdf)}")
    res = scipy.stats.kstest(x, cdf)
    return LawComparison(float(res.statistic), float(res.pvalue), "Kolmogorov-Smirnov (exact CDF)")


def compare_laws(x, y, rng=None, n_projections=16) -> LawComparison:
    """Two-sample test of equal laws.

    1-D samples: two-sample Kolmogorov–Smirnov. ``d``-dimensional samples:
    KS on ``n_projections`` random directions with a Bonferroni correction
    (statistic: the largest KS distance).

    Parameters
    ----------
    x : array_like, shape (n,) or (n, d)
        First sample.
    y : array_like, shape (k,) or (k, d)
        Second sample, of the same dimension.
    rng : None, int, SeedSequence or Generator, optional
        Source of the random directions (``d``-dimensional samples only).
    n_projections : int, default 16
        Number of random directions.

    Returns
    -------
    LawComparison
        The statistic, the (corrected) p-value and the method.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> same = compare_laws(rng.normal(size=(500, 2)), rng.normal(size=(500, 2)), rng=1)
    >>> shifted = compare_laws(rng.normal(size=(500, 2)), 0.5 + rng.normal(size=(500, 2)), rng=1)
    >>> same.pvalue > 0.01 and shifted.pvalue < 1e-6
    True
    """
    x = _samples(x, "x", ndim=(1, 2))
    y = _samples(y, "y", ndim=(1, 2))
    gen = as_generator(rng)
    n_projections = check_positive_int(n_projections, "n_projections")
    if x.ndim == 1 and y.ndim == 1:
        res = scipy.stats.ks_2samp(x, y)
        return LawComparison(float(res.statistic), float(res.pvalue), "two-sample Kolmogorov-Smirnov")
    x, y = np.atleast_2d(x.T).T, np.atleast_2d(y.T).T
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"y: expected samples of dimension {x.shape[1]}, got {describe(y)}")
    dirs = gen.normal(size=(n_projections, x.shape[1]))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    stats = [scipy.stats.ks_2samp(x @ u, y @ u) for u in dirs]
    p = min(1.0, n_projections * min(s.pvalue for s in stats))
    return LawComparison(float(max(s.statistic for s in stats)), float(p),
                         f"KS on {n_projections} random projections (Bonferroni)")


def wasserstein_1d(x, y) -> float:
    """Wasserstein-1 distance between two 1-D samples (``scipy.stats.wasserstein_distance``).

    Parameters
    ----------
    x : array_like, shape (n,)
        First sample.
    y : array_like, shape (k,)
        Second sample.

    Returns
    -------
    float
        ``W_1`` between the empirical laws.

    Examples
    --------
    >>> wasserstein_1d([0.0, 1.0], [0.5, 1.5])
    0.5
    """
    return float(scipy.stats.wasserstein_distance(_samples(x, "x"), _samples(y, "y")))


def hill_estimator(samples, k) -> float:
    r"""Hill estimate of the tail index from the ``k`` largest ``|samples|``.

    ``α̂ = k / Σ_{j<k} log(X_(j) / X_(k))`` with ``X_(0) >= X_(1) >= …``.

    Parameters
    ----------
    samples : array_like, shape (n,)
        Finite real samples.
    k : int
        Number of order statistics used, ``1 <= k < n``.

    Returns
    -------
    float
        The estimate ``α̂``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).pareto(1.5, size=200_000) + 1.0
    >>> bool(abs(hill_estimator(x, 2000) - 1.5) < 0.1)
    True
    """
    x = np.sort(np.abs(as_float_array(samples, "samples", ndim=1)))[::-1]
    k = check_positive_int(k, "k")
    if k >= x.size:
        raise ValueError(f"k: expected fewer than the {x.size} samples, got {k}")
    if x[k] <= 0:
        raise ValueError("samples: expected at least k + 1 non-zero values")
    total = float(np.sum(np.log(x[:k] / x[k])))
    if not total > 0:
        raise ValueError(f"samples: expected the {k} largest |samples| not all equal to the next one "
                         f"({x[k]!r}); the Hill estimate is undefined")
    return k / total
