r"""Lie brackets and the expansion of compositions of SGD steps in the learning rate.

The SGD step of batch ``i`` is ``T_i(θ) = θ − h g_i(θ)`` with ``g_i = ∇f_i``
and Hessian ``H_i = ∇²f_i``. The bracket of vector fields is

    [X, Y] = (DY) X − (DX) Y,

so for gradients ``[g_i, g_j] = H_j g_i − H_i g_j``. Composition follows the
package convention: forward SGD over ``ξ_1, …, ξ_n`` is
``T_{ξ_n} ∘ … ∘ T_{ξ_1}``, backward is ``T_{ξ_1} ∘ … ∘ T_{ξ_n}``; a *word*
``(w_1, …, w_k)`` is ``T_{w_1} ∘ … ∘ T_{w_k}`` (last letter first), as in
:meth:`contraction.AffineMaps.word`.

Expansions are computed twice:

* **formally**, as exact rational combinations of elementary differentials
  (``g_a``, ``H_a g_b``, ``H_a H_b g_c``, ``D²g_a[g_b, g_c]``, …), which shows
  the structure: at order ``h²`` every composition is a gradient term plus
  brackets, and forward minus backward is ``h² Σ_{i<j} [g_{ξ_i}, g_{ξ_j}]``
  (SPEC C9);
* **concretely**, for given losses, as sympy column matrices, which
  :func:`lambdify` turns into numpy functions to compare with the numeric
  core (direct composition of the maps).

Loss text from users is parsed by :func:`parse_loss`, which walks Python's
``ast`` over a whitelist and never evaluates the text.

References
----------
S. L. Smith, B. Dherin, D. Barrett, S. De, "On the origin of implicit
regularization in stochastic gradient descent", ICLR 2021.
"""

from __future__ import annotations

import ast
import keyword
import numbers
import warnings
from dataclasses import dataclass
from fractions import Fraction
from math import factorial

import numpy as np
import sympy

from ..approximations import BracketStep, bracket_corrected_step
from ..core._fitting import loglog_slope
from ..core._validation import check_positive_int, describe
from ..core.maps import GradientMaps
from . import _trees

__all__ = [
    "BracketStep",
    "Expansion",
    "FormalSeries",
    "ImplicitRegulariser",
    "LeadingError",
    "NumericFunction",
    "QuadraticPolynomial",
    "SGDSteps",
    "SecondOrderStructure",
    "bracket",
    "bracket_corrected_step",
    "composition",
    "formal_composition",
    "gradient",
    "hessian",
    "implicit_regulariser",
    "lambdify",
    "leading_error",
    "loglog_slope",
    "modified_flow",
    "order_difference",
    "order_word",
    "parse_loss",
    "quadratic_difference",
    "second_order_structure",
]

# Largest order in h accepted (the formal expansion grows quickly beyond it).
_MAX_H_ORDER = 6

# --- safe parsing of loss text ------------------------------------------------------------

_FUNCTIONS = {
    "exp": sympy.exp,
    "log": sympy.log,
    "sin": sympy.sin,
    "cos": sympy.cos,
    "tan": sympy.tan,
    "atan": sympy.atan,
    "tanh": sympy.tanh,
    "sinh": sympy.sinh,
    "cosh": sympy.cosh,
    "sqrt": sympy.sqrt,
    "Abs": sympy.Abs,
    "abs": sympy.Abs,
}
_CONSTANTS = {"pi": sympy.pi, "E": sympy.E}
_RESERVED = set(_FUNCTIONS) | set(_CONSTANTS)
_BINARY = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}
_MAX_TEXT = 10_000
_MAX_DEPTH = 200
_NOT_FINITE = (sympy.nan, sympy.zoo, sympy.oo, -sympy.oo)
_MAX_EXPONENT = 1000


def _check_name(name: str, where: str) -> str:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"{where}: expected Python identifiers as symbol names, got {name!r}")
    if name.startswith("_"):
        raise ValueError(f"{where}: expected symbol names not starting with '_', got {name!r}")
    if name in _RESERVED:
        raise ValueError(f"{where}: expected symbol names other than the functions and constants "
                         f"{sorted(_RESERVED)}, got {name!r}")
    return name


def _as_symbols(symbols, name: str = "symbols") -> tuple:
    """Validate a sequence of symbols (sympy ``Symbol`` or names); return a tuple of ``Symbol``."""
    if isinstance(symbols, (str, bytes)) or isinstance(symbols, sympy.Basic) or symbols is None:
        raise TypeError(f"{name}: expected a sequence of symbol names or sympy Symbols, got {describe(symbols)}")
    try:
        items = list(symbols)
    except TypeError:
        raise TypeError(
            f"{name}: expected a sequence of symbol names or sympy Symbols, got {describe(symbols)}"
        ) from None
    if not items:
        raise ValueError(f"{name}: expected at least one symbol, got an empty sequence")
    out = []
    for s in items:
        if isinstance(s, sympy.Symbol):
            out.append(s)
        elif isinstance(s, str):
            out.append(sympy.Symbol(_check_name(s, name)))
        else:
            raise TypeError(f"{name}: expected symbol names or sympy Symbols, got {describe(s)}")
    if len(set(out)) != len(out):
        raise ValueError(f"{name}: expected distinct symbols, got {[str(s) for s in out]}")
    return tuple(out)


class _LossBuilder(ast.NodeVisitor):
    """Build a sympy expression from a whitelisted ``ast`` (nothing is evaluated)."""

    def __init__(self, names: dict):
        self.names = names
        self.depth = 0

    def _fail(self, what: str):
        allowed = ", ".join(sorted(self.names)) or "none"
        raise ValueError(
            f"text: {what} is not allowed; expected numbers, the symbols ({allowed}), "
            f"+ - * / **, parentheses and the functions {', '.join(sorted(_FUNCTIONS))}"
        )

    def visit(self, tree):
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise ValueError(f"text: expected an expression nested at most {_MAX_DEPTH} levels deep")
        try:
            method = getattr(self, f"visit_{type(tree).__name__}", None)
            if method is None:
                self._fail(f"{type(tree).__name__} ({ast.dump(tree)[:40]})")
            out = method(tree)
        finally:
            self.depth -= 1
        if out in _NOT_FINITE:
            raise ValueError(f"text: expected finite values, got {out} (e.g. a division by zero)")
        return out

    def visit_Expression(self, tree):
        return self.visit(tree.body)

    def visit_Constant(self, tree):
        v = tree.value
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            self._fail(f"the constant {v!r}")
        if isinstance(v, int):
            return sympy.Integer(v)
        if not np.isfinite(v):
            raise ValueError(f"text: expected finite numbers, got {v!r}")
        return sympy.Rational(repr(v))

    def visit_Name(self, tree):
        name = tree.id
        if name in self.names:
            return self.names[name]
        if name in _CONSTANTS:
            return _CONSTANTS[name]
        if name in _FUNCTIONS:
            raise ValueError(f"text: the function {name!r} must be called with one argument, e.g. {name}(x)")
        if name.startswith("__"):
            self._fail(f"the dunder name {name!r}")
        self._fail(f"the unknown name {name!r}")

    def visit_UnaryOp(self, tree):
        operand = self.visit(tree.operand)
        if isinstance(tree.op, ast.USub):
            return -operand
        if isinstance(tree.op, ast.UAdd):
            return operand
        self._fail(f"the operator {type(tree.op).__name__}")

    def visit_BinOp(self, tree):
        if isinstance(tree.op, ast.BitXor):
            raise ValueError("text: '^' is not allowed; write powers with '**'")
        if not isinstance(tree.op, (*_BINARY, ast.Pow)):
            self._fail(f"the operator {type(tree.op).__name__}")
        left, right = self.visit(tree.left), self.visit(tree.right)
        if isinstance(tree.op, ast.Pow):
            if right.is_Number and abs(right) > _MAX_EXPONENT:
                raise ValueError(f"text: expected exponents of size at most {_MAX_EXPONENT}, got {right}")
            if left.is_Number and right.is_Number and abs(left) > 1 and abs(right) * sympy.log(abs(left), 10) > 300:
                raise ValueError(f"text: expected numbers below 1e300, got {left}**{right}")
            return left**right
        return _BINARY[type(tree.op)](left, right)

    def visit_Call(self, tree):
        if not isinstance(tree.func, ast.Name):
            self._fail("calling anything but a whitelisted function by name")
        name = tree.func.id
        if name not in _FUNCTIONS:
            self._fail(f"calling {name!r}")
        if tree.keywords or len(tree.args) != 1 or isinstance(tree.args[0], ast.Starred):
            raise ValueError(f"text: expected {name}(...) with exactly one positional argument")
        return _FUNCTIONS[name](self.visit(tree.args[0]))


def parse_loss(text, symbols) -> sympy.Expr:
    r"""Parse a loss written as text, without evaluating it.

    Only these are accepted: numbers, the given symbol names, ``pi`` and
    ``E``, the operators ``+ - * / **`` (and unary ``-``), parentheses, and
    one-argument calls of ``exp, log, sin, cos, tan, atan, tanh, sinh, cosh,
    sqrt, Abs`` (``abs`` is ``Abs``). The text is parsed by :mod:`ast` and the
    sympy expression is built node by node from this whitelist; nothing is
    passed to ``eval`` or ``sympify``. Attribute access, subscripts, lambdas,
    comprehensions, dunder names, keyword arguments, calls of anything else
    and huge exponents are rejected.

    Parameters
    ----------
    text : str
        The loss, e.g. ``"log(cosh(x - 1)) + y**2 / 2"``.
    symbols : sequence of str or sympy.Symbol
        The variables the loss may use.

    Returns
    -------
    sympy.Expr

    Raises
    ------
    ValueError
        ``"text: ..."`` naming what is not allowed.

    Examples
    --------
    >>> import sympy
    >>> x, y = sympy.symbols("x y")
    >>> parse_loss("exp(x) * y**2 / 2", [x, y]) == sympy.exp(x) * y**2 / 2
    True
    >>> try:
    ...     parse_loss("__import__('os').system('ls')", [x, y])
    ... except ValueError as err:
    ...     print(str(err).startswith("text:"))
    True
    """
    if not isinstance(text, str):
        raise TypeError(f"text: expected a string, got {describe(text)}")
    syms = _as_symbols(symbols)
    if len(text) > _MAX_TEXT:
        raise ValueError(f"text: expected at most {_MAX_TEXT} characters, got {len(text)}")
    if not text.strip():
        raise ValueError("text: expected an expression, got an empty string")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. SyntaxWarning: invalid decimal literal
            tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        raise ValueError(f"text: expected a valid expression, got a syntax error ({err.msg})") from None
    except Warning as warn:
        raise ValueError(f"text: expected a valid expression, got a warning ({warn})") from None
    except (RecursionError, MemoryError, ValueError):
        raise ValueError("text: expected a valid expression of moderate size and nesting") from None
    names = {}
    for s in syms:
        if s.name.isidentifier() and not keyword.iskeyword(s.name):
            names[s.name] = s
    expr = _LossBuilder(names).visit(tree)
    if expr.has(*_NOT_FINITE):
        raise ValueError(f"text: expected finite values, got {expr} (e.g. a division by zero)")
    return expr


# --- fields, gradients, brackets ------------------------------------------------------------


def _as_scalar(value, name: str):
    if isinstance(value, sympy.Basic):
        if isinstance(value, sympy.MatrixBase) or not isinstance(value, sympy.Expr):
            raise TypeError(f"{name}: expected a scalar sympy expression, got {describe(value)}")
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a sympy expression or a real number, got {describe(value)}")
    if isinstance(value, numbers.Integral):
        return sympy.Integer(int(value))
    if isinstance(value, Fraction):
        return sympy.Rational(value.numerator, value.denominator)
    return sympy.Float(float(value))


def _as_loss(loss, syms, name: str = "loss"):
    if isinstance(loss, str):
        try:
            return parse_loss(loss, syms)
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None
    expr = _as_scalar(loss, name)
    extra = expr.free_symbols - set(syms)
    if extra:
        raise ValueError(
            f"{name}: expected an expression in the symbols {[str(s) for s in syms]}, got one that "
            f"also depends on {sorted(str(s) for s in extra)}"
        )
    return expr


def _as_field(X, d: int, name: str) -> sympy.ImmutableMatrix:
    if isinstance(X, (str, bytes)):
        raise TypeError(f"{name}: expected a sympy column matrix (vector field), got {describe(X)}")
    if isinstance(X, sympy.MatrixBase):
        M = sympy.ImmutableMatrix(X)
    elif isinstance(X, (list, tuple)):
        M = sympy.ImmutableMatrix([_as_scalar(v, name) for v in X])
    else:
        raise TypeError(f"{name}: expected a sympy column matrix (vector field), got {describe(X)}")
    if M.shape != (d, 1):
        raise ValueError(f"{name}: expected a column matrix of shape ({d}, 1), got shape {M.shape}")
    return M


def gradient(loss, symbols) -> sympy.ImmutableMatrix:
    r"""The gradient field ``∇f`` of a loss, a column matrix of shape (d, 1).

    Parameters
    ----------
    loss : sympy.Expr or str
        A string is parsed safely with :func:`parse_loss`.
    symbols : sequence of str or sympy.Symbol, length d

    Examples
    --------
    >>> import sympy
    >>> x, y = sympy.symbols("x y")
    >>> gradient(x**2 * y, [x, y]) == sympy.Matrix([2 * x * y, x**2])
    True
    """
    syms = _as_symbols(symbols)
    f = _as_loss(loss, syms)
    return sympy.ImmutableMatrix([f.diff(s) for s in syms])


def hessian(loss, symbols) -> sympy.ImmutableMatrix:
    r"""The Hessian ``∇²f`` of a loss, shape (d, d).

    Examples
    --------
    >>> import sympy
    >>> x, y = sympy.symbols("x y")
    >>> hessian("x**2 * y", [x, y]) == sympy.Matrix([[2 * y, 2 * x], [2 * x, 0]])
    True
    """
    syms = _as_symbols(symbols)
    f = _as_loss(loss, syms)
    return sympy.ImmutableMatrix(sympy.hessian(f, syms))


def bracket(X, Y, symbols) -> sympy.ImmutableMatrix:
    r"""The Lie bracket ``[X, Y] = (DY) X − (DX) Y`` of two vector fields.

    With this sign ``T_Y ∘ T_X − T_X ∘ T_Y = h² [X, Y] + O(h³)`` for the
    Euler steps ``T_X(θ) = θ − h X(θ)``; for gradients,
    ``[g_i, g_j] = H_j g_i − H_i g_j``.

    Parameters
    ----------
    X, Y : sympy column matrices of shape (d, 1), or sequences of d expressions
    symbols : sequence of str or sympy.Symbol, length d
        The coordinates.

    Returns
    -------
    sympy.ImmutableMatrix, shape (d, 1)

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
    return sympy.ImmutableMatrix(Y.jacobian(syms) * X - X.jacobian(syms) * Y)


# --- numeric bridge ---------------------------------------------------------------------------


class NumericFunction:
    r"""A symbolic expression compiled to numpy, vectorized over stacks of points.

    Calling ``f(theta, *params)`` with ``theta`` of shape ``(..., d)`` returns
    shape ``(...)`` for a scalar, ``(..., n)`` for an (n, 1) column and
    ``(..., n, k)`` for an (n, k) matrix. Parameters broadcast with the
    leading axes of ``theta``. Build it with :func:`lambdify`.
    """

    def __init__(self, expr, symbols, params=()):
        self.symbols = _as_symbols(symbols)
        self.params = tuple(params)
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
        theta = np.asarray(theta, dtype=np.float64)
        d = len(self.symbols)
        if theta.ndim == 0 or theta.shape[-1] != d:
            raise ValueError(f"theta: expected shape (..., {d}), got {describe(theta)}")
        if len(params) != len(self.params):
            raise TypeError(f"params: expected {len(self.params)} parameter values, got {len(params)}")
        params = [np.asarray(p, dtype=np.float64) for p in params]
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
    expr : sympy.Expr or sympy matrix
    symbols : sequence of str or sympy.Symbol, length d
        Coordinates, read from the last axis of ``theta``.
    params : sequence of sympy.Symbol, optional
        Further arguments (e.g. the learning rate ``h``), passed after ``theta``.

    Returns
    -------
    NumericFunction

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


# --- words (orders of composition) ----------------------------------------------------------

_NAMED_ORDERS = ("forward", "backward", "palindromic")


def _rational(c) -> sympy.Rational:
    c = Fraction(c)
    return sympy.Rational(c.numerator, c.denominator)


def _as_weight(w, name: str):
    if isinstance(w, (bool, np.bool_)):
        raise TypeError(f"{name}: expected rational step weights, got {w!r}")
    if isinstance(w, numbers.Integral):
        return Fraction(int(w))
    if isinstance(w, Fraction):
        return w
    if isinstance(w, sympy.Rational):
        return Fraction(int(w.p), int(w.q))
    if isinstance(w, float) and np.isfinite(w):
        return Fraction(w).limit_denominator(10**9)
    raise TypeError(f"{name}: expected rational step weights (int or Fraction), got {describe(w)}")


def _as_sequence(sequence, name: str = "sequence") -> tuple:
    if isinstance(sequence, (str, bytes)) or sequence is None:
        raise TypeError(f"{name}: expected a sequence of batch indices, got {describe(sequence)}")
    arr = np.asarray(sequence)
    if arr.size == 0:
        raise ValueError(f"{name}: expected at least one batch index, got an empty sequence")
    if arr.ndim != 1 or arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name}: expected a 1-D sequence of integer batch indices, got {describe(arr)}")
    if arr.min() < 0:
        raise ValueError(f"{name}: expected non-negative batch indices, got {arr.min()}")
    return tuple(int(i) for i in arr)


def order_word(order, sequence=None) -> tuple:
    r"""The word ``((w_1, c_1), …, (w_k, c_k))`` of an order: ``T^{c_1}_{w_1} ∘ … ∘ T^{c_k}_{w_k}``.

    ``T^c_a(θ) = θ − c h g_a(θ)`` is a step of ``c`` times the learning rate;
    the last letter acts first.

    Parameters
    ----------
    order : {"forward", "backward", "palindromic"} or sequence
        For a batch sequence ``ξ_1, …, ξ_n`` (``sequence``):

        * ``"forward"``: ``T_{ξ_n} ∘ … ∘ T_{ξ_1}``;
        * ``"backward"``: ``T_{ξ_1} ∘ … ∘ T_{ξ_n}``;
        * ``"palindromic"``: the sequence followed by its reverse, each step
          at half the learning rate (a symmetric, Strang-like epoch): the
          word ``(ξ_1, …, ξ_n, ξ_n, …, ξ_1)`` with weights ``½``.

        Otherwise an explicit word: batch indices (weight 1) or
        ``(index, weight)`` pairs, outermost first, as in
        :meth:`contraction.AffineMaps.word`; ``sequence`` must then be omitted.
    sequence : sequence of int, optional
        The batch sequence ``ξ`` of a named order (time order, first batch
        first). Required for the named orders.

    Examples
    --------
    >>> [a for a, c in order_word("forward", [0, 1, 2])]
    [2, 1, 0]
    >>> order_word("palindromic", [0, 1]) == tuple((a, Fraction(1, 2)) for a in (0, 1, 1, 0))
    True
    """
    if isinstance(order, str):
        if order not in _NAMED_ORDERS:
            raise ValueError(f"order: expected one of {_NAMED_ORDERS} or a word, got {order!r}")
        if sequence is None:
            raise ValueError(f"sequence: expected the batch sequence of the {order!r} order, got None")
        seq = _as_sequence(sequence)
        one, half = Fraction(1), Fraction(1, 2)
        if order == "forward":
            return tuple((a, one) for a in reversed(seq))
        if order == "backward":
            return tuple((a, one) for a in seq)
        return tuple((a, half) for a in seq + tuple(reversed(seq)))
    if sequence is not None:
        raise ValueError("sequence: expected None with an explicit word (the word fixes the order)")
    if isinstance(order, (bytes, sympy.Basic)) or order is None:
        raise TypeError(f"order: expected an order name or a word, got {describe(order)}")
    try:
        letters = list(order)
    except TypeError:
        raise TypeError(f"order: expected an order name or a word, got {describe(order)}") from None
    if not letters:
        raise ValueError("order: expected a non-empty word")
    word = []
    for letter in letters:
        if isinstance(letter, (tuple, list)) and len(letter) == 2:
            a, c = letter
        else:
            a, c = letter, 1
        if isinstance(a, (bool, np.bool_)) or not isinstance(a, numbers.Integral) or a < 0:
            raise ValueError(f"order: expected non-negative integer batch indices in the word, got {a!r}")
        word.append((int(a), _as_weight(c, "order")))
    return tuple(word)


def _check_h_order(h_order) -> int:
    k = check_positive_int(h_order, "h_order")
    if k > _MAX_H_ORDER:
        raise ValueError(f"h_order: expected an integer <= {_MAX_H_ORDER}, got {k}")
    return k


# --- formal series --------------------------------------------------------------------------


def _frac_text(c) -> str:
    return str(c) if not isinstance(c, Fraction) or c.denominator != 1 else str(c.numerator)


def _format_terms(terms: dict) -> str:
    parts = []
    for t, c in sorted(terms.items(), key=lambda tc: (_trees.n_nodes(tc[0]), tc[0])):
        sign = "-" if c < 0 else "+"
        mag = abs(c)
        coef = "" if mag == 1 else f"{_frac_text(mag)} "
        parts.append(f"{sign} {coef}{_trees.tree_name(t)}")
    text = " ".join(parts)
    if text.startswith("+ "):
        return text[2:]
    return "-" + text[2:] if text.startswith("- ") else text


@dataclass(frozen=True)
class FormalSeries:
    r"""An increment ``Σ_{k=1}^{K} h^k Σ_t α_{k,t} F(t)(θ)`` in elementary differentials.

    Attributes
    ----------
    terms : tuple
        ``((k, ((tree, α), …)), …)`` for the powers ``k`` with non-zero terms;
        ``tree = (a, children)`` is the elementary differential
        ``D^r g_a[F(c_1), …, F(c_r)]`` (see :mod:`contraction.lie._trees`).
        Coefficients are exact fractions.
    h_order : int
        Truncation order ``K``: terms of order ``h^{K+1}`` and higher are dropped.
    word : tuple or None
        The word it expands, if any.
    """

    terms: tuple
    h_order: int
    word: tuple | None = None

    @classmethod
    def from_dict(cls, series: dict, h_order: int, word=None) -> "FormalSeries":
        series = _trees.clean({k: v for k, v in series.items() if k <= h_order})
        return cls(_trees._freeze(series), h_order, word)

    def as_dict(self) -> dict:
        """``{k: {tree: α}}`` (a fresh copy)."""
        return _trees._thaw(self.terms)

    def coefficient(self, k: int) -> dict:
        """``{tree: α}`` of the power ``h^k`` (empty when it vanishes)."""
        return dict(dict(self.terms).get(k, ()))

    def leading_power(self):
        """Smallest power with a non-zero term, or ``None`` if none up to ``h_order``."""
        return self.terms[0][0] if self.terms else None

    def __sub__(self, other: "FormalSeries") -> "FormalSeries":
        K = min(self.h_order, other.h_order)
        return FormalSeries.from_dict(_trees.series_sub(self.as_dict(), other.as_dict()), K)

    def describe(self) -> str:
        """Readable sum, e.g. ``h (- g_0 - g_1) + h² (H_1 g_0)``."""
        if not self.terms:
            return f"0 + O(h^{self.h_order + 1})"
        parts = []
        for k, terms in self.terms:
            hk = "h" if k == 1 else f"h^{k}"
            parts.append(f"{hk} ({_format_terms(dict(terms))})")
        return " + ".join(parts) + f" + O(h^{self.h_order + 1})"


def formal_composition(order, sequence=None, *, h_order: int = 2) -> FormalSeries:
    r"""Formal expansion of a composition of SGD steps to ``h^{h_order}``.

    ``T_{w_1} ∘ … ∘ T_{w_k}(θ) = θ + Σ_{k ≤ K} h^k a_k(θ) + O(h^{K+1})`` with
    each ``a_k`` an exact combination of elementary differentials; at order 2,
    ``a_2 = Σ_{p<q} c_p c_q H_{w_p} g_{w_q}`` (the outer step differentiates
    the inner one).

    Parameters
    ----------
    order, sequence
        As in :func:`order_word`.
    h_order : int, default 2

    Examples
    --------
    >>> s = formal_composition("forward", [0, 1])               # T_1 ∘ T_0
    >>> s.describe()
    'h (-g_0 - g_1) + h^2 (H_1 g_0) + O(h^3)'
    """
    word = order_word(order, sequence)
    K = _check_h_order(h_order)
    return FormalSeries.from_dict(_trees.euler_word_series(word, K), K, word)


def modified_flow(order, sequence=None, *, h_order: int = 3, rho=None) -> FormalSeries:
    r"""Formal time-``h`` flow of the gradient field of an order, with the implicit regulariser.

    For a word with letters ``(w_p, c_p)`` the flow is that of

        θ' = −Σ_a W_a g_a(θ) − h Σ_a ρ_a ∇‖g_a‖²(θ),    W_a = Σ_{p: w_p = a} c_p,

    with ``ρ_a = ¼ Σ_{p: w_p = a} c_p²`` by default: the modified equation
    whose ``h²`` term equals the symmetric ``h²`` part of the composition, so
    that composition minus modified flow starts with the bracket part at
    ``h²`` (zero for palindromic orders). For one epoch of ``m`` batches at
    weight 1 this is gradient flow for time ``m h`` on
    ``L + (h/(4m)) Σ_k ‖∇f_k‖²``, ``L = (1/m) Σ_k f_k`` (Smith et al., 2021).
    ``rho=0`` gives the plain gradient flow.

    Parameters
    ----------
    order, sequence
        As in :func:`order_word`.
    h_order : int, default 3
    rho : rational, optional
        One ``ρ`` for every batch instead of the default.

    Examples
    --------
    >>> word = "forward"
    >>> diff = formal_composition(word, [0, 1, 2], h_order=2) - modified_flow(word, [0, 1, 2], h_order=2)
    >>> s = second_order_structure(diff)
    >>> s.gradients == {} and s.brackets == {(0, 1): Fraction(1, 2), (0, 2): Fraction(1, 2), (1, 2): Fraction(1, 2)}
    True
    """
    word = order_word(order, sequence)
    K = _check_h_order(h_order)
    W, R = {}, {}
    for a, c in word:
        W[a] = W.get(a, 0) + c
        R[a] = R.get(a, 0) + c * c / 4
    if rho is not None:
        r = _as_weight(rho, "rho")
        R = {a: r for a in R}
    field = tuple((0, _trees.leaf(a), -W[a]) for a in sorted(W))
    field += tuple((1, (a, (_trees.leaf(a),)), -2 * R[a]) for a in sorted(R) if R[a] != 0)
    return FormalSeries.from_dict(_trees.flow_series(field, K), K, word)


@dataclass(frozen=True)
class SecondOrderStructure:
    r"""The ``h²`` coefficient written with gradients of inner products and brackets.

    ``a_2 = Σ_{i≤j} γ_{ij} ∇⟨g_i, g_j⟩ + Σ_{i<j} β_{ij} [g_i, g_j] + (other terms)``,
    using ``H_a g_b = ½ ∇⟨g_a, g_b⟩ + ½ [g_b, g_a]`` (and ``H_a g_a = ½ ∇‖g_a‖²``).

    Attributes
    ----------
    gradients : dict
        ``{(i, j): γ_ij}``, ``i ≤ j``: coefficients of ``∇⟨g_i, g_j⟩``.
    brackets : dict
        ``{(i, j): β_ij}``, ``i < j``: coefficients of ``[g_i, g_j]``.
    other : dict
        ``{tree: α}`` of any ``h²`` term that is not ``H_a g_b`` (none for
        compositions and flows of gradient steps).
    """

    gradients: dict
    brackets: dict
    other: dict

    def describe(self) -> str:
        """E.g. ``1/2 ∇<g_0,g_1> + 1/2 [g_0, g_1]``."""
        parts = []
        for (i, j), c in sorted(self.gradients.items()):
            inner = f"|g_{i}|^2" if i == j else f"<g_{i},g_{j}>"
            parts.append((c, f"∇{inner}"))
        for (i, j), c in sorted(self.brackets.items()):
            parts.append((c, f"[g_{i}, g_{j}]"))
        text = " ".join(
            f"{'-' if c < 0 else '+'} {'' if abs(c) == 1 else _frac_text(abs(c)) + ' '}{name}" for c, name in parts
        )
        if self.other:
            text += " + " + _format_terms(self.other)
        if text.startswith("+ "):
            text = text[2:]
        elif text.startswith("- "):
            text = "-" + text[2:]
        return text or "0"


def second_order_structure(series) -> SecondOrderStructure:
    r"""Split the ``h²`` coefficient of a series into gradient and bracket parts.

    Parameters
    ----------
    series : FormalSeries or Expansion

    Examples
    --------
    >>> fwd = second_order_structure(formal_composition("forward", [0, 1]))
    >>> fwd.describe()
    '1/2 ∇<g_0,g_1> + 1/2 [g_0, g_1]'
    >>> bwd = second_order_structure(formal_composition("backward", [0, 1]))
    >>> bwd.brackets == {(0, 1): Fraction(-1, 2)}
    True
    """
    if isinstance(series, Expansion):
        series = series.formal
    if not isinstance(series, FormalSeries):
        raise TypeError(f"series: expected a FormalSeries or an Expansion, got {describe(series)}")
    if series.h_order < 2:
        raise ValueError(f"series: expected a series to order h^2 or more, got h_order={series.h_order}")
    pair, other = {}, {}
    for t, c in series.coefficient(2).items():
        a, children = t
        if len(children) == 1 and not children[0][1]:
            pair[(a, children[0][0])] = c
        else:
            other[t] = c
    grads, brackets = {}, {}
    for (a, b), c in pair.items():  # c H_a g_b = c/2 ∇<g_a,g_b> + c/2 [g_b, g_a]
        key = (min(a, b), max(a, b))
        grads[key] = grads.get(key, 0) + c / 2
        if a != b:
            sign = 1 if b < a else -1  # [g_b, g_a] = +[g_min, g_max] when b < a
            brackets[key] = brackets.get(key, 0) + sign * c / 2
    return SecondOrderStructure(
        {k: v for k, v in grads.items() if v != 0}, {k: v for k, v in brackets.items() if v != 0}, other
    )


# --- concrete losses ---------------------------------------------------------------------------


class SGDSteps:
    r"""The SGD steps ``T_i(θ) = θ − h ∇f_i(θ)`` of ``m`` losses, symbolically.

    Holds the losses, their gradients ``g_i`` and Hessians ``H_i`` as sympy
    matrices, evaluates elementary differentials (cached), and builds the
    numeric map family of the same steps.

    Parameters
    ----------
    losses : sequence of sympy.Expr or str
        Batch losses ``f_0, …, f_{m−1}``; strings are parsed with :func:`parse_loss`.
    symbols : sequence of str or sympy.Symbol
        The coordinates ``θ``.

    Examples
    --------
    >>> steps = SGDSteps(["(x - 1)**2 / 2 + y**4", "cosh(x + y)"], ["x", "y"])
    >>> steps.n_batches, steps.dim
    (2, 2)
    >>> steps.elementary((1, ((0, ()),))) == steps.hessians[1] * steps.gradients[0]
    True
    """

    def __init__(self, losses, symbols):
        syms = _as_symbols(symbols)
        if isinstance(losses, (str, bytes, sympy.Basic)) or losses is None:
            raise TypeError(f"losses: expected a sequence of losses, got {describe(losses)}")
        try:
            items = list(losses)
        except TypeError:
            raise TypeError(f"losses: expected a sequence of losses, got {describe(losses)}") from None
        if not items:
            raise ValueError("losses: expected at least one loss, got an empty sequence")
        self.symbols = syms
        self.losses = tuple(_as_loss(f, syms, "losses") for f in items)
        self.gradients = tuple(sympy.ImmutableMatrix([f.diff(s) for s in syms]) for f in self.losses)
        self.hessians = tuple(sympy.ImmutableMatrix(g.jacobian(syms)) for g in self.gradients)
        self.h = sympy.Symbol("h", positive=True)
        self._elementary = {}
        self._forms = {}
        self._numeric = {}

    @property
    def n_batches(self) -> int:
        """Number of losses ``m``."""
        return len(self.losses)

    @property
    def dim(self) -> int:
        """Number of coordinates ``d``."""
        return len(self.symbols)

    def _form(self, a: int, r: int):
        """``D^r g_a[u_1, …, u_r]`` with placeholder vectors ``u_k`` (cached)."""
        key = (a, r)
        if key not in self._forms:
            if r == 0:
                self._forms[key] = (self.gradients[a], [])
            else:
                prev, U = self._form(a, r - 1)
                u = [sympy.Dummy(f"u{r}_{j}") for j in range(self.dim)]
                form = sympy.ImmutableMatrix(sum((prev.diff(s) * uj for s, uj in zip(self.symbols, u)),
                                                 sympy.zeros(self.dim, 1)))
                self._forms[key] = (form, U + [u])
        return self._forms[key]

    def elementary(self, tree) -> sympy.ImmutableMatrix:
        r"""The elementary differential ``F(tree)(θ) = D^r g_a[F(c_1), …, F(c_r)]`` (cached)."""
        if tree not in self._elementary:
            a, children = tree
            if not 0 <= a < self.n_batches:
                raise ValueError(f"tree: expected batch labels in [0, {self.n_batches - 1}], got {a}")
            values = [self.elementary(c) for c in children]
            if not children:
                out = self.gradients[a]
            elif len(children) == 1:
                out = self.hessians[a] * values[0]
            else:
                form, U = self._form(a, len(children))
                sub = {u: v for uk, vk in zip(U, values) for u, v in zip(uk, vk)}
                out = form.xreplace(sub)
            self._elementary[tree] = sympy.ImmutableMatrix(out)
        return self._elementary[tree]

    def evaluate(self, terms: dict) -> sympy.ImmutableMatrix:
        """``Σ_t α_t F(t)`` for ``terms = {tree: α}``, a (d, 1) matrix."""
        out = sympy.zeros(self.dim, 1)
        for t, c in terms.items():
            out += _as_scalar(c, "terms") * self.elementary(t)
        return sympy.ImmutableMatrix(out)

    def bracket(self, i: int, j: int) -> sympy.ImmutableMatrix:
        """``[g_i, g_j] = H_j g_i − H_i g_j``."""
        return bracket(self.gradients[i], self.gradients[j], self.symbols)

    def numeric_maps(self, lr, probs=None) -> GradientMaps:
        r"""The same SGD maps as a numeric :class:`contraction.GradientMaps` (with ``hvp``).

        Gradients and Hessians of all batches are compiled once and evaluated
        on whole stacks; each row then takes its batch's value.

        Examples
        --------
        >>> import numpy as np
        >>> steps = SGDSteps(["x**2 / 2", "(x - 2)**2"], ["x"])
        >>> maps = steps.numeric_maps(0.1)
        >>> bool(np.allclose(maps.step(np.array([[1.0], [1.0]]), np.array([0, 1])), [[0.9], [1.2]]))
        True
        """
        if "g" not in self._numeric:
            G = sympy.ImmutableMatrix.vstack(*[g.T for g in self.gradients])  # (m, d)
            H = sympy.ImmutableMatrix.vstack(*[Hi.reshape(1, self.dim**2) for Hi in self.hessians])
            self._numeric["g"] = lambdify(G, self.symbols)
            self._numeric["H"] = lambdify(H, self.symbols)
        fg, fH = self._numeric["g"], self._numeric["H"]
        m, d = self.n_batches, self.dim

        def grad(theta, index):
            theta = np.asarray(theta, dtype=np.float64)
            index = np.broadcast_to(np.asarray(index), theta.shape[:-1])
            values = fg(theta).reshape(theta.shape[:-1] + (m, d))
            return np.take_along_axis(values, index[..., None, None], axis=-2)[..., 0, :]

        def hvp(theta, v, index):
            theta = np.asarray(theta, dtype=np.float64)
            index = np.broadcast_to(np.asarray(index), theta.shape[:-1])
            values = fH(theta).reshape(theta.shape[:-1] + (m, d, d))
            Hs = np.take_along_axis(values, index[..., None, None, None], axis=-3)[..., 0, :, :]
            return np.einsum("...ij,...j->...i", Hs, np.asarray(v, dtype=np.float64))

        return GradientMaps(grad, lr, m, probs, hvp=hvp)

    def __repr__(self) -> str:
        return f"SGDSteps(n_batches={self.n_batches}, dim={self.dim})"


@dataclass(frozen=True)
class Expansion:
    r"""A composition (or a difference of compositions) as a series in ``h``, for given losses.

    Attributes
    ----------
    formal : FormalSeries
        The structure: coefficients in elementary differentials.
    coefficients : tuple of sympy.ImmutableMatrix
        ``a_0, …, a_K`` (each (d, 1)) with the map ``θ ↦ Σ_k h^k a_k(θ) + O(h^{K+1})``;
        ``a_0 = θ`` for a composition and ``0`` for a difference.
    symbols : tuple of sympy.Symbol
    h : sympy.Symbol
    """

    formal: FormalSeries
    coefficients: tuple
    symbols: tuple
    h: sympy.Symbol

    @property
    def h_order(self) -> int:
        """Truncation order ``K``."""
        return self.formal.h_order

    def series(self) -> sympy.ImmutableMatrix:
        """``Σ_k h^k a_k`` as one sympy column matrix."""
        return sympy.ImmutableMatrix(sum((self.h**k * a for k, a in enumerate(self.coefficients)),
                                         sympy.zeros(len(self.symbols), 1)))

    def numeric(self) -> NumericFunction:
        """The truncated series as a numpy function ``f(theta, h)``, ``theta`` (..., d)."""
        return lambdify(self.series(), self.symbols, params=(self.h,))

    def second_order(self) -> SecondOrderStructure:
        """The ``h²`` coefficient in gradient and bracket form."""
        return second_order_structure(self.formal)


def _concrete(steps: SGDSteps, formal: FormalSeries, identity: bool) -> Expansion:
    theta = sympy.ImmutableMatrix(steps.symbols) if identity else sympy.ImmutableMatrix.zeros(steps.dim, 1)
    coefs = [theta] + [steps.evaluate(formal.coefficient(k)) for k in range(1, formal.h_order + 1)]
    return Expansion(formal, tuple(coefs), steps.symbols, steps.h)


def _check_labels(word, m: int):
    bad = [a for a, _ in word if a >= m]
    if bad:
        raise ValueError(f"order: expected batch indices in [0, {m - 1}], got {bad[0]}")


def composition(steps, order="forward", *, sequence=None, h_order: int = 2) -> Expansion:
    r"""Expand a composition of the SGD steps of given losses to ``h^{h_order}``.

    Parameters
    ----------
    steps : SGDSteps
    order : {"forward", "backward", "palindromic"} or word
        See :func:`order_word`.
    sequence : sequence of int, optional
        Batch sequence of a named order; default ``0, 1, …, m − 1``.
    h_order : int, default 2

    Returns
    -------
    Expansion
        ``coefficients[0] = θ``, ``coefficients[1] = −Σ_p c_p g_{w_p}``, … .

    Examples
    --------
    >>> import numpy as np
    >>> steps = SGDSteps(["exp(x) + y**2", "x * y + cos(y)"], ["x", "y"])
    >>> exp = composition(steps, "forward", h_order=2)
    >>> f = exp.numeric(); T = steps.numeric_maps(1e-3); th = np.array([[0.3, -0.2]])
    >>> direct = T.step(T.step(th, [0]), [1])                  # T_1 ∘ T_0
    >>> bool(np.abs(f(th, 1e-3) - direct).max() < 1e-8)
    True
    """
    if not isinstance(steps, SGDSteps):
        raise TypeError(f"steps: expected SGDSteps, got {describe(steps)}")
    if isinstance(order, str) and sequence is None:
        sequence = range(steps.n_batches)
    word = order_word(order, sequence)
    _check_labels(word, steps.n_batches)
    formal = formal_composition(word, h_order=h_order)
    return _concrete(steps, formal, identity=True)


def order_difference(losses, symbols=None, h_order: int = 3, *, orders=("forward", "backward"),
                     sequence=None) -> Expansion:
    r"""Difference of two orders of composition as a series in ``h``: ``orders[0] − orders[1]``.

    By default forward minus backward over ``sequence``:
    ``θ_n − θ̃_n = h² Σ_{i<j} [g_{ξ_i}, g_{ξ_j}](θ) + O(h³)`` (SPEC C9).
    For quadratic losses the exact polynomial in ``h`` with matrix symbols
    is :func:`quadratic_difference`.

    Parameters
    ----------
    losses : SGDSteps or sequence of sympy.Expr or str
    symbols : sequence, optional
        Coordinates (required unless ``losses`` is an ``SGDSteps``).
    h_order : int, default 3
    orders : pair of orders
        Each as in :func:`order_word`.
    sequence : sequence of int, optional
        Batch sequence of named orders (default ``0, …, m − 1``).

    Returns
    -------
    Expansion
        ``coefficients[0] = coefficients[1] = 0``; ``coefficients[2]`` is the bracket sum.

    Examples
    --------
    >>> import sympy
    >>> diff = order_difference(["x**3 / 3 + y", "x * y**2"], ["x", "y"], h_order=2)
    >>> steps = SGDSteps(["x**3 / 3 + y", "x * y**2"], ["x", "y"])
    >>> sympy.simplify(diff.coefficients[2] - steps.bracket(0, 1)) == sympy.zeros(2, 1)
    True
    """
    if isinstance(losses, SGDSteps):
        steps = losses
        if symbols is not None and _as_symbols(symbols) != steps.symbols:
            raise ValueError("symbols: expected None or the symbols of the given SGDSteps")
    else:
        if symbols is None:
            raise TypeError("symbols: expected the coordinates of the losses, got None")
        steps = SGDSteps(losses, symbols)
    if isinstance(orders, str) or len(orders) != 2:
        raise ValueError(f"orders: expected a pair of orders, got {describe(orders)}")
    if sequence is None:
        sequence = range(steps.n_batches)
    K = _check_h_order(h_order)
    series = []
    for order in orders:
        word = order_word(order, sequence if isinstance(order, str) else None)
        _check_labels(word, steps.n_batches)
        series.append(formal_composition(word, h_order=K))
    formal = series[0] - series[1]
    return _concrete(steps, formal, identity=False)


# --- quadratic losses: exact polynomials in non-commutative matrix symbols ------------------------


@dataclass(frozen=True)
class QuadraticPolynomial:
    r"""Exact difference of two compositions for quadratic losses, a polynomial in ``h``.

    Losses ``f_i(θ) = ½ (θ − c_i)ᵀ H_i (θ − c_i)`` with non-commutative
    matrix symbols ``H_i`` (d × d) and ``c_i``, ``θ`` (d × 1); the steps are
    ``T_i(θ) = θ − h H_i (θ − c_i)``.

    Attributes
    ----------
    expr : sympy matrix expression
        The expanded difference.
    coefficients : dict
        ``{k: matrix expression}``: coefficient of ``h^k`` (non-zero ones).
    hessians, centers : tuple of sympy.MatrixSymbol
        ``H_0, …`` and ``c_0, …``.
    theta : sympy.MatrixSymbol
    h : sympy.Symbol
    """

    expr: object
    coefficients: dict
    hessians: tuple
    centers: tuple
    theta: object
    h: sympy.Symbol

    def evaluate(self, hessians, centers, theta, lr) -> np.ndarray:
        """Numeric value for arrays ``hessians`` (m, d, d), ``centers`` (m, d), ``theta`` (d,), ``lr``."""
        H = np.asarray(hessians, dtype=np.float64)
        c = np.asarray(centers, dtype=np.float64)
        th = np.asarray(theta, dtype=np.float64)
        m = len(self.hessians)
        if H.ndim != 3 or H.shape[0] < m or H.shape[1] != H.shape[2]:
            raise ValueError(f"hessians: expected shape ({m}, d, d), got {describe(H)}")
        d = H.shape[1]
        if c.shape[1:] != (d,) or c.shape[0] < m:
            raise ValueError(f"centers: expected shape ({m}, {d}), got {describe(c)}")
        if th.shape != (d,):
            raise ValueError(f"theta: expected shape ({d},), got {describe(th)}")
        if not self.coefficients:
            return np.zeros(d)
        fn = self.__dict__.get("_compiled")
        if fn is None:  # compiled once per polynomial
            fn = sympy.lambdify([self.theta, self.h, *self.hessians, *self.centers], self.expr, "numpy")
            object.__setattr__(self, "_compiled", fn)
        out = fn(th[:, None], float(lr), *H[:m], *c[:m, :, None])
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
                key = (k + 1, (H[a],) + factors)
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


# --- orders, errors and the implicit regulariser ---------------------------------------------


@dataclass(frozen=True)
class LeadingError:
    r"""Leading term of an order of composition relative to a reference.

    Attributes
    ----------
    power : int or None
        ``p`` with error ``h^p a_p(θ) + O(h^{p+1})``; ``None`` if the two
        agree up to ``h_order``.
    terms : dict
        ``{tree: α}`` of ``a_p`` in elementary differentials.
    second_order : SecondOrderStructure or None
        The gradient/bracket form when ``power == 2``.
    description : str
    """

    power: object
    terms: dict
    second_order: object
    description: str


def leading_error(order, sequence=None, *, reference="modified_flow", h_order: int = 4) -> LeadingError:
    r"""The leading term of ``order − reference`` as a series in ``h``.

    Parameters
    ----------
    order : order name or word (see :func:`order_word`)
    sequence : sequence of int, optional
        Batch sequence of named orders (required for them).
    reference : {"modified_flow", "flow"} or order, default "modified_flow"
        ``"modified_flow"``: the flow of :func:`modified_flow` (gradient flow
        with the implicit regulariser), so forward and backward orders differ
        from it at ``h²`` by their bracket part ``±½ Σ_{i<j} [g_{ξ_i}, g_{ξ_j}]``
        while palindromic orders differ only at ``h³``; ``"flow"``: the plain
        gradient flow of ``Σ_a W_a f_a`` for time ``h``; or another order
        (name or word).
    h_order : int, default 4

    Examples
    --------
    >>> leading_error("forward", [0, 1, 2]).power, leading_error("palindromic", [0, 1, 2]).power
    (2, 3)
    >>> leading_error("forward", [0, 1], reference="backward").second_order.describe()
    '[g_0, g_1]'
    """
    K = _check_h_order(h_order)
    word = order_word(order, sequence)
    series = formal_composition(word, h_order=K)
    if isinstance(reference, str) and reference in ("modified_flow", "flow"):
        ref = modified_flow(word, h_order=K, rho=0 if reference == "flow" else None)
        name = reference
    else:
        ref_word = order_word(reference, sequence if isinstance(reference, str) else None)
        ref = formal_composition(ref_word, h_order=K)
        name = reference if isinstance(reference, str) else "the given word"
    diff = series - ref
    p = diff.leading_power()
    if p is None:
        return LeadingError(None, {}, None, f"agrees with {name} up to O(h^{K + 1})")
    terms = diff.coefficient(p)
    second = second_order_structure(diff) if p == 2 else None
    body = second.describe() if second is not None else _format_terms(terms)
    return LeadingError(p, terms, second, f"h^{p} ({body}) + O(h^{p + 1}) relative to {name}")


@dataclass(frozen=True)
class ImplicitRegulariser:
    r"""Symbolic result of averaging one epoch over random orders (SPEC C10).

    Attributes
    ----------
    n_batches : int
    coefficient : sympy.Expr
        ``λ`` solved from the ``h²`` terms: mean forward epoch = flow for time
        ``m h`` on ``L + λ Σ_k ‖∇f_k‖²`` up to ``O(h³)``; ``h/(4m)``.
    bracket_mean : dict
        ``{(i, j): β}``: mean bracket coefficients of the epoch (all zero).
    gradient_terms : dict
        ``{(i, j): γ}``: mean symmetric ``h²`` part, in ``∇⟨g_i, g_j⟩``.
    residual : dict
        ``{tree: α}``: mean ``h²`` term minus that of the modified flow with
        the solved ``λ`` (empty when it is matched).
    n_orders : int
        Number of orders averaged.
    """

    n_batches: int
    coefficient: sympy.Expr
    bracket_mean: dict
    gradient_terms: dict
    residual: dict
    n_orders: int


def implicit_regulariser(n_batches: int, orders=None) -> ImplicitRegulariser:
    r"""Average the forward epoch over random orders and solve for the regulariser coefficient.

    Forward SGD over one epoch in the order ``σ`` expands as
    ``θ − h Σ_k g_k + h² Σ_{i<j} H_{σ_j} g_{σ_i} + O(h³)``. Averaged over all
    ``m!`` orders each ordered pair of distinct batches is equally likely, so
    the bracket part vanishes and the ``h²`` term is
    ``½ Σ_{a≠b} H_b g_a = ¼ ∇‖Σ_k g_k‖² − ¼ ∇Σ_k ‖g_k‖²``. Gradient flow for
    time ``m h`` on ``L + λ Σ_k ‖∇f_k‖²`` (``L = (1/m) Σ f_k``) has the same
    ``h²`` term iff ``λ = h/(4m)`` (Smith et al., 2021). ``λ`` is solved here
    with sympy from the exact coefficients.

    Parameters
    ----------
    n_batches : int
        ``m``.
    orders : sequence of sequences, optional
        The epoch orders to average (uniformly); default all ``m!`` permutations.

    Examples
    --------
    >>> import sympy
    >>> r = implicit_regulariser(3)
    >>> h = sympy.Symbol("h", positive=True)
    >>> r.coefficient == h / 12 and r.bracket_mean == {} and r.residual == {}
    True
    """
    m = check_positive_int(n_batches, "n_batches")
    if orders is None:
        if m > 7:
            raise ValueError(f"n_batches: expected at most 7 batches when averaging all m! orders, got {m}")
        orders = _trees.permutations_of(m)
    orders = [_as_sequence(o, "orders") for o in orders]
    if not orders:
        raise ValueError("orders: expected at least one epoch order")
    for o in orders:
        if sorted(o) != list(range(m)):
            raise ValueError(f"orders: expected permutations of range({m}), got {list(o)}")
    mean = {}
    for o in orders:
        mean = _trees.series_add(mean, formal_composition("forward", o, h_order=2).as_dict(),
                                 Fraction(1, len(orders)))
    mean_series = FormalSeries.from_dict(mean, 2)
    structure = second_order_structure(mean_series)
    h = sympy.Symbol("h", positive=True)
    kappa = sympy.Symbol("kappa")
    # flow for time m h of −∇(L + κ h Σ‖g_k‖²) = time h of −Σ g_k − 2 m κ h Σ H_k g_k
    plain = modified_flow("forward", range(m), h_order=2, rho=0).coefficient(2)
    reg = {(a, (_trees.leaf(a),)): -2 * m for a in range(m)}  # per unit κ, at h²
    got = mean_series.coefficient(2)
    equations = []
    for t in set(plain) | set(reg) | set(got):
        rhs = _rational(plain.get(t, 0)) + reg.get(t, 0) * kappa
        equations.append(sympy.Eq(_rational(got.get(t, 0)), rhs))
    solution = sympy.solve(equations, kappa, dict=True)
    if len(solution) != 1:
        return ImplicitRegulariser(m, sympy.nan, structure.brackets, structure.gradients,
                                   {t: got.get(t, 0) - plain.get(t, 0) for t in set(got) | set(plain)}, len(orders))
    k_value = sympy.Rational(solution[0][kappa])
    k_frac = Fraction(int(k_value.p), int(k_value.q))
    residual = _trees.series_sub({2: got}, {2: {t: plain.get(t, 0) + reg.get(t, 0) * k_frac
                                                for t in set(plain) | set(reg)}})
    return ImplicitRegulariser(m, k_value * h, structure.brackets, structure.gradients,
                               residual.get(2, {}), len(orders))
