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
from sympy.core.function import AppliedUndef

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
        if set(self.params) & set(self.symbols):
            raise ValueError(f"params: expected symbols other than the coordinates, got "
                             f"{sorted(str(p) for p in set(self.params) & set(self.symbols))} in both")
        if isinstance(expr, sympy.MatrixBase):
            if 0 in expr.shape:
                raise ValueError(f"expr: expected a non-empty matrix, got shape {expr.shape}")
            self.shape = (expr.shape[0],) if expr.shape[1] == 1 else tuple(expr.shape)
            entries = [_as_scalar(e, "expr") for e in expr]
        else:
            self.shape = ()
            entries = [_as_scalar(expr, "expr")]
        unknown = set().union(*(e.atoms(AppliedUndef, sympy.Derivative, sympy.Integral) for e in entries))
        if unknown:
            raise ValueError(f"expr: expected an expression of elementary functions, got "
                             f"{sorted(str(u) for u in unknown)[:3]}")
        allowed = set(self.symbols) | set(self.params)
        extra = set().union(*(e.free_symbols for e in entries)) - allowed
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

        Raises
        ------
        ValueError
            ``"theta: ..."`` when a value is not finite (an overflow, a point
            outside the domain) or not real, never a silent ``nan``/``inf``;
            ``"params: ..."`` when the parameter values do not broadcast.
        """
        theta = as_float_array(theta, "theta")
        d = len(self.symbols)
        if theta.ndim == 0 or theta.shape[-1] != d:
            raise ValueError(f"theta: expected shape (..., {d}), got {describe(theta)}")
        if len(params) != len(self.params):
            raise TypeError(f"params: expected {len(self.params)} parameter values, got {len(params)}")
        params = [as_float_array(p, "params") for p in params]
        try:
            batch = np.broadcast_shapes(theta.shape[:-1], *(p.shape for p in params))
        except ValueError:
            raise ValueError(f"params: expected values broadcasting with theta.shape[:-1] = {theta.shape[:-1]}, "
                             f"got shapes {[p.shape for p in params]}") from None
        out = self._values(theta, params, batch)
        if not np.all(np.isfinite(out)):
            bad = int(np.count_nonzero((~np.isfinite(out)).reshape(*batch, -1).any(axis=-1)))
            raise ValueError(f"theta: expected points where the expression is finite, got nan or inf at "
                             f"{bad} of {int(np.prod(batch))} points (an overflow or a point outside the domain)")
        return out

    def _values(self, theta: np.ndarray, params, batch: tuple) -> np.ndarray:
        """The values at validated points, shape ``batch + self.shape``; overflow gives ``inf``, silently.

        The map families built on it (:meth:`SGDSteps.numeric_maps`) leave the
        report of non-finite iterates to the iteration engines.
        """
        with np.errstate(all="ignore"):
            values = [np.asarray(v) for v in self._fn(*np.moveaxis(theta, -1, 0), *params)]
        if any(np.iscomplexobj(v) and np.any(v.imag != 0) for v in values):
            raise ValueError("theta: expected points where the expression is real, got complex values")
        out = np.stack([np.broadcast_to(v.real.astype(np.float64), batch) for v in values], axis=-1)
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
