"""Input validation, the package's error and warning classes.

Every message has one format: ``<argument>: expected <what>, got <what>``.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "ContractionWarning",
    "DivergenceError",
    "NonConvergenceWarning",
    "as_float_array",
    "as_int_array",
    "check_finite",
    "check_lr",
    "check_positive_int",
    "check_probs",
    "describe",
]


class ContractionWarning(UserWarning):
    """Base class of the warnings issued by :mod:`contraction`."""


class NonConvergenceWarning(ContractionWarning):
    """An iterative procedure stopped before meeting its tolerance."""


class DivergenceError(ArithmeticError):
    """Iterates overflowed or became non-finite (the maps expand).

    Raised instead of returning ``inf``/``nan``; the message names the step
    and the chain where it first happened and what to change.
    """


def describe(value) -> str:
    """Short description of a received value for error messages."""
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__} of length {len(value)}"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def as_float_array(value, name: str, ndim: int | tuple[int, ...] | None = None) -> np.ndarray:
    """Convert to a finite float64 array, checking the number of dimensions."""
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{name}: expected an array of real numbers, got {describe(value)}")
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name}: expected an array of real numbers, got {describe(value)}") from exc
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise TypeError(f"{name}: expected an array of real numbers, got {describe(arr)}")
    if np.iscomplexobj(arr):
        raise TypeError(f"{name}: expected real numbers, got {describe(arr)}")
    arr = arr.astype(np.float64, copy=False)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if arr.ndim not in allowed:
            want = " or ".join(str(k) for k in allowed)
            raise ValueError(f"{name}: expected a {want}-dimensional array, got {describe(arr)}")
    check_finite(arr, name)
    return arr


def as_int_array(value, name: str, what: str = "an integer array") -> np.ndarray:
    """Convert to an int64 array, refusing strings, booleans, floats and ``None``.

    An empty float array (as from ``[]``) is accepted as an empty int array.
    """
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{name}: expected {what}, got {describe(value)}")
    arr = np.asarray(value)
    if arr.size == 0 and arr.dtype == np.float64:
        arr = arr.astype(np.int64)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name}: expected {what}, got {describe(arr)}")
    return arr.astype(np.int64, copy=False)


def check_finite(arr: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name}: expected finite numbers, got {bad} non-finite entries (nan or inf)")


def check_lr(lr) -> float:
    """A learning rate: a finite real number > 0."""
    if isinstance(lr, (bool, np.bool_)) or not isinstance(lr, numbers.Real):
        raise TypeError(f"lr: expected a positive real number, got {describe(lr)}")
    lr = float(lr)
    if not np.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr: expected a finite number > 0, got {lr!r}")
    return lr


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer >= {minimum}, got {describe(value)}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return value


def check_probs(probs, m: int, name: str = "probs") -> np.ndarray:
    """Sampling probabilities over ``m`` batches; ``None`` means uniform."""
    if probs is None:
        return np.full(m, 1.0 / m)
    p = as_float_array(probs, name, ndim=1)
    if p.shape != (m,):
        raise ValueError(f"{name}: expected shape ({m},) (one probability per batch), got {describe(p)}")
    if np.any(p < 0):
        raise ValueError(f"{name}: expected non-negative probabilities, got minimum {p.min()!r}")
    total = p.sum()
    if abs(total - 1.0) > 1e-9:
        raise ValueError(f"{name}: expected probabilities summing to 1, got sum {total!r}")
    return p / total
