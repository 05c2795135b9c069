r"""Small numpy networks for the neural-network proof of concept (SPEC C13).

Two smooth classifiers with exact gradients and exact Hessian-vector
products, both evaluated on *stacks* of parameter vectors so that the
backward iterates of every horizon ``n`` advance side by side:

* :class:`MLP`: dense layers ``x → σ(x W₁ + b₁) → … → logits``;
* :class:`CNN`: one convolution (``k × k`` kernels, valid padding, stride 1,
  ``channels`` feature maps) on one-channel images, computed as an im2col
  gather of the image patches followed by an einsum/matmul with the kernels,
  then dense layers to the logits.

Losses
------
Softmax cross-entropy averaged over the examples of a batch, plus optional
L2 weight decay on the *whole* parameter vector (weights and biases):

.. math::

    f_i(θ) = \frac{1}{B} \sum_{j ∈ \text{batch } i} \bigl(\log \sum_c e^{z_c(x_j; θ)}
             − z_{y_j}(x_j; θ)\bigr) + \frac{λ}{2} \|θ\|^2 .

The decay adds ``λ I`` to every batch Hessian, so ``T_i = θ − h ∇f_i`` has
Jacobian ``(1 − hλ) I − h ∇²CE_i``: directions where the cross-entropy is flat
contract by ``1 − hλ`` per step (the theory needs contraction). Negative
curvature of a batch loss beyond ``λ`` still expands, so a single map need not
be a strict contraction; :func:`estimate_lipschitz` measures ``Lip(T_i)`` near
a point. The activation ``σ`` is ``tanh`` or ``softplus`` (smooth, so Hessians
exist).

Batches
-------
The training set is split into a fixed partition of ``m = n / B`` batches of
``B = batch_size`` consecutive rows: batch ``i`` holds rows
``i·B, …, (i+1)·B − 1`` (the number of rows must be a multiple of ``B``;
permute rows beforehand for another partition). A batch index selects those
rows; in ``gradient(theta, index)`` row ``k`` of the stack uses batch
``index[k]``. The training loss is ``L(θ) = (1/m) Σ_i f_i(θ)``.

Parameter layout
----------------
A network's parameters are one flat float64 vector of length ``dim``: for
each layer in order its weight matrix ``W`` (``fan_in × fan_out``, row
major) followed by its bias ``b``. For the CNN the first layer's weight is
the kernel matrix (``k² × channels``, patch pixels row major) and the dense
layer after it reads the feature maps in (position, channel) order.
:meth:`MLP.unpack` returns views of the layers.

Examples
--------
>>> import numpy as np
>>> import contraction as ct
>>> from contraction.nn.datasets import teacher_student_data
>>> data = teacher_student_data(n_train=64, n_test=32, rng=0)
>>> net = ct.nn.MLP(data.X_train, data.y_train, hidden=8, batch_size=16, weight_decay=1e-3)
>>> theta0 = net.init_params(rng=1)
>>> idx = ct.sample_batches(net.n_batches, 20, rng=2)
>>> maps = net.sgd_maps(0.1)
>>> fwd = ct.forward_iterates(maps, theta0, idx)
>>> bwd = ct.backward_iterates(maps, theta0, idx)
>>> fwd.shape == bwd.shape == (1, 21, net.dim)
True
>>> bool(np.allclose(fwd[0, 1], bwd[0, 1]))     # one step: same map
True
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from ..core._validation import as_float_array, check_lr, check_positive_int, describe
from ..core.maps import GradientMaps

__all__ = ["MLP", "CNN", "Evaluation", "estimate_lipschitz", "im2col_indices"]

_ACTIVATIONS = ("tanh", "softplus")

# Evaluation on a whole data set is chunked over examples so that one chunk of
# activations holds at most this many floats (2 MB): small temporaries are
# reused by the allocator, large ones cost page faults on every call.
_EVAL_BUDGET = 1 << 18
# Gradients and Hessian-vector products of a stack are computed in blocks of rows
# with about this many bytes of temporaries each.
_BLOCK_BYTES = 1 << 21


# --- activations: value, first and second derivative ------------------------------
def _activate(name: str, z: np.ndarray) -> np.ndarray:
    if name == "tanh":
        return np.tanh(z)
    return np.logaddexp(0.0, z)


def _derivatives(name: str, z: np.ndarray, a: np.ndarray | None = None, second: bool = False):
    """``σ'(z)`` and (optionally) ``σ''(z)``; ``a = σ(z)`` may be passed for tanh."""
    if name == "tanh":
        t = np.tanh(z) if a is None else a
        d1 = 1.0 - t * t
        return (d1, -2.0 * t * d1) if second else d1
    s = 0.5 * (1.0 + np.tanh(0.5 * z))  # logistic sigmoid, overflow-free
    return (s, s * (1.0 - s)) if second else s


def _softmax(z: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (a new array)."""
    p = z - z.max(axis=-1, keepdims=True)
    np.exp(p, out=p)
    p /= p.sum(axis=-1, keepdims=True)
    return p


def _scale_by_derivative(name: str, delta: np.ndarray, z: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``delta ⊙ σ'(z)`` in place (``a = σ(z)``), with one temporary."""
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


def _log_softmax(z: np.ndarray) -> np.ndarray:
    zmax = z.max(axis=-1, keepdims=True)
    return z - (zmax + np.log(np.exp(z - zmax).sum(axis=-1, keepdims=True)))


def im2col_indices(image_shape, kernel_size: int) -> np.ndarray:
    """Pixel indices of every ``k × k`` patch of a flattened image (valid, stride 1).

    Parameters
    ----------
    image_shape : (int, int)
        ``(height, width)``; images are flattened row major.
    kernel_size : int

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
    >>> idx[1].tolist()                       # patch at row 0, column 1
    [1, 2, 3, 5, 6, 7, 9, 10, 11]
    """
    H, W = image_shape
    k = kernel_size
    rows = np.arange(H - k + 1)[:, None, None, None] + np.arange(k)[None, None, :, None]
    cols = np.arange(W - k + 1)[None, :, None, None] + np.arange(k)[None, None, None, :]
    return (rows * W + cols).reshape((H - k + 1) * (W - k + 1), k * k)


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
    """Shared engine: layer sizes, packing, forward / backward / R-operator passes.

    Subclasses define ``_features(X)``: the inputs of the first layer, shape
    ``(n, S, fan_in)`` with ``S`` positions sharing the first layer's weights
    (``S = 1`` for dense input, the patch positions for a convolution). After
    the first layer the ``S`` positions are flattened into the features of the
    next layer.
    """

    # set by subclasses
    _sizes: list[tuple[int, int]]  # (fan_in, fan_out) per layer
    _positions: int

    def _setup(self, X, y, batch_size, weight_decay, activation, n_classes):
        X = as_float_array(X, "X", ndim=2)
        n = X.shape[0]
        if n == 0 or X.shape[1] == 0:
            raise ValueError(f"X: expected at least one row and one column, got {describe(X)}")
        y_arr = np.asarray(y)
        if y_arr.dtype == bool or not np.issubdtype(y_arr.dtype, np.integer):
            raise TypeError(f"y: expected integer class labels, got {describe(y_arr)}")
        if y_arr.shape != (n,):
            raise ValueError(f"y: expected shape ({n},) to match X, got {describe(y_arr)}")
        if y_arr.min() < 0:
            raise ValueError(f"y: expected labels >= 0, got minimum {y_arr.min()}")
        if n_classes is None:
            n_classes = max(2, int(y_arr.max()) + 1)
        c = check_positive_int(n_classes, "n_classes", minimum=2)
        if y_arr.max() >= c:
            raise ValueError(f"y: expected labels in [0, {c - 1}], got maximum {y_arr.max()}")
        b = check_positive_int(batch_size, "batch_size")
        if n % b:
            raise ValueError(
                f"batch_size: expected a divisor of the number of rows {n} (fixed partition), "
                f"got {b}"
            )
        if isinstance(weight_decay, (bool, np.bool_)) or not isinstance(weight_decay, numbers.Real):
            raise TypeError(
                f"weight_decay: expected a real number >= 0, got {describe(weight_decay)}"
            )
        wd = float(weight_decay)
        if not np.isfinite(wd) or wd < 0:
            raise ValueError(f"weight_decay: expected a finite number >= 0, got {wd!r}")
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation: expected 'tanh' or 'softplus', got {describe(activation)}"
            )
        self.X = X.copy()
        self.y = y_arr.astype(np.int64)
        self.batch_size = b
        self.weight_decay = wd
        self.activation = activation
        self.n_classes = c
        for arr in (self.X, self.y):
            arr.setflags(write=False)

    def _finish(self):
        offsets = [0]
        for fin, fout in self._sizes:
            offsets.append(offsets[-1] + fin * fout + fout)
        self._offsets = offsets
        # Rows per block: about _BLOCK_BYTES of temporaries (parameters, gradient,
        # gathered inputs and activations of one row).
        width = self._sizes[0][0] * self._positions + 4 * sum(
            fout * (self._positions if l == 0 else 1) for l, (_, fout) in enumerate(self._sizes)
        )
        per_row = 8 * (3 * offsets[-1] + self.batch_size * width)
        self._block_rows = max(1, _BLOCK_BYTES // per_row)
        feats = self._features(self.X)  # (n, S, fan_in)
        m, b = self.n_batches, self.batch_size
        self._batch_features = np.ascontiguousarray(feats.reshape((m, b) + feats.shape[1:]))
        self._batch_labels = self.y.reshape(m, b)
        self._batch_features.setflags(write=False)

    # --- sizes -------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Number of parameters ``P`` (length of the flat parameter vector)."""
        return self._offsets[-1]

    @property
    def n_batches(self) -> int:
        """Number of batches ``m = n_rows / batch_size``."""
        return self.X.shape[0] // self.batch_size

    @property
    def layer_shapes(self) -> list[tuple[int, int]]:
        """``(fan_in, fan_out)`` of every layer's weight matrix, in order."""
        return list(self._sizes)

    @property
    def batches(self) -> np.ndarray:
        """Row indices of each batch, shape ``(n_batches, batch_size)``."""
        return np.arange(self.X.shape[0]).reshape(self.n_batches, self.batch_size)

    # --- parameters --------------------------------------------------------------------
    def init_params(self, rng=None) -> np.ndarray:
        """Random parameters: weights ``N(0, 1/fan_in)`` (LeCun normal), biases zero.

        Parameters
        ----------
        rng : int or numpy.random.Generator, optional

        Returns
        -------
        ndarray, shape (dim,)
        """
        gen = np.random.default_rng(rng)
        theta = np.zeros(self.dim)
        for l, (fin, fout) in enumerate(self._sizes):
            o = self._offsets[l]
            theta[o:o + fin * fout] = gen.normal(size=fin * fout) / math.sqrt(fin)
        return theta

    def unpack(self, theta) -> list[tuple[np.ndarray, np.ndarray]]:
        """Views ``[(W_1, b_1), …]`` of the layers of ``theta`` (shape ``(..., dim)``).

        ``W_l`` has shape ``(..., fan_in, fan_out)`` and ``b_l`` ``(..., fan_out)``.
        """
        theta = self._check_theta(theta)
        lead = theta.shape[:-1]
        out = []
        for l, (fin, fout) in enumerate(self._sizes):
            o = self._offsets[l]
            W = theta[..., o:o + fin * fout].reshape(lead + (fin, fout))
            out.append((W, theta[..., o + fin * fout:o + fin * fout + fout]))
        return out

    def _layers(self, theta: np.ndarray):
        """Layer views of a C-contiguous stack ``(K, dim)``."""
        K = theta.shape[0]
        Ws, bs = [], []
        for l, (fin, fout) in enumerate(self._sizes):
            o = self._offsets[l]
            Ws.append(theta[:, o:o + fin * fout].reshape(K, fin, fout))
            bs.append(theta[:, o + fin * fout:o + fin * fout + fout])
        return Ws, bs

    # --- validation --------------------------------------------------------------------
    def _check_theta(self, theta, name="theta") -> np.ndarray:
        theta = as_float_array(theta, name, ndim=(1, 2))
        if theta.shape[-1] != self.dim:
            raise ValueError(
                f"{name}: expected shape ({self.dim},) or (K, {self.dim}), got {describe(theta)}"
            )
        return theta

    def _check_index(self, index) -> np.ndarray:
        if isinstance(index, (str, bytes)) or index is None:
            raise TypeError(f"index: expected integer batch indices, got {describe(index)}")
        arr = np.asarray(index)
        if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"index: expected integer batch indices, got {describe(arr)}")
        if arr.ndim > 1:
            raise ValueError(f"index: expected an integer or shape (K,), got {describe(arr)}")
        if arr.size and (arr.min() < 0 or arr.max() >= self.n_batches):
            raise ValueError(
                f"index: expected values in [0, {self.n_batches - 1}], got {describe(arr)}"
            )
        return arr.astype(np.int64)

    def _stack(self, theta, index, extra=None):
        """Broadcast ``theta`` (P,)|(K, P) with ``index`` ()|(K,); return stacks, and if 1-D."""
        theta = self._check_theta(theta)
        index = self._check_index(index)
        single = theta.ndim == 1 and index.ndim == 0
        K = max(theta.shape[0] if theta.ndim == 2 else 1, index.size if index.ndim else 1)
        if theta.ndim == 2 and theta.shape[0] != K or index.ndim and index.size != K:
            raise ValueError(
                f"index: expected one batch index or {theta.shape[0]} (one per row of theta), "
                f"got {describe(index)}"
            )
        theta = np.ascontiguousarray(np.broadcast_to(theta, (K, self.dim)))
        index = np.broadcast_to(index, (K,))
        if extra is not None:
            v = as_float_array(extra, "v", ndim=(1, 2))
            if v.shape[-1] != self.dim or v.ndim == 2 and v.shape[0] != K:
                raise ValueError(
                    f"v: expected shape ({self.dim},) or ({K}, {self.dim}), got {describe(v)}"
                )
            single = single and v.ndim == 1
            extra = np.ascontiguousarray(np.broadcast_to(v, (K, self.dim)))
        return theta, index, extra, single

    # --- the passes --------------------------------------------------------------------
    def _forward(self, Ws, bs, A0):
        """Forward pass on ``A0`` (K or 1, r, S, fan_in).

        Returns the logits, the inputs and pre-activations of every layer, and
        the activations of the hidden layers.
        """
        r, S = A0.shape[1], A0.shape[2]
        a = A0.reshape(A0.shape[0], r * S, A0.shape[3])
        inputs, pre, acts = [a], [], []
        L = len(Ws)
        for l in range(L):
            z = a @ Ws[l]
            z += bs[l][:, None, :]
            pre.append(z)
            if l == L - 1:
                break
            a = _activate(self.activation, z)
            acts.append(a)
            if l == 0:
                a = a.reshape(a.shape[0], r, -1)  # flatten (position, channel)
            inputs.append(a)
        return z, inputs, pre, acts

    def _gather(self, index):
        return self._batch_features[index], self._batch_labels[index]

    def _backprop(self, Ws, inputs, pre, acts, delta, out):
        """Write ``∂/∂θ`` of ``Σ delta · logits`` into ``out`` (K, dim)."""
        K = out.shape[0]
        for l in range(len(Ws) - 1, -1, -1):
            fin, fout = self._sizes[l]
            o = self._offsets[l]
            gW = out[:, o:o + fin * fout].reshape(K, fin, fout)
            np.matmul(np.swapaxes(inputs[l], 1, 2), delta, out=gW)
            np.sum(delta, axis=1, out=out[:, o + fin * fout:o + fin * fout + fout])
            if l > 0:
                dprev = delta @ np.swapaxes(Ws[l], 1, 2)
                delta = _scale_by_derivative(
                    self.activation, dprev.reshape(pre[l - 1].shape), pre[l - 1], acts[l - 1]
                )
        return out

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
        for s, e in self._blocks(theta.shape[0]):  # blocks of rows, each vectorized
            self._gradient_block(theta[s:e], index[s:e], out[s:e])
        return out

    def _gradient_block(self, theta, index, out):
        A0, Y = self._gather(index)
        Ws, bs = self._layers(theta)
        z, inputs, pre, acts = self._forward(Ws, bs, A0)
        p = _softmax(z)
        p[np.arange(p.shape[0])[:, None], np.arange(p.shape[1])[None, :], Y] -= 1.0
        p *= 1.0 / p.shape[1]
        self._backprop(Ws, inputs, pre, acts, p, out)
        if self.weight_decay:
            out += self.weight_decay * theta

    def _hvp(self, theta: np.ndarray, v: np.ndarray, index: np.ndarray) -> np.ndarray:
        """Unchecked Hessian-vector products by the R-operator (forward over reverse)."""
        out = np.empty_like(theta)
        for s, e in self._blocks(theta.shape[0]):
            self._hvp_block(theta[s:e], v[s:e], index[s:e], out[s:e])
        return out

    def _hvp_block(self, theta, v, index, out):
        A0, Y = self._gather(index)
        Ws, bs = self._layers(theta)
        Vs, vbs = self._layers(v)
        z, inputs, pre, acts = self._forward(Ws, bs, A0)
        L = len(Ws)
        # R-forward: R{z_l} = R{a_{l-1}} W_l + a_{l-1} V_l + v_b; R{a_0} = 0.
        Rin = [None]
        Rpre = []
        for l in range(L):
            Rz = inputs[l] @ Vs[l]
            Rz += vbs[l][:, None, :]
            if Rin[l] is not None:
                Rz += Rin[l] @ Ws[l]
            Rpre.append(Rz)
            if l < L - 1:
                Ra = _derivatives(self.activation, pre[l], acts[l]) * Rz
                Rin.append(Ra.reshape(inputs[l + 1].shape))
        # Output: δ = (p − onehot)/r, R{δ} = p ⊙ (R z − ⟨p, R z⟩)/r.
        r = z.shape[1]
        p = _softmax(z)
        Rz = Rpre[-1]
        Rdelta = p * (Rz - (p * Rz).sum(axis=-1, keepdims=True)) / r
        delta = p
        delta[np.arange(p.shape[0])[:, None], np.arange(r)[None, :], Y] -= 1.0
        delta /= r
        K = theta.shape[0]
        for l in range(L - 1, -1, -1):
            fin, fout = self._sizes[l]
            o = self._offsets[l]
            hW = out[:, o:o + fin * fout].reshape(K, fin, fout)
            np.matmul(np.swapaxes(inputs[l], 1, 2), Rdelta, out=hW)
            if Rin[l] is not None:
                hW += np.swapaxes(Rin[l], 1, 2) @ delta
            out[:, o + fin * fout:o + fin * fout + fout] = Rdelta.sum(axis=1)
            if l > 0:
                WT = np.swapaxes(Ws[l], 1, 2)
                dprev = (delta @ WT).reshape(pre[l - 1].shape)
                Rdprev = (Rdelta @ WT + delta @ np.swapaxes(Vs[l], 1, 2)).reshape(pre[l - 1].shape)
                d1, d2 = _derivatives(self.activation, pre[l - 1], acts[l - 1], second=True)
                Rdelta = Rdprev * d1 + dprev * d2 * Rpre[l - 1]
                delta = dprev * d1
        if self.weight_decay:
            out += self.weight_decay * v

    def _batch_loss(self, theta: np.ndarray, index: np.ndarray) -> np.ndarray:
        A0, Y = self._gather(index)
        Ws, bs = self._layers(theta)
        z = self._forward(Ws, bs, A0)[0]
        logp = _log_softmax(z)
        ce = -np.take_along_axis(logp, Y[..., None], axis=-1)[..., 0].mean(axis=1)
        return ce + 0.5 * self.weight_decay * np.einsum("kp,kp->k", theta, theta)

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

    # --- public per-batch API ----------------------------------------------------------------
    def batch_loss(self, theta, index) -> np.ndarray:
        """Batch losses ``f_index(θ)`` (cross-entropy + ``λ/2 ‖θ‖²``).

        Parameters
        ----------
        theta : array_like, shape (dim,) or (K, dim)
        index : int or int array, shape (K,)
            Batch of each row; a single index is used for every row.

        Returns
        -------
        ndarray, shape () or (K,)
        """
        theta, index, _, single = self._stack(theta, index)
        out = self._batch_loss(theta, index)
        return out[0] if single else out

    def gradient(self, theta, index) -> np.ndarray:
        """Exact gradients ``∇f_index(θ)`` by back-propagation, vectorized over the stack.

        Parameters
        ----------
        theta : array_like, shape (dim,) or (K, dim)
        index : int or int array, shape (K,)

        Returns
        -------
        ndarray, shape (dim,) or (K, dim)
        """
        theta, index, _, single = self._stack(theta, index)
        out = self._gradient(theta, index)
        return out[0] if single else out

    def hvp(self, theta, v, index) -> np.ndarray:
        """Exact Hessian-vector products ``∇²f_index(θ) v`` (Pearlmutter's R-operator).

        One forward pass with directional derivatives followed by one
        backward pass (forward-over-reverse), about twice a gradient's cost.

        Parameters
        ----------
        theta : array_like, shape (dim,) or (K, dim)
        v : array_like, shape (dim,) or (K, dim)
        index : int or int array, shape (K,)

        Returns
        -------
        ndarray, shape (dim,) or (K, dim)
        """
        theta, index, v, single = self._stack(theta, index, extra=v)
        out = self._hvp(theta, v, index)
        return out[0] if single else out

    def loss(self, theta) -> np.ndarray:
        """Training loss ``L(θ) = (1/m) Σ_i f_i(θ)``, shape () or (K,).

        Equals ``evaluate(theta).loss + λ/2 ‖θ‖²``.
        """
        theta = self._check_theta(theta)
        ev = self.evaluate(theta)
        return ev.loss + 0.5 * self.weight_decay * np.sum(theta * theta, axis=-1)

    def full_gradient(self, theta) -> np.ndarray:
        """``∇L(θ)``, the mean of the batch gradients, shape (dim,) or (K, dim).

        Computed over the whole training set in chunks of examples.
        """
        theta = self._check_theta(theta)
        t2 = np.ascontiguousarray(np.atleast_2d(theta))
        K = t2.shape[0]
        feats = self._batch_features.reshape((-1,) + self._batch_features.shape[2:])
        n = feats.shape[0]
        Ws, bs = self._layers(t2)
        g = np.zeros_like(t2)
        part = np.empty_like(t2)
        for s, e in self._example_chunks(K, n):  # chunks of examples bound the memory
            z, inputs, pre, acts = self._forward(Ws, bs, feats[None, s:e])
            p = _softmax(z)
            p[:, np.arange(e - s), self.y[s:e]] -= 1.0
            p *= 1.0 / n
            g += self._backprop(Ws, inputs, pre, acts, p, part)
        if self.weight_decay:
            g += self.weight_decay * t2
        return g[0] if theta.ndim == 1 else g

    def _example_chunks(self, K: int, n: int):
        width = max(fout for _, fout in self._sizes) * self._positions
        chunk = max(1, _EVAL_BUDGET // max(1, K * width))
        return [(s, min(n, s + chunk)) for s in range(0, n, chunk)]

    def logits(self, theta, X) -> np.ndarray:
        """Logits of inputs ``X`` (n, n_features), shape (n, n_classes) or (K, n, n_classes)."""
        theta = self._check_theta(theta)
        X = self._check_inputs(X)
        t2 = np.ascontiguousarray(np.atleast_2d(theta))
        Ws, bs = self._layers(t2)
        z = self._forward(Ws, bs, self._features(X)[None])[0]
        return z[0] if theta.ndim == 1 else z

    def evaluate(self, theta, X=None, y=None) -> Evaluation:
        """Mean cross-entropy and accuracy on a data set (default: the training set).

        Parameters
        ----------
        theta : array_like, shape (dim,) or (K, dim)
        X : array_like, shape (n, n_features), optional
        y : int array, shape (n,), optional
            Given together with ``X``.

        Returns
        -------
        Evaluation
            Fields ``loss`` and ``accuracy``, each of shape () or (K,). The
            weight-decay term is not included in ``loss``.
        """
        theta = self._check_theta(theta)
        if (X is None) != (y is None):
            raise ValueError(f"y: expected labels exactly when X is given, got {describe(y)}")
        if X is None:
            feats = self._batch_features.reshape((-1,) + self._batch_features.shape[2:])
            labels = self.y
        else:
            X = self._check_inputs(X)
            labels = np.asarray(y)
            if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
                raise TypeError(f"y: expected integer class labels, got {describe(labels)}")
            if labels.shape != (X.shape[0],):
                raise ValueError(
                    f"y: expected shape ({X.shape[0]},) to match X, got {describe(labels)}"
                )
            if labels.size and (labels.min() < 0 or labels.max() >= self.n_classes):
                raise ValueError(
                    f"y: expected labels in [0, {self.n_classes - 1}], got {describe(labels)}"
                )
            feats = self._features(X)
        t2 = np.ascontiguousarray(np.atleast_2d(theta))
        K, n = t2.shape[0], feats.shape[0]
        Ws, bs = self._layers(t2)
        ce = np.zeros(K)
        correct = np.zeros(K)
        for s, e in self._example_chunks(K, n):  # chunks of examples bound the memory
            z = self._forward(Ws, bs, feats[None, s:e])[0]
            yy = labels[s:e]
            logp = _log_softmax(z)
            ce -= logp[:, np.arange(len(yy)), yy].sum(axis=1)
            correct += (np.argmax(z, axis=-1) == yy).sum(axis=1)
        ev = Evaluation(ce / max(n, 1), correct / max(n, 1))
        if theta.ndim == 1:
            ev = Evaluation(ev.loss[0], ev.accuracy[0])
        return ev

    def _check_inputs(self, X) -> np.ndarray:
        X = as_float_array(X, "X", ndim=2)
        if X.shape[1] != self.X.shape[1]:
            raise ValueError(f"X: expected shape (n, {self.X.shape[1]}), got {describe(X)}")
        return X

    # --- map family -----------------------------------------------------------------------
    def sgd_maps(self, lr, probs=None) -> GradientMaps:
        """The SGD maps ``T_i(θ) = θ − lr ∇f_i(θ)`` of the batches, with Hessian-vector products.

        The result is a :class:`contraction.GradientMaps` usable directly by
        :func:`contraction.forward_iterates`, :func:`contraction.backward_iterates`
        and the other iteration functions; its ``gradient`` and ``hvp`` take
        stacks ``(K, dim)`` and per-row indices ``(K,)``.

        Parameters
        ----------
        lr : float
            Learning rate ``h > 0``.
        probs : array_like, shape (n_batches,), optional
            Batch sampling probabilities (uniform when omitted).
        """
        return GradientMaps(
            self._map_gradient, check_lr(lr), self.n_batches, probs, hvp=self._map_hvp
        )


class MLP(_Network):
    r"""A multilayer perceptron ``x → σ(x W₁ + b₁) → … → z = a W_L + b_L`` (logits).

    Parameters
    ----------
    X : array_like, shape (n, n_features)
        Training inputs.
    y : int array, shape (n,)
        Training labels in ``[0, n_classes)``.
    hidden : int or sequence of int, default 16
        Widths of the hidden layers (``()`` gives multinomial logistic regression).
    batch_size : int, default 16
        ``B``; must divide ``n``. Batch ``i`` is rows ``i·B … (i+1)·B − 1``.
    weight_decay : float, default 0.0
        ``λ`` in ``f_i = CE_i + λ/2 ‖θ‖²`` (whole parameter vector).
    activation : {"tanh", "softplus"}, default "tanh"
    n_classes : int, optional
        Defaults to ``max(y) + 1``.

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

    def __init__(self, X, y, *, hidden=16, batch_size=16, weight_decay=0.0, activation="tanh",
                 n_classes=None):
        self._setup(X, y, batch_size, weight_decay, activation, n_classes)
        widths = (hidden,) if isinstance(hidden, numbers.Integral) else tuple(hidden)
        widths = tuple(check_positive_int(w, "hidden") for w in widths)
        dims = (self.X.shape[1],) + widths + (self.n_classes,)
        self.hidden = widths
        self._sizes = list(zip(dims[:-1], dims[1:]))
        self._positions = 1
        self._finish()

    def _features(self, X):
        return X[:, None, :]

    def __repr__(self) -> str:
        return (f"MLP(sizes={[s[0] for s in self._sizes] + [self.n_classes]}, dim={self.dim}, "
                f"batch_size={self.batch_size}, weight_decay={self.weight_decay})")


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
    y : int array, shape (n,)
    image_shape : (int, int), optional
        Defaults to a square image.
    channels : int, default 4
    kernel_size : int, default 3
    hidden : int or sequence of int, default ()
        Widths of dense hidden layers after the convolution.
    batch_size, weight_decay, activation, n_classes
        As in :class:`MLP`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(8, 36)); y = np.arange(8) % 2
    >>> net = CNN(X, y, channels=2, kernel_size=3, batch_size=4)
    >>> net.layer_shapes
    [(9, 2), (32, 2)]
    >>> theta = rng.normal(size=net.dim)
    >>> bool(np.isfinite(net.batch_loss(theta, 0)))
    True
    """

    def __init__(self, X, y, *, image_shape=None, channels=4, kernel_size=3, hidden=(),
                 batch_size=16, weight_decay=0.0, activation="tanh", n_classes=None):
        Xa = as_float_array(X, "X", ndim=2)
        npix = Xa.shape[1]
        if image_shape is None:
            s = math.isqrt(npix)
            if s * s != npix:
                raise ValueError(
                    f"image_shape: expected (height, width) for {npix} pixels "
                    f"(not a square), got None"
                )
            image_shape = (s, s)
        shape = tuple(int(v) for v in np.atleast_1d(image_shape))
        if len(shape) != 2 or min(shape) < 1 or shape[0] * shape[1] != npix:
            raise ValueError(f"image_shape: expected (height, width) with height·width = {npix}, "
                             f"got {image_shape!r}")
        k = check_positive_int(kernel_size, "kernel_size")
        if k > min(shape):
            raise ValueError(
                f"kernel_size: expected at most {min(shape)} for images {shape}, got {k}"
            )
        ch = check_positive_int(channels, "channels")
        self._setup(Xa, y, batch_size, weight_decay, activation, n_classes)
        widths = (hidden,) if isinstance(hidden, numbers.Integral) else tuple(hidden)
        widths = tuple(check_positive_int(w, "hidden") for w in widths)
        self.image_shape, self.kernel_size, self.channels, self.hidden = shape, k, ch, widths
        self._patches = im2col_indices(shape, k)
        self._positions = self._patches.shape[0]
        dims = (self._positions * ch,) + widths + (self.n_classes,)
        self._sizes = [(k * k, ch)] + list(zip(dims[:-1], dims[1:]))
        self._finish()

    def _features(self, X):
        return X[:, self._patches]  # im2col gather: (n, positions, k²)

    def __repr__(self) -> str:
        return (f"CNN(image_shape={self.image_shape}, channels={self.channels}, "
                f"kernel_size={self.kernel_size}, dim={self.dim}, batch_size={self.batch_size}, "
                f"weight_decay={self.weight_decay})")


def estimate_lipschitz(
    maps, theta, index, rng=None, *, n_iter: int = 100, tol: float = 1e-6
) -> np.ndarray:
    r"""Estimate ``Lip(T_i)`` near ``θ``: ``‖I − h ∇²f_i(θ)‖₂`` by power iteration.

    The Jacobian of ``T_i(θ) = θ − h ∇f_i(θ)`` is ``J = I − h ∇²f_i(θ)``,
    symmetric; power iteration on ``v ↦ J v = v − h · hvp(θ, v, i)`` with the
    estimate ``‖J v‖`` (``v`` a unit vector) converges to the largest
    eigenvalue modulus, which is ``‖J‖₂``. All rows of the stack iterate
    together. The estimate is a lower bound that converges from
    below; values below 1 mean the map contracts near ``θ`` (locally).

    Parameters
    ----------
    maps : GradientMaps
        With ``lr`` and ``hvp`` (for instance ``net.sgd_maps(lr)``).
    theta : array_like, shape (d,) or (K, d)
    index : int or int array, shape (K,)
    rng : int or numpy.random.Generator, optional
        Start vectors.
    n_iter : int, default 100
        Maximum number of iterations (Hessian-vector products per row).
    tol : float, default 1e-6
        Stop when every row's estimate changes by less than ``tol`` relatively.

    Returns
    -------
    ndarray, shape () or (K,)

    Examples
    --------
    >>> import numpy as np
    >>> import contraction as ct
    >>> model = ct.QuadraticModel([np.diag([1.0, 3.0])], [[0.0, 0.0]])
    >>> maps = model.gradient_maps(0.5)            # J = diag(0.5, -0.5)
    >>> bool(np.isclose(estimate_lipschitz(maps, [1.0, 1.0], 0, rng=0), 0.5))
    True
    """
    hvp = getattr(maps, "hvp", None)
    if not callable(hvp):
        raise TypeError(
            f"maps: expected a map family with hvp(theta, v, index), got {describe(maps)}"
        )
    h = check_lr(getattr(maps, "lr", None))
    theta = as_float_array(theta, "theta", ndim=(1, 2))
    single = theta.ndim == 1
    t2 = np.atleast_2d(theta)
    K, d = t2.shape
    index = np.asarray(index)
    if index.dtype == bool or not np.issubdtype(index.dtype, np.integer):
        raise TypeError(f"index: expected integer batch indices, got {describe(index)}")
    if index.ndim > 1 or index.ndim == 1 and index.size != K:
        raise ValueError(f"index: expected an integer or shape ({K},), got {describe(index)}")
    single = single and index.ndim == 0
    if index.ndim == 1 and theta.ndim == 1:
        K = index.size
        t2 = np.broadcast_to(t2, (K, d))
    index = np.broadcast_to(index, (K,))
    n_iter = check_positive_int(n_iter, "n_iter")
    gen = np.random.default_rng(rng)
    v = gen.normal(size=(K, d))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    est = np.zeros(K)
    for _ in range(n_iter):
        Jv = v - h * np.asarray(hvp(t2, v, index), dtype=np.float64)
        norm = np.linalg.norm(Jv, axis=1, keepdims=True)  # ‖J v‖ ≤ ‖J‖ for unit v
        new = norm[:, 0]
        v = Jv / np.where(norm > 0, norm, 1.0)
        done = np.all(np.abs(new - est) <= tol * np.maximum(new, 1e-300))
        est = new
        if done:
            break
    return est[0] if single else est
