"""contraction.lie expansions: words, formal series in elementary differentials, concrete compositions.

Formal results are exact fractions; concrete ones (sympy columns for given
losses) are compiled to numpy and checked against direct composition of the
numeric maps by the fitted order of the residual.
"""

import inspect
import time
from fractions import Fraction

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st
from limits import time_limit

import contraction as ct
from contraction import lie
from contraction.lie import _trees as trees
from proofs_checks import c09_lie_bracket as c09
from proofs_checks import c10_order_symmetry as c10

x, y = sympy.symbols("x y")
XY = (x, y)
THETA0 = np.array([0.3, -0.4])


@pytest.fixture(scope="module")
def steps3():
    return lie.SGDSteps(c09.LOSS_FAMILIES["logcosh"], ["x", "y"])


# --- h_order: one meaning, one default ----------------------------------------------------------

H_ORDER_FUNCTIONS = [lie.formal_composition, lie.modified_flow, lie.composition, lie.order_difference,
                     lie.leading_error]


@pytest.mark.parametrize("func", H_ORDER_FUNCTIONS, ids=[f.__name__ for f in H_ORDER_FUNCTIONS])
def test_h_order_has_one_default_and_one_documented_meaning(func):
    assert inspect.signature(func).parameters["h_order"].default == 3
    assert "h_order : int, default 3\n        Highest power of ``h`` kept" in func.__doc__


@pytest.mark.parametrize("h_order", [1, 2, 3, 4])
def test_h_order_is_the_highest_power_kept(h_order):
    word = [0, 1, 2, 1]
    for series in (lie.formal_composition(word, h_order=h_order), lie.modified_flow(word, h_order=h_order)):
        assert series.h_order == h_order
        assert max(series.as_dict()) == h_order  # non-zero up to h^h_order, nothing beyond
        assert series.describe().endswith(f"O(h^{h_order + 1})")
    steps = lie.SGDSteps(["x**3 / 3 + y", "x * y**2", "exp(x)"], ["x", "y"])
    assert len(lie.composition(steps, word, h_order=h_order).coefficients) == h_order + 1
    assert len(lie.order_difference(steps, h_order=h_order).coefficients) == h_order + 1
    # the palindrome differs from its modified flow at h³: invisible when h³ is not kept
    err = lie.leading_error("palindromic", [0, 1, 2], h_order=h_order)
    assert err.power == (3 if h_order >= 3 else None)
    if h_order < 3:
        assert err.description.endswith(f"up to O(h^{h_order + 1})")


# --- formal expansions --------------------------------------------------------------------------


def test_order_word_of_named_orders():
    assert [a for a, _ in lie.order_word("forward", [0, 1, 2])] == [2, 1, 0]
    assert [a for a, _ in lie.order_word("backward", [0, 1, 2])] == [0, 1, 2]
    assert lie.order_word("palindromic", [0, 1]) == tuple((a, Fraction(1, 2)) for a in (0, 1, 1, 0))
    assert lie.order_word([(1, 0.5), 0, (2, sympy.Rational(1, 3))]) == (
        (1, Fraction(1, 2)), (0, Fraction(1)), (2, Fraction(1, 3)))
    assert lie.order_word(np.array([1, 0]))[0] == (1, 1)


@settings(max_examples=30)
@given(st.lists(st.integers(0, 3), min_size=2, max_size=6))
def test_forward_minus_backward_is_the_bracket_sum(seq):
    """Formally, θ_n − θ̃_n = h² Σ_{i<j} [g_{ξ_i}, g_{ξ_j}] + O(h³), for any sequence."""
    diff = lie.formal_composition("forward", seq, h_order=2) - lie.formal_composition("backward", seq, h_order=2)
    assert diff.coefficient(1) == {}
    expected = {}
    for i in range(len(seq)):
        for j in range(i + 1, len(seq)):
            a, b = seq[i], seq[j]
            if a != b:
                key, sign = ((a, b), 1) if a < b else ((b, a), -1)
                expected[key] = expected.get(key, 0) + sign
    s = lie.second_order_structure(diff)
    assert s.gradients == {} and s.other == {}
    assert s.brackets == {k: v for k, v in expected.items() if v != 0}
    # first order: −Σ g for both
    fwd = lie.formal_composition("forward", seq, h_order=1)
    counts = {a: -seq.count(a) for a in set(seq)}
    assert fwd.coefficient(1) == {trees.leaf(a): c for a, c in counts.items()}


def test_second_order_structure_of_forward_and_backward():
    fwd = lie.second_order_structure(lie.formal_composition("forward", [0, 1, 2]))
    bwd = lie.second_order_structure(lie.formal_composition("backward", [0, 1, 2]))
    half = Fraction(1, 2)
    pairs = [(0, 1), (0, 2), (1, 2)]
    assert fwd.brackets == {p: half for p in pairs} and bwd.brackets == {p: -half for p in pairs}
    assert fwd.gradients == bwd.gradients == {p: half for p in pairs}
    assert "[g_0, g_1]" in fwd.describe()


def test_formal_flow_of_linear_field_is_the_exponential():
    """Flow of θ' = −H θ (one label): chains H^{k−1} g with coefficients (−1)^k/k!."""
    s = lie.modified_flow([0], h_order=5, rho=0)
    for k in range(1, 6):
        chain = trees.leaf(0)
        for _ in range(k - 1):
            chain = (0, (chain,))
        assert s.coefficient(k)[chain] == Fraction((-1) ** k, int(np.prod(range(1, k + 1))))


# --- concrete expansions against the numeric core --------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 3])
def test_three_step_expansion_matches_direct_composition(steps3, k):
    word = (2, 0, 1)  # T_2 ∘ T_0 ∘ T_1
    series = lie.composition(steps3, word, h_order=k).numeric()
    hs = np.geomspace(5e-3, 3e-2, 6)
    err = []
    for h in hs:
        maps = steps3.numeric_maps(h)
        direct = maps.step(maps.step(maps.step(THETA0[None], [1]), [0]), [2])[0]
        err.append(np.linalg.norm(direct - series(THETA0, h)))
    assert abs(lie.loglog_slope(hs, err) - (k + 1)) <= 0.2


def test_palindromic_expansion_matches_half_steps(steps3):
    series = lie.composition(steps3, "palindromic", sequence=[0, 2], h_order=2).numeric()
    hs = np.geomspace(5e-3, 3e-2, 6)
    err = []
    for h in hs:
        half = steps3.numeric_maps(h / 2)
        direct = ct.forward_iterates(half, THETA0, [0, 2, 2, 0])[0, -1]
        err.append(np.linalg.norm(direct - series(THETA0, h)))
    assert abs(lie.loglog_slope(hs, err) - 3) <= 0.2


def test_order_difference_coefficient_is_the_bracket_sum(steps3):
    seq = (0, 2, 1, 0)
    diff = lie.order_difference(steps3, h_order=3, sequence=seq)
    assert diff.coefficients[0] == diff.coefficients[1] == sympy.zeros(2, 1)
    total = sum((steps3.bracket(seq[i], seq[j]) for i in range(4) for j in range(i + 1, 4)), sympy.zeros(2, 1))
    pts = np.random.default_rng(1).normal(size=(7, 2))
    assert np.allclose(lie.lambdify(diff.coefficients[2], steps3.symbols)(pts),
                       lie.lambdify(total, steps3.symbols)(pts), rtol=1e-10, atol=1e-12)
    # the h³ term is what is left: residual after the bracket term has slope 4 once it is included
    f = diff.numeric()
    hs = np.geomspace(5e-3, 3e-2, 6)
    err = []
    for h in hs:
        maps = steps3.numeric_maps(h)
        num = ct.forward_iterates(maps, THETA0, seq)[0, -1] - ct.backward_iterates(maps, THETA0, seq)[0, -1]
        err.append(np.linalg.norm(num - f(THETA0, h)))
    assert abs(lie.loglog_slope(hs, err) - 4) <= 0.2
    assert diff.second_order().brackets  # structure available from the concrete result
    assert lie.second_order_structure(diff) == diff.second_order()


def test_order_difference_from_text_and_symbols():
    diff = lie.order_difference(["x**2 * y", "exp(x) + y**2"], ["x", "y"], h_order=2)
    expected = lie.bracket(lie.gradient("x**2 * y", XY), lie.gradient("exp(x) + y**2", XY), XY)
    assert sympy.simplify(diff.coefficients[2] - expected) == sympy.zeros(2, 1)


def test_modified_flow_matches_integrated_flow(steps3):
    """The formal modified flow (h_order 3) against scipy's integration: residual O(h⁴)."""
    flow = lie.modified_flow("forward", [0, 1, 2], h_order=3)
    exp = lie.Expansion(flow, tuple([sympy.ImmutableMatrix(steps3.symbols)]
                                    + [steps3.evaluate(flow.coefficient(k)) for k in (1, 2, 3)]),
                        steps3.symbols, steps3.h).numeric()
    hs = np.geomspace(5e-3, 3e-2, 6)
    err = []
    for h in hs:
        maps = steps3.numeric_maps(h)
        err.append(np.linalg.norm(c10.gradient_flow(maps, THETA0, h, np.ones(3), h / 4) - exp(THETA0, h)))
    assert abs(lie.loglog_slope(hs, err) - 4) <= 0.2


def test_numeric_maps_agree_with_the_quadratic_model():
    H = np.array([[[2.0, 0.5], [0.5, 1.0]], [[1.0, -0.3], [-0.3, 0.5]]])
    c = np.array([[1.0, -1.0], [0.5, 2.0]])
    texts = [
        f"({H[i, 0, 0]}*(x-({c[i, 0]}))**2 + 2*({H[i, 0, 1]})*(x-({c[i, 0]}))*(y-({c[i, 1]}))"
        f" + {H[i, 1, 1]}*(y-({c[i, 1]}))**2)/2"
        for i in range(2)
    ]
    steps = lie.SGDSteps(texts, ["x", "y"])
    a, b = steps.numeric_maps(0.3), ct.QuadraticModel(H, c).gradient_maps(0.3)
    th = np.random.default_rng(0).normal(size=(5, 2))
    idx = np.array([0, 1, 1, 0, 1])
    v = np.random.default_rng(1).normal(size=(5, 2))
    assert np.allclose(a.gradient(th, idx), b.gradient(th, idx))
    assert np.allclose(a.hvp(th, v, idx), b.hvp(th, v, idx))
    assert np.allclose(a.step(th, idx), b.step(th, idx))


def test_elementary_differentials(steps3):
    t = (0, ((1, ()), (2, ())))  # D²g_0[g_1, g_2]
    val = steps3.elementary(t)
    g0, g1, g2 = steps3.gradients
    expected = sum((g0.diff(si).diff(sj) * g1[i] * g2[j] for i, si in enumerate(steps3.symbols)
                    for j, sj in enumerate(steps3.symbols)), sympy.zeros(2, 1))
    pts = np.random.default_rng(2).normal(size=(4, 2))
    assert np.allclose(lie.lambdify(val, steps3.symbols)(pts), lie.lambdify(expected, steps3.symbols)(pts))
    assert trees.tree_name(t) == "D²g_0[g_1, g_2]"


# --- sizes: refused at once instead of running for minutes -----------------------------------------

LETTER_LIMITS = {1: 1000, 2: 64, 3: 24, 4: 12, 5: 8, 6: 6}
FLOW_LIMITS = {1: 1000, 2: 64, 3: 16, 4: 6, 5: 3, 6: 2}


_within = time_limit


@pytest.mark.parametrize("h_order", [3, 4, 5, 6])
def test_formal_series_sizes_are_bounded_by_the_stated_limits(h_order):
    """Beyond the limit of its h_order a word is refused at once, naming the argument and the limit."""
    limit = LETTER_LIMITS[h_order]
    start = time.perf_counter()
    with _within(5.0), pytest.raises(ValueError, match=rf"^sequence: expected a word of at most {limit} letters"):
        lie.formal_composition("forward", range(limit + 1), h_order=h_order)
    with pytest.raises(ValueError, match=rf"^order: expected a word of at most {limit} letters"):
        lie.formal_composition(list(range(16)) * 2, h_order=h_order)
    flow_limit = FLOW_LIMITS[h_order]
    with pytest.raises(ValueError, match=rf"^sequence: expected at most {flow_limit} distinct batches"):
        lie.modified_flow("forward", range(flow_limit + 1), h_order=h_order)
    with pytest.raises(ValueError, match=r"^sequence: expected"):
        lie.leading_error("forward", range(limit + 1), h_order=h_order)
    assert time.perf_counter() - start < 2.0
    # the documented limits are the ones applied
    for func in (lie.formal_composition, lie.modified_flow):
        assert ", ".join(str(v) for v in (LETTER_LIMITS if func is lie.formal_composition
                                           else FLOW_LIMITS).values()) in func.__doc__


def test_formal_series_at_the_limit_finish_within_seconds():
    with _within(10.0):
        assert lie.formal_composition("forward", range(6), h_order=6).leading_power() == 1
        assert lie.formal_composition("forward", range(8), h_order=5).leading_power() == 1
        assert lie.modified_flow("palindromic", [0, 1], h_order=6).h_order == 6
        assert lie.modified_flow("forward", range(6), h_order=4).h_order == 4


def test_words_are_refused_before_they_are_built():
    start = time.perf_counter()
    with _within(5.0), pytest.raises(ValueError, match=r"^sequence: expected at most 1000 batch indices"):
        lie.order_word("forward", range(10**9))
    with pytest.raises(ValueError, match=r"^order: expected at most 1000 letters"):
        lie.order_word(iter(range(10**9)))
    with pytest.raises(ValueError, match=r"^sequence: expected at most 500 batch indices for a palindromic"):
        lie.order_word("palindromic", range(600))
    assert len(lie.order_word("palindromic", range(500))) == 1000
    assert time.perf_counter() - start < 2.0


def test_concrete_expansions_bound_the_symbolic_work(steps3):
    """composition/order_difference evaluate at most 500 differentials and need dim**h_order <= 1e5.

    (Before these limits the first call ran for minutes: 627 differentials of log-cosh losses.)
    """
    start = time.perf_counter()
    with _within(5.0), pytest.raises(ValueError, match=r"^h_order: expected an expansion with at most 500 elementary"):
        lie.composition(steps3, (0, 1, 2, 0, 1, 2), h_order=5)
    wide = lie.SGDSteps(["x0**2 * x49"], [f"x{i}" for i in range(50)])
    with pytest.raises(ValueError, match=r"^h_order: expected dim\*\*h_order <= 100000"):
        lie.composition(wide, "forward", h_order=3)
    with pytest.raises(ValueError, match=r"^h_order: expected dim\*\*h_order <= 100000"):
        lie.order_difference(wide, h_order=3)
    with pytest.raises(ValueError, match=r"^symbols: expected at most 50 symbols"):
        lie.SGDSteps(["x0"], [f"x{i}" for i in range(51)])
    with pytest.raises(ValueError, match=r"^losses: expected at most 2500 second derivatives"):
        lie.SGDSteps(["x0", "x1"], [f"x{i}" for i in range(50)])
    with pytest.raises(ValueError, match=r"^losses: expected at most 1000 losses"):
        lie.SGDSteps(["x"] * 1001, ["x"])
    assert time.perf_counter() - start < 2.0
    assert len(lie.composition(wide, "forward", h_order=2).coefficients) == 3


# --- bad inputs ---------------------------------------------------------------------------------

BAD_CALLS = [
    ("order", ValueError, lambda: lie.order_word("sideways", [0, 1])),
    ("order", ValueError, lambda: lie.order_word([0, -1])),
    ("order", TypeError, lambda: lie.order_word([0, 0.5])),
    ("order", TypeError, lambda: lie.order_word([(0, "half")])),
    ("order", TypeError, lambda: lie.order_word([(0, True)])),
    ("order", TypeError, lambda: lie.order_word(None)),
    ("order", ValueError, lambda: lie.order_word([])),
    ("sequence", ValueError, lambda: lie.order_word("forward")),
    ("sequence", ValueError, lambda: lie.order_word([0, 1], sequence=[0, 1])),
    ("sequence", TypeError, lambda: lie.order_word("forward", [0.5, 1])),
    ("sequence", ValueError, lambda: lie.order_word("forward", [])),
    ("sequence", ValueError, lambda: lie.order_word("forward", [0, -1])),
    ("h_order", ValueError, lambda: lie.formal_composition("forward", [0, 1], h_order=0)),
    ("h_order", ValueError, lambda: lie.formal_composition("forward", [0, 1], h_order=99)),
    ("h_order", TypeError, lambda: lie.formal_composition("forward", [0, 1], h_order=2.0)),
    ("h_order", TypeError, lambda: lie.modified_flow("forward", [0, 1], h_order=True)),
    ("rho", TypeError, lambda: lie.modified_flow("forward", [0, 1], rho="1/4")),
    ("steps", TypeError, lambda: lie.composition(["x**2"], "forward")),
    ("order", ValueError, lambda: lie.composition(lie.SGDSteps(["x**2"], ["x"]), [0, 1])),
    ("orders", ValueError, lambda: lie.order_difference(["x**2"], ["x"], orders="forward")),
    ("symbols", TypeError, lambda: lie.order_difference(["x**2"])),
    ("symbols", ValueError, lambda: lie.order_difference(lie.SGDSteps(["x**2"], ["x"]), ["y"])),
    ("series", TypeError, lambda: lie.second_order_structure({2: {}})),
    ("series", ValueError, lambda: lie.second_order_structure(lie.formal_composition("forward", [0], h_order=1))),
    ("tree", ValueError, lambda: lie.SGDSteps(["x**2"], ["x"]).elementary((3, ()))),
    ("i", ValueError, lambda: lie.SGDSteps(["x**2"], ["x"]).bracket(1, 0)),
    ("j", TypeError, lambda: lie.SGDSteps(["x**2"], ["x"]).bracket(0, 0.5)),
    ("losses", ValueError, lambda: lie.SGDSteps(iter(lambda: "x", None), ["x"])),
    ("losses", ValueError, lambda: lie.SGDSteps([sympy.nan], ["x"])),
    ("sequence", ValueError, lambda: lie.composition(lie.SGDSteps(["x**2"], ["x"]), "forward", sequence=[0, 1])),
    ("orders", ValueError, lambda: lie.order_difference(["x**2"], ["x"], orders=5)),
    ("orders", ValueError, lambda: lie.order_difference(["x**2"], ["x"], orders=("sideways", "forward"))),
    ("orders", ValueError, lambda: lie.order_difference(["x**2", "x"], ["x"], orders=([0, 2], "forward"))),
    ("rho", ValueError, lambda: lie.modified_flow("forward", [0, 1], rho=float("nan"))),
]


@pytest.mark.parametrize("name,exc,call", BAD_CALLS, ids=[f"{c[0]}-{k}" for k, c in enumerate(BAD_CALLS)])
def test_bad_input_names_the_argument(name, exc, call):
    with pytest.raises(exc, match=f"^{name}:"):
        call()
