r"""The convolutional network: one valid, stride-1 convolution on one-channel images, then dense layers.

The convolution is an im2col gather of the image patches (done once for the
training set) followed by a matmul with the ``k² × channels`` kernel matrix.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from ..core._validation import as_float_array, check_int, check_positive_int, describe
from ._checks import MAX_ELEMENTS, check_size, hidden_widths
from ._network import _Network

__all__ = ["CNN", "im2col_indices"]


def im2col_indices(image_shape, kernel_size: int) -> np.ndarray:
    """Pixel indices of every ``k × k`` patch of a flattened image (valid, stride 1).

    Parameters
    ----------
    image_shape : tuple of (int, int)
        ``(height, width)``; images are flattened row major.
    kernel_size : int
        Side ``k`` of the square patches.

    Returns
    -------
    ndarray of int, shape (n_positions, kernel_size²)
        Row ``q`` lists the flat pixel indices of the patch at output position
        ``q`` (positions row major, ``(height − k + 1)·(width − k + 1)`` of
        them), patch pixels row major; ``X[:, idx]`` gathers all patches.

    Examples
    --------
    >>> idx = im2col_indices((4, 4), 3)
    >>> idx.shape
    (4, 9)
    >>> idx[1].tolist() == [1, 2, 3, 5, 6, 7, 9, 10, 11]       # patch at row 0, column 1
    True
    """
    H, W = _pair(image_shape)
    k = check_int(kernel_size, "kernel_size", 1, min(H, W))
    check_size((H - k + 1) * (W - k + 1) * k * k, "image_shape", "patch entries (positions × kernel_size²)")
    rows = np.arange(H - k + 1)[:, None, None, None] + np.arange(k)[None, None, :, None]
    cols = np.arange(W - k + 1)[None, :, None, None] + np.arange(k)[None, None, None, :]
    return (rows * W + cols).reshape((H - k + 1) * (W - k + 1), k * k)


def _pair(image_shape) -> tuple[int, int]:
    """``(height, width)``: two integers >= 1 (a tuple, list or integer array)."""
    what = "(height, width), two integers >= 1"
    if isinstance(image_shape, (str, bytes)) or not isinstance(image_shape, (tuple, list, np.ndarray)):
        raise TypeError(f"image_shape: expected {what}, got {describe(image_shape)}")
    if (isinstance(image_shape, np.ndarray) and image_shape.ndim != 1) or len(image_shape) != 2:
        raise ValueError(f"image_shape: expected {what}, got {describe(image_shape)}")
    return (check_int(image_shape[0], "image_shape", 1), check_int(image_shape[1], "image_shape", 1))


def _image_shape(image_shape, npix: int) -> tuple[int, int]:
    if image_shape is None:
        s = math.isqrt(npix)
        if s * s != npix:
            raise ValueError(f"image_shape: expected (height, width) for {npix} pixels (not a square), got None")
        return (s, s)
    shape = _pair(image_shape)
    if shape[0] * shape[1] != npix:
        raise ValueError(f"image_shape: expected (height, width) with height·width = {npix}, got {image_shape!r}")
    return shape


class CNN(_Network):
    r"""One convolution layer then dense layers, on one-channel images.

    ``u_{q,c} = σ(Σ_j P_{q,j} K_{j,c} + β_c)`` for every output position ``q``
    of a valid, stride-1 ``k × k`` convolution (``P`` the im2col patches of the
    image, ``K`` the ``k² × channels`` kernel matrix), flattened in
    (position, channel) order and followed by dense layers as in :class:`MLP`.
    The patch gather of the training set is done once, at construction.

    Parameters
    ----------
    X : array_like, shape (n, height·width)
        Training images, flattened row major.
    y : array_like of int, shape (n,)
        Training labels in ``[0, n_classes)``.
    image_shape : tuple of (int, int), optional
        ``(height, width)``; defaults to a square image.
    channels : int, default 4
        Number of convolution kernels (feature maps).
    kernel_size : int, default 3
        Side ``k`` of the kernels.
    hidden : int or sequence of int, default ()
        Widths of dense hidden layers after the convolution.
    batch_size : int, default 16
        ``B``; must divide ``n``.
    weight_decay : float, default 0.0
        ``λ`` in ``f_i = CE_i + λ/2 ‖θ‖²``.
    activation : {"tanh", "softplus"}, default "tanh"
        The activation after the convolution and the hidden layers.
    n_classes : int, optional
        Number of classes; defaults to ``max(y) + 1`` (at least 2).

    Attributes
    ----------
    dim : int
        Number of parameters.
    n_batches : int
        Number of batches ``n / B``.
    image_shape : tuple of (int, int)
        ``(height, width)`` of the images.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(8, 36)); y = np.arange(8) % 2
    >>> net = CNN(X, y, channels=2, kernel_size=3, batch_size=4)
    >>> net.layer_shapes == [(9, 2), (32, 2)]
    True
    >>> theta = rng.normal(size=net.dim)
    >>> bool(np.isfinite(net.batch_loss(theta, 0)))
    True
    """

    def __init__(self, X, y, *, image_shape=None, channels=4, kernel_size=3, hidden=(), batch_size=16,
                 weight_decay=0.0, activation="tanh", n_classes=None):
        Xa = as_float_array(X, "X", ndim=2)
        shape = _image_shape(image_shape, Xa.shape[1])
        k = check_positive_int(kernel_size, "kernel_size")
        if k > min(shape):
            raise ValueError(f"kernel_size: expected at most {min(shape)} for images {shape}, got {k}")
        positions = (shape[0] - k + 1) * (shape[1] - k + 1)
        # the gathered patches of the training set: rows × positions × k²
        check_size(Xa.shape[0] * positions * k * k, "kernel_size", "gathered patch entries (rows × positions × "
                   "kernel_size²)", MAX_ELEMENTS)
        ch = check_positive_int(channels, "channels")
        self._setup(Xa, y, batch_size, weight_decay, activation, n_classes)
        self.image_shape, self.kernel_size, self.channels = shape, k, ch
        self.hidden = hidden_widths(hidden)
        dims = (positions * ch, *self.hidden, self.n_classes)
        sizes = [(k * k, ch), *itertools.pairwise(dims)]
        self._positions = positions
        self._patches = im2col_indices(shape, k)
        self._finish(sizes, {"channels": ch, "hidden": max(self.hidden, default=0), "X": positions})

    def _features(self, X):
        return X[:, self._patches]  # im2col gather: (n, positions, k²)

    def __repr__(self) -> str:
        return (f"CNN(image_shape={self.image_shape}, channels={self.channels}, kernel_size={self.kernel_size}, "
                f"dim={self.dim}, batch_size={self.batch_size}, weight_decay={self.weight_decay})")
