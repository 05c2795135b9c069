"""Activations and their derivatives, and the softmax of the output layer.

The activation ``σ`` is ``tanh`` or ``softplus(z) = log(1 + e^z)``: both are
smooth, so the batch losses have Hessians. The softmax and its logarithm are
SciPy's (:func:`scipy.special.softmax`, :func:`scipy.special.log_softmax`),
which subtract the largest logit before exponentiating.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax, softmax

__all__ = [
    "ACTIVATIONS",
    "activate",
    "first_derivative",
    "log_softmax_last",
    "scale_by_derivative",
    "second_derivatives",
    "softmax_last",
]

ACTIVATIONS = ("tanh", "softplus")


def activate(name: str, z: np.ndarray) -> np.ndarray:
    """``σ(z)`` (a new array)."""
    if name == "tanh":
        return np.tanh(z)
    return np.logaddexp(0.0, z)


def _logistic(z: np.ndarray) -> np.ndarray:
    """The logistic sigmoid ``1 / (1 + e^{−z})`` written with ``tanh`` (no overflow)."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def first_derivative(name: str, z: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``σ'(z)``, given ``a = σ(z)`` (used by ``tanh``)."""
    if name == "tanh":
        return 1.0 - a * a
    return _logistic(z)


def second_derivatives(name: str, z: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(σ'(z), σ''(z))``, given ``a = σ(z)``."""
    if name == "tanh":
        d1 = 1.0 - a * a
        return d1, -2.0 * a * d1
    s = _logistic(z)
    return s, s * (1.0 - s)


def scale_by_derivative(name: str, delta: np.ndarray, z: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``delta ⊙ σ'(z)`` in place (``a = σ(z)``), with one temporary; returns ``delta``."""
    if name == "tanh":
        tmp = np.multiply(a, a)
        np.subtract(1.0, tmp, out=tmp)
    else:
        tmp = np.multiply(z, 0.5)
        np.tanh(tmp, out=tmp)
        tmp += 1.0
        tmp *= 0.5
    delta *= tmp
    return delta


def softmax_last(z: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (a new array)."""
    return softmax(z, axis=-1)


def log_softmax_last(z: np.ndarray) -> np.ndarray:
    """Log-softmax over the last axis (a new array)."""
    return log_softmax(z, axis=-1)
