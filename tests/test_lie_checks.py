"""The checks of claims C9 (Lie-bracket expansion) and C10 (order symmetry, regulariser h/(4m)).

Each check passes, and fails when one ingredient is wrong, including a near
miss (a bracket or a coefficient off by 10 %).
"""

import dataclasses

import numpy as np
import pytest

import proofs_checks
from contraction import lie
from proofs_checks import c09_lie_bracket as c09
from proofs_checks import c10_order_symmetry as c10

# --- C9 -----------------------------------------------------------------------------------------


def test_c9_slopes_on_three_non_quadratic_losses():
    r = c09.check(quick=True)
    assert r.passed, r.details
    families = {key.split()[0] for key in r.details["residual_slopes"]}
    assert len(families) >= 3
    assert all(abs(s - 2) <= 0.2 for s in r.details["difference_slopes"].values())
    assert all(abs(s - 3) <= 0.2 for s in r.details["residual_slopes"].values())
    assert r.details["quadratic_max_error"] <= 1e-12


def _swapped_bracket(X, Y, symbols):
    return -lie.bracket(X, Y, symbols)


def _bracket_off_by_ten_percent(X, Y, symbols):
    return 1.1 * lie.bracket(X, Y, symbols)


def _swapped_compose(maps, theta0, sequence, order):
    return c09.compose(maps, theta0, sequence, "backward" if order == "forward" else "forward")


def _difference_of_equal_orders(sequence):
    return lie.quadratic_difference(sequence, ("forward", "forward"))


@pytest.mark.parametrize("ingredients,condition", [
    ({"bracket": _swapped_bracket}, "residual slopes within 0.2 of 3"),
    ({"bracket": _bracket_off_by_ten_percent}, "residual slopes within 0.2 of 3"),
    ({"compose": _swapped_compose}, "residual slopes within 0.2 of 3"),
    ({"quadratic_difference": _difference_of_equal_orders}, "quadratic two-step identity exact to 1e-12"),
], ids=["swapped-bracket-sign", "bracket-times-1.1", "swapped-composition-order", "zero-quadratic-difference"])
def test_c9_check_fails_with_wrong_ingredients(ingredients, condition):
    r = c09.check(quick=True, **ingredients)
    assert not r.passed
    assert not r.details["extra_conditions"][condition]


# --- C10 ----------------------------------------------------------------------------------------


def test_c10_check_passes_and_reports_h_over_4m():
    r = c10.check(quick=True)
    assert r.passed, r.details
    assert abs(r.numerical - 1 / 12) <= 0.01 / 12 and r.theoretical == pytest.approx(1 / 12)
    assert r.details["symbolic"][3]["solved"] == "h/12"
    assert set(r.details["numeric"]["3"]) == {"kappa", "residual_slope", "bracket_mean"}


def test_c10_numeric_evidence_is_a_frozen_record():
    hs = np.geomspace(1e-3, 1e-2, 6)
    ev = c10._numeric(3, hs, c10.smith_coefficient, c10.all_orders, lie.bracket, c10.compose)
    assert isinstance(ev, c10.NumericEvidence)
    assert abs(ev.kappa - 1 / 12) <= 0.01 / 12 and abs(ev.residual_slope - 3) <= 0.2
    assert ev.bracket_mean <= 1e-12 and len(ev.kappas) == len(hs)
    with pytest.raises(dataclasses.FrozenInstanceError, match="kappa"):
        ev.kappa = 0.0


@pytest.mark.parametrize("ingredients,conditions", [
    ({"coefficient": lambda h, m: h / (2 * m)}, ["symbolic coefficient equals the stated one"]),
    ({"coefficient": lambda h, m: 1.1 * h / (4 * m)},
     ["symbolic coefficient equals the stated one", "extrapolated coefficient within 1% (every m)"]),
    # one fixed order: λ of the symmetric part is still h/(4m); what fails is the mean bracket term
    ({"orders": lambda m: [tuple(range(m))]}, ["symbolic mean bracket term is zero"]),
], ids=["coefficient-h-over-2m", "coefficient-times-1.1", "one-fixed-order"])
def test_c10_check_fails_with_wrong_ingredients(ingredients, conditions):
    r = c10.check(quick=True, **ingredients)
    assert not r.passed
    assert not any(r.details["extra_conditions"][c] for c in conditions)


def test_run_check_finds_both_checks():
    for claim, module in (("C9", c09), ("C10", c10)):
        assert proofs_checks.load(claim) is module
        assert isinstance(module.STATEMENT, str) and module.STATEMENT.startswith(claim)
