"""Checks shared by the networks and data sets: sizes before allocating, overflow after computing.

* Sizes are multiplied as Python integers (no overflow), so ``hidden=10**9``
  or ``n_train=10**12`` is refused at once with a message naming the
  argument, instead of failing later with a :class:`MemoryError` or swapping.
* A pass whose float64 arithmetic overflowed (``inf``/``nan`` from finite
  inputs) is refused with a message naming the argument with the large
  entries, never returned.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..core._validation import as_indices, check_positive_int, describe

__all__ = [
    "MAX_ELEMENTS",
    "MAX_LAYERS",
    "MAX_PARAMETERS",
    "check_labels",
    "check_parameter_count",
    "check_size",
    "culprit",
    "hidden_widths",
    "largest",
    "refuse_overflow",
]

#: Most entries of any one array the networks or data sets allocate (256 MiB of float64).
MAX_ELEMENTS = 2**25
#: Most parameters of a network (128 MiB per parameter vector).
MAX_PARAMETERS = 2**24
#: Most hidden layers of a network.
MAX_LAYERS = 256


def check_size(count: int, name: str, what: str, limit: int = MAX_ELEMENTS) -> int:
    """Refuse ``count > limit``: ``ValueError("<name>: expected at most <limit> <what>, got <count>")``."""
    if count > limit:
        raise ValueError(f"{name}: expected at most {limit:,} {what}, got {count:,}")
    return count


def largest(factors: dict[str, int]) -> tuple[str, int]:
    """The name of the largest factor (the one to blame for a large product) and the product."""
    return max(factors, key=factors.__getitem__), math.prod(factors.values())


def check_labels(y, n: int, n_classes: int | None) -> np.ndarray:
    """Integer class labels of shape ``(n,)`` in ``[0, n_classes)`` (only ``>= 0`` when ``None``)."""
    labels = as_indices(y, "y", n_classes, ndim=1, what="class labels")
    if labels.shape != (n,):
        raise ValueError(f"y: expected shape ({n},) to match X, got {describe(labels)}")
    return labels


def hidden_widths(hidden) -> tuple[int, ...]:
    """Widths of hidden layers from an integer or a sequence (list, tuple, 1-d array) of integers."""
    if isinstance(hidden, numbers.Integral) and not isinstance(hidden, (bool, np.bool_)):
        widths = (hidden,)
    elif isinstance(hidden, (list, tuple)) or (isinstance(hidden, np.ndarray) and hidden.ndim == 1):
        widths = tuple(hidden)
    else:
        raise TypeError(f"hidden: expected an integer >= 1 or a sequence of them, got {describe(hidden)}")
    check_size(len(widths), "hidden", "hidden layers", MAX_LAYERS)
    return tuple(check_positive_int(w, "hidden") for w in widths)


def check_parameter_count(sizes, knobs: dict[str, int]) -> int:
    """The number of parameters of layers ``sizes``, refused above ``MAX_PARAMETERS`` before any allocation.

    ``knobs`` maps the arguments that set the sizes to their values; the
    message names the largest of them.
    """
    count = sum(fin * fout + fout for fin, fout in sizes)
    if count > MAX_PARAMETERS:
        name = largest(knobs)[0]
        raise ValueError(f"{name}: expected sizes giving at most {MAX_PARAMETERS:,} parameters, got "
                         f"{count:,} (layers {[tuple(s) for s in sizes]})")
    return count


def culprit(theta: np.ndarray, X) -> tuple[str, np.ndarray]:
    """Which of ``theta`` and the inputs ``X`` to name for an overflow: the one with the larger entries."""
    if X is None or X.size == 0 or theta.size == 0 or np.abs(theta).max() >= np.abs(X).max():
        return "theta", theta
    return "X", X


def refuse_overflow(out: np.ndarray, name: str, culprit: np.ndarray, what: str) -> np.ndarray:
    """``out``, or a ValueError naming ``name`` when some of it overflowed (non-finite)."""
    finite = np.isfinite(out)
    if finite.all():
        return out
    rows = finite.reshape(finite.shape[0], -1).all(axis=1) if finite.ndim else finite[None]
    largest_entry = float(np.max(np.abs(culprit))) if culprit.size else 0.0
    raise ValueError(f"{name}: expected values at which {what} is finite in float64, got an overflow in "
                     f"{int((~rows).sum())} of {rows.size} rows (largest |{name}| = {largest_entry:.3g})")
