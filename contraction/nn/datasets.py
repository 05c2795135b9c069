r"""Small classification data sets for the neural-network proof of concept.

Two sources, neither of which downloads anything:

* :func:`load_digits_data`: the 8×8 hand-written digits bundled with
  scikit-learn (1797 images, 10 classes), split once into a training and a
  test set by a seeded permutation. scikit-learn is the optional extra
  ``data``: ``pip install "contraction[data]"``.
* :func:`teacher_student_data`: Gaussian inputs labelled by a random
  "teacher" network, generated from an ``rng`` and needing nothing else.

Both return a :class:`Dataset` record with read-only arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import softmax

from ..core._validation import (
    as_float_array,
    as_generator,
    as_indices,
    check_choice,
    check_int,
    check_positive_int,
    check_real,
    describe,
    frozen,
)
from ._checks import check_size, largest

__all__ = ["Dataset", "load_digits_data", "teacher_student_data"]


@dataclass(frozen=True, eq=False)
class Dataset:
    """A classification data set split into training and test parts.

    Attributes
    ----------
    X_train : ndarray, shape (n_train, n_features)
        Training inputs, float64, one flattened example per row.
    y_train : ndarray, shape (n_train,)
        Training labels, int64 in ``[0, n_classes)``.
    X_test : ndarray, shape (n_test, n_features)
        Test inputs.
    y_test : ndarray, shape (n_test,)
        Test labels.
    n_classes : int
        Number of classes.
    image_shape : tuple of int or None
        ``(height, width)`` when a row is a flattened one-channel image (row
        major), else ``None``.
    name : str
        Name of the source (``"digits"``, ``"teacher-student"``).

    Examples
    --------
    >>> data = teacher_student_data(n_train=8, n_test=4, rng=0)
    >>> data.X_train.shape == (8, 16) and data.y_test.shape == (4,)
    True
    >>> bool(data.X_train.flags.writeable)
    False
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    image_shape: tuple[int, int] | None = None
    name: str = ""

    def __post_init__(self):
        c = check_int(self.n_classes, "n_classes", 2)
        d = None
        for part in ("train", "test"):
            X = as_float_array(getattr(self, f"X_{part}"), f"X_{part}", ndim=2)
            if X.shape[0] == 0 or X.shape[1] == 0 or X.shape[1] != (d or X.shape[1]):
                want = "at least one row and one column" if d is None else f"at least one row and {d} columns"
                raise ValueError(f"X_{part}: expected {want}, got {describe(X)}")
            d = X.shape[1]
            y = as_indices(getattr(self, f"y_{part}"), f"y_{part}", c, ndim=1, what="class labels")
            if y.shape != (X.shape[0],):
                raise ValueError(f"y_{part}: expected shape ({X.shape[0]},) to match X_{part}, got {describe(y)}")
            object.__setattr__(self, f"X_{part}", frozen(X, dtype=None))
            object.__setattr__(self, f"y_{part}", frozen(y, dtype=None))
        object.__setattr__(self, "n_classes", c)
        if self.image_shape is not None:
            shape = self.image_shape
            if not isinstance(shape, (tuple, list)) or len(shape) != 2:
                raise TypeError(f"image_shape: expected None or (height, width), got {describe(shape)}")
            shape = (check_int(shape[0], "image_shape", 1), check_int(shape[1], "image_shape", 1))
            if shape[0] * shape[1] != d:
                raise ValueError(f"image_shape: expected (height, width) with height·width = {d}, got {shape}")
            object.__setattr__(self, "image_shape", shape)
        if not isinstance(self.name, str):
            raise TypeError(f"name: expected a str, got {describe(self.name)}")

    @property
    def n_features(self) -> int:
        """Number of input features (pixels for images)."""
        return self.X_train.shape[1]

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, n_train={len(self.y_train)}, n_test={len(self.y_test)}, "
            f"n_features={self.n_features}, n_classes={self.n_classes})"
        )


def load_digits_data(n_train: int = 1440, *, scaling: str = "unit", rng=0) -> Dataset:
    """The scikit-learn digits (8×8 images, 10 classes), with a fixed split.

    The 1797 images are permuted once by ``np.random.default_rng(rng)``; the
    first ``n_train`` are the training set and the rest the test set. The
    default 1440 = 2⁵·45 training images divide into batches of 8, 16, 32
    (and 10, 12, 20, 24, …) without remainder.

    Parameters
    ----------
    n_train : int, default 1440
        Number of training images, in ``[1, 1796]``.
    scaling : {"unit", "standard"}, default "unit"
        ``"unit"`` divides the pixel values 0…16 by 16 (images keep their
        structure, for the CNN); ``"standard"`` centres each pixel and divides
        by its standard deviation, both measured on the training set
        (constant pixels are only centred).
    rng : None, int, numpy.random.SeedSequence or numpy.random.Generator, default 0
        Source of the permutation; the default gives the same split everywhere.

    Returns
    -------
    Dataset
        With ``image_shape == (8, 8)`` and ``n_classes == 10``.

    Raises
    ------
    ImportError
        When scikit-learn is missing (the data ship with it; nothing is
        downloaded).

    Examples
    --------
    >>> data = load_digits_data()
    >>> (data.X_train.shape, data.X_test.shape, data.n_classes) == ((1440, 64), (357, 64), 10)
    True
    >>> bool(data.X_train.min() >= 0.0 and data.X_train.max() <= 1.0)
    True
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ImportError(
            'load_digits_data needs scikit-learn (the optional extra "data"): '
            'pip install "contraction[data]"'
        ) from exc
    bunch = load_digits()
    X = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    n = check_int(n_train, "n_train", 1, len(y) - 1)
    check_choice(scaling, "scaling", ("unit", "standard"))
    perm = as_generator(rng).permutation(len(y))
    X, y = X[perm], y[perm]
    if scaling == "unit":
        X = X / 16.0
    else:
        mean = X[:n].mean(axis=0)
        std = X[:n].std(axis=0)
        X = (X - mean) / np.where(std > 0, std, 1.0)
    return Dataset(X[:n], y[:n], X[n:], y[n:], n_classes=10, image_shape=(8, 8), name="digits")


def teacher_student_data(
    n_train: int = 512,
    n_test: int = 512,
    *,
    n_features: int = 16,
    n_classes: int = 4,
    hidden: int = 8,
    temperature: float = 0.0,
    rng=None,
) -> Dataset:
    r"""Draw inputs ``x ~ N(0, I)`` and label them by a random one-hidden-layer teacher.

    The teacher is ``z(x) = 3 · tanh(x W₁) W₂`` with standard normal weights
    scaled by ``1/√fan_in``; the label is ``argmax_c z_c(x)`` (realisable
    labels), or with ``temperature > 0`` a draw from ``softmax(z / temperature)``
    (label noise).

    Parameters
    ----------
    n_train, n_test : int
        Sizes of the two parts.
    n_features : int, default 16
        Input dimension; when it is a perfect square ``s²`` the rows are also
        ``s × s`` images (``image_shape = (s, s)``) so the CNN accepts them.
    n_classes : int, default 4
        Number of classes (at least 2).
    hidden : int, default 8
        Width of the teacher.
    temperature : float, default 0.0
        ``0`` labels by the largest teacher logit; ``> 0`` draws noisy labels.
    rng : None, int, numpy.random.SeedSequence or numpy.random.Generator, optional
        Source of the teacher, the inputs and the noisy labels.

    Returns
    -------
    Dataset
        Training and test parts, ``name == "teacher-student"``.

    Examples
    --------
    >>> a = teacher_student_data(n_train=64, n_test=32, rng=3)
    >>> b = teacher_student_data(n_train=64, n_test=32, rng=3)
    >>> a.image_shape == (4, 4) and bool(np.array_equal(a.y_train, b.y_train))
    True
    >>> bool(set(np.unique(a.y_train)) <= set(range(4)))
    True
    """
    n_train = check_positive_int(n_train, "n_train")
    n_test = check_positive_int(n_test, "n_test")
    d = check_positive_int(n_features, "n_features")
    c = check_positive_int(n_classes, "n_classes", minimum=2)
    k = check_positive_int(hidden, "hidden")
    temperature = check_real(temperature, "temperature", 0.0)
    rows, rows_name = n_train + n_test, ("n_train" if n_train >= n_test else "n_test")
    for factors, what in (({rows_name: rows, "n_features": d}, "input entries ((n_train + n_test) × n_features)"),
                          ({"n_features": d, "hidden": k}, "teacher weights (n_features × hidden)"),
                          ({"hidden": k, "n_classes": c}, "teacher weights (hidden × n_classes)"),
                          ({rows_name: rows, "hidden": k}, "teacher activations ((n_train + n_test) × hidden)"),
                          ({rows_name: rows, "n_classes": c}, "teacher logits ((n_train + n_test) × n_classes)")):
        check_size(largest(factors)[1], largest(factors)[0], what)
    gen = as_generator(rng)
    W1 = gen.normal(size=(d, k)) / math.sqrt(d)
    W2 = gen.normal(size=(k, c)) / math.sqrt(k)
    X = gen.normal(size=(n_train + n_test, d))
    z = 3.0 * np.tanh(X @ W1) @ W2
    if temperature == 0:
        y = np.argmax(z, axis=1)
    else:
        with np.errstate(over="ignore"):  # a tiny temperature sends the others to -inf: p is one-hot
            w = (z - z.max(axis=1, keepdims=True)) / temperature
        p = softmax(w, axis=1)
        y = (p.cumsum(axis=1) < gen.random((len(X), 1))).sum(axis=1)
        y = np.minimum(y, c - 1)
    s = math.isqrt(d)
    shape = (s, s) if s * s == d else None
    return Dataset(X[:n_train], y[:n_train], X[n_train:], y[n_train:], n_classes=c,
                   image_shape=shape, name="teacher-student")
