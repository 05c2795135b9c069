"""C9 Lie-bracket expansion: forward minus backward SGD is h² Σ_{i<j} [g_{ξ_i}, g_{ξ_j}] + O(h³).

Hypotheses: smooth batch losses f_i, gradients g_i, Hessians H_i; bracket
[X, Y] = (DY) X − (DX) Y; forward θ_n = T_{ξ_n} ∘ … ∘ T_{ξ_1}(θ_0), backward
θ̃_n = T_{ξ_1} ∘ … ∘ T_{ξ_n}(θ_0), T_i = id − h g_i.

Method: for three (five in full mode) non-quadratic loss families given as
text (parsed safely by ``contraction.lie``), compose the numeric SGD maps
forward and backward over batch sequences of length 2 and 4 at a range of
learning rates; the bracket sum is built symbolically with ``bracket`` and
compiled to numpy. Fitted log-log slopes of ‖θ_n − θ̃_n‖ (theory 2) and of
‖θ_n − θ̃_n − h² Σ_{i<j} [g_{ξ_i}, g_{ξ_j}](θ_0)‖ (theory 3) must lie within
±0.2. For quadratics f_i = ½ (θ − c_i)ᵀ H_i (θ − c_i) the two-step
difference is exactly h² ([H_2, H_1] θ − H_2 H_1 c_1 + H_1 H_2 c_2): the
symbolic polynomial (non-commutative matrix symbols) has only an h² term and
agrees with the affine composition to 1e-12 for random H_i, c_i, θ, h. The
symbolic expansion of a three-step composition to order k matches the direct
composition to O(h^{k+1}) (slope k + 1 ± 0.2).

Reported value: the residual slope farthest from 3; other conditions in
``details["extra_conditions"]``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import sympy

import contraction as ct
from contraction import lie

from ._base import Timer, make_result

STATEMENT = (
    "C9: forward - backward SGD = h^2 sum_{i<j} [g_i, g_j](theta0) + O(h^3) (slopes 2 and 3); "
    "quadratic two-step difference exactly h^2([H2,H1]theta - H2H1c1 + H1H2c2)"
)
KIND = "slope"
MEASURES = "worst log-log slope of the forward/backward difference in h (theory: 3)"

SYMBOLS = ("x", "y")
LOSS_FAMILIES = {
    "logcosh": (
        "log(cosh(x - 1)) + log(cosh(2*y + x)) / 2",
        "log(cosh(x + y)) + (y - 1)**2 / 2",
        "log(cosh(3*x - y + 1)) + x**2 / 4",
    ),
    "logistic": (
        "log(1 + exp(-(x + 2*y))) + (x**2 + y**2) / 10",
        "log(1 + exp(x - y)) + (x**2 + y**2) / 10",
        "log(1 + exp(-(0.5*x - 1.5*y))) + (x**2 + y**2) / 10",
    ),
    "quartic": (
        "(x - y)**4 / 4 + (x - 1)**2 / 2",
        "(x + y - 1)**4 / 4 + y**2 / 2 + sin(x)",
        "x**4 / 4 + x*y + exp(y / 2)",
    ),
    "trigonometric": (
        "sin(x) * cos(y) + (x**2 + y**2) / 2",
        "cos(x - 2*y) + x**2 / 2 + y**2",
        "sin(x*y) + (x - 0.5)**2",
    ),
    "softplus_sqrt": (
        "sqrt(1 + (x - y)**2) + y**2 / 2",
        "log(1 + exp(2*x)) + tanh(y) + x**2 / 3",
        "sqrt(1 + (x + 1)**2 + y**2) + exp(-x - y)",
    ),
}
SEQUENCES = ((0, 1), (0, 1, 2, 1))
THETA0 = np.array([0.3, -0.4])
BAND = 0.2


@lru_cache(maxsize=16)
def _steps(losses: tuple):
    """Symbolic steps of a loss family (cached: the symbolic work repeats across calls)."""
    return lie.SGDSteps(losses, SYMBOLS)


def compose(maps, theta0, sequence, order):
    """θ_n of ``order`` ("forward" or "backward") over ``sequence``, from the numeric core."""
    iterate = ct.forward_iterates if order == "forward" else ct.backward_iterates
    return iterate(maps, theta0, list(sequence), save_steps=[len(sequence)])[0, -1]


def _bracket_sum(steps, sequence, bracket):
    """``Σ_{i<j} [g_{ξ_i}, g_{ξ_j}]`` over the sequence, with the given bracket."""
    total = sympy.zeros(steps.dim, 1)
    for i in range(len(sequence)):
        for j in range(i + 1, len(sequence)):
            a, b = sequence[i], sequence[j]
            total += bracket(steps.gradients[a], steps.gradients[b], steps.symbols)
    return total


def check(quick=False, *, bracket=None, compose=compose, quadratic_difference=None):
    """Check C9; ``bracket``, ``compose`` and ``quadratic_difference`` are replaceable ingredients."""
    bracket = lie.bracket if bracket is None else bracket
    quadratic_difference = lie.quadratic_difference if quadratic_difference is None else quadratic_difference
    families = list(LOSS_FAMILIES)[:3] if quick else list(LOSS_FAMILIES)
    hs = np.geomspace(2e-3, 3e-2, 6 if quick else 10)
    with Timer() as timer:
        diff_slopes, resid_slopes, structure_ok = {}, {}, True
        for name in families:
            steps = _steps(LOSS_FAMILIES[name])
            maps_by_h = [steps.numeric_maps(h) for h in hs]
            for seq in SEQUENCES:
                term = lie.lambdify(_bracket_sum(steps, seq, bracket), steps.symbols)(THETA0)
                # the symbolic h² coefficient of forward − backward is the same bracket sum
                diff = lie.order_difference(steps, h_order=2, sequence=seq)
                structure_ok &= bool(np.allclose(lie.lambdify(diff.coefficients[2], steps.symbols)(THETA0),
                                                 term, rtol=1e-10, atol=1e-12))
                d_err, r_err = [], []
                for h, maps in zip(hs, maps_by_h, strict=True):
                    delta = compose(maps, THETA0, seq, "forward") - compose(maps, THETA0, seq, "backward")
                    d_err.append(np.linalg.norm(delta))
                    r_err.append(np.linalg.norm(delta - h * h * term))
                key = f"{name} {''.join(map(str, seq))}"
                diff_slopes[key] = lie.loglog_slope(hs, d_err)
                resid_slopes[key] = lie.loglog_slope(hs, r_err)

        # three-step composition: symbolic expansion to order k vs direct composition
        steps = _steps(LOSS_FAMILIES["logcosh"])
        expansion_slopes = {}
        word = (0, 2, 1)
        hk = np.geomspace(5e-3, 3e-2, 6)
        for k in ((2,) if quick else (1, 2, 3)):
            series = lie.composition(steps, word, h_order=k).numeric()
            err = []
            for h in hk:
                maps = steps.numeric_maps(h)
                direct = compose(maps, THETA0, word[::-1], "forward")  # T_0 ∘ T_2 ∘ T_1
                err.append(np.linalg.norm(direct - series(THETA0, h)))
            expansion_slopes[k] = lie.loglog_slope(hk, err)

        # quadratic losses: exact two-step identity
        poly = quadratic_difference((0, 1))
        rng = np.random.default_rng(9)
        quad_err, n_quad = 0.0, 5 if quick else 20
        for _ in range(n_quad):
            d = int(rng.integers(1, 5))
            G = rng.normal(size=(2, d, d))
            H = G @ np.swapaxes(G, 1, 2) / d
            c = rng.normal(size=(2, d))
            theta = rng.normal(size=d)
            h = float(rng.uniform(0.05, 1.0))
            maps = ct.QuadraticModel(H, c).gradient_maps(h)
            numeric = compose(maps, theta, (0, 1), "forward") - compose(maps, theta, (0, 1), "backward")
            spec = h * h * ((H[1] @ H[0] - H[0] @ H[1]) @ theta - H[1] @ H[0] @ c[0] + H[0] @ H[1] @ c[1])
            quad_err = max(quad_err, np.abs(numeric - poly.evaluate(H, c, theta, h)).max(),
                           np.abs(numeric - spec).max())
        only_h2 = sorted(poly.coefficients) == [2]

    worst = max(resid_slopes.values(), key=lambda s: abs(s - 3.0))
    conditions = {
        "difference slopes within 0.2 of 2": all(abs(s - 2.0) <= BAND for s in diff_slopes.values()),
        "residual slopes within 0.2 of 3": all(abs(s - 3.0) <= BAND for s in resid_slopes.values()),
        "symbolic h^2 coefficient equals the bracket sum": structure_ok,
        "three-step expansion to order k has residual slope k+1": all(
            abs(s - (k + 1)) <= BAND for k, s in expansion_slopes.items()),
        "quadratic two-step identity exact to 1e-12": quad_err <= 1e-12,
        "quadratic difference has only an h^2 term": only_h2,
    }
    return make_result(
        "C9", STATEMENT, worst, 3.0, "==", BAND, timer.seconds,
        difference_slopes=diff_slopes, residual_slopes=resid_slopes,
        expansion_slopes={str(k): v for k, v in expansion_slopes.items()},
        quadratic_max_error=quad_err, learning_rates=hs, extra_conditions=conditions,
    )
