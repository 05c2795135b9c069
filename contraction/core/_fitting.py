"""One log-log slope fit, used wherever an order of convergence is measured."""

from __future__ import annotations

import numpy as np

from ._validation import as_float_array, describe

__all__ = ["loglog_slope"]


def loglog_slope(x, y) -> float:
    r"""Fit the slope of ``log y`` against ``log x``: the order ``p`` in ``y ≈ C x^p``.

    One least-squares line through the points ``(log x_k, log y_k)``: the
    single slope fit of the package, used wherever an order of convergence
    is measured.

    Parameters
    ----------
    x : array_like, shape (n,)
        Positive finite numbers (the scales ``h``), ``n ≥ 2``, not all equal.
    y : array_like, shape (n,)
        Positive finite numbers (errors).

    Returns
    -------
    float
        The fitted slope ``p``.

    Examples
    --------
    >>> import numpy as np
    >>> h = np.geomspace(1e-3, 1e-1, 5)
    >>> bool(abs(loglog_slope(h, 3.0 * h**2) - 2.0) < 1e-12)
    True
    """
    x = as_float_array(x, "x", ndim=1)
    y = as_float_array(y, "y", ndim=1)
    if x.shape != y.shape or x.size < 2:
        raise ValueError(f"y: expected the shape of x with at least 2 points, got {describe(y)}")
    if np.any(x <= 0) or np.ptp(x) == 0:
        raise ValueError(f"x: expected positive numbers, not all equal, got {describe(x)}")
    if np.any(y <= 0):
        raise ValueError(f"y: expected positive numbers (errors that do not vanish), got minimum {y.min()!r}")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])
