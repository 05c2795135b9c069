"""Symbolic Lie-bracket layer (contraction.lie), its numeric bridge and the C9/C10 checks."""

import sys
from fractions import Fraction

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

import contraction as ct
from contraction.lie import _trees as trees
from contraction import lie
from proofs_checks import c09_lie_bracket as c09
from proofs_checks import c10_order_symmetry as c10

x, y, z = sympy.symbols("x y z")
XY = (x, y)
LOGCOSH = c09.LOSS_FAMILIES["logcosh"]
THETA0 = np.array([0.3, -0.4])


def zero_vector(v):
    return sympy.expand(sympy.Matrix(v)) == sympy.zeros(*sympy.Matrix(v).shape)


@pytest.fixture(scope="module")
def steps3():
    return lie.SGDSteps(LOGCOSH, ["x", "y"])


# --- safe parser --------------------------------------------------------------------------------

GOOD = [
    ("x**2 / 2 + exp(y)", x**2 / 2 + sympy.exp(y)),
    ("-x + +y - 3", -x + y - 3),
    ("Abs(x) + abs(y)", sympy.Abs(x) + sympy.Abs(y)),
    ("0.1 * x", sympy.Rational(1, 10) * x),
    ("pi * x + E", sympy.pi * x + sympy.E),
    ("sqrt(x**2 + 1) * log(cosh(y))", sympy.sqrt(x**2 + 1) * sympy.log(sympy.cosh(y))),
    ("tanh(x) / sinh(y) - cos(x) * sin(y) + tan(x) + atan(y)",
     sympy.tanh(x) / sympy.sinh(y) - sympy.cos(x) * sympy.sin(y) + sympy.tan(x) + sympy.atan(y)),
    ("(x - 1)**(3/2)", (x - 1) ** sympy.Rational(3, 2)),
    ("  2*x  ", 2 * x),
]

BAD = [
    "__import__('os').system('echo unsafe')",
    "x.__class__",
    "().__class__.__bases__[0].__subclasses__()",
    "lambda: 1",
    "x[0]",
    "open('f')",
    "exp.__globals__",
    "exp(x).func",
    "x if y else 1",
    "[x, y]",
    "(x, y)",
    "{x: 1}",
    "x ^ 2",
    "x % 2",
    "x // 2",
    "x @ y",
    "x < 1",
    "x and y",
    "not x",
    "~x",
    "z + 1",
    "f(x)",
    "exp(x, 2)",
    "exp(x=1)",
    "exp(*[x])",
    "exp",
    "True + x",
    "None",
    "'x'",
    "1j * x",
    "1e400 * x",
    "9**9**9",
    "x**100000",
    "x; y",
    "x = 1",
    "",
    "   ",
    "(" * 250 + "x" + ")" * 250,
    "exp(" * 300 + "x" + ")" * 300,
    "-" * 300 + "x",
    "sympy.exp(x)",
    "__builtins__",
    "x for x in y",
    "[i for i in range(3)]",
    "f'{x}'",
    "x if True else y",
    "yield x",
    "await x",
    "x := 1",
    "x" + "+x" * 6000,
    "1/0 + x",
    "x / 0",
    "log(0 * x)",
    "0**-1 * x",
    "1x",
    "x\x00",
]


@pytest.mark.parametrize("text,expected", GOOD)
def test_parse_loss_builds_the_expression(text, expected):
    assert sympy.simplify(lie.parse_loss(text, ["x", "y"]) - expected) == 0


@pytest.mark.parametrize("text", BAD)
def test_parse_loss_rejects_everything_else(text):
    with pytest.raises(ValueError) as info:
        lie.parse_loss(text, ["x", "y"])
    assert str(info.value).startswith("text:"), str(info.value)


@settings(max_examples=300)
@given(st.text(alphabet="xyz0123456789.+-*/()e ^,=:;[]{}'_explogsqrtAbcosinhE\\", max_size=30))
def test_parse_loss_fuzz_returns_finite_expressions_or_text_errors(text):
    try:
        expr = lie.parse_loss(text, ["x", "y"])
    except ValueError as err:
        assert str(err).startswith("text:"), str(err)
    else:
        assert isinstance(expr, sympy.Expr) and expr.free_symbols <= {x, y}
        assert not expr.has(sympy.nan, sympy.zoo, sympy.oo, -sympy.oo)


def test_parse_loss_accepts_long_sums():
    assert lie.parse_loss(" + ".join(["x*y"] * 150), ["x", "y"]) == 150 * x * y


def test_parse_loss_never_evaluates_text(monkeypatch):
    """No string reaches sympify/parse_expr/eval/exec; harmful text has no effect."""
    import builtins

    import sympy.parsing.sympy_parser as sp_parser

    def forbidden(*args, **kwargs):
        raise AssertionError("text was evaluated")

    monkeypatch.setattr(sp_parser, "parse_expr", forbidden)
    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    assert lie.parse_loss("log(1 + exp(-x*y)) + x**2", XY) == sympy.log(1 + sympy.exp(-x * y)) + x**2
    before = set(sys.modules)
    with pytest.raises(ValueError, match="^text:"):
        lie.parse_loss("__import__('antigravity') + x", XY)
    assert "antigravity" not in set(sys.modules) - before


def test_parse_loss_symbols_validation():
    assert lie.parse_loss("a*b", [sympy.Symbol("a"), "b"]) == sympy.Symbol("a") * sympy.Symbol("b")
    for bad, exc in [("x", TypeError), ([], ValueError), (["exp"], ValueError), (["__x"], ValueError),
                     (["x-y"], ValueError), (["x", "x"], ValueError), ([1], TypeError), (["lambda"], ValueError)]:
        with pytest.raises(exc, match="^symbols:"):
            lie.parse_loss("1", bad)
    with pytest.raises(TypeError, match="^text:"):
        lie.parse_loss(b"x", ["x"])


# --- the bracket --------------------------------------------------------------------------------


@st.composite
def polynomial_fields(draw, n=3, d=2, degree=2):
    """``n`` random polynomial vector fields on R^d with small integer coefficients."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    syms = (x, y, z)[:d]
    monomials = [sympy.Integer(1)] + list(syms) + [a * b for i, a in enumerate(syms) for b in syms[i:]]
    monomials = [mono for mono in monomials if sympy.Poly(mono, *syms).total_degree() <= degree]
    fields = []
    for _ in range(n):
        coef = rng.integers(-3, 4, size=(d, len(monomials)))
        fields.append(sympy.Matrix([sum(int(c) * mono for c, mono in zip(row, monomials)) for row in coef]))
    return syms, fields


@settings(max_examples=12)
@given(polynomial_fields())
def test_bracket_is_antisymmetric_and_satisfies_jacobi(data):
    syms, (X, Y, Z) = data
    b = lambda A, B: lie.bracket(A, B, syms)  # noqa: E731
    assert zero_vector(b(X, Y) + b(Y, X))
    assert zero_vector(b(X, X))
    assert zero_vector(b(X, b(Y, Z)) + b(Y, b(Z, X)) + b(Z, b(X, Y)))
    # bilinear
    assert zero_vector(b(2 * X + Z, Y) - 2 * b(X, Y) - b(Z, Y))


@settings(max_examples=10)
@given(polynomial_fields(d=3, degree=1))
def test_bracket_of_linear_fields_is_the_matrix_commutator(data):
    syms, (X, Y, _) = data
    A = X.jacobian(syms)
    B = Y.jacobian(syms)
    v = sympy.Matrix(syms)
    X0, Y0 = A * v, B * v
    assert zero_vector(lie.bracket(X0, Y0, syms) - (B * A - A * B) * v)


def test_bracket_jacobi_numerically_for_non_polynomial_fields():
    X = sympy.Matrix([sympy.exp(x) * y, sympy.sin(x * y)])
    Y = sympy.Matrix([sympy.cos(y), sympy.log(1 + x**2)])
    Z = sympy.Matrix([sympy.tanh(x + y), x * y**2])
    b = lambda A, B: lie.bracket(A, B, XY)  # noqa: E731
    jac = b(X, b(Y, Z)) + b(Y, b(Z, X)) + b(Z, b(X, Y))
    pts = np.random.default_rng(0).normal(size=(20, 2))
    scale = np.abs(lie.lambdify(b(X, b(Y, Z)), XY)(pts)).max()
    assert np.abs(lie.lambdify(jac, XY)(pts)).max() <= 1e-12 * scale
    assert np.allclose(lie.lambdify(b(X, Y) + b(Y, X), XY)(pts), 0.0)


def test_bracket_sign_matches_composition_of_euler_steps():
    """T_Y ∘ T_X − T_X ∘ T_Y = h² [X, Y] + O(h³) for T_V = id − h V."""
    X = sympy.Matrix([sympy.sin(y), x * y])
    Y = sympy.Matrix([x**2, sympy.exp(-x)])
    fX, fY = lie.lambdify(X, XY), lie.lambdify(Y, XY)
    br = lie.lambdify(lie.bracket(X, Y, XY), XY)(THETA0)
    hs = np.geomspace(1e-3, 1e-2, 5)
    right, wrong = [], []
    for h in hs:
        TX = lambda t: t - h * fX(t)  # noqa: E731
        TY = lambda t: t - h * fY(t)  # noqa: E731
        diff = TY(TX(THETA0)) - TX(TY(THETA0))
        right.append(np.linalg.norm(diff - h * h * br))
        wrong.append(np.linalg.norm(diff + h * h * br))
    assert abs(lie.loglog_slope(hs, right) - 3) < 0.2
    assert abs(lie.loglog_slope(hs, wrong) - 2) < 0.2


def test_gradient_and_hessian():
    assert lie.gradient("x**2 * y", ["x", "y"]) == sympy.Matrix([2 * x * y, x**2])
    assert lie.hessian(x * sympy.exp(y), XY) == sympy.Matrix([[0, sympy.exp(y)], [sympy.exp(y), x * sympy.exp(y)]])


# --- formal expansions --------------------------------------------------------------------------


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
            assert all(np.sign(v) == sign for (a, b), v in err.second_order.brackets.items() if seq.index(a) < seq.index(b))
    # against the plain gradient flow the palindrome's h² error is a pure gradient (Smith's regulariser)
    flow = lie.leading_error("palindromic", [0, 1, 2], reference="flow")
    assert flow.power == 2 and flow.second_order.brackets == {}
    assert flow.second_order.gradients == {(a, a): Fraction(-1, 8) for a in range(3)}
    assert lie.leading_error("forward", [0, 1], reference=[1, 0]).power is None


def test_formal_flow_of_linear_field_is_the_exponential():
    """Flow of θ' = −H θ (one label): chains H^{k−1} g with coefficients (−1)^k/k!."""
    s = lie.modified_flow([0], h_order=5, rho=0)
    for k in range(1, 6):
        chain = trees.leaf(0)
        for _ in range(k - 1):
            chain = (0, (chain,))
        assert s.coefficient(k)[chain] == Fraction((-1) ** k, int(np.prod(range(1, k + 1))))


def test_implicit_regulariser_coefficient_is_h_over_4m():
    h = sympy.Symbol("h", positive=True)
    for m in (2, 3, 4):
        r = lie.implicit_regulariser(m)
        assert r.coefficient == h / (4 * m)
        assert r.bracket_mean == {} and r.residual == {} and r.n_orders == np.prod(range(1, m + 1))
        assert r.gradient_terms[(0, 1)] == Fraction(1, 2)  # ½ Σ_{a≠b} H_b g_a
    biased = lie.implicit_regulariser(3, orders=[(0, 1, 2)])
    assert biased.bracket_mean != {} and biased.coefficient != h / 12


def _chain_value(chain, H, c, theta):
    v = H[chain[-1]] @ (theta - c[chain[-1]])
    for a in reversed(chain[:-1]):
        v = H[a] @ v
    return v


def test_formal_series_is_exact_for_quadratics():
    """Only chains H_{a1}⋯H_{a(k−1)} g_{ak} survive; truncated at the word length the series is exact."""
    rng = np.random.default_rng(3)
    G = rng.normal(size=(3, 3, 3))
    H = G @ np.swapaxes(G, 1, 2) / 3
    c, theta = rng.normal(size=(3, 3)), rng.normal(size=3)
    maps = ct.QuadraticModel(H, c).sgd_maps(0.7)
    for word in ([0, 2, 1], [1, 1, 0, 2]):
        s = lie.formal_composition(word, h_order=len(word))
        total = theta.copy()
        for k, terms in s.as_dict().items():
            for t, coef in terms.items():
                chain = trees.chain_labels(t)
                if chain is not None:
                    total += float(coef) * 0.7**k * _chain_value(chain, H, c, theta)
        A, b = maps.word(word)
        assert np.allclose(total, A @ theta + b, rtol=0, atol=1e-12)


def test_quadratic_difference_is_exact(rng):
    """Exact polynomial in h with matrix symbols; to 1e-12 against the affine closed forms."""
    q2 = lie.quadratic_difference((0, 1))
    assert sorted(q2.coefficients) == [2]
    H0, H1 = q2.hessians
    c0, c1 = q2.centers
    spec = (H1 * H0 - H0 * H1) * q2.theta - H1 * H0 * c0 + H0 * H1 * c1
    assert (q2.coefficients[2] - spec).expand() == sympy.ZeroMatrix(*spec.shape)
    q3 = lie.quadratic_difference((0, 1, 2))
    assert sorted(q3.coefficients) == [2, 3]
    qp = lie.quadratic_difference((0, 1, 2), orders=("palindromic", "forward"))
    for _ in range(10):
        d = int(rng.integers(1, 5))
        G = rng.normal(size=(3, d, d))
        H = G @ np.swapaxes(G, 1, 2) / d
        c, theta, h = rng.normal(size=(3, d)), rng.normal(size=d), float(rng.uniform(0.05, 1.5))
        maps = ct.QuadraticModel(H, c).sgd_maps(h)
        for q, words in ((q2, ([1, 0], [0, 1])), (q3, ([2, 1, 0], [0, 1, 2]))):
            (A, b), (A2, b2) = maps.word(words[0]), maps.word(words[1])
            assert np.abs(q.evaluate(H, c, theta, h) - ((A - A2) @ theta + b - b2)).max() <= 1e-12
        half = ct.QuadraticModel(H, c).sgd_maps(h / 2)
        Ap, bp = half.word([0, 1, 2, 2, 1, 0])
        A3, b3 = maps.word([2, 1, 0])
        assert np.abs(qp.evaluate(H, c, theta, h) - ((Ap - A3) @ theta + bp - b3)).max() <= 1e-12


# --- concrete expansions and the numeric bridge ---------------------------------------------------


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


def test_order_difference_from_text_and_symbols():
    diff = lie.order_difference(["x**2 * y", "exp(x) + y**2"], ["x", "y"], h_order=2)
    expected = lie.bracket(lie.gradient("x**2 * y", XY), lie.gradient("exp(x) + y**2", XY), XY)
    assert sympy.simplify(diff.coefficients[2] - expected) == sympy.zeros(2, 1)


def test_c9_slopes_on_three_non_quadratic_losses():
    r = c09.check(quick=True)
    assert r.passed, r.details
    families = {key.split()[0] for key in r.details["residual_slopes"]}
    assert len(families) >= 3
    assert all(abs(s - 2) <= 0.2 for s in r.details["difference_slopes"].values())
    assert all(abs(s - 3) <= 0.2 for s in r.details["residual_slopes"].values())
    assert r.details["quadratic_max_error"] <= 1e-12


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


def test_lambdify_shapes_and_broadcasting():
    h = sympy.Symbol("h")
    col = lie.lambdify(sympy.Matrix([x, 2, h * y]), XY, params=[h])
    pts = np.arange(12.0).reshape(2, 3, 2)
    out = col(pts, np.array([[1.0], [2.0]]))
    assert out.shape == (2, 3, 3)
    assert np.allclose(out[..., 1], 2.0) and np.allclose(out[1, :, 2], 2.0 * pts[1, :, 1])
    mat = lie.lambdify(sympy.Matrix([[x, y], [1, x * y]]), XY)
    assert mat(pts).shape == (2, 3, 2, 2) and np.allclose(mat(pts)[..., 1, 1], pts[..., 0] * pts[..., 1])
    scalar = lie.lambdify(sympy.exp(x) + y, XY)
    assert scalar(pts).shape == (2, 3) and np.allclose(scalar([0.0, 1.0]), 2.0)


def test_numeric_maps_agree_with_the_quadratic_model():
    H = np.array([[[2.0, 0.5], [0.5, 1.0]], [[1.0, -0.3], [-0.3, 0.5]]])
    c = np.array([[1.0, -1.0], [0.5, 2.0]])
    texts = [
        f"({H[i,0,0]}*(x-({c[i,0]}))**2 + 2*({H[i,0,1]})*(x-({c[i,0]}))*(y-({c[i,1]})) + {H[i,1,1]}*(y-({c[i,1]}))**2)/2"
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


# --- bracket-corrected forward step (C11c) -----------------------------------------------------


def _corrected_block(maps, theta0, block):
    theta = np.asarray(theta0, dtype=np.float64)[None]
    grads = hvps = 0
    for n, j in enumerate(block):
        out = lie.bracket_corrected_step(maps, theta, np.array([j]), np.array([block[:n]], dtype=int).reshape(1, n))
        theta, grads, hvps = out.theta, grads + out.gradient_evals, hvps + out.hvp_evals
    return theta[0], grads, hvps


@pytest.mark.parametrize("family", ["nonlinear", "quadratic"])
def test_bracket_corrected_step_tracks_the_anchored_backward_block(steps3, family):
    block = [0, 2, 1, 2]
    hs = np.geomspace(2e-3, 2e-2, 6)
    corr, fwd = [], []
    for h in hs:
        if family == "nonlinear":
            maps = steps3.numeric_maps(h)
        else:
            rng = np.random.default_rng(4)
            G = rng.normal(size=(3, 2, 2))
            maps = ct.QuadraticModel(G @ np.swapaxes(G, 1, 2), rng.normal(size=(3, 2))).gradient_maps(h)
        anchored = ct.backward_iterates(maps, THETA0, block)[0, -1]  # T_ξ1 ∘ … ∘ T_ξW (θ0)
        forward = ct.forward_iterates(maps, THETA0, block)[0, -1]
        corrected, grads, hvps = _corrected_block(maps, THETA0, block)
        corr.append(np.linalg.norm(corrected - anchored))
        fwd.append(np.linalg.norm(forward - anchored))
    assert abs(lie.loglog_slope(hs, corr) - 3) <= 0.2
    assert abs(lie.loglog_slope(hs, fwd) - 2) <= 0.2
    assert (grads, hvps) == (1 + 2 + 3 + 4, 0 + 2 + 3 + 4)


def test_bracket_corrected_step_rows_are_independent(steps3):
    maps = steps3.numeric_maps(0.05)
    rng = np.random.default_rng(5)
    theta = rng.normal(size=(6, 2))
    index = rng.integers(0, 3, size=6)
    previous = rng.integers(0, 3, size=(6, 3))
    out = lie.bracket_corrected_step(maps, theta, index, previous)
    for k in range(6):
        row = lie.bracket_corrected_step(maps, theta[k:k + 1], index[k:k + 1], previous[k:k + 1])
        assert np.allclose(out.theta[k], row.theta[0], rtol=1e-13, atol=1e-15)
    plain = lie.bracket_corrected_step(maps, theta, index, np.zeros((6, 0), dtype=int))
    assert np.allclose(plain.theta, maps.step(theta, index)) and (plain.gradient_evals, plain.hvp_evals) == (1, 0)
    assert out.gradient_evals == 4 and out.hvp_evals == 4
    with pytest.raises(Exception):
        out.theta = None  # frozen record


# --- the checks and their failure modes -------------------------------------------------------


def test_c10_check_passes_and_reports_h_over_4m():
    r = c10.check(quick=True)
    assert r.passed, r.details
    assert abs(r.numerical - 1 / 12) <= 0.01 / 12 and r.theoretical == pytest.approx(1 / 12)
    assert r.details["symbolic"][3]["solved"] == "h/12"


def _swapped_bracket(X, Y, symbols):
    return -lie.bracket(X, Y, symbols)


def _swapped_compose(maps, theta0, sequence, order):
    return c09.compose(maps, theta0, sequence, "backward" if order == "forward" else "forward")


@pytest.mark.parametrize("ingredients", [
    {"bracket": _swapped_bracket},
    {"compose": _swapped_compose},
], ids=["swapped-bracket-sign", "swapped-composition-order"])
def test_c9_check_fails_with_wrong_ingredients(ingredients):
    r = c09.check(quick=True, **ingredients)
    assert not r.passed
    assert not r.details["extra_conditions"]["residual slopes within 0.2 of 3"]


@pytest.mark.parametrize("ingredients", [
    {"coefficient": lambda h, m: h / (2 * m)},
    {"orders": lambda m: [tuple(range(m))]},
], ids=["coefficient-h-over-2m", "one-fixed-order"])
def test_c10_check_fails_with_wrong_ingredients(ingredients):
    r = c10.check(quick=True, **ingredients)
    assert not r.passed
    assert not r.details["extra_conditions"]["symbolic coefficient equals the stated one"]


def test_run_check_finds_both_checks():
    import proofs_checks

    for claim, module in (("C9", c09), ("C10", c10)):
        assert proofs_checks.load(claim) is module
        assert isinstance(module.STATEMENT, str) and module.STATEMENT.startswith(claim)


# --- bad inputs ---------------------------------------------------------------------------------

_MAPS = ct.QuadraticModel(np.stack([np.eye(2)] * 2), np.zeros((2, 2))).gradient_maps(0.1)

BAD_CALLS = [
    ("X", TypeError, lambda: lie.bracket("x", sympy.Matrix([x, y]), XY)),
    ("X", ValueError, lambda: lie.bracket(sympy.Matrix([x]), sympy.Matrix([x, y]), XY)),
    ("Y", TypeError, lambda: lie.bracket(sympy.Matrix([x, y]), ["x", "y"], XY)),
    ("symbols", TypeError, lambda: lie.bracket(sympy.Matrix([x, y]), sympy.Matrix([x, y]), "xy")),
    ("loss", ValueError, lambda: lie.gradient("z**2", ["x", "y"])),
    ("loss", ValueError, lambda: lie.gradient(z**2, XY)),
    ("loss", TypeError, lambda: lie.gradient(sympy.Matrix([x]), XY)),
    ("losses", TypeError, lambda: lie.SGDSteps("x**2", ["x"])),
    ("losses", ValueError, lambda: lie.SGDSteps([], ["x"])),
    ("losses", ValueError, lambda: lie.SGDSteps(["x.real"], ["x"])),
    ("order", ValueError, lambda: lie.order_word("sideways", [0, 1])),
    ("order", ValueError, lambda: lie.order_word([0, -1])),
    ("order", TypeError, lambda: lie.order_word([(0, "half")])),
    ("sequence", ValueError, lambda: lie.order_word("forward")),
    ("sequence", ValueError, lambda: lie.order_word([0, 1], sequence=[0, 1])),
    ("sequence", TypeError, lambda: lie.order_word("forward", [0.5, 1])),
    ("sequence", ValueError, lambda: lie.order_word("forward", [])),
    ("h_order", ValueError, lambda: lie.formal_composition("forward", [0, 1], h_order=0)),
    ("h_order", ValueError, lambda: lie.formal_composition("forward", [0, 1], h_order=99)),
    ("h_order", TypeError, lambda: lie.formal_composition("forward", [0, 1], h_order=2.0)),
    ("steps", TypeError, lambda: lie.composition(["x**2"], "forward")),
    ("order", ValueError, lambda: lie.composition(lie.SGDSteps(["x**2"], ["x"]), [0, 1])),
    ("orders", ValueError, lambda: lie.order_difference(["x**2"], ["x"], orders="forward")),
    ("symbols", TypeError, lambda: lie.order_difference(["x**2"])),
    ("series", TypeError, lambda: lie.second_order_structure({2: {}})),
    ("series", ValueError, lambda: lie.second_order_structure(lie.formal_composition("forward", [0], h_order=1))),
    ("n_batches", ValueError, lambda: lie.implicit_regulariser(0)),
    ("orders", ValueError, lambda: lie.implicit_regulariser(3, orders=[(0, 1, 1)])),
    ("expr", ValueError, lambda: lie.lambdify(x + z, XY)),
    ("theta", ValueError, lambda: lie.lambdify(x, XY)(np.zeros(3))),
    ("x", ValueError, lambda: lie.loglog_slope([1.0, -1.0], [1.0, 2.0])),
    ("y", ValueError, lambda: lie.loglog_slope([1.0, 2.0], [0.0, 2.0])),
    ("maps", TypeError, lambda: lie.bracket_corrected_step(ct.GradientMaps(lambda t, i: t, 0.1, 2),
                                                           np.zeros((1, 2)), [0], [[1]])),
    ("maps", TypeError, lambda: lie.bracket_corrected_step(object(), np.zeros((1, 2)), [0], [[1]])),
    ("theta", ValueError, lambda: lie.bracket_corrected_step(_MAPS, np.zeros(2), [0], [[1]])),
    ("index", ValueError, lambda: lie.bracket_corrected_step(_MAPS, np.zeros((2, 2)), [0], [[1], [0]])),
    ("index", TypeError, lambda: lie.bracket_corrected_step(_MAPS, np.zeros((1, 2)), [0.0], [[1]])),
    ("index", ValueError, lambda: lie.bracket_corrected_step(_MAPS, np.zeros((1, 2)), [2], [[1]])),
    ("previous", ValueError, lambda: lie.bracket_corrected_step(_MAPS, np.zeros((1, 2)), [0], [1])),
    ("previous", ValueError, lambda: lie.bracket_corrected_step(_MAPS, np.zeros((1, 2)), [0], [[1], [1]])),
    ("previous", ValueError, lambda: lie.bracket_corrected_step(_MAPS, np.zeros((1, 2)), [0], [[-1]])),
]


@pytest.mark.parametrize("name,exc,call", BAD_CALLS, ids=[f"{c[0]}-{k}" for k, c in enumerate(BAD_CALLS)])
def test_bad_input_names_the_argument(name, exc, call):
    with pytest.raises(exc) as info:
        call()
    assert str(info.value).startswith(f"{name}:"), str(info.value)


def test_public_names_have_docstrings():
    for name in lie.__all__:
        assert getattr(lie, name).__doc__, name
    assert ct.lie is lie
