"""C10 Order symmetry in expectation and the implicit regulariser h/(4m).

Hypotheses: m smooth batch losses, L = (1/m) Σ_k f_k, one epoch of forward
SGD in a uniformly random order σ (each of the m! orders equally likely).

Claim: the bracket term Σ_{i<j} [g_{σ_i}, g_{σ_j}] has mean zero, and the mean
epoch follows gradient flow for time m h on L + λ Σ_k ‖∇f_k‖² up to O(h³),
with λ = h/(4m) (Smith, Dherin, Barrett and De, 2021).

Method.
* Symbolic: the exact h² coefficients (elementary differentials, rational
  coefficients) of the forward epoch are averaged over all orders; the mean
  bracket coefficients must vanish and sympy solves the h² matching for λ,
  which must equal the stated coefficient (m = 2, 3; up to 5 in full mode).
* Numeric: for non-quadratic losses (m = 3, d = 2; also m = 4 in full mode)
  the mean of the forward epoch over all orders is compared with gradient
  flows integrated by scipy (DOP853, rtol 1e-12). The coefficient
  κ = λ/h is estimated from r(h) = E θ_m − φ^L_{mh}(θ_0) ≈ −m κ h² ∇Σ‖g_k‖²,
  extrapolated to h → 0 by a quadratic fit of κ(h) over h ∈ [1e-3, 1e-2];
  it must equal the stated κ within 1 %. The residual against the flow with the stated λ must have
  fitted slope 3 ± 0.2, and the mean of the numeric bracket sum must vanish.
* Orders beyond forward and backward: a palindromic epoch (σ, then σ
  reversed, at half the step) has no h² bracket term: its leading error
  against its own modified flow is h³ (formally, and by a fitted slope
  3 ± 0.2), while a forward epoch's is h² (slope 2 ± 0.2).

Reported value: the extrapolated κ; theoretical value: stated λ / h.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import permutations

import numpy as np
import sympy
from scipy.integrate import solve_ivp

import contraction as ct
from contraction import lie

from ._base import Timer, make_result

STATEMENT = (
    "C10: under a random epoch order the bracket term has mean zero and mean forward SGD follows "
    "gradient flow on L + (h/(4m)) sum_k |grad f_k|^2 to O(h^3); palindromic epochs have no h^2 bracket"
)
KIND = "coefficient"
MEASURES = "measured h² coefficient κ of the order asymmetry (theory: stated κ)"

SYMBOLS = ("x", "y")
LOSSES = {
    3: (
        "log(cosh(x - 1)) + log(cosh(2*y + x)) / 2",
        "log(1 + exp(x - y)) + (y - 1)**2 / 2",
        "(x + y - 1)**4 / 4 + sin(x) + y**2 / 2",
    ),
    4: (
        "log(cosh(x - 1)) + y**2 / 2",
        "log(1 + exp(x - y)) + (y - 1)**2 / 2",
        "(x + y - 1)**4 / 4 + sin(x) + y**2 / 2",
        "sqrt(1 + (x - y)**2) + exp(-x) + x**2 / 3",
    ),
}
THETA0 = np.array([0.4, -0.3])
BAND = 0.2
RELATIVE_TOLERANCE = 0.01


def smith_coefficient(h, m):
    """λ = h/(4m), the implicit-regulariser coefficient of Smith et al. (2021)."""
    return h / (4 * m)


def all_orders(m):
    """Every order of one epoch, each with probability 1/m!."""
    return list(permutations(range(m)))


def compose(maps, theta0, sequences):
    """Forward SGD over each row of ``sequences`` from ``theta0``: shape (n_sequences, d)."""
    seqs = np.asarray(sequences)
    start = np.broadcast_to(theta0, (len(seqs), len(theta0)))
    return ct.forward_iterates(maps, start, seqs, save_steps=[seqs.shape[1]])[:, -1]


@lru_cache(maxsize=8)
def _steps(losses: tuple):
    """Symbolic steps of a loss family (cached: the symbolic work repeats across calls)."""
    return lie.SGDSteps(losses, SYMBOLS)


def gradient_flow(maps, theta0, time, weights, rho_h):
    """Flow for ``time`` of θ' = −Σ_a W_a g_a − 2 ρ_h Σ_a H_a g_a (``ρ_h`` includes its factor h)."""
    m = maps.n_maps
    idx = np.arange(m)
    W = np.asarray(weights, dtype=np.float64)

    def rhs(_, theta):
        stack = np.broadcast_to(theta, (m, theta.size))
        g = maps.gradient(stack, idx)
        Hg = maps.hvp(stack, g, idx) if rho_h else 0.0
        return -(W[:, None] * g).sum(0) - 2.0 * rho_h * np.sum(Hg, axis=0)

    sol = solve_ivp(rhs, (0.0, time), np.asarray(theta0, dtype=np.float64), method="DOP853",
                    rtol=1e-12, atol=1e-14)
    return sol.y[:, -1]


@dataclass(frozen=True)
class NumericEvidence:
    """The numeric side of C10 for one family of ``m`` batches.

    Attributes
    ----------
    kappa : float
        ``κ = λ/h`` extrapolated to ``h → 0`` (quadratic fit of ``κ(h)``).
    residual_slope : float
        Fitted log-log slope of ‖mean epoch − modified flow with the stated λ‖ (theory 3).
    bracket_mean : float
        ‖mean bracket sum over the orders‖ relative to the mean of the norms (theory 0).
    kappas : tuple of float
        The estimates ``κ(h)``, one per learning rate.
    """

    kappa: float
    residual_slope: float
    bracket_mean: float
    kappas: tuple


def _numeric(m, hs, coefficient, orders, bracket, compose) -> NumericEvidence:
    """κ(h) estimates, the residual slope and the mean bracket sum for the m-batch family."""
    steps = _steps(LOSSES[m])
    ords = orders(m)
    # mean of the bracket sum over the orders, from the symbolic bracket compiled to numpy
    brackets = {(a, b): lie.lambdify(bracket(steps.gradients[a], steps.gradients[b], steps.symbols),
                                      steps.symbols)(THETA0) for a in range(m) for b in range(m) if a != b}
    sums = [sum((brackets[(o[i], o[j])] for i in range(m) for j in range(i + 1, m)), np.zeros(2))
            for o in ords]
    bracket_mean = np.linalg.norm(np.mean(sums, axis=0)) / max(np.mean([np.linalg.norm(s) for s in sums]), 1e-300)

    kappas, resid = [], []
    for h in hs:
        maps = steps.numeric_maps(h)
        mean = compose(maps, THETA0, ords).mean(axis=0)
        ones = np.ones(m)
        plain = gradient_flow(maps, THETA0, m * h, ones / m, 0.0)
        lam = float(coefficient(h, m))
        modified = gradient_flow(maps, THETA0, m * h, ones / m, lam)
        stack = np.broadcast_to(THETA0, (m, 2))
        g = maps.gradient(stack, np.arange(m))
        v = 2.0 * maps.hvp(stack, g, np.arange(m)).sum(0)  # ∇ Σ ‖g_k‖²
        r = mean - plain
        kappas.append(-(r @ v) / (m * h * h * (v @ v)))
        resid.append(np.linalg.norm(mean - modified))
    fit = np.polyfit(hs, kappas, 2)  # κ(h) = κ + O(h): the constant term of a quadratic in h
    return NumericEvidence(float(fit[-1]), lie.loglog_slope(hs, resid), float(bracket_mean),
                           tuple(float(k) for k in kappas))


def _palindromic(hs, compose):
    """Slopes of palindromic and forward epochs against their own modified flows (m = 3)."""
    steps = _steps(LOSSES[3])
    sigma = (0, 2, 1)
    pal, fwd = [], []
    for h in hs:
        half = steps.numeric_maps(h / 2)
        full = steps.numeric_maps(h)
        p = compose(half, THETA0, [sigma + sigma[::-1]])[0]
        f = compose(full, THETA0, [sigma])[0]
        # modified flows of lie.modified_flow: W_a = 1, ρ_a = ¼ Σ c_p² (⅛ palindromic, ¼ forward)
        pal.append(np.linalg.norm(p - gradient_flow(full, THETA0, h, np.ones(3), h / 8)))
        fwd.append(np.linalg.norm(f - gradient_flow(full, THETA0, h, np.ones(3), h / 4)))
    return lie.loglog_slope(hs, pal), lie.loglog_slope(hs, fwd)


def check(quick=False, *, coefficient=smith_coefficient, orders=all_orders, bracket=None, compose=compose):
    """Check C10; ``coefficient``, ``orders``, ``bracket`` and ``compose`` are replaceable ingredients."""
    bracket = lie.bracket if bracket is None else bracket
    with Timer() as timer:
        h = sympy.Symbol("h", positive=True)
        symbolic = {}
        for m in ((2, 3) if quick else (2, 3, 4, 5)):
            reg = lie.implicit_regulariser(m, orders=orders(m))
            stated = sympy.sympify(coefficient(h, m))
            symbolic[m] = {
                "solved": str(reg.coefficient),
                "matches stated": bool(reg.matched and sympy.simplify(reg.coefficient - stated) == 0),
                "bracket mean zero": reg.bracket_mean == {},
                "h2 matched": reg.residual == {},
            }
        hs = np.geomspace(1e-3, 1e-2, 6 if quick else 10)
        numeric = {m: _numeric(m, hs, coefficient, orders, bracket, compose) for m in ((3,) if quick else (3, 4))}
        pal_slope, fwd_slope = _palindromic(hs, compose)
        formal_pal = lie.leading_error("palindromic", (0, 2, 1), h_order=3).power
        formal_fwd = lie.leading_error("forward", (0, 2, 1), h_order=3).power

    kappa = numeric[3].kappa
    stated_kappa = float(coefficient(1.0, 3))
    conditions = {
        "symbolic coefficient equals the stated one": all(v["matches stated"] for v in symbolic.values()),
        "symbolic mean bracket term is zero": all(v["bracket mean zero"] for v in symbolic.values()),
        "numeric mean bracket sum is zero (relative 1e-12)": all(
            n.bracket_mean <= 1e-12 for n in numeric.values()),
        "extrapolated coefficient within 1% (every m)": all(
            abs(n.kappa - float(coefficient(1.0, m))) <= RELATIVE_TOLERANCE * abs(float(coefficient(1.0, m)))
            for m, n in numeric.items()),
        "residual to the modified flow has slope 3": all(
            abs(n.residual_slope - 3.0) <= BAND for n in numeric.values()),
        "palindromic epoch: leading error h^3 (formal) and slope 3": formal_pal == 3
        and abs(pal_slope - 3.0) <= BAND,
        "forward epoch: leading error h^2 (formal) and slope 2": formal_fwd == 2 and abs(fwd_slope - 2.0) <= BAND,
    }
    return make_result(
        "C10", STATEMENT, kappa, stated_kappa, "==", RELATIVE_TOLERANCE * abs(stated_kappa), timer.seconds,
        symbolic=symbolic,
        numeric={str(m): {"kappa": n.kappa, "residual_slope": n.residual_slope, "bracket_mean": n.bracket_mean}
                 for m, n in numeric.items()},
        palindromic_slope=pal_slope, forward_slope=fwd_slope, learning_rates=hs,
        extra_conditions=conditions,
    )
