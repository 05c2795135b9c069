"""Fuzz cases for the public functions of contraction.lie not covered by tests/test_fuzz.py.

The rule is the fuzz suite's: every call returns finite output or raises
``ValueError`` / ``TypeError`` whose message starts with the name of an
argument of the function called, within 20 s. Inputs mix valid values with
wrong types, ``nan``, empty and huge sizes.
"""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest
import sympy
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from limits import time_limit

from contraction import lie

x, y, z, h = sympy.symbols("x y z h")
XY = (x, y)
CALL_SECONDS = 20.0
_PREFIX = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*):")
_NOT_FINITE = (sympy.nan, sympy.zoo, sympy.oo, -sympy.oo)


_time_limit = time_limit


def _assert_finite(value, where="result"):
    if isinstance(value, np.ndarray):
        assert value.dtype.kind == "f" and np.all(np.isfinite(value)), f"{where}: non-finite output"
    elif isinstance(value, (sympy.Basic, sympy.MatrixBase)):
        assert not value.has(*_NOT_FINITE), f"{where}: non-finite expression {value}"
    elif isinstance(value, lie.Expansion):
        for k, a in enumerate(value.coefficients):
            _assert_finite(a, f"{where}.coefficients[{k}]")


def outcome(fn, *args, names=None, **kwargs):
    """Call ``fn``: a finite result, or a ValueError/TypeError naming one of its arguments (``names``)."""
    names = set(inspect.signature(fn).parameters) if names is None else set(names)
    try:
        with _time_limit(CALL_SECONDS):
            result = fn(*args, **kwargs)
    except (ValueError, TypeError) as exc:
        match = _PREFIX.match(str(exc))
        assert match and match.group(1) in names, f"error does not name an argument of {fn}: {exc!r}"
        return None
    _assert_finite(result)
    return result


# --- strategies ----------------------------------------------------------------------------------

odd = st.sampled_from([
    None, True, "", "x", "x+", 0, -1, 2.5, float("nan"), float("inf"), 10**12, [], (), object(),
    sympy.nan, sympy.zoo, sympy.oo * x, sympy.I * x, sympy.Symbol("z") ** 2, sympy.Matrix([x]),
    sympy.Matrix(0, 1, []), sympy.true, sympy.Function("f")(x), np.array([1.0, np.nan]), np.zeros((2, 2)),
    "+".join(["x"] * 1001), "sqrt(10**299)**1000",
])
many_symbols = [f"x{i}" for i in range(10**4)]
symbols = st.one_of(st.sampled_from([["x", "y"], XY, ("x", y), np.array(["x", "y"])]),
                    st.sampled_from([None, "xy", [], ["x", "x"], [1, 2], ["exp"], ["__x"], many_symbols,
                                     [x, sympy.Symbol("y", positive=True)]]),
                    st.builds(iter, st.just(many_symbols)))
losses = st.one_of(st.sampled_from(["x**2 * y / 2", "exp(x / 3) + y**2", "log(cosh(x - y))", x * y + y**3,
                                    sympy.sin(x) * y, sympy.Integer(3), 1.5]), odd)
fields = st.one_of(st.sampled_from([sympy.Matrix([x * y, y]), sympy.Matrix([1, x]), [x, y**2], (sympy.exp(x), 1),
                                    sympy.zeros(2, 1)]),
                   st.sampled_from([sympy.Matrix([sympy.nan, x]), sympy.Matrix([x, y, x]), sympy.Matrix([[x, y]]),
                                    [x], [1.0, float("nan")], [sympy.true, x], "x", 3, None, sympy.Matrix([x, z]),
                                    [x] * 10**5]),
                   odd)
exprs = st.one_of(st.sampled_from([x * y, sympy.exp(x) * y, sympy.Matrix([x + y, h * x]),
                                   sympy.Matrix([[x, y], [1, h]]), sympy.sqrt(x), sympy.log(x), sympy.Integer(2),
                                   h * sympy.cosh(y)]), odd)
params = st.sampled_from([(), [h], ("h",), [x], "h", None, [h, h], [sympy.Symbol("z")], [1.0]])
points = st.one_of(
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=3),
               elements=st.floats(-3, 3, allow_nan=False)),
    hnp.arrays(st.sampled_from([np.float64, np.int64, np.bool_, np.complex128, np.float32]),
               hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3)),
    odd,
)
param_values = st.one_of(st.floats(-2, 2, allow_nan=False), st.just(np.nan), st.just(np.ones(4)), odd)
h_orders = st.one_of(st.integers(1, 6), st.sampled_from([0, 7, 2.0, True, None, "3", 10**9]))
words = st.one_of(
    st.lists(st.integers(0, 2), min_size=0, max_size=12),
    st.lists(st.tuples(st.integers(0, 2), st.sampled_from([1, 0.5, -1, 2])), min_size=1, max_size=6),
    st.sampled_from([[0, -1], [0.5], [(0, float("nan"))], [(0, "half")], list(range(10**4)), range(10**9)]),
    st.builds(iter, st.just(range(10**9))),
)
orders = st.one_of(st.sampled_from(["forward", "backward", "palindromic", "sideways"]), words, odd)
sequences = st.one_of(st.none(), st.lists(st.integers(0, 2), min_size=0, max_size=12),
                      st.sampled_from([range(10**9), [0, 5], [0.5, 1], "01"]), odd)

STEPS = lie.SGDSteps(["x**2 * y / 2 + y**2", "x * y + x**2 / 3", "(x - y)**2 / 2"], ["x", "y"])


# --- targets -------------------------------------------------------------------------------------


@given(loss=losses, syms=symbols)
def test_gradient_and_hessian(loss, syms):
    grad = outcome(lie.gradient, loss, syms)
    hess = outcome(lie.hessian, loss, syms)
    if grad is not None and hess is not None:
        assert grad.shape == (hess.shape[0], 1) and hess == hess.T


@given(X=fields, Y=fields, syms=symbols)
def test_bracket(X, Y, syms):
    out = outcome(lie.bracket, X, Y, syms)
    if out is not None:
        assert out.shape == (len(list(syms)), 1)


@given(expr=exprs, syms=symbols, par=params, theta=points, value=param_values)
def test_lambdify_and_numeric_function(expr, syms, par, theta, value):
    for build in (lie.lambdify, lie.NumericFunction):
        f = outcome(build, expr, syms, par)
        if f is None:
            continue
        args = [value] * len(f.params)
        out = outcome(f, theta, *args, names=("theta", "params"))
        if out is not None:
            assert out.shape == np.broadcast_shapes(np.shape(theta)[:-1], *(np.shape(a) for a in args)) + f.shape
        outcome(f, np.zeros(2), *args, 1.0, names=("theta", "params"))  # one value too many


@given(order=orders, sequence=sequences, h_order=h_orders)
def test_composition(order, sequence, h_order):
    out = outcome(lie.composition, STEPS, order, sequence=sequence, h_order=h_order)
    if out is not None:
        assert len(out.coefficients) == out.h_order + 1
    outcome(lie.composition, order, "forward")  # not SGDSteps


@given(loss_list=st.one_of(st.lists(losses, min_size=0, max_size=3), odd), syms=symbols, h_order=h_orders,
       pair=st.one_of(st.tuples(orders, orders), odd), sequence=sequences)
def test_order_difference(loss_list, syms, h_order, pair, sequence):
    outcome(lie.order_difference, loss_list, syms, h_order, orders=pair, sequence=sequence)
    outcome(lie.order_difference, STEPS, None, h_order, orders=pair, sequence=sequence)


@given(order=orders, sequence=sequences, reference=st.one_of(st.sampled_from(["modified_flow", "flow"]), orders),
       h_order=h_orders, rho=st.one_of(st.none(), st.sampled_from([0, 1, 0.25, -2]), odd))
def test_leading_error_and_modified_flow(order, sequence, reference, h_order, rho):
    outcome(lie.leading_error, order, sequence, reference=reference, h_order=h_order)
    outcome(lie.modified_flow, order, sequence, h_order=h_order, rho=rho)


@pytest.mark.parametrize("call", [
    lambda: lie.composition(STEPS, list(range(3)) * 4, h_order=6),
    lambda: lie.composition(STEPS, [0, 1, 2] * 2, h_order=6),
    lambda: lie.order_difference(STEPS, h_order=6, orders=([0, 1, 2, 0, 1, 2], "forward")),
    lambda: lie.leading_error("palindromic", range(400), h_order=2),
    lambda: lie.modified_flow("forward", range(1000), h_order=2),
    lambda: lie.hessian("+".join(f"x{i}**2 * x{(i + 1) % 60}" for i in range(60)), [f"x{i}" for i in range(60)]),
    lambda: lie.lambdify(sympy.Matrix([x] * 10), XY)(np.zeros((10**3, 2))),
], ids=["composition-12", "composition-6-h6", "difference-h6", "leading-400", "flow-1000", "hessian-60", "lambdify"])
def test_huge_sizes_are_refused_or_fast(call):
    outcome(lambda: call(), names=("order", "sequence", "orders", "h_order", "symbols", "theta", "losses"))


ODD_CALLS = [
    ("loss", ValueError, lambda: lie.gradient(sympy.nan, XY)),
    ("loss", ValueError, lambda: lie.hessian(sympy.zoo * x, XY)),
    ("loss", ValueError, lambda: lie.hessian(x + sympy.oo, XY)),
    ("loss", TypeError, lambda: lie.gradient(sympy.true, XY)),
    ("symbols", ValueError, lambda: lie.hessian("x0", [f"x{i}" for i in range(10**4)])),
    ("symbols", ValueError, lambda: lie.gradient("x", iter(f"x{i}" for i in range(10**9)))),
    ("Y", ValueError, lambda: lie.bracket(sympy.Matrix([x, y]), sympy.Matrix([sympy.nan, x]), XY)),
    ("X", TypeError, lambda: lie.bracket([sympy.true, x], sympy.Matrix([x, y]), XY)),
    ("X", ValueError, lambda: lie.bracket([x] * 10**5, [x, y], XY)),
    ("expr", ValueError, lambda: lie.lambdify(sympy.Matrix(0, 1, []), XY)),
    ("expr", ValueError, lambda: lie.lambdify(sympy.Matrix([x, sympy.nan]), XY)),
    ("expr", ValueError, lambda: lie.lambdify(sympy.Function("f")(x), XY)),
    ("expr", ValueError, lambda: lie.NumericFunction(sympy.Derivative(sympy.Function("f")(x), x), XY)),
    ("params", ValueError, lambda: lie.NumericFunction(x * y, XY, params=[x])),
    ("theta", ValueError, lambda: lie.lambdify(sympy.exp(x), XY)(np.array([[1000.0, 0.0]]))),
    ("theta", ValueError, lambda: lie.lambdify(sympy.sqrt(x), XY)(np.array([-1.0, 0.0]))),
    ("theta", ValueError, lambda: lie.lambdify(sympy.I * x, XY)(np.array([1.0, 0.0]))),
    ("theta", TypeError, lambda: lie.lambdify(x, XY)(np.array([1j, 0.0]))),
    ("params", ValueError, lambda: lie.lambdify(h * x, XY, params=[h])(np.zeros((3, 2)), np.ones(4))),
    ("params", ValueError, lambda: lie.lambdify(h * x, XY, params=[h])(np.zeros(2), np.nan)),
    ("sequence", ValueError, lambda: lie.composition(STEPS, "forward", sequence=list(range(3)) * 4, h_order=6)),
    ("h_order", ValueError, lambda: lie.composition(STEPS, [0, 1, 2] * 2, h_order=6)),
    ("orders", ValueError, lambda: lie.order_difference(STEPS, h_order=6, orders=([0, 1, 2] * 2, [0] * 7))),
    ("orders", ValueError, lambda: lie.order_difference(["x", "y"], XY, orders=("forward", "backward", "forward"))),
    ("losses", ValueError, lambda: lie.order_difference([sympy.nan, x], XY)),
    ("sequence", ValueError, lambda: lie.modified_flow("forward", range(10**9))),
    ("sequence", ValueError, lambda: lie.modified_flow("forward", range(17), h_order=3)),
    ("order", ValueError, lambda: lie.leading_error(list(range(25)), h_order=3)),
    ("reference", ValueError, lambda: lie.leading_error("forward", [0, 1], reference=range(10**9))),
]


@pytest.mark.parametrize("name,exc,call", ODD_CALLS, ids=[f"{c[0]}-{k}" for k, c in enumerate(ODD_CALLS)])
def test_odd_inputs_raise_named_errors_at_once(name, exc, call):
    with _time_limit(5.0), pytest.raises(exc, match=f"^{name}:"):
        call()
