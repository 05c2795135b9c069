"""The comparison of the experiment's methods, in numbers and in words."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from ..core._validation import as_float_array, check_real, describe
from .records import METHODS, ExperimentSummary, MethodResult, _unmet_claims

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
    c = as_float_array(curve, "curve", ndim=1)
    with np.errstate(over="ignore", invalid="ignore"):
        tv = float(np.abs(np.diff(c)).sum())
    if not math.isfinite(tv):
        raise ValueError(f"curve: expected values whose increments sum to a finite number, got {tv}")
    return tv


def _ratio(a: float, b: float) -> float:
    """``a / b``; ``nan`` (no comparison) when ``b`` is 0 or the quotient overflows."""
    if not b > 0:
        return float("nan")
    with np.errstate(over="ignore"):
        q = float(np.float64(a) / np.float64(b))
    return q if math.isfinite(q) else float("nan")


def _check_methods(methods) -> int:
    """The number of steps of the four method records (refusing anything else)."""
    if not isinstance(methods, Mapping) or any(not isinstance(methods.get(n), MethodResult) for n in METHODS):
        raise TypeError(f"methods: expected a mapping of {METHODS} to MethodResult records, got "
                        f"{describe(methods)}")
    lengths = {len(methods[n].step_norm) for n in METHODS}
    if len(lengths) != 1 or 0 in lengths:
        raise ValueError(f"methods: expected the same number (>= 1) of steps for every method, got {sorted(lengths)}")
    return lengths.pop()


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
    _check_methods(methods)
    lips = as_float_array(local_lipschitz, "local_lipschitz", ndim=1)
    if lips.size == 0:
        raise ValueError(f"local_lipschitz: expected at least one estimate, got {describe(lips)}")
    fw_tail = methods["forward"].final_step_norm
    bw_tail = methods["backward"].final_step_norm
    tv_f = methods["forward"].loss_total_variation
    tv_b = methods["backward"].loss_total_variation
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
        Mean of the last step norms, backward over forward (``nan``: no comparison).
    backward_step_norms_decay : bool
        Whether that ratio is below 0.1.
    backward_over_forward_loss_total_variation : float
        Loss total variation, backward over forward (``nan``: no comparison).
    backward_loss_smoother : bool
        Whether that ratio is below 1.
    windowed_over_forward_loss_total_variation : float
        Loss total variation, anchored window over forward (``nan``: no comparison).
    bracket_corrected_over_forward_loss_total_variation : float
        Loss total variation, bracket-corrected over forward (``nan``: no comparison).
    max_local_lipschitz : float
        Largest local Lipschitz estimate.
    locally_contractive : bool
        Whether that estimate is below 1.

    Returns
    -------
    str
        Four clauses separated by semicolons, then a line saying whether the
        experiment's claims (backward step norms settle, backward loss
        smoother) hold; local contractivity is context, not a claim.

    Examples
    --------
    >>> text = describe_summary(
    ...     backward_over_forward_final_step_norm=0.02, backward_step_norms_decay=True,
    ...     backward_over_forward_loss_total_variation=0.4, backward_loss_smoother=True,
    ...     windowed_over_forward_loss_total_variation=0.9, bracket_corrected_over_forward_loss_total_variation=1.1,
    ...     max_local_lipschitz=1.02, locally_contractive=False)
    >>> "overshoots" in text and "expand locally" in text
    True
    >>> text.splitlines()[-1].startswith("claims hold: backward step norms settle")
    True
    """
    ratios = {
        "backward_over_forward_final_step_norm": backward_over_forward_final_step_norm,
        "backward_over_forward_loss_total_variation": backward_over_forward_loss_total_variation,
        "windowed_over_forward_loss_total_variation": windowed_over_forward_loss_total_variation,
        "bracket_corrected_over_forward_loss_total_variation": bracket_corrected_over_forward_loss_total_variation,
    }
    r = {name: _check_ratio(value, name) for name, value in ratios.items()}
    flags = {"backward_step_norms_decay": backward_step_norms_decay,
             "backward_loss_smoother": backward_loss_smoother, "locally_contractive": locally_contractive}
    for name, value in flags.items():
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name}: expected a bool, got {describe(value)}")
    lip = check_real(max_local_lipschitz, "max_local_lipschitz", 0.0)
    step_ratio = r["backward_over_forward_final_step_norm"]
    tv_ratio = r["backward_over_forward_loss_total_variation"]
    windowed = r["windowed_over_forward_loss_total_variation"]
    corrected = r["bracket_corrected_over_forward_loss_total_variation"]
    parts = [
        ("forward's last steps did not move: no step-norm comparison" if math.isnan(step_ratio) else
         f"backward's last step norms are {step_ratio:.1%} of forward's"
         + ("" if backward_step_norms_decay else " (NOT below 10%: the claim does not hold here)")),
        ("forward's loss did not change: no total-variation comparison" if math.isnan(tv_ratio) else
         f"backward loss total variation is {tv_ratio:.2f}x forward's"
         + ("" if backward_loss_smoother else " (NOT smoother: the claim does not hold here)")),
        f"windowed / bracket-corrected loss total variation {_times(windowed)} / {_times(corrected)} forward's"
        + ("" if not corrected >= 1 else
           " (the bracket correction is an O(h^2) expansion: at this learning rate it overshoots)"),
        f"largest local Lipschitz estimate {lip:.3f}"
        + (" (maps contract locally)" if locally_contractive else
           " (some maps expand locally: outside the strictly contractive regime of the theory)"),
    ]
    return "; ".join(parts) + "\n" + _claims_line(_unmet_claims(step_ratio, backward_step_norms_decay, tv_ratio,
                                                                  backward_loss_smoother))


def _claims_line(unmet: tuple[str, ...]) -> str:
    """The statement's last line: whether the claims hold (no semicolon: the clauses before are counted by it)."""
    if not unmet:
        return "claims hold: backward step norms settle (below 10% of forward's) and the backward loss is smoother"
    return f"claim{'s' if len(unmet) > 1 else ''} NOT holding: " + ", and ".join(unmet)


def _diverged_summary(divergence: str) -> ExperimentSummary:
    """The summary of a run that diverged: nothing compared, the statement says where it diverged."""
    nan = float("nan")
    statement = (f"the run diverged: {divergence}\n"
                 f"claims not tested: the run stopped before the methods could be compared")
    return ExperimentSummary(nan, None, nan, None, nan, nan, nan, None, statement)


def _check_ratio(value, name: str) -> float:
    """A ratio: a real number >= 0, or ``nan`` for "no comparison"."""
    if isinstance(value, (float, np.floating)) and math.isnan(value):
        return float("nan")
    return check_real(value, name, 0.0)


def _times(ratio: float) -> str:
    return "n/a" if math.isnan(ratio) else f"{ratio:.2f}x"
