r"""Small numpy networks for the neural-network proof of concept (SPEC C13).

Two smooth classifiers with exact gradients and exact Hessian-vector
products, both evaluated on *stacks* of parameter vectors so that the
backward iterates of every horizon ``n`` advance side by side:

* :class:`MLP`: dense layers ``x → σ(x W₁ + b₁) → … → logits``;
* :class:`CNN`: one convolution (``k × k`` kernels, valid padding, stride 1,
  ``channels`` feature maps) on one-channel images, computed as an im2col
  gather of the image patches followed by an einsum/matmul with the kernels,
  then dense layers to the logits.

Modules: :mod:`~contraction.nn.mlp` and :mod:`~contraction.nn.cnn` (the two
networks), :mod:`~contraction.nn.lipschitz` (local Lipschitz estimates),
:mod:`~contraction.nn.datasets` (digits and teacher-student data), and the
private engine (``_network``: checked methods shared by both networks;
``_passes``: forward, back-propagation and R-operator passes;
``_activations``: activations and SciPy's softmax; ``_checks``: sizes refused
before allocating, overflow refused after computing).

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
>>> data = ct.nn.teacher_student_data(n_train=64, n_test=32, rng=0)
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

from ._network import Evaluation
from .cnn import CNN, im2col_indices
from .datasets import Dataset, load_digits_data, teacher_student_data
from .lipschitz import estimate_lipschitz
from .mlp import MLP

__all__ = [
    "CNN",
    "MLP",
    "Dataset",
    "Evaluation",
    "estimate_lipschitz",
    "im2col_indices",
    "load_digits_data",
    "teacher_student_data",
]
