"""The records of the network experiment: configuration, one record per method, the whole result.

Every record is a frozen dataclass with read-only arrays; ``to_dict()``
gives the JSON form written to ``results.json`` (lists and plain numbers).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from ..core._validation import frozen

__all__ = ["METHODS", "Contractivity", "ExperimentConfig", "ExperimentSummary", "MethodResult", "NNExperimentResult"]

#: The training methods of the experiment, in the order they run and are reported.
METHODS = ("forward", "backward", "windowed", "bracket_corrected")


def _final_step_norm(step_norm) -> float:
    """Mean of the last ``max(5, N // 10)`` of ``N`` step norms: where a run has settled, or not (``nan`` for none)."""
    step_norm = np.asarray(step_norm, dtype=np.float64)
    if step_norm.size == 0:
        return math.nan
    return float(np.mean(step_norm[-max(5, step_norm.size // 10):]))


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
            object.__setattr__(self, name, frozen(getattr(self, name)))

    @property
    def final_step_norm(self) -> float:
        """Mean of the last ``max(5, N // 10)`` step norms (what the summary compares; ``nan`` without steps)."""
        return _final_step_norm(self.step_norm)

    def to_dict(self, curves: bool = True) -> dict:
        """The curves and costs as a JSON-ready dict (the trajectory is left out).

        Parameters
        ----------
        curves : bool, default True
            Whether to include the curves (``loss``, ``test_accuracy``,
            ``step_norm``); without them the dict holds the numbers that
            :func:`~contraction.experiments.average_runs` reads.

        Returns
        -------
        dict
            Keys ``loss``, ``test_accuracy``, ``step_norm`` (with ``curves``),
            ``loss_total_variation``, ``final_test_accuracy``,
            ``final_step_norm`` and ``cost`` (``{"gradient": …, "hvp": …}``).

        Examples
        --------
        >>> import numpy as np
        >>> r = MethodResult("forward", np.zeros((3, 2)), [1.0, 0.5, 0.5], [0.1, 0.2, 0.3], [1.0, 0.0],
        ...                  0.5, 0.3, 2, 0)
        >>> r.to_dict()["cost"] == {"gradient": 2, "hvp": 0}
        True
        >>> sorted(r.to_dict(curves=False))
        ['cost', 'final_step_norm', 'final_test_accuracy', 'loss_total_variation']
        """
        out = {
            "loss": self.loss.tolist(),
            "test_accuracy": self.test_accuracy.tolist(),
            "step_norm": self.step_norm.tolist(),
        } if curves else {}
        final = self.final_step_norm
        return {
            **out,
            "loss_total_variation": float(self.loss_total_variation),
            "final_test_accuracy": float(self.final_test_accuracy),
            "final_step_norm": None if math.isnan(final) else final,
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
        object.__setattr__(self, "steps", frozen(self.steps, np.int64))
        object.__setattr__(self, "local_lipschitz", frozen(self.local_lipschitz))

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
    backward_step_norms_decay : bool or None
        Whether that ratio is below 0.1 (a claim of the experiment).
    backward_over_forward_loss_total_variation : float
        Loss total variation, backward over forward; ``nan`` when forward's is 0.
    backward_loss_smoother : bool or None
        Whether that ratio is below 1 (a claim of the experiment).
    windowed_over_forward_loss_total_variation : float
        Loss total variation, anchored window over forward; ``nan`` when forward's is 0.
    bracket_corrected_over_forward_loss_total_variation : float
        Loss total variation, bracket-corrected over forward; ``nan`` when forward's is 0.
    max_local_lipschitz : float
        Largest local Lipschitz estimate along the forward run.
    locally_contractive : bool or None
        Whether that estimate is below 1: context for the claims, not a claim
        (the maps of a network are not all contractive).
    statement : str
        The comparison in words, saying where a claim does not hold, then a
        line saying which claims hold.

    Notes
    -----
    In the summary of a run that diverged every ratio is ``nan``, every
    verdict ``None`` (nothing was compared) and the statement says where the
    run diverged.

    Examples
    --------
    >>> s = ExperimentSummary(0.01, True, 0.5, True, 0.9, 0.8, 1.02, False, "...")
    >>> s.backward_loss_smoother and not s.locally_contractive
    True
    """

    backward_over_forward_final_step_norm: float
    backward_step_norms_decay: bool | None
    backward_over_forward_loss_total_variation: float
    backward_loss_smoother: bool | None
    windowed_over_forward_loss_total_variation: float
    bracket_corrected_over_forward_loss_total_variation: float
    max_local_lipschitz: float
    locally_contractive: bool | None
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


def _unmet_claims(step_ratio: float, decay, tv_ratio: float, smoother) -> tuple[str, ...]:
    """One short sentence per claim of the experiment that does not hold (``None`` verdict: not tested)."""
    unmet = []
    if decay is None:
        unmet.append("backward step norms settling was not tested (the run diverged)")
    elif not decay:
        unmet.append("backward step norms were not compared (forward's last steps did not move)"
                     if math.isnan(step_ratio) else
                     f"backward step norms did not settle (the last ones are {step_ratio:.1%} of forward's, "
                     f"the claim is below 10%)")
    if smoother is None:
        unmet.append("backward loss smoothness was not tested (the run diverged)")
    elif not smoother:
        unmet.append("backward loss smoothness was not compared (forward's loss did not change)"
                     if math.isnan(tv_ratio) else
                     f"backward loss is not smoother (its total variation is {tv_ratio:.2f}x forward's, "
                     f"the claim is below 1x)")
    return tuple(unmet)


@dataclass(frozen=True, eq=False)
class NNExperimentResult:
    """The network experiment: configuration, one record per method, contractivity and summary.

    Attributes
    ----------
    config : ExperimentConfig
        The settings of the run.
    methods : Mapping of str to MethodResult
        Read-only, in the order ``forward``, ``backward``, ``windowed``,
        ``bracket_corrected``; after a divergence only the methods that
        finished before it.
    contractivity : Contractivity
        Local Lipschitz estimates along the forward run (none when the run diverged).
    summary : ExperimentSummary
        The comparison of the methods.
    diverged : bool
        Whether the run stopped because the warm-up or a method diverged: an
        iterate or the loss left the finite range, or the training loss rose
        above ``10**6`` times the untrained network's (see :func:`run_nn_experiment`).
    divergence : str or None
        One sentence: which run diverged, at which step, why, and what to
        change (``None`` when the run did not diverge).
    reused : tuple of str
        The methods loaded from the partial results of an interrupted run
        with the same settings (empty for a fresh run).
    claim_holds : bool
        Whether the experiment's claims hold: backward step norms settle
        (below 10% of forward's) and the backward loss is smoother (lower
        total variation). False when the run diverged. Local contractivity is
        context, not a claim.
    claims_not_holding : tuple of str
        One short sentence per claim that does not hold (or was not tested);
        empty exactly when ``claim_holds``.
    """

    config: ExperimentConfig
    methods: Mapping[str, MethodResult]
    contractivity: Contractivity
    summary: ExperimentSummary
    diverged: bool = False
    divergence: str | None = None
    reused: tuple[str, ...] = ()
    claim_holds: bool = field(init=False)
    claims_not_holding: tuple[str, ...] = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "methods", MappingProxyType(dict(self.methods)))
        object.__setattr__(self, "diverged", bool(self.diverged))
        object.__setattr__(self, "reused", tuple(str(name) for name in self.reused))
        if self.diverged != (self.divergence is not None):
            raise ValueError(f"divergence: expected a message exactly when the run diverged, got "
                             f"{self.divergence!r} with diverged={self.diverged}")
        s = self.summary
        unmet = _unmet_claims(s.backward_over_forward_final_step_norm, s.backward_step_norms_decay,
                              s.backward_over_forward_loss_total_variation, s.backward_loss_smoother)
        object.__setattr__(self, "claims_not_holding", unmet)
        object.__setattr__(self, "claim_holds", not unmet and not self.diverged)

    def to_dict(self, curves: bool = True) -> dict:
        """The result as written to ``results.json``.

        Parameters
        ----------
        curves : bool, default True
            Whether to include each method's curves and the contractivity
            estimates; without them the dict is a compact record of the run
            (what :func:`~contraction.experiments.average_runs` reads, as a
            sweep stores it).

        Returns
        -------
        dict
            Keys ``config``, ``start`` (training loss and test accuracy of
            the start ``θ_0``, ``None`` when the warm-up diverged),
            ``methods`` (name to :meth:`MethodResult.to_dict`),
            ``contractivity`` (with ``curves``), ``summary``, ``diverged``,
            ``divergence``, ``claim_holds``, ``claims_not_holding`` and
            ``reused``.

        Examples
        --------
        >>> import contraction.experiments as ex
        >>> res = ex.run_nn_experiment(data="synthetic", steps=4, warmup=0, rng=0)
        >>> sorted(res.to_dict())[:5] == ["claim_holds", "claims_not_holding", "config", "contractivity", "diverged"]
        True
        >>> res.to_dict()["diverged"], res.to_dict()["divergence"], res.to_dict()["reused"]
        (False, None, [])
        >>> "loss" in res.to_dict(curves=False)["methods"]["forward"]
        False
        """
        first = self.methods.get("forward")  # every method starts at θ_0
        start = None if first is None else {"loss": float(first.loss[0]),
                                            "test_accuracy": float(first.test_accuracy[0])}
        return {
            "config": self.config.to_dict(),
            "start": start,
            "methods": {name: m.to_dict(curves) for name, m in self.methods.items()},
            **({"contractivity": self.contractivity.to_dict()} if curves else {}),
            "summary": self.summary.to_dict(),
            "diverged": self.diverged,
            "divergence": self.divergence,
            "claim_holds": self.claim_holds,
            "claims_not_holding": list(self.claims_not_holding),
            "reused": list(self.reused),
        }

    def __getitem__(self, key):
        """Dict-style access of the former nested-dict result (deprecated)."""
        warnings.warn("indexing the experiment result is deprecated: use its fields (result.methods, "
                      "result.summary, …) or result.to_dict()", DeprecationWarning, stacklevel=2)
        return self.to_dict()[key]
