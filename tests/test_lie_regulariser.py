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
        assert r.matched and r.message.startswith("the mean epoch equals gradient flow")


def test_implicit_regulariser_of_one_order_returns_the_symmetric_part_and_says_why():
    """One fixed order: λ of the symmetric part is defined (h/12); the bracket part is reported, never nan."""
    h = sympy.Symbol("h", positive=True)
    one = lie.implicit_regulariser(3, orders=[(0, 1, 2)])
    assert one.coefficient == h / 12 and one.coefficient.is_finite is not False
    assert not one.coefficient.has(sympy.nan)
    assert one.matched is False
    assert one.bracket_mean == {(0, 1): Fraction(1, 2), (0, 2): Fraction(1, 2), (1, 2): Fraction(1, 2)}
    assert one.gradient_terms == lie.implicit_regulariser(3).gradient_terms  # same symmetric part as all 3! orders
    # the residual is exactly the bracket part ½ Σ_{i<j} (H_j g_i − H_i g_j), in elementary differentials
    assert one.residual == {(b, ((a, ()),)): Fraction(1, 2) for a, b in ((0, 1), (0, 2), (1, 2))} | \
        {(a, ((b, ()),)): Fraction(-1, 2) for a, b in ((0, 1), (0, 2), (1, 2))}
    assert "bracket part" in one.message and "not the gradient" in one.message
    # two orders that balance each pair only partly: still defined, still explained
    two = lie.implicit_regulariser(3, orders=[(0, 1, 2), (2, 1, 0), (1, 0, 2)])
    assert two.coefficient == h / 12 and not two.matched and two.bracket_mean != {}
    # orders that balance every pair (an order and its reverse) match completely
    pair = lie.implicit_regulariser(3, orders=[(0, 1, 2), (2, 1, 0)])
    assert pair.coefficient == h / 12 and pair.matched and pair.residual == {} and pair.bracket_mean == {}


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
    ("orders", TypeError, lambda: lie.implicit_regulariser(2, orders="01")),
    ("orders", TypeError, lambda: lie.implicit_regulariser(2, orders=5)),
    ("orders", ValueError, lambda: lie.implicit_regulariser(7, orders=[tuple(range(7))] * 5041)),
    ("orders", ValueError, lambda: lie.implicit_regulariser(64, orders=[tuple(range(64))] * 61)),
    ("n_batches", ValueError, lambda: lie.implicit_regulariser(65, orders=[tuple(range(65))])),
    ("reference", ValueError, lambda: lie.leading_error("forward", [0, 1], reference="sideways")),
    ("reference", TypeError, lambda: lie.leading_error("forward", [0, 1], reference=None)),
    ("reference", ValueError, lambda: lie.leading_error("forward", [0, 1], reference=list(range(13)), h_order=4)),
    ("sequence", ValueError, lambda: lie.leading_error("forward", list(range(4)), h_order=6)),
    ("order", ValueError, lambda: lie.leading_error("sideways", [0, 1])),
    ("sequence", ValueError, lambda: lie.leading_error("forward")),
    ("h_order", ValueError, lambda: lie.leading_error("forward", [0, 1], h_order=7)),
]


@pytest.mark.parametrize("name,exc,call", BAD_CALLS, ids=[f"{c[0]}-{k}" for k, c in enumerate(BAD_CALLS)])
def test_bad_input_names_the_argument(name, exc, call):
    with pytest.raises(exc, match=f"^{name}:"):
        call()
