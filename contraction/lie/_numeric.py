r"""The numeric bridge: symbolic results compiled to numpy functions of stacked points.

Every symbolic identity of :mod:`contraction.lie` is also checked numerically:
:func:`lambdify` turns a scalar, a column or a matrix expression into a
:class:`NumericFunction` evaluated on parameter stacks ``theta`` of shape
``(..., d)``, which is what the numeric core (``forward_iterates``, the map
families) works with.
"""

from __future__ import annotations

import numpy as np
import sympy

from ..core._validation import as_float_array, describe
from ._parser import _as_scalar, _as_symbols

__all__ = ["NumericFunction", "lambdify"]


class NumericFunction:
    r"""A symbolic expression compiled to numpy, vectorized over stacks of points.

    Calling ``f(theta, *params)`` with ``theta`` of shape ``(..., d)`` returns
    shape ``(...)`` for a scalar, ``(..., n)`` for an (n, 1) column and
    ``(..., n, k)`` for an (n, k) matrix. Parameters broadcast with the
    leading axes of ``theta``. Build it with :func:`lambdify`.

    Parameters
    ----------
    expr : sympy.Expr or sympy.Matrix
        The expression; it may depend only on ``symbols`` and ``params``.
    symbols : sequence of str or sympy.Symbol, length d
        Coordinates, read from the last axis of ``theta``.
    params : sequence of sympy.Symbol, optional
        Further arguments (e.g. the learning rate ``h``), passed after ``theta``.

    Attributes
    ----------
    expr : sympy.Expr or sympy.Matrix
        The compiled expression.
    symbols : tuple of sympy.Symbol
        The coordinates.
    params : tuple of sympy.Symbol
        The further arguments.
    shape : tuple of int
        Shape of one value: ``()``, ``(n,)`` or ``(n, k)``.

    Examples
    --------
    >>> import numpy as np, sympy
    >>> x, y = sympy.symbols("x y")
    >>> f = NumericFunction(sympy.Matrix([x + y, x * y]), [x, y])
    >>> bool(np.allclose(f(np.array([[1.0, 2.0], [3.0, 4.0]])), [[3.0, 2.0], [7.0, 12.0]]))
    True
    """

    def __init__(self, expr, symbols, params=()):
        self.symbols = _as_symbols(symbols)
        self.params = () if isinstance(params, (tuple, list)) and not params else _as_symbols(params, "params")
        if isinstance(expr, sympy.MatrixBase):
            self.shape = (expr.shape[0],) if expr.shape[1] == 1 else tuple(expr.shape)
            entries = list(expr)
        else:
            self.shape = ()
            entries = [_as_scalar(expr, "expr")]
        allowed = set(self.symbols) | set(self.params)
        extra = set().union(*(sympy.sympify(e).free_symbols for e in entries)) - allowed
        if extra:
            raise ValueError(
                f"expr: expected an expression in {[str(s) for s in allowed]}, got one that also "
                f"depends on {sorted(str(s) for s in extra)}"
            )
        self.expr = expr
        self._fn = sympy.lambdify(
            list(self.symbols) + list(self.params), entries, modules="numpy", cse=True, dummify=True
        )

    def __call__(self, theta, *params):
        """Evaluate at the points ``theta`` (..., d) with the parameter values ``params``.

        Parameters
        ----------
        theta : array_like, shape (..., d)
            Stack of points.
        *params : array_like
            One value (or array broadcasting with ``theta.shape[:-1]``) per parameter.

        Returns
        -------
        ndarray, shape (...) + self.shape
            The values, float64.
        """
        theta = as_float_array(theta, "theta")
        d = len(self.symbols)
        if theta.ndim == 0 or theta.shape[-1] != d:
            raise ValueError(f"theta: expected shape (..., {d}), got {describe(theta)}")
        if len(params) != len(self.params):
            raise TypeError(f"params: expected {len(self.params)} parameter values, got {len(params)}")
        params = [as_float_array(p, "params") for p in params]
        batch = np.broadcast_shapes(theta.shape[:-1], *(p.shape for p in params))
        values = self._fn(*np.moveaxis(theta, -1, 0), *params)
        out = np.stack([np.broadcast_to(np.asarray(v, dtype=np.float64), batch) for v in values], axis=-1)
        return out.reshape(batch + self.shape)

    def __repr__(self) -> str:
        return f"NumericFunction(shape={self.shape}, symbols={[str(s) for s in self.symbols]})"


def lambdify(expr, symbols, params=()) -> NumericFunction:
    r"""Compile a symbolic result to a numpy function of stacked points ``theta`` (..., d).

    Parameters
    ----------
    expr : sympy.Expr or sympy.Matrix
        A scalar, a column (n, 1) or a matrix (n, k) expression in ``symbols``
        and ``params``.
    symbols : sequence of str or sympy.Symbol, length d
        Coordinates, read from the last axis of ``theta``.
    params : sequence of sympy.Symbol, optional
        Further arguments (e.g. the learning rate ``h``), passed after ``theta``.

    Returns
    -------
    NumericFunction
        ``f(theta, *params)`` of shape ``theta.shape[:-1]`` plus ``()``,
        ``(n,)`` or ``(n, k)``.

    Examples
    --------
    >>> import numpy as np, sympy
    >>> x, y, h = sympy.symbols("x y h")
    >>> f = lambdify(sympy.Matrix([x * y, h]), [x, y], params=[h])
    >>> out = f(np.array([[1.0, 2.0], [3.0, 4.0]]), 0.5)
    >>> out.shape, bool(np.allclose(out, [[2.0, 0.5], [12.0, 0.5]]))
    ((2, 2), True)
    """
    return NumericFunction(expr, symbols, params)
