r"""The shared base of the networks: data, batches, parameters, checked public methods.

A subclass sets the layer sizes and the number of positions sharing the
first layer's weights, defines ``_features(X)`` (the inputs of the first
layer, shape ``(n, S, fan_in)``) and calls ``_setup`` then ``_finish``. The
arithmetic lives in :mod:`contraction.nn._passes`; this module checks
arguments, broadcasts stacks against batch indices and splits large stacks
into blocks of rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..core._validation import (
    as_float_array,
    as_generator,
    as_indices,
    check_choice,
    check_lr,
    check_positive_int,
    check_real,
    describe,
)
from ..core.maps import GradientMaps
from ._activations import ACTIVATIONS, softmax_last
from ._checks import MAX_ELEMENTS, check_labels, check_parameter_count, check_size, culprit, refuse_overflow
from ._passes import Layout, backprop, cross_entropy, forward, gradient_into, hvp_into, mean_cross_entropy

__all__ = ["Evaluation"]

# Evaluation on a whole data set is chunked over examples so that one chunk of
# activations holds at most this many floats (2 MB): small temporaries are
# reused by the allocator, large ones cost page faults on every call.
_EVAL_BUDGET = 1 << 18
# Gradients and Hessian-vector products of a stack are computed in blocks of rows
# with about this many bytes of temporaries each.
_BLOCK_BYTES = 1 << 21
# Overflow inside a pass gives inf/nan silently; the public methods then refuse the input.
_QUIET = {"over": "ignore", "invalid": "ignore", "divide": "ignore", "under": "ignore"}


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Loss and accuracy of a stack of parameter vectors on one data set.

    Attributes
    ----------
    loss : ndarray, shape (...)
        Mean softmax cross-entropy over the examples (no weight-decay term).
    accuracy : ndarray, shape (...)
        Fraction of examples whose largest logit is the label.
    """

    loss: np.ndarray
    accuracy: np.ndarray


class _Network:
    """Shared engine of :class:`~contraction.nn.MLP` and :class:`~contraction.nn.CNN`."""

    _layout: Layout
    _positions: int

    def _setup(self, X, y, batch_size, weight_decay, activation, n_classes):
        X = as_float_array(X, "X", ndim=2)
        n = X.shape[0]
        if n == 0 or X.shape[1] == 0:
            raise ValueError(f"X: expected at least one row and one column, got {describe(X)}")
        y_arr = check_labels(y, n, None)
        self._classes_from = "n_classes" if n_classes is not None else "y"  # which argument set the classes
        if n_classes is None:
            n_classes = max(2, int(y_arr.max()) + 1)
        c = check_positive_int(n_classes, "n_classes", minimum=2)
        check_labels(y_arr, n, c)
        b = check_positive_int(batch_size, "batch_size")
        if n % b:
            raise ValueError(f"batch_size: expected a divisor of the number of rows {n} (fixed partition), got {b}")
        wd = check_real(weight_decay, "weight_decay", 0.0)
        check_choice(activation, "activation", ACTIVATIONS)
        self.X = X.copy()
        self.y = y_arr.copy()
        self.batch_size = b
        self.weight_decay = wd
        self.activation = activation
        self.n_classes = c
        for arr in (self.X, self.y):
            arr.setflags(write=False)

    def _finish(self, sizes, knobs: dict[str, int]):
        """Lay out the parameters of layers ``sizes`` (refused when too many; ``knobs`` as in the check)."""
        check_parameter_count(sizes, {**knobs, self._classes_from: self.n_classes})
        self._layout = Layout(tuple(sizes), self.activation)
        # Rows per block: about _BLOCK_BYTES of temporaries (parameters, gradient,
        # gathered inputs and activations of one row).
        width = sizes[0][0] * self._positions + 4 * sum(
            fout * (self._positions if layer == 0 else 1) for layer, (_, fout) in enumerate(sizes)
        )
        per_row = 8 * (3 * self.dim + self.batch_size * width)
        self._block_rows = max(1, _BLOCK_BYTES // per_row)
        feats = self._features(self.X)  # (n, S, fan_in)
        m, b = self.n_batches, self.batch_size
        self._batch_features = np.ascontiguousarray(feats.reshape((m, b, *feats.shape[1:])))
        self._batch_labels = self.y.reshape(m, b)
        self._batch_features.setflags(write=False)

    # --- sizes ----------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Number of parameters ``P`` (length of the flat parameter vector)."""
        return self._layout.dim

    @property
    def n_batches(self) -> int:
        """Number of batches ``m = n_rows / batch_size``."""
        return self.X.shape[0] // self.batch_size

    @property
    def layer_shapes(self) -> list[tuple[int, int]]:
        """``(fan_in, fan_out)`` of every layer's weight matrix, in order."""
        return list(self._layout.sizes)

    @property
    def batches(self) -> np.ndarray:
        """Row indices of each batch, shape ``(n_batches, batch_size)``."""
        return np.arange(self.X.shape[0]).reshape(self.n_batches, self.batch_size)

    # --- parameters -----------------------------------------------------------------------
    def init_params(self, rng=None) -> np.ndarray:
        """Random parameters: weights ``N(0, 1/fan_in)`` (LeCun normal), biases zero.

        Parameters
        ----------
        rng : None, int, numpy.random.SeedSequence or numpy.random.Generator, optional
            Source of the weights (anything :func:`numpy.random.default_rng` accepts).

        Returns
        -------
        ndarray, shape (dim,)
            A flat parameter vector.

        Examples
        --------
        >>> import numpy as np
        >>> import contraction as ct
        >>> net = ct.nn.MLP(np.zeros((4, 3)), [0, 1, 0, 1], hidden=5, batch_size=2)
        >>> bool(np.array_equal(net.init_params(rng=1), net.init_params(rng=1)))
        True
        """
        gen = as_generator(rng)
        theta = np.zeros(self.dim)
        for layer, (fin, fout) in enumerate(self._layout.sizes):
            theta[self._layout.weight_slice(layer)] = gen.normal(size=fin * fout) / math.sqrt(fin)
        return theta

    def unpack(self, theta) -> list[tuple[np.ndarray, np.ndarray]]:
        """Return views of the layers of a parameter vector or stack.

        Parameters
        ----------
        theta : array_like, shape (dim,) or (K, dim)
            Flat parameters.

        Returns
        -------
        list of (ndarray, ndarray)
            ``[(W_1, b_1), …]`` with ``W_l`` of shape ``(..., fan_in, fan_out)``
            and ``b_l`` of shape ``(..., fan_out)``; views of ``theta`` when it
            is a float64 array.

        Examples
        --------
        >>> import numpy as np
        >>> import contraction as ct
        >>> net = ct.nn.MLP(np.zeros((4, 3)), [0, 1, 0, 1], hidden=5, batch_size=2)
        >>> [W.shape for W, _ in net.unpack(np.zeros(net.dim))] == [(3, 5), (5, 2)]
        True
        """
        Ws, bs = self._layout.layers(self._check_theta(theta))
        return list(zip(Ws, bs, strict=True))

    # --- validation -----------------------------------------------------------------------
    def _check_theta(self, theta, name="theta") -> np.ndarray:
        theta = as_float_array(theta, name, ndim=(1, 2))
        if theta.shape[-1] != self.dim:
            raise ValueError(f"{name}: expected shape ({self.dim},) or (K, {self.dim}), got {describe(theta)}")
        return theta

    def _check_index(self, index) -> np.ndarray:
        return as_indices(index, "index", self.n_batches, ndim=(0, 1))

    def _check_inputs(self, X) -> np.ndarray:
        X = as_float_array(X, "X", ndim=2)
        if X.shape[1] != self.X.shape[1]:
            raise ValueError(f"X: expected shape (n, {self.X.shape[1]}), got {describe(X)}")
        return X

    def _stack(self, theta, index, extra=None):
        """Broadcast ``theta`` (P,)|(K, P) with ``index`` ()|(K,); return the stacks and whether 1-D."""
        theta = self._check_theta(theta)
        index = self._check_index(index)
        single = theta.ndim == 1 and index.ndim == 0
        K = max(theta.shape[0] if theta.ndim == 2 else 1, index.size if index.ndim else 1)
        if (theta.ndim == 2 and theta.shape[0] != K) or (index.ndim and index.size != K):
            raise ValueError(
                f"index: expected one batch index or {theta.shape[0]} (one per row of theta), got {describe(index)}"
            )
        if theta.ndim == 1:  # one vector against many indices: the stack is built here
            check_size(K * self.dim, "index", f"stack entries (batch indices × dim {self.dim})", MAX_ELEMENTS)
        theta = np.ascontiguousarray(np.broadcast_to(theta, (K, self.dim)))
        index = np.broadcast_to(index, (K,))
        if extra is not None:
            v = as_float_array(extra, "v", ndim=(1, 2))
            if v.shape[-1] != self.dim or (v.ndim == 2 and v.shape[0] != K):
                raise ValueError(f"v: expected shape ({self.dim},) or ({K}, {self.dim}), got {describe(v)}")
            single = single and v.ndim == 1
            extra = np.ascontiguousarray(np.broadcast_to(v, (K, self.dim)))
        return theta, index, extra, single

    # --- unchecked batched kernels ----------------------------------------------------------
    def _blocks(self, K: int):
        """Row blocks of a stack of ``K``: each block's temporaries stay small.

        Temporaries of a few hundred kilobytes are reused by the allocator;
        much larger ones are returned to the system after each call and cost
        page faults on the next, which would dominate the arithmetic.
        """
        step = self._block_rows
        return [(s, min(K, s + step)) for s in range(0, K, step)]

    def _gradient(self, theta: np.ndarray, index: np.ndarray) -> np.ndarray:
        """Unchecked batched gradient: ``theta`` (K, dim) C-contiguous, ``index`` (K,)."""
        out = np.empty_like(theta)
        with np.errstate(**_QUIET):  # an overflow shows as inf/nan, which the callers check
            for s, e in self._blocks(theta.shape[0]):  # blocks of rows, each vectorized
                i = index[s:e]
                gradient_into(self._layout, self.weight_decay, self._batch_features[i], self._batch_labels[i],
                              theta[s:e], out[s:e])
        return out

    def _hvp(self, theta: np.ndarray, v: np.ndarray, index: np.ndarray) -> np.ndarray:
        """Unchecked Hessian-vector products by the R-operator (forward over reverse)."""
        out = np.empty_like(theta)
        with np.errstate(**_QUIET):
            for s, e in self._blocks(theta.shape[0]):
                i = index[s:e]
                hvp_into(self._layout, self.weight_decay, self._batch_features[i], self._batch_labels[i],
                         theta[s:e], v[s:e], out[s:e])
        return out

    def _map_gradient(self, theta, index):
        """``gradient`` of the map family: the fast path for stacks, checked otherwise."""
        if isinstance(theta, np.ndarray) and theta.ndim == 2 and theta.shape[1] == self.dim:
            index = np.asarray(index)
            if index.shape == theta.shape[:1] and np.issubdtype(index.dtype, np.integer):
                return self._gradient(np.ascontiguousarray(theta, dtype=np.float64), index)
        return self.gradient(theta, index)

    def _map_hvp(self, theta, v, index):
        """``hvp`` of the map family: the fast path for stacks, checked otherwise."""
        if (isinstance(theta, np.ndarray) and theta.ndim == 2 and theta.shape[1] == self.dim
                and isinstance(v, np.ndarray) and v.shape == theta.shape):
            index = np.asarray(index)
            if index.shape == theta.shape[:1] and np.issubdtype(index.dtype, np.integer):
                return self._hvp(np.ascontiguousarray(theta, dtype=np.float64),
                                 np.ascontiguousarray(v, dtype=np.float64), index)
        return self.hvp(theta, v, index)

    def _example_chunks(self, K: int, n: int):
        width = max(fout for _, fout in self._layout.sizes) * self._positions
        chunk = max(1, _EVAL_BUDGET // max(1, K * width))
        return [(s, min(n, s + chunk)) for s in range(0, n, chunk)]

    # --- public per-batch methods -------------------------------------------------------------
    def batch_loss(self, theta, index) -> np.ndarray:
        """Batch losses ``f_index(θ)``: mean cross-entropy over the batch plus ``λ/2 ‖θ‖²``.

        Parameters
        ----------
        theta : array_like, shape (dim,) or (K, dim)
            Parameters, one row per stacked vector.
        index : int or array_like of int, shape (K,)
            Batch of each row; a single index is used for every row.

        Returns
        -------
        ndarray, shape () or (K,)
            One loss per row.

        Examples
        --------
        >>> import numpy as np
        >>> import contraction as ct
        >>> net = ct.nn.MLP(np.eye(4), [0, 1, 0, 1], hidden=3, batch_size=2)
        >>> theta = net.init_params(rng=0)
        >>> bool(np.allclose(net.batch_loss(np.stack([theta, theta]), [0, 1]),
        ...                  [net.batch_loss(theta, 0), net.batch_loss(theta, 1)]))
        True
        """
        theta, index, _, single = self._stack(theta, index)
        A0, Y = self._batch_features[index], self._batch_labels[index]
        Ws, bs = self._layout.layers(theta)
        with np.errstate(**_QUIET):
            z = forward(self._layout, Ws, bs, A0)[0]
            out = mean_cross_entropy(z, Y) + 0.5 * self.weight_decay * np.einsum("kp,kp->k", theta, theta)
        refuse_overflow(out, "theta", theta, "the batch loss")
        return out[0] if single else out

    def gradient(self, theta, index) -> np.ndarray:
        """Exact gradients ``∇f_index(θ)`` by back-propagation, vectorized over the stack.

        Parameters
        ----------
        theta : array_like, shape (dim,) or (K, dim)
            Parameters, one row per stacked vector.
        index : int or array_like of int, shape (K,)
            Batch of each row; a single index is used for every row.

        Returns
        -------
        ndarray, shape (dim,) or (K, dim)
            One gradient per row.

        Examples
        --------
        >>> import numpy as np
        >>> import contraction as ct
        >>> net = ct.nn.MLP(np.eye(4), [0, 1, 0, 1], hidden=3, batch_size=2)
        >>> theta, u = net.init_params(rng=0), np.ones(net.dim)
        >>> fd = (net.batch_loss(theta + 1e-6 * u, 1) - net.batch_loss(theta - 1e-6 * u, 1)) / 2e-6
        >>> bool(np.isclose(net.gradient(theta, 1) @ u, fd))
        True
        """
        theta, index, _, single = self._stack(theta, index)
        out = refuse_overflow(self._gradient(theta, index), "theta", theta, "the gradient")
        return out[0] if single else out

    def hvp(self, theta, v, index) -> np.ndarray:
        """Exact Hessian-vector products ``∇²f_index(θ) v`` (Pearlmutter's R-operator).

        One forward pass with directional derivatives followed by one backward
        pass (forward over reverse), about twice a gradient's cost.

        Parameters
        ----------
        theta : array_like, shape (dim,) or (K, dim)
            Parameters, one row per stacked vector.
        v : array_like, shape (dim,) or (K, dim)
            Directions.
        index : int or array_like of int, shape (K,)
            Batch of each row; a single index is used for every row.

        Returns
        -------
        ndarray, shape (dim,) or (K, dim)
            One product per row.

        Examples
        --------
        >>> import numpy as np
        >>> import contraction as ct
        >>> net = ct.nn.MLP(np.eye(4), [0, 1, 0, 1], hidden=3, batch_size=2)
        >>> theta, v = net.init_params(rng=0), np.ones(net.dim)
        >>> fd = (net.gradient(theta + 1e-5 * v, 0) - net.gradient(theta - 1e-5 * v, 0)) / 2e-5
        >>> bool(np.allclose(net.hvp(theta, v, 0), fd, atol=1e-8))
        True
        """
        v = as_float_array(v, "v", ndim=(1, 2))  # before the stack: None is a bad v, not a missing one
        theta, index, v, single = self._stack(theta, index, extra=v)
        out = self._hvp(theta, v, index)
        if not np.isfinite(out).all():  # blame theta when its gradient overflows already, else v
            gradient_finite = np.isfinite(self._gradient(theta, index)).all()
            refuse_overflow(out, "v" if gradient_finite else "theta", v if gradient_finite else theta,
                             "the Hessian-vector product")
        return out[0] if single else out

    # --- whole training set -------------------------------------------------------------------
    def loss(self, theta) -> np.ndarray:
        """Training loss ``L(θ) = (1/m) Σ_i f_i(θ)``, which is ``evaluate(theta).loss + λ/2 ‖θ‖²``.

        Parameters
        ----------
        theta : array_like, shape (dim,) or (K, dim)
            Parameters, one row per stacked vector.

        Returns
        -------
        ndarray, shape () or (K,)
            One loss per row.

        Examples
        --------
        >>> import numpy as np
        >>> import contraction as ct
        >>> net = ct.nn.MLP(np.eye(4), [0, 1, 0, 1], hidden=3, batch_size=2)
        >>> theta = net.init_params(rng=0)
        >>> bool(np.isclose(net.loss(theta), (net.batch_loss(theta, 0) + net.batch_loss(theta, 1)) / 2))
        True
        """
        theta = self._check_theta(theta)
        ev = self.evaluate(theta)
        with np.errstate(**_QUIET):
            out = ev.loss + 0.5 * self.weight_decay * np.sum(theta * theta, axis=-1)
        return refuse_overflow(np.asarray(out), "theta", theta, "the training loss")[()]

    def full_gradient(self, theta) -> np.ndarray:
        """``∇L(θ)``, the mean of the batch gradients, computed over the training set in chunks.

        Parameters
        ----------
        theta : array_like, shape (dim,) or (K, dim)
            Parameters, one row per stacked vector.

        Returns
        -------
        ndarray, shape (dim,) or (K, dim)
            One gradient per row.

        Examples
        --------
        >>> import numpy as np
        >>> import contraction as ct
        >>> net = ct.nn.MLP(np.eye(4), [0, 1, 0, 1], hidden=3, batch_size=2)
        >>> theta = net.init_params(rng=0)
        >>> bool(np.allclose(net.full_gradient(theta), (net.gradient(theta, 0) + net.gradient(theta, 1)) / 2))
        True
        """
        theta = self._check_theta(theta)
        t2 = np.ascontiguousarray(np.atleast_2d(theta))
        K = t2.shape[0]
        feats = self._batch_features.reshape((-1, *self._batch_features.shape[2:]))
        n = feats.shape[0]
        Ws, bs = self._layout.layers(t2)
        g = np.zeros_like(t2)
        part = np.empty_like(t2)
        with np.errstate(**_QUIET):
            for s, e in self._example_chunks(K, n):  # chunks of examples bound the memory
                z, inputs, pre, acts = forward(self._layout, Ws, bs, feats[None, s:e])
                p = softmax_last(z)
                p[:, np.arange(e - s), self.y[s:e]] -= 1.0
                p *= 1.0 / n
                g += backprop(self._layout, Ws, inputs, pre, acts, p, part)
            if self.weight_decay:
                g += self.weight_decay * t2
        refuse_overflow(g, "theta", t2, "the training gradient")
        return g[0] if theta.ndim == 1 else g

    def logits(self, theta, X) -> np.ndarray:
        """Compute the logits of inputs ``X`` under parameters ``theta``.

        Parameters
        ----------
        theta : array_like, shape (dim,) or (K, dim)
            Parameters, one row per stacked vector.
        X : array_like, shape (n, n_features)
            Inputs.

        Returns
        -------
        ndarray, shape (n, n_classes) or (K, n, n_classes)
            The network's outputs before the softmax.

        Examples
        --------
        >>> import numpy as np
        >>> import contraction as ct
        >>> net = ct.nn.MLP(np.eye(4), [0, 1, 0, 1], hidden=(), batch_size=2)
        >>> theta = net.init_params(rng=0)
        >>> (W, b), = net.unpack(theta)
        >>> bool(np.allclose(net.logits(theta, np.eye(4)), W + b))
        True
        """
        theta = self._check_theta(theta)
        X = self._check_inputs(X)
        t2 = np.ascontiguousarray(np.atleast_2d(theta))
        width = max(fout for _, fout in self._layout.sizes) * self._positions
        check_size(t2.shape[0] * X.shape[0] * width, "X", "activation entries (rows of theta × rows of X × width)")
        Ws, bs = self._layout.layers(t2)
        with np.errstate(**_QUIET):
            z = forward(self._layout, Ws, bs, self._features(X)[None])[0]
        refuse_overflow(z, *culprit(t2, X), "the logits")
        return z[0] if theta.ndim == 1 else z

    def evaluate(self, theta, X=None, y=None) -> Evaluation:
        """Mean cross-entropy and accuracy on a data set (by default the training set).

        Parameters
        ----------
        theta : array_like, shape (dim,) or (K, dim)
            Parameters, one row per stacked vector.
        X : array_like, shape (n, n_features), optional
            Inputs; given together with ``y``.
        y : array_like of int, shape (n,), optional
            Labels in ``[0, n_classes)``.

        Returns
        -------
        Evaluation
            Fields ``loss`` and ``accuracy``, each of shape () or (K,). The
            weight-decay term is not included in ``loss``.

        Examples
        --------
        >>> import numpy as np
        >>> import contraction as ct
        >>> net = ct.nn.MLP(np.eye(4), [0, 1, 0, 1], hidden=3, batch_size=2)
        >>> ev = net.evaluate(np.zeros((2, net.dim)))
        >>> bool(np.allclose(ev.loss, np.log(2)))       # zero logits: uniform predictions
        True
        """
        theta = self._check_theta(theta)
        if (X is None) != (y is None):
            raise ValueError(f"y: expected labels exactly when X is given, got {describe(y)}")
        if X is None:
            feats = self._batch_features.reshape((-1, *self._batch_features.shape[2:]))
            labels = self.y
        else:
            X = self._check_inputs(X)
            if X.shape[0] == 0:
                raise ValueError(f"X: expected at least one example (a mean over none is undefined), got {describe(X)}")
            labels = check_labels(y, X.shape[0], self.n_classes)
            feats = self._features(X)
        t2 = np.ascontiguousarray(np.atleast_2d(theta))
        K, n = t2.shape[0], feats.shape[0]
        Ws, bs = self._layout.layers(t2)
        ce = np.zeros(K)
        correct = np.zeros(K)
        with np.errstate(**_QUIET):
            for s, e in self._example_chunks(K, n):  # chunks of examples bound the memory
                z = forward(self._layout, Ws, bs, feats[None, s:e])[0]
                ce += cross_entropy(z, labels[s:e])
                correct += (np.argmax(z, axis=-1) == labels[s:e]).sum(axis=1)
        loss, accuracy = ce / n, correct / n
        refuse_overflow(loss, *culprit(t2, X), "the loss")
        if theta.ndim == 1:
            return Evaluation(loss[0], accuracy[0])
        return Evaluation(loss, accuracy)

    # --- map family ---------------------------------------------------------------------------
    def sgd_maps(self, lr, probs=None) -> GradientMaps:
        """The SGD maps ``T_i(θ) = θ − lr ∇f_i(θ)`` of the batches, with Hessian-vector products.

        The result is usable directly by :func:`contraction.forward_iterates`,
        :func:`contraction.backward_iterates` and the other iteration
        functions; its ``gradient`` and ``hvp`` take stacks ``(K, dim)`` and
        per-row indices ``(K,)``.

        Parameters
        ----------
        lr : float
            Learning rate ``h > 0``.
        probs : array_like, shape (n_batches,), optional
            Batch sampling probabilities (uniform when omitted).

        Returns
        -------
        GradientMaps
            The map family, with ``n_batches`` maps.

        Examples
        --------
        >>> import numpy as np
        >>> import contraction as ct
        >>> net = ct.nn.MLP(np.eye(4), [0, 1, 0, 1], hidden=3, batch_size=2)
        >>> theta = net.init_params(rng=0)
        >>> maps = net.sgd_maps(0.1)
        >>> bool(np.allclose(maps.step(theta[None], np.array([1]))[0], theta - 0.1 * net.gradient(theta, 1)))
        True
        """
        return GradientMaps(self._map_gradient, check_lr(lr), self.n_batches, probs, hvp=self._map_hvp)
