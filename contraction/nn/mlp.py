r"""The multilayer perceptron: dense layers ``x → σ(x W₁ + b₁) → … → z = a W_L + b_L``."""

from __future__ import annotations

import itertools

from ._checks import hidden_widths
from ._network import _Network

__all__ = ["MLP"]


class MLP(_Network):
    r"""A multilayer perceptron ``x → σ(x W₁ + b₁) → … → z = a W_L + b_L`` (logits).

    The batch losses are ``f_i(θ) = CE_i(θ) + λ/2 ‖θ‖²`` on a fixed partition
    of the rows into consecutive batches; gradients and Hessian-vector
    products are exact and vectorized over stacks of parameter vectors.

    Parameters
    ----------
    X : array_like, shape (n, n_features)
        Training inputs.
    y : array_like of int, shape (n,)
        Training labels in ``[0, n_classes)``.
    hidden : int or sequence of int, default 16
        Widths of the hidden layers (``()`` gives multinomial logistic regression).
    batch_size : int, default 16
        ``B``; must divide ``n``. Batch ``i`` is rows ``i·B … (i+1)·B − 1``.
    weight_decay : float, default 0.0
        ``λ`` in ``f_i = CE_i + λ/2 ‖θ‖²`` (whole parameter vector).
    activation : {"tanh", "softplus"}, default "tanh"
        The hidden layers' activation ``σ``.
    n_classes : int, optional
        Number of classes; defaults to ``max(y) + 1`` (at least 2).

    Attributes
    ----------
    dim : int
        Number of parameters.
    n_batches : int
        Number of batches ``n / B``.
    hidden : tuple of int
        Widths of the hidden layers.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(8, 5)); y = np.arange(8) % 3
    >>> net = MLP(X, y, hidden=4, batch_size=4)
    >>> net.dim == 5 * 4 + 4 + 4 * 3 + 3
    True
    >>> theta = rng.normal(size=(2, net.dim))
    >>> g = net.gradient(theta, [0, 1])
    >>> bool(np.allclose(g[1], net.gradient(theta[1], 1)))
    True
    """

    def __init__(self, X, y, *, hidden=16, batch_size=16, weight_decay=0.0, activation="tanh", n_classes=None):
        self._setup(X, y, batch_size, weight_decay, activation, n_classes)
        self.hidden = hidden_widths(hidden)
        dims = (self.X.shape[1], *self.hidden, self.n_classes)
        self._positions = 1
        self._finish(list(itertools.pairwise(dims)), {"hidden": max(self.hidden, default=0), "X": dims[0]})

    def _features(self, X):
        return X[:, None, :]

    def __repr__(self) -> str:
        sizes = [fin for fin, _ in self._layout.sizes] + [self.n_classes]
        return (f"MLP(sizes={sizes}, dim={self.dim}, batch_size={self.batch_size}, "
                f"weight_decay={self.weight_decay})")
