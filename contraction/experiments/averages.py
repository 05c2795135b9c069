r"""Seed averages of the network experiment: each method's numbers with their standard errors, and how often
each claim held.

One run of :func:`~contraction.experiments.run_nn_experiment` follows one
batch sequence; what it shows of a method is one draw. :func:`average_runs`
takes the records of runs that differ only in their seed (a seed list, or
the seeds of one cell of a sweep) and gives, per method, the mean and the
standard error ``s / √n`` (``s`` the sample standard deviation, ``ddof = 1``)
over the runs of

* the final test accuracy,
* the loss total variation ``Σ_n |L(x_{n+1}) − L(x_n)|``,
* the final step norm: the mean of the last ``max(5, N // 10)`` step norms,
  as in the run's own summary, and its ratio to forward's in the same run,
* the cost: batch gradients and Hessian-vector products per chain,

with the start's test accuracy and training loss (the operating point both
orders start from), and the fraction of runs in which each claim held.
A run that diverged has no methods to average: it is counted, left out of
the means and counted as a run where no claim held.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from ..core._validation import describe
from .records import METHODS, NNExperimentResult, _final_step_norm
from .summary import _ratio

__all__ = ["MethodAverage", "SeedAverage", "SeedMean", "average_runs"]

# The claims whose frequency over the runs is reported, as named in the runs' summaries.
_CLAIMS = ("backward_step_norms_decay", "backward_loss_smoother", "claim_holds")
# What the averages read of a run's summary and of each method (in the JSON form of the records); the final
# step norm and the start may instead be read from the curves (a results.json written without them).
_SUMMARY_KEYS = ("backward_step_norms_decay", "backward_loss_smoother", "locally_contractive")
_METHOD_KEYS = ("loss_total_variation", "final_test_accuracy", "cost")
# Configuration entries that may differ between the averaged runs.
_SEED_KEYS = ("seed", "spawn_key")


@dataclass(frozen=True)
class SeedMean:
    """A mean over runs with its standard error.

    Attributes
    ----------
    mean : float
        The mean of the values (``nan`` when there are none).
    se : float
        The standard error of that mean, ``s / √n`` with ``s`` the sample
        standard deviation (``ddof = 1``); ``nan`` for fewer than two values.
    n : int
        The number of values averaged.

    Examples
    --------
    >>> m = SeedMean.of([1.0, 2.0, 3.0])
    >>> m.mean == 2.0 and m.n == 3 and abs(m.se - 1 / 3**0.5) < 1e-15
    True
    """

    mean: float
    se: float
    n: int

    @classmethod
    def of(cls, values) -> SeedMean:
        """The mean and standard error of ``values``, leaving out ``nan`` (a run without a comparison).

        Parameters
        ----------
        values : array_like, shape (n,)
            One number per run.

        Returns
        -------
        SeedMean
            The mean, its standard error and the number of values kept.

        Examples
        --------
        >>> SeedMean.of([2.0, float("nan")]).n
        1
        """
        v = np.asarray(values, dtype=np.float64).ravel()
        v = v[~np.isnan(v)]
        if v.size == 0:
            return cls(math.nan, math.nan, 0)
        if (v == v[0]).all():  # equal values (a cost, a ratio to itself): their value, no spread
            return cls(float(v[0]), 0.0 if v.size > 1 else math.nan, int(v.size))
        mean = math.fsum(v) / v.size  # at least two values here, not all equal
        return cls(mean, math.sqrt(math.fsum((v - mean) ** 2) / (v.size - 1) / v.size), int(v.size))

    def to_dict(self) -> dict:
        """The mean as a JSON-ready dict; ``nan`` is ``None``.

        Returns
        -------
        dict
            Keys ``mean``, ``se`` and ``n``.

        Examples
        --------
        >>> SeedMean.of([0.5]).to_dict()
        {'mean': 0.5, 'se': None, 'n': 1}
        """
        return {"mean": _json(self.mean), "se": _json(self.se), "n": self.n}


@dataclass(frozen=True)
class MethodAverage:
    """One training method over the runs: means with standard errors.

    Attributes
    ----------
    name : str
        ``"forward"``, ``"backward"``, ``"windowed"`` or ``"bracket_corrected"``.
    final_test_accuracy : SeedMean
        Test accuracy of the last iterate.
    loss_total_variation : SeedMean
        Total variation of the training-loss curve.
    final_step_norm : SeedMean
        Mean of the last ``max(5, N // 10)`` step norms of each run.
    final_step_norm_over_forward : SeedMean
        That, over forward's in the same run (1 for forward; runs where
        forward's last steps did not move are left out).
    loss_total_variation_over_forward : SeedMean
        Loss total variation over forward's in the same run (runs where
        forward's loss did not change are left out).
    gradient_evals : SeedMean
        Batch gradients per chain.
    hvp_evals : SeedMean
        Hessian-vector products per chain.
    """

    name: str
    final_test_accuracy: SeedMean
    loss_total_variation: SeedMean
    final_step_norm: SeedMean
    final_step_norm_over_forward: SeedMean
    loss_total_variation_over_forward: SeedMean
    gradient_evals: SeedMean
    hvp_evals: SeedMean

    def to_dict(self) -> dict:
        """The averages as a JSON-ready dict.

        Returns
        -------
        dict
            One :meth:`SeedMean.to_dict` per field but ``name``.

        Examples
        --------
        >>> one = SeedMean.of([1.0])
        >>> MethodAverage("forward", *[one] * 7).to_dict()["hvp_evals"]["mean"]
        1.0
        """
        return {name: getattr(self, name).to_dict() for name in self.__dataclass_fields__ if name != "name"}


@dataclass(frozen=True, eq=False)
class SeedAverage:
    """The network experiment averaged over runs that differ only in their seed.

    Attributes
    ----------
    config : Mapping
        The runs' shared configuration (read-only; without ``seed`` and ``spawn_key``).
    seeds : tuple of tuple
        ``(seed, spawn_key)`` of each run, in the order given.
    n_runs : int
        Number of runs.
    n_diverged : int
        Runs that diverged (left out of the means).
    start_test_accuracy : SeedMean
        Test accuracy of the start ``θ_0``, after the warm-up: the operating point.
    start_loss : SeedMean
        Training loss of the start.
    methods : Mapping of str to MethodAverage
        Read-only, in the order of :data:`~contraction.experiments.METHODS`.
    fraction_holding : Mapping of str to float
        Fraction of the runs (diverged ones included) where each claim held:
        ``backward_step_norms_decay`` (backward's last step norms below 10%
        of forward's), ``backward_loss_smoother`` (lower loss total
        variation) and ``claim_holds`` (both).
    fraction_locally_contractive : float
        Fraction of the runs whose largest local Lipschitz estimate is below
        1 (context, not a claim).
    statement : str
        The averages in words, one line per claim saying in how many runs it held.
    """

    config: Mapping
    seeds: tuple
    n_runs: int
    n_diverged: int
    start_test_accuracy: SeedMean
    start_loss: SeedMean
    methods: Mapping[str, MethodAverage]
    fraction_holding: Mapping[str, float]
    fraction_locally_contractive: float
    statement: str

    def __post_init__(self):
        for name in ("config", "methods", "fraction_holding"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    def to_dict(self) -> dict:
        """The averages as a JSON-ready dict.

        Returns
        -------
        dict
            One entry per field; ``seeds`` as ``[seed, spawn_key]`` pairs.

        Examples
        --------
        >>> import contraction.experiments as ex
        >>> runs = [ex.run_nn_experiment(data="synthetic", steps=4, warmup=0, rng=s) for s in (0, 1)]
        >>> d = ex.average_runs(runs).to_dict()
        >>> d["n_runs"], d["seeds"], d["methods"]["backward"]["gradient_evals"]
        (2, [[0, []], [1, []]], {'mean': 10.0, 'se': 0.0, 'n': 2})
        """
        return {
            "config": dict(self.config),
            "seeds": [[seed, list(key)] for seed, key in self.seeds],
            "n_runs": self.n_runs,
            "n_diverged": self.n_diverged,
            "start_test_accuracy": self.start_test_accuracy.to_dict(),
            "start_loss": self.start_loss.to_dict(),
            "methods": {name: m.to_dict() for name, m in self.methods.items()},
            "fraction_holding": dict(self.fraction_holding),
            "fraction_locally_contractive": self.fraction_locally_contractive,
            "statement": self.statement,
        }


def _json(value: float):
    return None if math.isnan(value) else value


def _as_dict(k: int, run) -> dict:
    """Run ``k`` in its JSON form, checked for what the averages read."""
    if isinstance(run, NNExperimentResult):
        return run.to_dict(curves=False)
    if not isinstance(run, Mapping):
        raise TypeError(f"results: expected NNExperimentResult records or their to_dict() forms, got "
                        f"{describe(run)} at position {k}")
    missing = [key for key in ("config", "methods", "summary", "diverged", "claim_holds") if key not in run]
    if not missing:
        missing = [f"summary.{key}" for key in _SUMMARY_KEYS if key not in run["summary"]]
    if not missing and not run["diverged"]:
        methods = {name: run["methods"].get(name, {}) for name in METHODS}
        missing = [f"methods.{name}.{key}" for name, m in methods.items() for key in _METHOD_KEYS if key not in m]
        missing += [f"methods.{name}.final_step_norm" for name, m in methods.items()
                    if "final_step_norm" not in m and "step_norm" not in m]
        if "start" not in run and not {"loss", "test_accuracy"} <= set(methods["forward"]):
            missing.append("start")
    if missing:
        raise ValueError(f"results: expected run records (NNExperimentResult.to_dict()), got one without "
                         f"{missing[0]!r} at position {k}")
    return run


def _check_runs(results) -> list[dict]:
    """The runs as dicts: at least one, one configuration, distinct seeds."""
    if isinstance(results, (str, bytes, Mapping, NNExperimentResult)) or not isinstance(results, Sequence):
        raise TypeError(f"results: expected a sequence of NNExperimentResult records or their to_dict() forms, "
                        f"got {describe(results)}")
    if not results:
        raise ValueError("results: expected at least one run, got an empty sequence")
    runs = [_as_dict(k, run) for k, run in enumerate(results)]
    shared = {key: value for key, value in runs[0]["config"].items() if key not in _SEED_KEYS}
    seen = set()
    for k, run in enumerate(runs):
        config = run["config"]
        for key in sorted(set(shared) | set(config) - set(_SEED_KEYS)):
            if config.get(key) != shared.get(key):
                raise ValueError(f"results: expected runs of one configuration differing only in the seed, got "
                                 f"{key} {shared.get(key)!r} at position 0 and {config.get(key)!r} at position {k}")
        seed = (config.get("seed"), tuple(config.get("spawn_key", ())))
        if seed in seen:
            raise ValueError(f"results: expected runs with distinct seeds, got seed {seed[0]!r}"
                             f"{f' (spawn key {list(seed[1])})' if seed[1] else ''} twice")
        seen.add(seed)
    return runs


def _final(method: dict) -> float:
    """A method's final step norm, recorded or from its step norms (``nan`` for none)."""
    if "final_step_norm" in method:
        return math.nan if method["final_step_norm"] is None else float(method["final_step_norm"])
    return _final_step_norm(method["step_norm"])


def _start(run: dict) -> tuple[float, float]:
    """Test accuracy and training loss of the start of a run that did not diverge."""
    if run.get("start") is not None:
        return float(run["start"]["test_accuracy"]), float(run["start"]["loss"])
    forward = run["methods"]["forward"]
    return float(forward["test_accuracy"][0]), float(forward["loss"][0])


def _method_average(name: str, runs: list[dict]) -> MethodAverage:
    """One method's means over the runs that did not diverge."""
    rows = [(run["methods"][name], run["methods"]["forward"]) for run in runs]
    final = [_final(m) for m, _ in rows]
    fw_final = [_final(f) for _, f in rows]
    return MethodAverage(
        name,
        SeedMean.of([m["final_test_accuracy"] for m, _ in rows]),
        SeedMean.of([m["loss_total_variation"] for m, _ in rows]),
        SeedMean.of(final),
        SeedMean.of([_ratio(a, b) for a, b in zip(final, fw_final, strict=True)]),
        SeedMean.of([_ratio(m["loss_total_variation"], f["loss_total_variation"]) for m, f in rows]),
        SeedMean.of([m["cost"]["gradient"] for m, _ in rows]),
        SeedMean.of([m["cost"]["hvp"] for m, _ in rows]),
    )


def average_runs(results) -> SeedAverage:
    r"""Average the network experiment over runs that differ only in their seed.

    Per method: mean and standard error ``s / √n`` (``ddof = 1``) of the
    final test accuracy, the loss total variation, the final step norm
    (mean of the last ``max(5, N // 10)`` step norms) and its ratio to
    forward's, and the cost; the start's test accuracy and training loss;
    and the fraction of runs where each claim held. Runs that diverged are
    left out of the means and count as runs where no claim held.

    Parameters
    ----------
    results : sequence of NNExperimentResult or dict
        Records of :func:`~contraction.experiments.run_nn_experiment`, or
        their :meth:`~contraction.experiments.NNExperimentResult.to_dict`
        forms (``results.json``; the compact ``to_dict(curves=False)`` is
        enough), all of one configuration but for the seed, with distinct
        seeds.

    Returns
    -------
    SeedAverage
        The averages, the claims' frequencies and a statement in words.

    Raises
    ------
    ValueError
        When ``results`` is empty, mixes configurations or repeats a seed.

    Examples
    --------
    >>> import numpy as np
    >>> import contraction.experiments as ex
    >>> runs = [ex.run_nn_experiment(data="synthetic", steps=6, warmup=0, rng=s) for s in (0, 1)]
    >>> avg = ex.average_runs(runs)
    >>> avg.n_runs, avg.methods["backward"].gradient_evals.mean
    (2, 21.0)
    >>> avg.methods["forward"].final_step_norm_over_forward.mean      # each run's forward over itself
    1.0
    >>> acc = [r.methods["forward"].final_test_accuracy for r in runs]
    >>> m = avg.methods["forward"].final_test_accuracy
    >>> bool(np.isclose(m.mean, np.mean(acc)) and np.isclose(m.se, np.std(acc, ddof=1) / np.sqrt(2)))
    True
    >>> bool(avg.fraction_holding["claim_holds"] == np.mean([r.claim_holds for r in runs]))
    True
    """
    runs = _check_runs(results)
    done = [run for run in runs if not run["diverged"]]
    start = np.array([_start(run) for run in done]).reshape(-1, 2)
    verdicts = {claim: [bool(run["claim_holds"] if claim == "claim_holds" else run["summary"][claim])
                        for run in runs] for claim in _CLAIMS}
    contractive = [bool(run["summary"]["locally_contractive"]) for run in runs]
    config = {key: value for key, value in runs[0]["config"].items() if key not in _SEED_KEYS}
    average = dict(
        config=config,
        seeds=tuple((run["config"].get("seed"), tuple(run["config"].get("spawn_key", ()))) for run in runs),
        n_runs=len(runs),
        n_diverged=len(runs) - len(done),
        start_test_accuracy=SeedMean.of(start[:, 0]),
        start_loss=SeedMean.of(start[:, 1]),
        methods={name: _method_average(name, done) for name in METHODS} if done else {},
        fraction_holding={claim: float(np.mean(v)) for claim, v in verdicts.items()},
        fraction_locally_contractive=float(np.mean(contractive)),
    )
    return SeedAverage(**average, statement=_statement(average, verdicts))


def _count(flags: list[bool]) -> str:
    k, n = sum(flags), len(flags)
    if k == n:
        return f"in every run ({n} of {n})"
    return f"in no run (0 of {n})" if k == 0 else f"in {k} of {n} runs"


def _statement(average: dict, verdicts: dict) -> str:
    """The averages in words: the runs and the start, then one line per claim, then whether both held."""
    n, diverged = average["n_runs"], average["n_diverged"]
    head = f"{n} run{'s' if n > 1 else ''}" + (f", {diverged} diverged (left out of the averages)" if diverged
                                                 else ", none diverged")
    if diverged == n:
        return head + "\nclaims NOT holding in any run: every run diverged, nothing was compared"
    start = average["start_test_accuracy"]
    head += (f"; start (after {average['config'].get('warmup')} warm-up steps): test accuracy {start.mean:.1%}"
             f"{_se(start, True)}, training loss {average['start_loss'].mean:.3g}")
    methods = average["methods"]
    step = methods["backward"].final_step_norm_over_forward
    tv = methods["backward"].loss_total_variation_over_forward
    acc = ", ".join(f"{name} {m.final_test_accuracy.mean:.1%}" for name, m in methods.items())
    lines = [
        head,
        ("forward's last steps did not move: no step-norm comparison" if step.n == 0 else
         f"backward's last step norms are {step.mean:.1%}{_se(step, True)} of forward's")
        + f": below 10% {_count(verdicts['backward_step_norms_decay'])}",
        ("forward's loss did not change: no total-variation comparison" if tv.n == 0 else
         f"backward loss total variation is {tv.mean:.2f}x{_se(tv, False)} forward's")
        + f": smoother {_count(verdicts['backward_loss_smoother'])}",
        f"final test accuracy {acc}",
    ]
    holds = verdicts["claim_holds"]
    last = (f"claims NOT holding in any run (0 of {n})" if not any(holds) else
            ("claims hold " if all(holds) else "claims NOT holding in every run: both hold ") + _count(holds))
    return "\n".join([*lines, last])


def _se(mean: SeedMean, percent: bool) -> str:
    """`` (SE …)`` with two significant digits, or nothing for a single run."""
    if math.isnan(mean.se):
        return ""
    return f" (SE {100 * mean.se:.2g}%)" if percent else f" (SE {mean.se:.2g})"
