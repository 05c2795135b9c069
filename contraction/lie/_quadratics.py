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
from ._series import _rational, _word

__all__ = ["QuadraticPolynomial", "quadratic_difference"]

# Most letters in one word: the exact polynomial of a word of n letters has up to 2^n terms.
_MAX_LETTERS = 10


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

        Raises
        ------
        ValueError
            Naming the argument with the wrong shape or non-finite entries;
            ``"lr: ..."`` when the value overflows (never a silent ``inf``).
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
        values = {self.theta: th, **dict(zip(self.hessians, H[:m], strict=True)),
                  **dict(zip(self.centers, c[:m], strict=True))}
        with np.errstate(all="ignore"):
            out = sum(lr**k * _evaluate(v, values) for k, v in self.coefficients.items())
        if not np.all(np.isfinite(out)):
            raise ValueError(f"lr: expected a learning rate and inputs for which the polynomial is finite, "
                             f"got an overflow at lr={lr!r} (use a smaller lr or smaller hessians)")
        return out


def _evaluate(expr, values: dict) -> np.ndarray:
    """Numeric value (shape (d,)) of a sum of products ``α H_{a_1} ⋯ H_{a_r} v`` (no code generation)."""
    if isinstance(expr, sympy.MatAdd):
        return sum(_evaluate(t, values) for t in expr.args)
    if isinstance(expr, sympy.MatrixSymbol):
        return values[expr]
    scalar, out = 1.0, None
    for factor in reversed(expr.args):  # MatMul: the vector last, applied right to left
        if isinstance(factor, sympy.MatrixSymbol):
            out = values[factor] if out is None else values[factor] @ out
        else:
            scalar *= float(factor)
    return scalar * out


def _apply_word(word) -> dict:
    """The affine composition of a word, ``x = Σ coef h^k H_{a_1} ⋯ H_{a_r} v``, as ``{(k, (a_1, …, a_r), v): coef}``.

    ``v`` is ``-1`` for ``θ`` and ``a`` for the centre ``c_a``; exact Fractions.
    Each letter doubles the number of terms (``2^len(word)`` in all).
    """
    x = {(0, (), -1): Fraction(1)}
    for a, w in reversed(word):  # last letter first: x ↦ x − w h H_a x + w h H_a c_a
        new = dict(x)
        for (k, chain, v), coef in x.items():
            key = (k + 1, (a, *chain), v)
            new[key] = new.get(key, 0) - w * coef
        key = (1, (a,), a)
        new[key] = new.get(key, 0) + w
        x = new
    return x


def quadratic_difference(sequence=(0, 1), orders=("forward", "backward")) -> QuadraticPolynomial:
    r"""Exact ``orders[0] − orders[1]`` for quadratic losses, with matrix symbols ``H_i``.

    For two steps (SPEC C9) forward minus backward is exactly
    ``h² ([H_1, H_0] θ − H_1 H_0 c_0 + H_0 H_1 c_1)`` with no higher terms.
    A word of ``n`` letters has up to ``2^n`` terms, so each of the two words
    may have at most 10 letters (a palindromic order of a sequence of 5).

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

    Raises
    ------
    ValueError
        ``"sequence: ..."`` (or ``"orders: ..."`` for explicit words) when a
        word has more than 10 letters.

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
    if isinstance(orders, (str, bytes)) or not isinstance(orders, (tuple, list)) or len(orders) != 2:
        raise ValueError(f"orders: expected a pair of orders, got {describe(orders)}")
    words = []
    for o in orders:
        word = _word(o, sequence if isinstance(o, str) else None, "orders")
        if len(word) > _MAX_LETTERS:
            name = "sequence" if isinstance(o, str) else "orders"
            raise ValueError(f"{name}: expected words of at most {_MAX_LETTERS} letters (the exact polynomial "
                             f"has up to 2^letters terms), got {len(word)} letters for the order {_short(o)}")
        words.append(word)
    m = 1 + max(a for w in words for a, _ in w)
    d = sympy.Symbol("d", integer=True, positive=True)
    h = sympy.Symbol("h", positive=True)
    H = tuple(sympy.MatrixSymbol(f"H_{i}", d, d) for i in range(m))
    c = tuple(sympy.MatrixSymbol(f"c_{i}", d, 1) for i in range(m))
    theta = sympy.MatrixSymbol("theta", d, 1)

    first, second = _apply_word(words[0]), _apply_word(words[1])
    grouped, terms = {}, []
    for key in sorted(set(first) | set(second)):
        coef = first.get(key, 0) - second.get(key, 0)
        if coef == 0:
            continue
        k, chain, v = key
        factors = (*(H[a] for a in chain), theta if v < 0 else c[v])
        # MatMul without doit: the factors are already in canonical order
        grouped.setdefault(k, []).append(_term(_rational(coef), factors))
        terms.append(_term(_rational(coef) * h**k, factors))
    coefficients = {k: ts[0] if len(ts) == 1 else sympy.MatAdd(*ts) for k, ts in grouped.items()}
    if not terms:
        expr = sympy.ZeroMatrix(d, 1)
    else:
        expr = terms[0] if len(terms) == 1 else sympy.MatAdd(*terms)
    return QuadraticPolynomial(expr, coefficients, H, c, theta, h)


def _term(coef, factors):
    return sympy.MatMul(*factors) if coef == 1 else sympy.MatMul(coef, *factors)


def _short(order) -> str:
    return repr(order) if isinstance(order, str) else describe(order)
