"""contraction.lie, the safe loss parser: a whitelist over Python's ast, never evaluating text."""

import builtins
import sys
import time

import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st
from limits import time_limit

from contraction import lie

x, y, z = sympy.symbols("x y z")
XY = (x, y)

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
    "sqrt(10**299)**1000",
    "(10**299 * x)**1000",
    "(2*x)**1000",
    "(x**1000)**1000",
    "x**1000 * x**1000 * x**1000 * x**1000 * x**1000 * x**1000 * x**1000 * x**1000 * x**1000 * x**1000 * x",
    "2**1000 * x",
    "(2/3)**1000 * x",
    "exp(1000) * x",
    "1e-320 * x",
    "1e301 * x",
    "sqrt(-1) * x",
    "log(-1) + x",
    "+".join(["x"] * 1001),
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


def test_parse_loss_accepts_flat_sums_and_products_up_to_the_stated_limit():
    """A flat x + x + … is one level deep, not 300; 1000 terms are accepted, 1001 refused by the stated limit."""
    assert lie.parse_loss("+".join(["x"] * 300), XY) == 300 * x
    assert lie.parse_loss("+".join(["x"] * 1000), XY) == 1000 * x
    assert lie.parse_loss("-".join(["x"] * 500), XY) == -498 * x
    assert lie.parse_loss("*".join(["x"] * 1000), XY) == x**1000
    assert lie.parse_loss("/".join(["x"] * 3 + ["y"] * 3), XY) == 1 / (x * y**3)
    assert lie.parse_loss(" + ".join(["0.1*x"] * 400), XY) == 40 * x
    assert lie.parse_loss("(2/3)**600 * x", XY) == sympy.Rational(2, 3) ** 600 * x  # below 1e300
    assert lie.parse_loss("10**299 * x", XY) == sympy.Integer(10) ** 299 * x
    for op, what in (("+", "sum"), ("*", "product")):
        with pytest.raises(ValueError, match=rf"^text: expected at most 1000 terms in one {what}"):
            lie.parse_loss(op.join(["x"] * 1001), XY)


_within = time_limit


COSTLY = [
    "*".join(["sqrt(10**299)**1000"] * 60),  # 1,199 characters; ran past 60 s
    "sqrt(10**299)**1000",  # built a 149,500-digit integer
    "*".join(["9**314"] * 150),  # a 45,000-digit product
    "((2*x + 1)**1000)**1000",
    "*".join(["(x + 1)**1000"] * 11),
]


@pytest.mark.parametrize("text", COSTLY, ids=range(len(COSTLY)))
def test_parse_loss_bounds_the_cost_before_sympy_builds_anything(text):
    start = time.perf_counter()
    with _within(5.0), pytest.raises(ValueError, match=r"^text: expected"):
        lie.parse_loss(text, XY)
    assert time.perf_counter() - start < 2.0


def test_parse_loss_never_evaluates_text(monkeypatch):
    """No string reaches sympify/parse_expr/eval/exec; harmful text has no effect."""
    import sympy.parsing.sympy_parser as sp_parser

    def forbidden(*args, **kwargs):
        raise AssertionError("text was evaluated")

    monkeypatch.setattr(sp_parser, "parse_expr", forbidden)
    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    assert lie.parse_loss("log(1 + exp(-x*y)) + x**2", XY) == sympy.log(1 + sympy.exp(-x * y)) + x**2
    before = set(sys.modules)
    with pytest.raises(ValueError, match=r"^text:"):
        lie.parse_loss("__import__('antigravity') + x", XY)
    assert "antigravity" not in set(sys.modules) - before


def test_parse_loss_symbols_validation():
    assert lie.parse_loss("a*b", [sympy.Symbol("a"), "b"]) == sympy.Symbol("a") * sympy.Symbol("b")
    for bad, exc in [("x", TypeError), ([], ValueError), (["exp"], ValueError), (["__x"], ValueError),
                     (["x-y"], ValueError), (["x", "x"], ValueError), ([1], TypeError), (["lambda"], ValueError)]:
        with pytest.raises(exc, match=r"^symbols:"):
            lie.parse_loss("1", bad)
    with pytest.raises(TypeError, match=r"^text:"):
        lie.parse_loss(b"x", ["x"])


BAD_CALLS = [
    ("loss", ValueError, lambda: lie.gradient("z**2", ["x", "y"])),
    ("loss", ValueError, lambda: lie.gradient(z**2, XY)),
    ("loss", TypeError, lambda: lie.gradient(sympy.Matrix([x]), XY)),
    ("loss", TypeError, lambda: lie.hessian(True, XY)),
    ("loss", ValueError, lambda: lie.hessian(float("nan"), XY)),
    ("losses", TypeError, lambda: lie.SGDSteps("x**2", ["x"])),
    ("losses", ValueError, lambda: lie.SGDSteps([], ["x"])),
    ("losses", ValueError, lambda: lie.SGDSteps(["x.real"], ["x"])),
    ("symbols", TypeError, lambda: lie.gradient("x", None)),
]


@pytest.mark.parametrize("name,exc,call", BAD_CALLS, ids=[f"{c[0]}-{k}" for k, c in enumerate(BAD_CALLS)])
def test_bad_loss_input_names_the_argument(name, exc, call):
    with pytest.raises(exc, match=f"^{name}:"):
        call()
