"""The comparison of the experiment's methods, in numbers and in words."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .records import ExperimentSummary, MethodResult

__all__ = ["describe_summary", "summarise", "total_variation"]


def total_variation(curve) -> float:
    """Total variation ``Σ_n |L_{n+1} − L_n|`` of a curve.

    Parameters
    ----------
    curve : array_like, shape (n,)
        The values ``L_0, …, L_{n−1}``.

    Returns
    -------
    float
        The sum of the absolute increments (0 for fewer than two values).

    Examples
    --------
    >>> total_variation([0.0, 1.0, 0.5, 0.5]) == 1.5
    True
    """
    c = np.asarray(curve, dtype=np.float64)
    return float(np.abs(np.diff(c)).sum())


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def summarise(methods: Mapping[str, MethodResult], local_lipschitz) -> ExperimentSummary:
    """Compare the four methods: final step norms, loss total variations and local contractivity.

    Parameters
    ----------
    methods : Mapping of str to MethodResult
        With the entries ``forward``, ``backward``, ``windowed`` and ``bracket_corrected``.
    local_lipschitz : array_like, shape (k,)
        Local Lipschitz estimates along the forward run.

    Returns
    -------
    ExperimentSummary
        The ratios, the verdicts and the statement of :func:`describe_summary`.

    Examples
    --------
    >>> import contraction.experiments as ex
    >>> res = ex.run_nn_experiment(data="synthetic", steps=10, warmup=0, rng=0)
    >>> s = summarise(res.methods, res.contractivity.local_lipschitz)
    >>> s.statement == res.summary.statement
    True
    """
    steps = len(methods["forward"].step_norm)
    tail = max(5, steps // 10)
    fw_tail = float(np.mean(methods["forward"].step_norm[-tail:]))
    bw_tail = float(np.mean(methods["backward"].step_norm[-tail:]))
    tv_f = methods["forward"].loss_total_variation
    tv_b = methods["backward"].loss_total_variation
    lips = np.asarray(local_lipschitz, dtype=np.float64)
    numbers = {
        "backward_over_forward_final_step_norm": _ratio(bw_tail, fw_tail),
        "backward_step_norms_decay": bool(bw_tail < 0.1 * fw_tail),
        "backward_over_forward_loss_total_variation": _ratio(tv_b, tv_f),
        "backward_loss_smoother": bool(tv_b < tv_f),
        "windowed_over_forward_loss_total_variation": _ratio(methods["windowed"].loss_total_variation, tv_f),
        "bracket_corrected_over_forward_loss_total_variation":
            _ratio(methods["bracket_corrected"].loss_total_variation, tv_f),
        "max_local_lipschitz": float(lips.max()),
        "locally_contractive": bool(lips.max() < 1.0),
    }
    return ExperimentSummary(**numbers, statement=describe_summary(**numbers))


def describe_summary(*, backward_over_forward_final_step_norm, backward_step_norms_decay,
                     backward_over_forward_loss_total_variation, backward_loss_smoother,
                     windowed_over_forward_loss_total_variation, bracket_corrected_over_forward_loss_total_variation,
                     max_local_lipschitz, locally_contractive) -> str:
    """The comparison in words, saying plainly where a claim does not hold.

    Parameters
    ----------
    backward_over_forward_final_step_norm : float
        Mean of the last step norms, backward over forward.
    backward_step_norms_decay : bool
        Whether that ratio is below 0.1.
    backward_over_forward_loss_total_variation : float
        Loss total variation, backward over forward.
    backward_loss_smoother : bool
        Whether that ratio is below 1.
    windowed_over_forward_loss_total_variation : float
        Loss total variation, anchored window over forward.
    bracket_corrected_over_forward_loss_total_variation : float
        Loss total variation, bracket-corrected over forward.
    max_local_lipschitz : float
        Largest local Lipschitz estimate.
    locally_contractive : bool
        Whether that estimate is below 1.

    Returns
    -------
    str
        Four clauses separated by semicolons.

    Examples
    --------
    >>> text = describe_summary(
    ...     backward_over_forward_final_step_norm=0.02, backward_step_norms_decay=True,
    ...     backward_over_forward_loss_total_variation=0.4, backward_loss_smoother=True,
    ...     windowed_over_forward_loss_total_variation=0.9, bracket_corrected_over_forward_loss_total_variation=1.1,
    ...     max_local_lipschitz=1.02, locally_contractive=False)
    >>> "overshoots" in text and "expand locally" in text
    True
    """
    parts = [
        f"backward step norms decayed to {backward_over_forward_final_step_norm:.1%} of forward's"
        + ("" if backward_step_norms_decay else " (NOT below 10%: the claim does not hold here)"),
        f"backward loss total variation is {backward_over_forward_loss_total_variation:.2f}x forward's"
        + ("" if backward_loss_smoother else " (NOT smoother: the claim does not hold here)"),
        f"windowed / bracket-corrected loss total variation {windowed_over_forward_loss_total_variation:.2f}x / "
        f"{bracket_corrected_over_forward_loss_total_variation:.2f}x forward's"
        + ("" if bracket_corrected_over_forward_loss_total_variation < 1 else
           " (the bracket correction is an O(h^2) expansion: at this learning rate it overshoots)"),
        f"largest local Lipschitz estimate {max_local_lipschitz:.3f}"
        + (" (maps contract locally)" if locally_contractive else
           " (some maps expand locally: outside the strictly contractive regime of the theory)"),
    ]
    return "; ".join(parts)
