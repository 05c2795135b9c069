"""Input validation: one vocabulary for every argument, and the package's error and warning classes.

Every message has one format, ``<argument>: expected <what>, got <what>``;
wrong kinds raise :class:`TypeError`, wrong values :class:`ValueError`.

The vocabulary (the way scikit-learn's ``validate_params`` declares
``Interval(Real, 0, None, closed="neither")``):

* :func:`check_real`: a real number, optionally in an interval with open or
  closed ends; numpy scalars accepted, ``bool`` and ``nan`` refused;
* :func:`check_positive_int`, :func:`check_nonnegative_int` (and the general
  :func:`check_int`): integers, numpy integers accepted, ``bool`` refused;
* :func:`check_probability`: a real number in ``[0, 1]``;
  :func:`check_probs`: a probability vector over ``m`` batches;
* :func:`check_lr`: a learning rate, a finite real number ``> 0``;
* :func:`check_choice`: one of a few strings;
* :func:`as_float_array`: a finite float64 array with a given number of dimensions;
* :func:`as_indices`: an integer array of indices below a count (batch indices
  against a batch count, step numbers against a horizon);
* :func:`as_generator`: the ``rng`` argument, as a :class:`numpy.random.Generator`;
* :func:`check_output_size`: an array the caller asked for, refused above
  :data:`MAX_OUTPUT_BYTES` (1 GiB) before anything is allocated.
"""

from __future__ import annotations

import itertools
import math
import numbers
import os

import numpy as np

__all__ = [
    "MAX_OUTPUT_BYTES",
    "ContractionWarning",
    "DivergenceError",
    "NonConvergenceWarning",
    "all_finite",
    "as_float_array",
    "as_generator",
    "as_indices",
    "check_choice",
    "check_finite",
    "check_int",
    "check_lr",
    "check_nonnegative_int",
    "check_output_size",
    "check_positive_int",
    "check_probability",
    "check_probs",
    "check_real",
    "describe",
    "frozen",
    "reduce_in_slices",
]


# The largest array a function of the package allocates for its output (bytes): 1 GiB.
MAX_OUTPUT_BYTES = 2**30


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
    if isinstance(value, np.generic):  # np.float64(0.5) reads as 0.5
        value = value.item()
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _is_bool(value) -> bool:
    return isinstance(value, (bool, np.bool_))


def _number(x) -> str:
    """An interval end in words: integers in full (``1000000``), reals short (``1e-08``)."""
    return str(int(x)) if isinstance(x, numbers.Integral) else f"{x:g}"


def _interval(low, high, closed: str) -> str:
    """``"> 0"``, ``"in [0, 1]"``, ``""`` …: the interval in words."""
    left = closed in ("left", "both")
    right = closed in ("right", "both")
    if low is not None and high is not None:
        return f" in {'[' if left else '('}{_number(low)}, {_number(high)}{']' if right else ')'}"
    if low is not None:
        return f" {'>=' if left else '>'} {_number(low)}"
    if high is not None:
        return f" {'<=' if right else '<'} {_number(high)}"
    return ""


def check_real(value, name: str, low=None, high=None, *, closed: str = "both", allow_inf: bool = False) -> float:
    """A real number (Python or numpy scalar, not ``bool``, not ``nan``), optionally in an interval.

    ``low``/``high`` bound the interval (``None``: unbounded); ``closed`` is
    ``"both"``, ``"left"``, ``"right"`` or ``"neither"`` and says which
    ends belong to it. Infinite values are refused unless ``allow_inf``.
    """
    if closed not in ("both", "left", "right", "neither"):
        raise ValueError(f"closed: expected 'both', 'left', 'right' or 'neither', got {closed!r}")
    what = f"a {'' if allow_inf else 'finite '}real number{_interval(low, high, closed)}"
    if _is_bool(value) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected {what}, got {describe(value)}")
    x = float(value)
    bad = math.isnan(x) or (math.isinf(x) and not allow_inf)
    if low is not None:
        bad = bad or x < low or (x == low and closed in ("right", "neither"))
    if high is not None:
        bad = bad or x > high or (x == high and closed in ("left", "neither"))
    if bad:
        raise ValueError(f"{name}: expected {what}, got {x!r}")
    return x


def check_int(value, name: str, low=None, high=None) -> int:
    """An integer (Python or numpy, not ``bool``) in ``[low, high]`` (``None``: unbounded)."""
    what = f"an integer{_interval(low, high, 'both')}"
    if _is_bool(value) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected {what}, got {describe(value)}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name}: expected {what}, got {value}")
    return value


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    """An integer ``>= minimum`` (``minimum >= 1``; see :func:`check_nonnegative_int` for counts that may be 0)."""
    return check_int(value, name, low=minimum)


def check_nonnegative_int(value, name: str) -> int:
    """An integer ``>= 0`` (a count that may be zero, such as a number of steps)."""
    return check_int(value, name, low=0)


def check_probability(value, name: str) -> float:
    """A probability: a real number in ``[0, 1]``."""
    return check_real(value, name, 0.0, 1.0)


def check_lr(lr, name: str = "lr") -> float:
    """A learning rate: a finite real number ``> 0``."""
    return check_real(lr, name, 0.0, None, closed="neither")


def check_choice(value, name: str, choices) -> str:
    """One of the strings ``choices``."""
    choices = tuple(choices)
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected one of {choices}, got {describe(value)}")
    if value not in choices:
        raise ValueError(f"{name}: expected one of {choices}, got {value!r}")
    return value


def check_finite(arr: np.ndarray, name: str) -> None:
    """Refuse arrays with ``nan`` or ``inf`` entries."""
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name}: expected finite numbers, got {bad} non-finite entries (nan or inf)")


def _check_ndim(arr: np.ndarray, name: str, ndim, what: str) -> None:
    if ndim is None:
        return
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if arr.ndim not in allowed:
        want = " or ".join(str(k) for k in allowed)
        raise ValueError(f"{name}: expected a {want}-dimensional array of {what}, got {describe(arr)}")


def as_float_array(value, name: str, ndim: int | tuple[int, ...] | None = None, *, finite: bool = True) -> np.ndarray:
    """Convert to a float64 array of real numbers (not booleans), checking the number of dimensions.

    Non-finite entries are refused unless ``finite=False``.
    """
    what = "real numbers"
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{name}: expected an array of {what}, got {describe(value)}")
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:  # ragged lists and the like
        raise TypeError(f"{name}: expected an array of {what}, got {describe(value)}") from exc
    if arr.dtype == object or arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name}: expected an array of {what}, got {describe(arr)}")
    if np.iscomplexobj(arr):
        raise TypeError(f"{name}: expected an array of {what}, got {describe(arr)}")
    arr = arr.astype(np.float64, copy=False)
    _check_ndim(arr, name, ndim, what)
    if finite:
        check_finite(arr, name)
    return arr


def frozen(values, dtype=np.float64) -> np.ndarray:
    """A read-only C-contiguous copy of ``values`` (``dtype=None`` keeps theirs).

    Immutable containers hold their arrays this way; a read-only family's
    matrices are also what :func:`contraction.core._kernels.row_products` sets up once.
    """
    arr = np.array(values, dtype=dtype, order="C", copy=True)
    arr.setflags(write=False)
    return arr


# Arrays from this many bytes are reduced in slices side by side (one thread per core).
_PARALLEL_REDUCE_BYTES = 1 << 24


def reduce_in_slices(reduce, arr: np.ndarray):
    """``[reduce(part) for part in slices of arr along axis 0]``, the slices side by side in threads for a large array.

    A pass over a large array (a range check, a finiteness check) is bound
    by memory, which one core does not saturate; numpy releases the GIL in
    its reductions, so the slices run in parallel. The caller combines the
    parts (each an exact reduction of its own slice, so the combination does
    not depend on the slicing for ``max``, ``min`` and finiteness).
    """
    cores = os.cpu_count() or 1
    if cores == 1 or arr.ndim == 0 or arr.nbytes < _PARALLEL_REDUCE_BYTES or arr.shape[0] < cores:
        return [reduce(arr)]
    from concurrent.futures import ThreadPoolExecutor

    cuts = np.linspace(0, arr.shape[0], cores + 1).astype(int)
    with ThreadPoolExecutor(cores) as pool:
        return list(pool.map(lambda ab: reduce(arr[ab[0]:ab[1]]), itertools.pairwise(cuts)))


def _sum(a: np.ndarray):
    with np.errstate(over="ignore", invalid="ignore"):  # per thread: numpy's error state is thread-local
        return np.add.reduce(a, axis=None)


def all_finite(arr: np.ndarray) -> bool:
    """Whether every value of the float array ``arr`` is finite: one pass, no copy (a sum per slice).

    A sum is finite whenever every term is, and non-finite when one is not
    (or when it overflows: then the values are checked one by one).
    """
    if all(np.isfinite(reduce_in_slices(_sum, arr))):
        return True
    return bool(all(reduce_in_slices(lambda a: np.isfinite(a).all(), arr)))


def as_indices(value, name: str, count: int | None = None, ndim: int | tuple[int, ...] | None = None,
               *, what: str = "batch indices") -> np.ndarray:
    """Integer indices in ``[0, count − 1]`` (``count=None``: only ``>= 0``), as an int64 array.

    Refuses strings, booleans, floats and ``None``; an empty array (as from
    ``[]``) is accepted as empty indices. ``ndim`` restricts the number of
    dimensions; ``what`` names the indices in messages (``"batch indices"``,
    ``"step numbers"``).
    """
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{name}: expected integer {what}, got {describe(value)}")
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected integer {what}, got {describe(value)}") from exc
    if arr.size == 0 and arr.dtype == np.float64:
        arr = arr.astype(np.int64)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name}: expected integer {what}, got {describe(arr)}")
    arr = arr.astype(np.int64, copy=False)
    _check_ndim(arr, name, ndim, f"integer {what}")
    wrapped = arr.view(np.uint64)  # negatives wrap high: one pass finds both ends out of range
    if arr.size and (count is None or int(max(reduce_in_slices(np.max, wrapped))) >= count):
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or (count is not None and hi >= count):
            span = f"[0, {count - 1}]" if count is not None else "[0, inf)"
            raise ValueError(f"{name}: expected {what} in {span}, got values in [{lo}, {hi}]")
    return arr



def broadcast_indices(index, count: int, theta: np.ndarray, width: int, owner: str = "theta") -> np.ndarray:
    """Map indices for a stack of points ``theta`` (..., d): valid, broadcastable, and a bounded output.

    ``width`` is the number of values per point the result holds (for
    :func:`check_output_size`); ``owner`` names ``theta`` in the message.
    """
    index = as_indices(index, "index", count)
    try:
        lead = np.broadcast_shapes(index.shape, theta.shape[:-1])
    except ValueError as exc:
        raise ValueError(
            f"index: expected a shape that broadcasts with {theta.shape[:-1]} ({owner}'s leading axes), "
            f"got {describe(index)}"
        ) from exc
    check_output_size((*lead, width), "index", what="an output")
    return index


def check_probs(probs, m: int, name: str = "probs") -> np.ndarray:
    """Sampling probabilities over ``m`` batches; ``None`` means uniform."""
    if probs is None:
        return np.full(m, 1.0 / m)
    p = as_float_array(probs, name, ndim=1)
    if p.shape != (m,):
        raise ValueError(f"{name}: expected shape ({m},) (one probability per batch), got {describe(p)}")
    if np.any(p < 0):
        raise ValueError(f"{name}: expected non-negative probabilities, got minimum {float(p.min()):g}")
    total = p.sum()
    if abs(total - 1.0) > 1e-9:
        raise ValueError(f"{name}: expected probabilities summing to 1, got sum {float(total)!r}")
    return p / total


def as_generator(rng, name: str = "rng") -> np.random.Generator:
    """The ``rng`` argument as a Generator: ``None``, a seed, a SeedSequence, a BitGenerator or a Generator.

    The boundary of every function that draws: sub-tasks take streams
    spawned from the result (``Generator.spawn``), never a fixed seed. A
    SeedSequence is a seed: it is copied, never consumed, so passing the same
    one twice gives the same draws. A Generator or a BitGenerator is a
    stream: it is used (and spawned from) in place, as numpy does.
    """
    what = "None, a non-negative int seed, a SeedSequence, a BitGenerator or a Generator"
    if _is_bool(rng) or isinstance(rng, (str, bytes, float, np.floating, complex, np.complexfloating)):
        raise TypeError(f"{name}: expected {what}, got {describe(rng)}")
    if isinstance(rng, np.random.SeedSequence):
        rng = np.random.SeedSequence(rng.entropy, spawn_key=rng.spawn_key, pool_size=rng.pool_size,
                                     n_children_spawned=rng.n_children_spawned)
    try:
        return np.random.default_rng(rng)
    except TypeError as exc:
        raise TypeError(f"{name}: expected {what}, got {describe(rng)}") from exc
    except ValueError as exc:
        raise ValueError(f"{name}: expected {what}, got {describe(rng)}") from exc


def check_output_size(shape, name: str, *, what: str = "an output", itemsize: int = 8) -> None:
    """Refuse an array of ``shape`` larger than :data:`MAX_OUTPUT_BYTES` (1 GiB), before it is allocated.

    ``name`` is the argument to change (the message names it and states the limit).
    """
    dims = [int(s) for s in shape]
    count = math.prod(dims)
    if count * itemsize > MAX_OUTPUT_BYTES:
        sizes = " x ".join(str(s) for s in dims)
        raise ValueError(
            f"{name}: expected {what} of at most 1 GiB ({MAX_OUTPUT_BYTES // itemsize} values of "
            f"{itemsize} bytes), got {sizes} = {count} values ({count * itemsize / 2**30:.3g} GiB)"
        )
