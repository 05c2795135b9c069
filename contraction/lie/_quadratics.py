r"""Exact differences of compositions for quadratic losses, as polynomials in ``h``.

For ``f_i(θ) = ½ (θ − c_i)ᵀ H_i (θ − c_i)`` the steps are affine,
``T_i(θ) = θ − h H_i (θ − c_i)``, and any difference of two compositions is
a polynomial in ``h`` whose coefficients are products of the non-commuting
matrices ``H_i`` applied to ``θ`` or to a centre ``c_i``. They are computed
exactly with sympy matrix symbols; :meth:`QuadraticPolynomial.evaluate` gives
the numeric value for given arrays, to compare with the affine closed forms.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import sympy

from ..core._validation import as_float_array, check_lr, describe
from ._series import _rational, order_word

__all__ = ["QuadraticPolynomial", "quadratic_difference"]


@dataclass(frozen=True)
class QuadraticPolynomial:  # numpydoc ignore=PR01
    r"""Exact difference of two compositions for quadratic losses, a polynomial in ``h``.

    Losses ``f_i(θ) = ½ (θ − c_i)ᵀ H_i (θ − c_i)`` with non-commutative
    matrix symbols ``H_i`` (d × d) and ``c_i``, ``θ`` (d × 1); the steps are
    ``T_i(θ) = θ − h H_i (θ − c_i)``.

    Attributes
    ----------
    expr : sympy.MatrixExpr, shape (d, 1)
        The expanded difference ``Σ_k h^k coefficients[k]``.
    coefficients : dict
        ``{k: matrix expression}``: coefficient of ``h^k`` (non-zero ones).
    hessians : tuple of sympy.MatrixSymbol
        ``H_0, …, H_{m−1}``, each (d, d).
    centers : tuple of sympy.MatrixSymbol
        ``c_0, …, c_{m−1}``, each (d, 1).
    theta : sympy.MatrixSymbol
        The starting point ``θ``, (d, 1).
    h : sympy.Symbol
        The learning rate.

    Examples
    --------
    >>> import numpy as np
    >>> q = quadratic_difference((0, 1))
    >>> H = np.array([[[2.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [1.0, 3.0]]]); c = np.zeros((2, 2))
    >>> theta = np.array([1.0, -1.0]); h = 0.1
    >>> T = [lambda t, i=i: t - h * H[i] @ (t - c[i]) for i in range(2)]
    >>> bool(np.allclose(q.evaluate(H, c, theta, h), T[1](T[0](theta)) - T[0](T[1](theta))))
    True
    """

    expr: object
    coefficients: dict
    hessians: tuple
    centers: tuple
    theta: object
    h: sympy.Symbol

    def evaluate(self, hessians, centers, theta, lr) -> np.ndarray:
        """Evaluate the difference for numeric Hessians, centres, starting point and learning rate.

        Parameters
        ----------
        hessians : array_like, shape (m', d, d)
            ``H_i``; ``m' ≥ m`` (the first ``m`` are used).
        centers : array_like, shape (m', d)
            ``c_i``.
        theta : array_like, shape (d,)
            The starting point.
        lr : float
            The learning rate ``h > 0``.

        Returns
        -------
        ndarray, shape (d,)
            The value of the polynomial.
        """
        H = as_float_array(hessians, "hessians")
        c = as_float_array(centers, "centers")
        th = as_float_array(theta, "theta")
        lr = check_lr(lr)
        m = len(self.hessians)
        if H.ndim != 3 or H.shape[0] < m or H.shape[1] != H.shape[2]:
            raise ValueError(f"hessians: expected shape ({m}, d, d), got {describe(H)}")
        d = H.shape[1]
        if c.ndim != 2 or c.shape[1:] != (d,) or c.shape[0] < m:
            raise ValueError(f"centers: expected shape ({m}, {d}), got {describe(c)}")
        if th.shape != (d,):
            raise ValueError(f"theta: expected shape ({d},), got {describe(th)}")
        if not self.coefficients:
            return np.zeros(d)
        fn = self.__dict__.get("_compiled")
        if fn is None:  # compiled once per polynomial
            fn = sympy.lambdify([self.theta, self.h, *self.hessians, *self.centers], self.expr, "numpy")
            object.__setattr__(self, "_compiled", fn)
        out = fn(th[:, None], lr, *H[:m], *c[:m, :, None])
        return np.asarray(out, dtype=np.float64).reshape(d)


def quadratic_difference(sequence=(0, 1), orders=("forward", "backward")) -> QuadraticPolynomial:
    r"""Exact ``orders[0] − orders[1]`` for quadratic losses, with matrix symbols ``H_i``.

    For two steps (SPEC C9) forward minus backward is exactly
    ``h² ([H_1, H_0] θ − H_1 H_0 c_0 + H_0 H_1 c_1)`` with no higher terms.

    Parameters
    ----------
    sequence : sequence of int, default (0, 1)
        Batch sequence of named orders (ignored for explicit words).
    orders : pair of orders, default ("forward", "backward")
        Each a name or an explicit word, as in :func:`order_word`.

    Returns
    -------
    QuadraticPolynomial
        The exact difference, with its non-zero coefficients by power of ``h``.

    Examples
    --------
    >>> q = quadratic_difference((0, 1))
    >>> H0, H1 = q.hessians; c0, c1 = q.centers; th = q.theta
    >>> sorted(q.coefficients)
    [2]
    >>> expected = (H1 * H0 - H0 * H1) * th - H1 * H0 * c0 + H0 * H1 * c1
    >>> (q.coefficients[2] - expected).expand() == 0 * th
    True
    """
    if isinstance(orders, str) or len(orders) != 2:
        raise ValueError(f"orders: expected a pair of orders, got {describe(orders)}")
    words = [order_word(o, sequence if isinstance(o, str) else None) for o in orders]
    m = 1 + max(a for w in words for a, _ in w)
    d = sympy.Symbol("d", integer=True, positive=True)
    h = sympy.Symbol("h", positive=True)
    H = tuple(sympy.MatrixSymbol(f"H_{i}", d, d) for i in range(m))
    c = tuple(sympy.MatrixSymbol(f"c_{i}", d, 1) for i in range(m))
    theta = sympy.MatrixSymbol("theta", d, 1)

    def apply(word):
        # x = Σ coef h^k M_1 ⋯ M_r v  as {(k, (M_1, …, M_r, v)): coef}; v is θ or some c_a
        x = {(0, (theta,)): Fraction(1)}
        for a, w in reversed(word):  # last letter first: x ↦ x − w h H_a x + w h H_a c_a
            new = dict(x)
            for (k, factors), coef in x.items():
                key = (k + 1, (H[a], *factors))
                new[key] = new.get(key, 0) - w * coef
            key = (1, (H[a], c[a]))
            new[key] = new.get(key, 0) + w
            x = new
        return x

    first, second = apply(words[0]), apply(words[1])
    diff = {key: first.get(key, 0) - second.get(key, 0) for key in set(first) | set(second)}
    grouped = {}
    for (k, factors), coef in sorted(diff.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        if coef != 0:
            grouped.setdefault(k, []).append(_rational(coef) * sympy.MatMul(*factors))
    coefficients = {k: terms[0] if len(terms) == 1 else sympy.MatAdd(*terms) for k, terms in grouped.items()}
    expr = sympy.MatAdd(*(h**k * v for k, v in coefficients.items())) if coefficients \
        else sympy.ZeroMatrix(d, 1)
    return QuadraticPolynomial(expr, coefficients, H, c, theta, h)

