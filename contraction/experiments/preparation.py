"""The ingredients of the network experiment: data set, network, warm start and batch sequence.

Every random choice comes from one :class:`numpy.random.SeedSequence`, made
from the caller's ``rng``, through five children in a fixed order: the
initialisation, the warm-up batches, the compared batch sequence, the start
vectors of the Lipschitz estimates and the synthetic data. Child ``i`` depends
only on the seed and ``i``, so the same ``rng`` gives the same experiment.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from ..core._validation import (
    as_generator,
    check_choice,
    check_lr,
    check_nonnegative_int,
    check_positive_int,
)
from ..core.iterates import forward_iterates
from ..core.maps import GradientMaps
from ..core.sampling import sample_batches
from ..nn._checks import MAX_ELEMENTS, check_size
from ..nn.cnn import CNN
from ..nn.datasets import Dataset, load_digits_data, teacher_student_data
from ..nn.mlp import MLP

__all__ = ["DATA_SETS", "DEFAULTS", "MODELS", "ExperimentSetup", "build_network", "load_experiment_data",
           "prepare_experiment"]

MODELS = ("mlp", "cnn")
DATA_SETS = ("digits", "synthetic")
#: The default settings of the experiment (read-only), shared by :func:`run_nn_experiment`,
#: :func:`prepare_experiment`, :func:`build_network` and the command line: an MLP of 64 tanh units trained
#: without regularisation, whose warm-up of 2000 forward SGD steps (22 epochs of the digits at h = 0.3 and
#: batches of 16) reaches a training loss near 0.02 and 98-99% test accuracy, so that both orders start
#: from a trained network.
DEFAULTS = MappingProxyType({"model": "mlp", "data": "digits", "steps": 120, "batch_size": 16, "lr": 0.3,
                             "window": 3, "weight_decay": 0.0, "warmup": 2000, "hidden": 64})
# Children of the experiment's SeedSequence, in this order.
_STREAMS = ("init", "warmup", "batches", "probe", "data")
# Most entries of one trajectory, (steps + 1) × dim: each method keeps one, and full
# backward SGD a stack of the same size (128 MiB of float64 each).
_MAX_TRAJECTORY = 2**24


def _seed_sequence(rng) -> np.random.SeedSequence:
    """A fresh :class:`numpy.random.SeedSequence` for ``rng`` (a Generator contributes one draw)."""
    if isinstance(rng, np.random.SeedSequence):  # a copy: spawning never changes the caller's object
        return np.random.SeedSequence(rng.entropy, spawn_key=rng.spawn_key, pool_size=rng.pool_size)
    if isinstance(rng, (np.random.Generator, np.random.BitGenerator)):
        return np.random.SeedSequence(int(as_generator(rng).integers(2**63)))
    as_generator(rng)  # the same errors as every other rng argument
    return np.random.SeedSequence(rng)


def _stream(seq: np.random.SeedSequence, name: str) -> np.random.SeedSequence:
    """The child of ``seq`` for one use (``seq.spawn(5)[i]`` of a fresh ``seq``, without spawning)."""
    return np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, _STREAMS.index(name)),
                                  pool_size=seq.pool_size)


def _renamed_seed(seed, rng, func: str):
    if seed is None:
        return rng
    warnings.warn(f"{func}: seed= is deprecated, use rng=", DeprecationWarning, stacklevel=3)
    if rng is not None:
        raise TypeError("seed: pass rng only (seed is its deprecated name)")
    return seed


def load_experiment_data(data="digits", rng=None, *, seed=None) -> Dataset:
    """The data set of an experiment: scikit-learn's digits or synthetic teacher-student data.

    Parameters
    ----------
    data : {"digits", "synthetic"}, default "digits"
        ``"digits"``: :func:`contraction.nn.load_digits_data` with its fixed
        split (needs scikit-learn; ``rng`` is not used). ``"synthetic"``:
        :func:`contraction.nn.teacher_student_data` with 512 training and 512
        test examples drawn from ``rng``.
    rng : None, int, numpy.random.SeedSequence or numpy.random.Generator, optional
        Source of the synthetic data.
    seed : int, optional
        Deprecated name of ``rng``.

    Returns
    -------
    Dataset
        Training and test parts.

    Examples
    --------
    >>> import numpy as np
    >>> a, b = load_experiment_data("synthetic", rng=3), load_experiment_data("synthetic", rng=3)
    >>> a.X_train.shape == (512, 16) and bool(np.array_equal(a.y_train, b.y_train))
    True
    """
    rng = _renamed_seed(seed, rng, "load_experiment_data")
    check_choice(data, "data", DATA_SETS)
    if data == "digits":
        return load_digits_data()
    return teacher_student_data(n_train=512, n_test=512, rng=rng)


def build_network(model, dataset: Dataset, *, batch_size=DEFAULTS["batch_size"], weight_decay=DEFAULTS["weight_decay"],
                  hidden=DEFAULTS["hidden"]) -> MLP | CNN:
    """The network of an experiment on a data set's training part.

    Parameters
    ----------
    model : {"mlp", "cnn"}
        ``"mlp"``: one hidden layer of width ``hidden``. ``"cnn"``: 4 kernels of
        size 3 × 3 then the logits (needs images: ``dataset.image_shape``).
    dataset : Dataset
        The data; the network trains on ``X_train``, ``y_train``.
    batch_size : int, default 16
        Examples per batch; must divide the number of training examples.
    weight_decay : float, default 0.0
        ``λ`` in ``f_i = CE_i + λ/2 ‖θ‖²``.
    hidden : int, default 64
        MLP hidden width (unused by the CNN).

    Returns
    -------
    MLP or CNN
        The network, with ``dataset.n_classes`` outputs.

    Examples
    --------
    >>> data = load_experiment_data("synthetic", rng=0)
    >>> net = build_network("mlp", data, hidden=8)
    >>> net.layer_shapes == [(16, 8), (8, 4)] and net.n_batches == 32
    True
    """
    check_choice(model, "model", MODELS)
    if not isinstance(dataset, Dataset):
        raise TypeError(f"dataset: expected a contraction.nn.Dataset, got {type(dataset).__name__}")
    if model == "mlp":
        return MLP(dataset.X_train, dataset.y_train, hidden=hidden, batch_size=batch_size,
                   weight_decay=weight_decay, n_classes=dataset.n_classes)
    if dataset.image_shape is None:
        raise ValueError(f"model: 'cnn' needs image data (a data set with image_shape), got {dataset!r}")
    return CNN(dataset.X_train, dataset.y_train, image_shape=dataset.image_shape, channels=4, kernel_size=3,
               batch_size=batch_size, weight_decay=weight_decay, n_classes=dataset.n_classes)


@dataclass(frozen=True, eq=False)
class ExperimentSetup:
    """What every method of the experiment starts from.

    Attributes
    ----------
    dataset : Dataset
        Training and test data.
    network : MLP or CNN
        The network.
    maps : GradientMaps
        Its SGD maps at the experiment's learning rate.
    theta0 : ndarray, shape (dim,)
        The start: the initialisation after ``warmup`` steps of forward SGD.
    batches : ndarray of int, shape (1, steps)
        The batch sequence shared by the compared methods.
    seed : int
        Entropy of the SeedSequence the streams were spawned from.
    spawn_key : tuple of int
        Its spawn key (empty for a plain seed).
    """

    dataset: Dataset
    network: MLP | CNN
    maps: GradientMaps
    theta0: np.ndarray
    batches: np.ndarray
    seed: int
    spawn_key: tuple[int, ...] = ()

    def __post_init__(self):
        for name in ("theta0", "batches"):
            arr = np.array(getattr(self, name), copy=True)
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)


def _build(model, data, *, steps, batch_size, lr, weight_decay, warmup, hidden, seq):
    """Validated data set, network and SGD maps (no warm-up yet); sizes refused before any allocation."""
    steps = check_positive_int(steps, "steps")
    warmup = check_nonnegative_int(warmup, "warmup")
    lr = check_lr(lr)
    check_choice(model, "model", MODELS)
    check_choice(data, "data", DATA_SETS)
    check_positive_int(hidden, "hidden")
    check_size(warmup, "warmup", "warm-up steps (one batch index each)", MAX_ELEMENTS)
    dataset = load_experiment_data(data, rng=_stream(seq, "data"))
    net = build_network(model, dataset, batch_size=batch_size, weight_decay=weight_decay, hidden=hidden)
    check_size((steps + 1) * net.dim, "steps", f"trajectory entries ((steps + 1) × dim {net.dim})",
               _MAX_TRAJECTORY)
    return dataset, net, net.sgd_maps(lr)


def _initial_point(net, seq) -> np.ndarray:
    """The initialisation, before any warm-up."""
    return net.init_params(_stream(seq, "init"))


def _warmup_batches(net, warmup: int, seq) -> np.ndarray:
    """The batch sequence of the warm-up, shape ``(1, warmup)``."""
    return sample_batches(net.n_batches, warmup, rng=_stream(seq, "warmup"))


def _setup(dataset, net, maps, theta0, *, steps, seq) -> ExperimentSetup:
    """The experiment's ingredients from its start ``theta0``, with the compared batch sequence."""
    batches = sample_batches(net.n_batches, steps, rng=_stream(seq, "batches"))
    return ExperimentSetup(dataset, net, maps, theta0, batches, seed=seq.entropy, spawn_key=tuple(seq.spawn_key))


def _warm_start(dataset, net, maps, *, steps, warmup, seq) -> ExperimentSetup:
    """The warm-up from the initialisation, and the compared batch sequence."""
    theta0 = _initial_point(net, seq)
    if warmup:
        theta0 = forward_iterates(maps, theta0, _warmup_batches(net, warmup, seq), save_steps=[warmup])[0, 0]
    return _setup(dataset, net, maps, theta0, steps=steps, seq=seq)


def prepare_experiment(model=DEFAULTS["model"], data=DEFAULTS["data"], *, steps=DEFAULTS["steps"],
                       batch_size=DEFAULTS["batch_size"], lr=DEFAULTS["lr"], weight_decay=DEFAULTS["weight_decay"],
                       warmup=DEFAULTS["warmup"], hidden=DEFAULTS["hidden"], rng=None) -> ExperimentSetup:
    """Data, network, SGD maps, warm start and batch sequence of one experiment.

    The start ``θ_0`` is the LeCun-normal initialisation moved by ``warmup``
    steps of forward SGD (by default to a trained network: see
    :data:`DEFAULTS`); the compared runs then share one i.i.d. batch sequence.

    Parameters
    ----------
    model : {"mlp", "cnn"}, default "mlp"
        The network, as in :func:`build_network`.
    data : {"digits", "synthetic"}, default "digits"
        The data set, as in :func:`load_experiment_data`.
    steps : int, default 120
        Length of the batch sequence.
    batch_size : int, default 16
        Examples per batch.
    lr : float, default 0.3
        Constant learning rate ``h``.
    weight_decay : float, default 0.0
        ``λ`` in ``f_i = CE_i + λ/2 ‖θ‖²``.
    warmup : int, default 2000
        Forward SGD steps before the comparison (0 for none).
    hidden : int, default 64
        MLP hidden width.
    rng : None, int, numpy.random.SeedSequence or numpy.random.Generator, optional
        Source of every random choice (see the module notes).

    Returns
    -------
    ExperimentSetup
        The ingredients, with the seed they came from.

    Examples
    --------
    >>> import numpy as np
    >>> a = prepare_experiment(data="synthetic", steps=5, warmup=10, rng=1)
    >>> b = prepare_experiment(data="synthetic", steps=5, warmup=10, rng=1)
    >>> a.batches.shape == (1, 5) and bool(np.array_equal(a.theta0, b.theta0))
    True
    """
    seq = _seed_sequence(rng)
    dataset, net, maps = _build(model, data, steps=steps, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                                warmup=warmup, hidden=hidden, seq=seq)
    return _warm_start(dataset, net, maps, steps=int(steps), warmup=int(warmup), seq=seq)
