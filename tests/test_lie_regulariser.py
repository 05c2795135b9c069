"""contraction.lie orders against flows: leading errors and the implicit regulariser h/(4m) (SPEC C10)."""

from fractions import Fraction

import numpy as np
import pytest
import sympy

from contraction import lie


def test_palindromic_epoch_cancels_the_bracket_term():
    for seq in ([0, 1], [2, 0, 1], [0, 1, 2, 3], [1, 0, 1, 2]):
        pal = lie.second_order_structure(lie.formal_composition("palindromic", seq))
        assert pal.brackets == {}
        assert lie.leading_error("palindromic", seq).power == 3
        for order, sign in (("forward", 1), ("backward", -1)):
            err = lie.leading_error(order, seq, h_order=3)
            assert err.power == 2
            fwd = lie.second_order_structure(lie.formal_composition(order, seq))
            assert err.second_order.brackets == fwd.brackets
            assert all(np.sign(v) == sign for (a, b), v in err.second_order.brackets.items()
                       if seq.index(a) < seq.index(b))
    # against the plain gradient flow the palindrome's h² error is a pure gradient (Smith's regulariser)
    flow = lie.leading_error("palindromic", [0, 1, 2], reference="flow")
    assert flow.power == 2 and flow.second_order.brackets == {}
    assert flow.second_order.gradients == {(a, a): Fraction(-1, 8) for a in range(3)}
    assert lie.leading_error("forward", [0, 1], reference=[1, 0]).power is None


def test_leading_error_against_another_order_is_the_bracket():
    err = lie.leading_error("forward", [0, 1, 2], reference="backward")
    assert err.power == 2 and err.second_order.gradients == {}
    assert err.second_order.brackets == {(0, 1): 1, (0, 2): 1, (1, 2): 1}
    assert err.description.startswith("h^2 ([g_0, g_1] + [g_0, g_2] + [g_1, g_2])")
    third = lie.leading_error("palindromic", [0, 1], h_order=3)
    assert third.second_order is None and third.terms and "relative to modified_flow" in third.description


def test_implicit_regulariser_coefficient_is_h_over_4m():
    h = sympy.Symbol("h", positive=True)
    for m in (2, 3, 4):
        r = lie.implicit_regulariser(m)
        assert r.coefficient == h / (4 * m)
        assert r.bracket_mean == {} and r.residual == {} and r.n_orders == np.prod(range(1, m + 1))
        assert r.gradient_terms[(0, 1)] == Fraction(1, 2)  # ½ Σ_{a≠b} H_b g_a
    biased = lie.implicit_regulariser(3, orders=[(0, 1, 2)])
    assert biased.bracket_mean != {} and biased.coefficient != h / 12


def test_implicit_regulariser_of_one_batch_has_no_cross_terms():
    r = lie.implicit_regulariser(1)
    assert r.n_orders == 1 and r.bracket_mean == {} and r.gradient_terms == {}


BAD_CALLS = [
    ("n_batches", ValueError, lambda: lie.implicit_regulariser(0)),
    ("n_batches", TypeError, lambda: lie.implicit_regulariser(2.0)),
    ("n_batches", ValueError, lambda: lie.implicit_regulariser(8)),
    ("orders", ValueError, lambda: lie.implicit_regulariser(3, orders=[(0, 1, 1)])),
    ("orders", ValueError, lambda: lie.implicit_regulariser(3, orders=[])),
    ("orders", TypeError, lambda: lie.implicit_regulariser(2, orders=["01"])),
    ("order", ValueError, lambda: lie.leading_error("sideways", [0, 1])),
    ("sequence", ValueError, lambda: lie.leading_error("forward")),
    ("h_order", ValueError, lambda: lie.leading_error("forward", [0, 1], h_order=7)),
]


@pytest.mark.parametrize("name,exc,call", BAD_CALLS, ids=[f"{c[0]}-{k}" for k, c in enumerate(BAD_CALLS)])
def test_bad_input_names_the_argument(name, exc, call):
    with pytest.raises(exc, match=f"^{name}:"):
        call()
