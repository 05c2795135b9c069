"""contraction.lie calculus: gradients, Hessians and the Lie bracket, the numeric bridge, the bracket-corrected step.

Every symbolic identity is also evaluated numerically (``lambdify``), and the
bracket's sign is tied to the composition of Euler steps by a fitted order.
"""

import dataclasses

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import contraction as ct
from contraction import lie
from proofs_checks import c09_lie_bracket as c09

x, y, z = sympy.symbols("x y z")
XY = (x, y)
THETA0 = np.array([0.3, -0.4])


def zero_vector(v):
    return sympy.expand(sympy.Matrix(v)) == sympy.zeros(*sympy.Matrix(v).shape)


@pytest.fixture(scope="module")
def steps3():
    return lie.SGDSteps(c09.LOSS_FAMILIES["logcosh"], ["x", "y"])


# --- bracket identities on random polynomial fields ---------------------------------------------


def _monomials(syms, degree):
    """``1, x, y, x², xy, y², …`` up to total degree ``degree`` (at most 2)."""
    monomials = [sympy.Integer(1), *syms, *(a * b for i, a in enumerate(syms) for b in syms[i:])]
    return [mono for mono in monomials if sympy.Poly(mono, *syms).total_degree() <= degree]


@st.composite
def polynomial_fields(draw, n=3, d=2, degree=2):
    """``n`` polynomial vector fields on R^d with integer coefficients in [-3, 3], drawn as one array."""
    syms = (x, y, z)[:d]
    monomials = _monomials(syms, degree)
    coef = draw(hnp.arrays(np.int64, (n, d, len(monomials)), elements=st.integers(-3, 3)))
    fields = [sympy.Matrix([sum(int(c) * mono for c, mono in zip(row, monomials, strict=True)) for row in field])
              for field in coef]
    return syms, fields


def _check_bracket_identities(syms, X, Y, Z):
    b = lambda A, B: lie.bracket(A, B, syms)
    assert zero_vector(b(X, Y) + b(Y, X))
    assert zero_vector(b(X, X))
    assert zero_vector(b(X, b(Y, Z)) + b(Y, b(Z, X)) + b(Z, b(X, Y)))
    # bilinear
    assert zero_vector(b(2 * X + Z, Y) - 2 * b(X, Y) - b(Z, Y))


@settings(max_examples=4)
@given(polynomial_fields())
def test_bracket_is_antisymmetric_and_satisfies_jacobi_quick(data):
    """The default run: a few quadratic fields in 2-D (the slow variant draws 12)."""
    syms, (X, Y, Z) = data
    _check_bracket_identities(syms, X, Y, Z)


@pytest.mark.slow
@settings(max_examples=12)
@given(polynomial_fields())
def test_bracket_is_antisymmetric_and_satisfies_jacobi(data):
    syms, (X, Y, Z) = data
    _check_bracket_identities(syms, X, Y, Z)


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
    b = lambda A, B: lie.bracket(A, B, XY)
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
        TX = lambda t, h=h: t - h * fX(t)
        TY = lambda t, h=h: t - h * fY(t)
        diff = TY(TX(THETA0)) - TX(TY(THETA0))
        right.append(np.linalg.norm(diff - h * h * br))
        wrong.append(np.linalg.norm(diff + h * h * br))
    assert abs(lie.loglog_slope(hs, right) - 3) < 0.2
    assert abs(lie.loglog_slope(hs, wrong) - 2) < 0.2


def test_gradient_and_hessian():
    assert lie.gradient("x**2 * y", ["x", "y"]) == sympy.Matrix([2 * x * y, x**2])
    assert lie.hessian(x * sympy.exp(y), XY) == sympy.Matrix([[0, sympy.exp(y)], [sympy.exp(y), x * sympy.exp(y)]])


def test_gradient_bracket_is_the_hessian_formula(steps3):
    """[g_i, g_j] = H_j g_i − H_i g_j for gradient fields."""
    g0, g1 = steps3.gradients[:2]
    H0, H1 = steps3.hessians[:2]
    assert zero_vector(steps3.bracket(0, 1) - (H1 * g0 - H0 * g1))


# --- the numeric bridge ------------------------------------------------------------------------


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
    assert isinstance(scalar, lie.NumericFunction) and "shape=()" in repr(scalar)


# --- the bracket-corrected forward step (C11c) --------------------------------------------------


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
    with pytest.raises(dataclasses.FrozenInstanceError, match="theta"):
        out.theta = None  # frozen record


# --- bad inputs ---------------------------------------------------------------------------------

_MAPS = ct.QuadraticModel(np.stack([np.eye(2)] * 2), np.zeros((2, 2))).gradient_maps(0.1)

BAD_CALLS = [
    ("X", TypeError, lambda: lie.bracket("x", sympy.Matrix([x, y]), XY)),
    ("X", ValueError, lambda: lie.bracket(sympy.Matrix([x]), sympy.Matrix([x, y]), XY)),
    ("X", TypeError, lambda: lie.bracket(3, sympy.Matrix([x, y]), XY)),
    ("Y", TypeError, lambda: lie.bracket(sympy.Matrix([x, y]), ["x", "y"], XY)),
    ("symbols", TypeError, lambda: lie.bracket(sympy.Matrix([x, y]), sympy.Matrix([x, y]), "xy")),
    ("expr", ValueError, lambda: lie.lambdify(x + z, XY)),
    ("expr", TypeError, lambda: lie.lambdify("x", XY)),
    ("params", TypeError, lambda: lie.lambdify(x, XY, params="h")),
    ("theta", ValueError, lambda: lie.lambdify(x, XY)(np.zeros(3))),
    ("theta", ValueError, lambda: lie.lambdify(x, XY)(np.full(2, np.nan))),
    ("theta", TypeError, lambda: lie.lambdify(x, XY)("xy")),
    ("params", TypeError, lambda: lie.lambdify(x, XY)(np.zeros(2), 1.0)),
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
    with pytest.raises(exc, match=f"^{name}:"):
        call()
