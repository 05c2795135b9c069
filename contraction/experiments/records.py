"""The records of the network experiment: configuration, one record per method, the whole result.

Every record is a frozen dataclass with read-only arrays; ``to_dict()``
gives the JSON form written to ``results.json`` (lists and plain numbers).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

__all__ = ["METHODS", "Contractivity", "ExperimentConfig", "ExperimentSummary", "MethodResult", "NNExperimentResult"]

#: The training methods of the experiment, in the order they run and are reported.
METHODS = ("forward", "backward", "windowed", "bracket_corrected")


def _readonly(values, dtype=np.float64) -> np.ndarray:
    arr = np.array(values, dtype=dtype, copy=True)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True)
class ExperimentConfig:
    """The settings of one run of the network experiment.

    Attributes
    ----------
    model : str
        ``"mlp"`` or ``"cnn"``.
    data : str
        ``"digits"`` or ``"synthetic"``.
    steps : int
        Length ``N`` of the compared runs.
    batch_size : int
        Examples per batch.
    lr : float
        Constant learning rate ``h``.
    window : int
        Window of the anchored and corrected methods.
    seed : int
        Entropy of the :class:`numpy.random.SeedSequence` every stream was spawned from.
    weight_decay : float
        ``λ`` in ``f_i = CE_i + λ/2 ‖θ‖²``.
    warmup : int
        Forward SGD steps before the comparison.
    hidden : int
        MLP hidden width.
    spawn_key : tuple of int
        Spawn key of that SeedSequence (empty for a plain seed).
    """

    model: str
    data: str
    steps: int
    batch_size: int
    lr: float
    window: int
    seed: int
    weight_decay: float
    warmup: int
    hidden: int
    spawn_key: tuple[int, ...] = ()

    def to_dict(self) -> dict:
        """The configuration as a JSON-ready dict (``spawn_key`` only when not empty).

        Returns
        -------
        dict
            One entry per field.

        Examples
        --------
        >>> cfg = ExperimentConfig("mlp", "synthetic", 20, 16, 0.3, 3, 0, 0.05, 10, 16)
        >>> cfg.to_dict()["steps"] == 20 and "spawn_key" not in cfg.to_dict()
        True
        """
        out = {"model": self.model, "data": self.data, "steps": self.steps, "batch_size": self.batch_size,
               "lr": self.lr, "window": self.window, "seed": self.seed, "weight_decay": self.weight_decay,
               "warmup": self.warmup, "hidden": self.hidden}
        if self.spawn_key:
            out["spawn_key"] = list(self.spawn_key)
        return out


@dataclass(frozen=True, eq=False)
class MethodResult:
    """What one training method did on the shared batch sequence.

    Attributes
    ----------
    name : str
        ``"forward"``, ``"backward"``, ``"windowed"`` or ``"bracket_corrected"``.
    trajectory : ndarray, shape (steps + 1, dim)
        The iterates ``x_0 = θ_0, x_1, …, x_N`` (not written to JSON).
    loss : ndarray, shape (steps + 1,)
        Mean cross-entropy of ``x_n`` on the training set (without the weight-decay term).
    test_accuracy : ndarray, shape (steps + 1,)
        Accuracy of ``x_n`` on the test set.
    step_norm : ndarray, shape (steps,)
        ``‖x_{n+1} − x_n‖``.
    loss_total_variation : float
        ``Σ_n |L(x_{n+1}) − L(x_n)|``.
    final_test_accuracy : float
        Test accuracy of ``x_N``.
    gradient_evals : int
        Batch gradients computed (per chain).
    hvp_evals : int
        Hessian-vector products computed (per chain).
    """

    name: str
    trajectory: np.ndarray
    loss: np.ndarray
    test_accuracy: np.ndarray
    step_norm: np.ndarray
    loss_total_variation: float
    final_test_accuracy: float
    gradient_evals: int
    hvp_evals: int

    def __post_init__(self):
        for name in ("trajectory", "loss", "test_accuracy", "step_norm"):
            object.__setattr__(self, name, _readonly(getattr(self, name)))

    def to_dict(self) -> dict:
        """The curves and costs as a JSON-ready dict (the trajectory is left out).

        Returns
        -------
        dict
            Keys ``loss``, ``test_accuracy``, ``step_norm``, ``loss_total_variation``,
            ``final_test_accuracy`` and ``cost`` (``{"gradient": …, "hvp": …}``).

        Examples
        --------
        >>> import numpy as np
        >>> r = MethodResult("forward", np.zeros((3, 2)), [1.0, 0.5, 0.5], [0.1, 0.2, 0.3], [1.0, 0.0],
        ...                  0.5, 0.3, 2, 0)
        >>> r.to_dict()["cost"] == {"gradient": 2, "hvp": 0}
        True
        """
        return {
            "loss": self.loss.tolist(),
            "test_accuracy": self.test_accuracy.tolist(),
            "step_norm": self.step_norm.tolist(),
            "loss_total_variation": float(self.loss_total_variation),
            "final_test_accuracy": float(self.final_test_accuracy),
            "cost": {"gradient": int(self.gradient_evals), "hvp": int(self.hvp_evals)},
        }


@dataclass(frozen=True, eq=False)
class Contractivity:
    """Local Lipschitz estimates ``‖I − h ∇²f_{ξ_{n+1}}(x_n)‖₂`` along the forward run.

    Attributes
    ----------
    steps : ndarray of int, shape (k,)
        The probed steps ``n``.
    local_lipschitz : ndarray, shape (k,)
        Power-iteration estimates (lower bounds) at those steps.
    note : str
        What the numbers are.
    """

    steps: np.ndarray
    local_lipschitz: np.ndarray
    note: str = "power-iteration estimates of ||I - h Hess f_xi(theta)||_2 at forward iterates"

    def __post_init__(self):
        object.__setattr__(self, "steps", _readonly(self.steps, np.int64))
        object.__setattr__(self, "local_lipschitz", _readonly(self.local_lipschitz))

    def to_dict(self) -> dict:
        """The estimates as a JSON-ready dict.

        Returns
        -------
        dict
            Keys ``steps``, ``local_lipschitz`` and ``note``.

        Examples
        --------
        >>> Contractivity([0, 5], [0.9, 1.01]).to_dict()["steps"] == [0, 5]
        True
        """
        return {"steps": self.steps.tolist(), "local_lipschitz": self.local_lipschitz.tolist(), "note": self.note}


@dataclass(frozen=True)
class ExperimentSummary:
    """How the methods compare, with a plain-language statement of which claims held.

    Attributes
    ----------
    backward_over_forward_final_step_norm : float
        Mean of the last step norms, backward over forward; ``nan`` when
        forward's last steps are 0 (no comparison; ``null`` in JSON).
    backward_step_norms_decay : bool
        Whether that ratio is below 0.1.
    backward_over_forward_loss_total_variation : float
        Loss total variation, backward over forward; ``nan`` when forward's is 0.
    backward_loss_smoother : bool
        Whether that ratio is below 1.
    windowed_over_forward_loss_total_variation : float
        Loss total variation, anchored window over forward; ``nan`` when forward's is 0.
    bracket_corrected_over_forward_loss_total_variation : float
        Loss total variation, bracket-corrected over forward; ``nan`` when forward's is 0.
    max_local_lipschitz : float
        Largest local Lipschitz estimate along the forward run.
    locally_contractive : bool
        Whether that estimate is below 1.
    statement : str
        The comparison in words, saying where a claim does not hold.

    Examples
    --------
    >>> s = ExperimentSummary(0.01, True, 0.5, True, 0.9, 0.8, 1.02, False, "...")
    >>> s.backward_loss_smoother and not s.locally_contractive
    True
    """

    backward_over_forward_final_step_norm: float
    backward_step_norms_decay: bool
    backward_over_forward_loss_total_variation: float
    backward_loss_smoother: bool
    windowed_over_forward_loss_total_variation: float
    bracket_corrected_over_forward_loss_total_variation: float
    max_local_lipschitz: float
    locally_contractive: bool
    statement: str

    def to_dict(self) -> dict:
        """The summary as a JSON-ready dict.

        Returns
        -------
        dict
            One entry per field; a ratio without comparison (``nan``) is ``None``.

        Examples
        --------
        >>> s = ExperimentSummary(0.01, True, float("nan"), False, 0.9, 0.8, 1.02, False, "...").to_dict()
        >>> s["backward_step_norms_decay"] and s["backward_over_forward_loss_total_variation"] is None
        True
        """
        out = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            out[name] = None if isinstance(value, float) and value != value else value
        return out


@dataclass(frozen=True, eq=False)
class NNExperimentResult:
    """The network experiment: configuration, one record per method, contractivity and summary.

    Attributes
    ----------
    config : ExperimentConfig
        The settings of the run.
    methods : Mapping of str to MethodResult
        Read-only, in the order ``forward``, ``backward``, ``windowed``, ``bracket_corrected``.
    contractivity : Contractivity
        Local Lipschitz estimates along the forward run.
    summary : ExperimentSummary
        The comparison of the methods.
    """

    config: ExperimentConfig
    methods: Mapping[str, MethodResult]
    contractivity: Contractivity
    summary: ExperimentSummary

    def __post_init__(self):
        object.__setattr__(self, "methods", MappingProxyType(dict(self.methods)))

    def to_dict(self) -> dict:
        """The result as written to ``results.json``.

        Returns
        -------
        dict
            Keys ``config``, ``methods`` (name to :meth:`MethodResult.to_dict`),
            ``contractivity`` and ``summary``.

        Examples
        --------
        >>> import contraction.experiments as ex
        >>> res = ex.run_nn_experiment(data="synthetic", steps=4, warmup=0, rng=0)
        >>> sorted(res.to_dict()) == ["config", "contractivity", "methods", "summary"]
        True
        """
        return {
            "config": self.config.to_dict(),
            "methods": {name: m.to_dict() for name, m in self.methods.items()},
            "contractivity": self.contractivity.to_dict(),
            "summary": self.summary.to_dict(),
        }

    def __getitem__(self, key):
        """Dict-style access of the former nested-dict result (deprecated)."""
        warnings.warn("indexing the experiment result is deprecated: use its fields (result.methods, "
                      "result.summary, …) or result.to_dict()", DeprecationWarning, stacklevel=2)
        return self.to_dict()[key]
