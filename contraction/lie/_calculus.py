r"""Vector calculus on losses and vector fields: gradient, Hessian and Lie bracket.

Fields are sympy column matrices of shape (d, 1) over the coordinates
``symbols``. The bracket follows the convention

    [X, Y] = (DY) X − (DX) Y,

so that ``T_Y ∘ T_X − T_X ∘ T_Y = h² [X, Y] + O(h³)`` for the Euler steps
``T_V(θ) = θ − h V(θ)``, and for gradients ``[g_i, g_j] = H_j g_i − H_i g_j``.
"""

from __future__ import annotations

import sympy

from ..core._validation import describe
from ._parser import _as_loss, _as_scalar, _as_symbols

__all__ = ["bracket", "gradient", "hessian"]


def _as_field(X, d: int, name: str) -> sympy.ImmutableMatrix:
    """A vector field as an immutable (d, 1) column matrix."""
    if isinstance(X, (str, bytes)):
        raise TypeError(f"{name}: expected a sympy column matrix (vector field), got {describe(X)}")
    if isinstance(X, sympy.MatrixBase):
        if X.shape != (d, 1):
            raise ValueError(f"{name}: expected a column matrix of shape ({d}, 1), got shape {X.shape}")
        M = sympy.ImmutableMatrix([_as_scalar(entry, name) for entry in X])
    elif isinstance(X, (list, tuple)):
        if len(X) != d:
            raise ValueError(f"{name}: expected {d} components, got {describe(X)}")
        M = sympy.ImmutableMatrix([_as_scalar(v, name) for v in X])
    else:
        raise TypeError(f"{name}: expected a sympy column matrix (vector field), got {describe(X)}")
    return M


def gradient(loss, symbols) -> sympy.ImmutableMatrix:
    r"""Compute the gradient field ``∇f`` of a loss.

    Parameters
    ----------
    loss : sympy.Expr or str
        The loss ``f``; a string is parsed safely with :func:`parse_loss`.
    symbols : sequence of str or sympy.Symbol, length d
        The coordinates ``θ``.

    Returns
    -------
    sympy.ImmutableMatrix, shape (d, 1)
        The column ``(∂f/∂θ_1, …, ∂f/∂θ_d)``.

    Examples
    --------
    >>> import sympy
    >>> x, y = sympy.symbols("x y")
    >>> gradient(x**2 * y, [x, y]) == sympy.Matrix([2 * x * y, x**2])
    True
    """
    syms = _as_symbols(symbols)
    return _gradient(_as_loss(loss, syms), syms)


def hessian(loss, symbols) -> sympy.ImmutableMatrix:
    r"""Compute the Hessian ``∇²f`` of a loss.

    Parameters
    ----------
    loss : sympy.Expr or str
        The loss ``f``; a string is parsed safely with :func:`parse_loss`.
    symbols : sequence of str or sympy.Symbol, length d
        The coordinates ``θ`` (at most 50: the Hessian has ``d²`` entries).

    Returns
    -------
    sympy.ImmutableMatrix, shape (d, d)
        The symmetric matrix of second derivatives ``∂²f/∂θ_i∂θ_j``.

    Examples
    --------
    >>> import sympy
    >>> x, y = sympy.symbols("x y")
    >>> hessian("x**2 * y", [x, y]) == sympy.Matrix([[2 * y, 2 * x], [2 * x, 0]])
    True
    """
    syms = _as_symbols(symbols)
    return _hessian(_as_loss(loss, syms), syms)


def _derivative(expr, s):
    """``∂expr/∂s``, skipping the walk through ``expr`` when ``s`` does not occur in it."""
    return expr.diff(s) if s in expr.free_symbols else sympy.S.Zero


def _gradient(f, syms) -> sympy.ImmutableMatrix:
    return sympy.ImmutableMatrix([_derivative(f, s) for s in syms])


def _hessian(f, syms) -> sympy.ImmutableMatrix:
    """The symmetric Hessian, each second derivative computed once (from the gradient)."""
    d = len(syms)
    g = [_derivative(f, s) for s in syms]
    rows = [[sympy.S.Zero] * d for _ in range(d)]
    for i in range(d):
        for j in range(i, d):
            rows[i][j] = rows[j][i] = _derivative(g[i], syms[j])
    return sympy.ImmutableMatrix(rows)


def _jacobian(X, syms) -> sympy.ImmutableMatrix:
    return sympy.ImmutableMatrix([[_derivative(x, s) for s in syms] for x in X])


def bracket(X, Y, symbols) -> sympy.ImmutableMatrix:
    r"""Compute the Lie bracket ``[X, Y] = (DY) X − (DX) Y`` of two vector fields.

    With this sign ``T_Y ∘ T_X − T_X ∘ T_Y = h² [X, Y] + O(h³)`` for the
    Euler steps ``T_X(θ) = θ − h X(θ)``; for gradients,
    ``[g_i, g_j] = H_j g_i − H_i g_j``.

    Parameters
    ----------
    X : sympy.Matrix, shape (d, 1), or sequence of d expressions
        The first vector field.
    Y : sympy.Matrix, shape (d, 1), or sequence of d expressions
        The second vector field.
    symbols : sequence of str or sympy.Symbol, length d
        The coordinates (at most 50: the Jacobians have ``d²`` entries).

    Returns
    -------
    sympy.ImmutableMatrix, shape (d, 1)
        The bracket field, antisymmetric and bilinear in ``X`` and ``Y``.

    Examples
    --------
    >>> import sympy
    >>> x, y = sympy.symbols("x y")
    >>> X, Y = sympy.Matrix([1, 0]), sympy.Matrix([0, x])     # ∂_x and x ∂_y
    >>> bracket(X, Y, [x, y]) == sympy.Matrix([0, 1])
    True
    >>> bracket(Y, X, [x, y]) == -bracket(X, Y, [x, y])
    True
    """
    syms = _as_symbols(symbols)
    X = _as_field(X, len(syms), "X")
    Y = _as_field(Y, len(syms), "Y")
    return sympy.ImmutableMatrix(_jacobian(Y, syms) * X - _jacobian(X, syms) * Y)
