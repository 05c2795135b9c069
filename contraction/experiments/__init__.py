"""Neural-network proof of concept (SPEC C13): forward, backward, windowed and corrected SGD.

:func:`run_nn_experiment` trains a small numpy MLP or CNN with constant
learning rate and small batches, from one start and one batch sequence, with
four methods (``forward``, ``backward``, ``windowed``,
``bracket_corrected``), and returns an :class:`NNExperimentResult` record.

The theory speaks of contractive regions: the start ``θ_0`` is reached by a
warm-up of forward SGD (by default to a trained network, see
:data:`DEFAULTS`: at least 95% test accuracy on the digits, without weight
decay), and the local Lipschitz constants ``‖I − h ∇²f_{ξ_n}(θ_n)‖₂`` along
the forward run are reported beside the results. The claims are that
backward step norms settle and that the backward loss is smoother; the
record says whether they hold (``claim_holds``, ``claims_not_holding``);
at the default, trained, start the second holds and the first does not
(see :func:`run_nn_experiment`). A run whose warm-up or method
diverges (non-finite iterates, or a loss beyond ``10**6`` times the untrained
network's) stops there and is returned with ``diverged=True`` and a sentence
saying where and what to change. Results are written atomically; an
interrupted run resumes without redoing finished methods (``reused`` names
them), a finished run removes its partial results, and one output folder is
used by one run at a time (a second run on it is refused at once).

Modules, one job each:

* :mod:`~contraction.experiments.preparation`: data set, network, warm start
  and batch sequence (:func:`prepare_experiment`, also used by the C13 check);
* :mod:`~contraction.experiments.runner`: running the methods, returning the record;
* :mod:`~contraction.experiments.records`: the records and their JSON form;
* :mod:`~contraction.experiments.summary`: the comparison in numbers and words;
* :mod:`~contraction.experiments.averages`: runs of several seeds averaged
  (:func:`average_runs`: means, standard errors, how often each claim held);
* ``_divergence``: when a run has diverged, at which step, and what to change;
* ``_storage``: the held output folder, resumable per-method partial results
  and ``results.json``.

Drawing the results is the face's job (:mod:`contraction.figures`).
"""

from .averages import MethodAverage, SeedAverage, SeedMean, average_runs
from .preparation import (
    DATA_SETS,
    DEFAULTS,
    MODELS,
    ExperimentSetup,
    build_network,
    load_experiment_data,
    prepare_experiment,
)
from .records import METHODS, Contractivity, ExperimentConfig, ExperimentSummary, MethodResult, NNExperimentResult
from .runner import run_nn_experiment
from .summary import describe_summary, summarise, total_variation

__all__ = [
    "DATA_SETS",
    "DEFAULTS",
    "METHODS",
    "MODELS",
    "Contractivity",
    "ExperimentConfig",
    "ExperimentSetup",
    "ExperimentSummary",
    "MethodAverage",
    "MethodResult",
    "NNExperimentResult",
    "SeedAverage",
    "SeedMean",
    "average_runs",
    "build_network",
    "describe_summary",
    "load_experiment_data",
    "prepare_experiment",
    "run_nn_experiment",
    "summarise",
    "total_variation",
]
