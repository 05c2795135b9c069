r"""The numerical passes of a network on a stack of parameter vectors.

All functions take unchecked, C-contiguous stacks: parameters ``theta`` of
shape ``(K, dim)``, the gathered inputs ``A0`` of shape ``(K or 1, r, S,
fan_in)`` (``r`` examples, ``S`` positions sharing the first layer's weights)
and integer labels ``Y`` of shape ``(K or 1, r)``. The network classes check
their arguments and split large stacks into blocks before calling them.

* :func:`forward`: logits and the intermediate values of every layer;
* :func:`backprop`: ``∂/∂θ`` of ``Σ delta · logits`` (reverse mode);
* :func:`gradient_into`: the batch gradients of the cross-entropy (+ decay);
* :func:`hvp_into`: Pearlmutter's R-operator, forward over reverse, for exact
  Hessian-vector products;
* :func:`cross_entropy`, :func:`mean_cross_entropy`: the softmax
  cross-entropy of each row, summed or averaged over the examples.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._activations import (
    activate,
    first_derivative,
    log_softmax_last,
    scale_by_derivative,
    second_derivatives,
    softmax_last,
)

__all__ = ["Layout", "backprop", "cross_entropy", "forward", "gradient_into", "hvp_into", "mean_cross_entropy"]


@dataclass(frozen=True)
class Layout:
    """Sizes of the layers and where each sits in the flat parameter vector.

    For each layer in order its weight matrix ``W`` (``fan_in × fan_out``, row
    major) is followed by its bias ``b``.
    """

    sizes: tuple[tuple[int, int], ...]
    activation: str
    offsets: tuple[int, ...] = field(init=False)
    _slices: tuple[tuple[slice, slice], ...] = field(init=False, repr=False)

    def __post_init__(self):
        offsets, slices = [0], []
        for fin, fout in self.sizes:
            o = offsets[-1]
            slices.append((slice(o, o + fin * fout), slice(o + fin * fout, o + fin * fout + fout)))
            offsets.append(o + fin * fout + fout)
        object.__setattr__(self, "offsets", tuple(offsets))
        object.__setattr__(self, "_slices", tuple(slices))

    @property
    def dim(self) -> int:
        """Length of the flat parameter vector."""
        return self.offsets[-1]

    def weight_slice(self, layer: int) -> slice:
        """Position of layer ``layer``'s weights in the flat vector."""
        return self._slices[layer][0]

    def bias_slice(self, layer: int) -> slice:
        """Position of layer ``layer``'s bias in the flat vector."""
        return self._slices[layer][1]

    def layers(self, theta: np.ndarray):
        """Views ``(Ws, bs)`` of the layers of a stack ``theta`` of shape ``(..., dim)``."""
        lead = theta.shape[:-1]
        Ws = [theta[..., w].reshape(lead + size) for (w, _), size in zip(self._slices, self.sizes, strict=True)]
        bs = [theta[..., b] for _, b in self._slices]
        return Ws, bs


def forward(layout: Layout, Ws, bs, A0: np.ndarray):
    """Forward pass on ``A0`` (K or 1, r, S, fan_in).

    Returns the logits ``(K, r, n_classes)``, the inputs and pre-activations of
    every layer, and the activations of the hidden layers. After the first
    layer the ``S`` positions are flattened into the features of the next one.
    """
    r, S = A0.shape[1], A0.shape[2]
    a = A0.reshape(A0.shape[0], r * S, A0.shape[3])
    inputs, pre, acts = [a], [], []
    L = len(Ws)
    for layer in range(L):
        z = a @ Ws[layer]
        z += bs[layer][:, None, :]
        pre.append(z)
        if layer == L - 1:
            break
        a = activate(layout.activation, z)
        acts.append(a)
        if layer == 0:
            a = a.reshape(a.shape[0], r, S * a.shape[2])  # flatten (position, channel); r may be 0
        inputs.append(a)
    return z, inputs, pre, acts


def backprop(layout: Layout, Ws, inputs, pre, acts, delta: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Write ``∂/∂θ`` of ``Σ delta · logits`` into ``out`` (K, dim) and return it."""
    K = out.shape[0]
    for layer in range(len(Ws) - 1, -1, -1):
        fin, fout = layout.sizes[layer]
        gW = out[:, layout.weight_slice(layer)].reshape(K, fin, fout)
        np.matmul(np.swapaxes(inputs[layer], 1, 2), delta, out=gW)
        np.sum(delta, axis=1, out=out[:, layout.bias_slice(layer)])
        if layer > 0:
            dprev = delta @ np.swapaxes(Ws[layer], 1, 2)
            delta = scale_by_derivative(layout.activation, dprev.reshape(pre[layer - 1].shape), pre[layer - 1],
                                        acts[layer - 1])
    return out


def _output_delta(z: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """``(softmax(z) − onehot(Y)) / r``: the derivative of the mean cross-entropy in the logits."""
    p = softmax_last(z)
    p[np.arange(p.shape[0])[:, None], np.arange(p.shape[1])[None, :], Y] -= 1.0
    p *= 1.0 / p.shape[1]
    return p


def gradient_into(layout: Layout, weight_decay: float, A0, Y, theta: np.ndarray, out: np.ndarray) -> None:
    """Batch gradients of ``CE + λ/2 ‖θ‖²`` for a stack ``theta`` (K, dim), written into ``out``."""
    Ws, bs = layout.layers(theta)
    z, inputs, pre, acts = forward(layout, Ws, bs, A0)
    backprop(layout, Ws, inputs, pre, acts, _output_delta(z, Y), out)
    if weight_decay:
        out += weight_decay * theta


def hvp_into(layout: Layout, weight_decay: float, A0, Y, theta: np.ndarray, v: np.ndarray,
             out: np.ndarray) -> None:
    """Hessian-vector products ``∇²f(θ) v`` by the R-operator (forward over reverse), into ``out``."""
    Ws, bs = layout.layers(theta)
    Vs, vbs = layout.layers(v)
    z, inputs, pre, acts = forward(layout, Ws, bs, A0)
    L = len(Ws)
    act = layout.activation
    # R-forward: R{z_l} = R{a_{l-1}} W_l + a_{l-1} V_l + v_b; R{a_0} = 0.
    Rin = [None]
    Rpre = []
    for layer in range(L):
        Rz = inputs[layer] @ Vs[layer]
        Rz += vbs[layer][:, None, :]
        if Rin[layer] is not None:
            Rz += Rin[layer] @ Ws[layer]
        Rpre.append(Rz)
        if layer < L - 1:
            Ra = first_derivative(act, pre[layer], acts[layer]) * Rz
            Rin.append(Ra.reshape(inputs[layer + 1].shape))
    # Output: δ = (p − onehot)/r, R{δ} = p ⊙ (R z − ⟨p, R z⟩)/r.
    r = z.shape[1]
    p = softmax_last(z)
    Rz = Rpre[-1]
    Rdelta = p * (Rz - (p * Rz).sum(axis=-1, keepdims=True)) / r
    delta = p
    delta[np.arange(p.shape[0])[:, None], np.arange(r)[None, :], Y] -= 1.0
    delta /= r
    K = theta.shape[0]
    for layer in range(L - 1, -1, -1):
        fin, fout = layout.sizes[layer]
        hW = out[:, layout.weight_slice(layer)].reshape(K, fin, fout)
        np.matmul(np.swapaxes(inputs[layer], 1, 2), Rdelta, out=hW)
        if Rin[layer] is not None:
            hW += np.swapaxes(Rin[layer], 1, 2) @ delta
        out[:, layout.bias_slice(layer)] = Rdelta.sum(axis=1)
        if layer > 0:
            WT = np.swapaxes(Ws[layer], 1, 2)
            dprev = (delta @ WT).reshape(pre[layer - 1].shape)
            Rdprev = (Rdelta @ WT + delta @ np.swapaxes(Vs[layer], 1, 2)).reshape(pre[layer - 1].shape)
            d1, d2 = second_derivatives(act, pre[layer - 1], acts[layer - 1])
            Rdelta = Rdprev * d1 + dprev * d2 * Rpre[layer - 1]
            delta = dprev * d1
    if weight_decay:
        out += weight_decay * v


def cross_entropy(z: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Summed softmax cross-entropy over the examples of each row: logits (K, r, c), labels (r,)."""
    logp = log_softmax_last(z)
    return -logp[:, np.arange(Y.shape[-1]), Y].sum(axis=1)


def mean_cross_entropy(z: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Mean softmax cross-entropy of each row: logits (K, r, c), labels (K, r)."""
    logp = log_softmax_last(z)
    return -np.take_along_axis(logp, Y[..., None], axis=-1)[..., 0].mean(axis=1)
