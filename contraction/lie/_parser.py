r"""Safe parsing of loss text and conversion of symbolic inputs.

:func:`parse_loss` walks Python's :mod:`ast` over a whitelist (numbers, the
given symbols, ``+ - * / **``, a few one-argument functions) and builds the
sympy expression node by node, bottom-up; nothing is passed to ``eval`` or
``sympify``. Before sympy builds a node, bounds carried up from its operands
(digits of the numbers it may create, degree, the float value of constants)
say that building it is cheap and stays below 1e300; flat sums and products
are collected without recursion. The private helpers turn user input (symbol names, scalars, losses given as
text or expressions) into validated sympy objects for the other modules.
"""

from __future__ import annotations

import ast
import cmath
import itertools
import keyword
import math
import numbers
import warnings
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import sympy

from ..core._validation import check_real, describe

__all__ = ["parse_loss"]

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
_MAX_SYMBOLS = 50
_MAX_TEXT = 10_000
_MAX_DEPTH = 200
_MAX_TERMS = 1_000
_MAX_EXPONENT = 1_000
_MAX_DEGREE = 10_000
_MAX_MAGNITUDE = 1e300
_MAX_DIGITS = 300  # every integer, numerator and denominator below 10**300
_MAX_WORK = 100_000  # digits sympy may compute while building (a bound known before it computes them)
_NOT_FINITE = (sympy.nan, sympy.zoo, sympy.oo, -sympy.oo)
_SUMS = (ast.Add, ast.Sub)
_PRODUCTS = (ast.Mult, ast.Div)
_FLOAT_FUNCTIONS = {
    "exp": cmath.exp, "log": cmath.log, "sin": cmath.sin, "cos": cmath.cos, "tan": cmath.tan,
    "atan": cmath.atan, "tanh": cmath.tanh, "sinh": cmath.sinh, "cosh": cmath.cosh, "sqrt": cmath.sqrt,
    "Abs": abs, "abs": abs,
}
_FLOAT_CONSTANTS = {"pi": math.pi, "E": math.e}


def _check_name(name: str, where: str) -> str:
    """A symbol name: an identifier, not a keyword, not private, not a whitelisted function or constant."""
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"{where}: expected Python identifiers as symbol names, got {name!r}")
    if name.startswith("_"):
        raise ValueError(f"{where}: expected symbol names not starting with '_', got {name!r}")
    if name in _RESERVED:
        raise ValueError(f"{where}: expected symbol names other than the functions and constants "
                         f"{sorted(_RESERVED)}, got {name!r}")
    return name


def _as_symbols(symbols, name: str = "symbols") -> tuple:
    """Validate a sequence of at most 50 symbols (sympy ``Symbol`` or names); return a tuple of ``Symbol``."""
    if isinstance(symbols, (str, bytes)) or isinstance(symbols, sympy.Basic) or symbols is None:
        raise TypeError(f"{name}: expected a sequence of symbol names or sympy Symbols, got {describe(symbols)}")
    try:
        items = list(itertools.islice(symbols, _MAX_SYMBOLS + 1))
    except TypeError:
        raise TypeError(
            f"{name}: expected a sequence of symbol names or sympy Symbols, got {describe(symbols)}"
        ) from None
    if not items:
        raise ValueError(f"{name}: expected at least one symbol, got an empty sequence")
    if len(items) > _MAX_SYMBOLS:
        n = len(symbols) if hasattr(symbols, "__len__") else "more"
        raise ValueError(f"{name}: expected at most {_MAX_SYMBOLS} symbols (Hessians and brackets have "
                         f"d² entries), got {n}")
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


def _digits(n: int) -> int:
    """Decimal digits of ``|n|`` (at least 1), without converting it to a string."""
    return max(1, math.ceil(abs(int(n)).bit_length() * math.log10(2)))


@dataclass(frozen=True)
class _Built:
    """A built sub-expression with the bounds that keep the next steps cheap.

    ``work``: digits of the largest integer sympy may build for it (numbers
    multiply their digits in products and powers); ``degree``: total degree,
    each function call of a non-constant argument counting as a variable;
    ``value``: its complex float value when it is constant, else ``None``.
    """

    expr: sympy.Expr
    work: int
    degree: int
    value: complex | None


class _LossBuilder:
    """Build a sympy expression from a whitelisted ``ast``, bottom-up, bounding the cost of every step.

    Nothing is evaluated: each node becomes a sympy object only after the
    bounds of its operands say that building it is cheap (numbers below
    1e300, exponents at most 1000, bounded degree); flat sums and products
    are collected without recursion and built in one step.
    """

    def __init__(self, names: dict, text: str):
        self.names = names
        self.text = text
        self.depth = 0

    # --- messages --------------------------------------------------------------------------------

    def _snippet(self, node) -> str:
        segment = ast.get_source_segment(self.text, node) or type(node).__name__
        return segment if len(segment) <= 40 else segment[:37] + "..."

    def _fail(self, what: str):
        allowed = ", ".join(sorted(self.names)) or "none"
        raise ValueError(
            f"text: {what} is not allowed; expected numbers, the symbols ({allowed}), "
            f"+ - * / **, parentheses and the functions {', '.join(sorted(_FUNCTIONS))}"
        )

    # --- traversal -------------------------------------------------------------------------------

    def visit(self, node) -> _Built:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise ValueError(f"text: expected an expression nested at most {_MAX_DEPTH} levels deep "
                             f"(a flat sum or product counts as one level)")
        try:
            method = getattr(self, f"visit_{type(node).__name__}", None)
            if method is None:
                self._fail(f"{type(node).__name__} ({self._snippet(node)!r})")
            out = method(node)
        finally:
            self.depth -= 1
        return self._checked(out, node)

    def _checked(self, out: _Built, node) -> _Built:
        if out.expr in _NOT_FINITE:
            raise ValueError(f"text: expected finite values, got {out.expr} from {self._snippet(node)!r} "
                             f"(e.g. a division by zero)")
        v = out.value
        if v is not None:
            if not (cmath.isfinite(v) and abs(v) <= _MAX_MAGNITUDE):
                raise ValueError(f"text: expected constants below 1e300 in magnitude, got {self._snippet(node)!r}")
            if abs(v.imag) > 1e-12 * max(1.0, abs(v)) and out.expr.is_extended_real is False:
                raise ValueError(f"text: expected a real-valued loss, got the complex constant "
                                 f"{self._snippet(node)!r}")
        return out

    def _check_cost(self, node, work: int, degree: int) -> None:
        """Refuse, before sympy builds the node, numbers of more than ``_MAX_WORK`` digits or a high degree."""
        if work > _MAX_WORK:
            raise ValueError(f"text: expected numbers below 1e300 and powers of moderate size, got "
                             f"{self._snippet(node)!r}, which would build numbers of up to {work} digits")
        if degree > _MAX_DEGREE:
            raise ValueError(f"text: expected a total degree of at most {_MAX_DEGREE}, got "
                             f"{self._snippet(node)!r} of degree up to {degree}")

    def _constant(self, node, compute) -> complex:
        """The float value of a constant node, refusing overflow and domain errors."""
        try:
            return complex(compute())
        except (OverflowError, ZeroDivisionError, ValueError):
            raise ValueError(f"text: expected finite constants below 1e300 in magnitude, got "
                             f"{self._snippet(node)!r} (an overflow, a division by zero or a log of 0)") from None

    def visit_Expression(self, node):
        return self.visit(node.body)

    def visit_Constant(self, node):
        v = node.value
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            self._fail(f"the constant {v!r}")
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"text: expected finite numbers, got {v!r}")
        if v != 0 and not 1 / _MAX_MAGNITUDE <= abs(v) <= _MAX_MAGNITUDE:
            raise ValueError(f"text: expected numbers between 1e-300 and 1e300 in magnitude (or 0), "
                             f"got {self._snippet(node)!r}")
        number = sympy.Integer(v) if isinstance(v, int) else sympy.Rational(repr(v))
        return _Built(number, max(_digits(number.p), _digits(number.q)), 0, complex(float(v)))

    def visit_Name(self, node):
        name = node.id
        if name in self.names:
            return _Built(self.names[name], 1, 1, None)
        if name in _CONSTANTS:
            return _Built(_CONSTANTS[name], 1, 0, complex(_FLOAT_CONSTANTS[name]))
        if name in _FUNCTIONS:
            raise ValueError(f"text: the function {name!r} must be called with one argument, e.g. {name}(x)")
        shown = repr(name) if len(name) <= 40 else repr(name[:37] + "...")
        if name.startswith("__"):
            self._fail(f"the dunder name {shown}")
        self._fail(f"the unknown name {shown}")

    def visit_UnaryOp(self, node):
        if not isinstance(node.op, (ast.USub, ast.UAdd)):
            self._fail(f"the operator {type(node.op).__name__}")
        operand = self.visit(node.operand)
        if isinstance(node.op, ast.UAdd):
            return operand
        value = None if operand.value is None else -operand.value
        return _Built(-operand.expr, operand.work, operand.degree, value)

    def visit_BinOp(self, node):
        if isinstance(node.op, ast.BitXor):
            raise ValueError("text: '^' is not allowed; write powers with '**'")
        if isinstance(node.op, _SUMS):
            return self._flat(node, _SUMS)
        if isinstance(node.op, _PRODUCTS):
            return self._flat(node, _PRODUCTS)
        if not isinstance(node.op, ast.Pow):
            self._fail(f"the operator {type(node.op).__name__}")
        return self._power(node, self.visit(node.left), self.visit(node.right))

    def _flat(self, node, ops) -> _Built:
        """A flat sum (``+ -``) or product (``* /``): the chain is collected without recursion, built at once."""
        rights, inverted = [], []
        first = node
        while isinstance(first, ast.BinOp) and isinstance(first.op, ops):
            rights.append(first.right)
            inverted.append(isinstance(first.op, (ast.Sub, ast.Div)))
            first = first.left
            if len(rights) >= _MAX_TERMS:
                what = "sum" if ops is _SUMS else "product"
                raise ValueError(f"text: expected at most {_MAX_TERMS} terms in one {what}, got more")
        operands = [self.visit(first)] + [self.visit(r) for r in reversed(rights)]
        signs = [False, *reversed(inverted)]
        pairs = list(zip(operands, signs, strict=True))
        constant = all(o.value is not None for o in operands)
        if ops is _SUMS:
            work = sum(o.work for o in operands) + _digits(len(operands))
            degree = max(o.degree for o in operands)
            self._check_cost(node, work, degree)
            value = self._constant(node, lambda: sum(-o.value if neg else o.value for o, neg in pairs)) \
                if constant else None
            expr = sympy.Add(*(-o.expr if neg else o.expr for o, neg in pairs))
        else:
            work = sum(o.work for o in operands)
            degree = sum(o.degree for o in operands)
            self._check_cost(node, work, degree)
            value = self._constant(node, lambda: math.prod(1 / o.value if inv else o.value for o, inv in pairs)) \
                if constant else None
            expr = sympy.Mul(*(sympy.Pow(o.expr, -1) if inv else o.expr for o, inv in pairs))
        return _Built(expr, work, degree, value)

    def _power(self, node, left: _Built, right: _Built) -> _Built:
        exponent = right.expr
        if exponent.is_Number:
            if abs(exponent) > _MAX_EXPONENT:
                raise ValueError(f"text: expected exponents of size at most {_MAX_EXPONENT}, got {exponent}")
            work = left.work * (math.floor(abs(exponent)) + 1) + right.work
            degree = left.degree * math.ceil(abs(exponent))
        else:
            work = left.work + right.work
            degree = left.degree + right.degree
        self._check_cost(node, work, degree)
        value = None
        if left.value is not None and right.value is not None:
            value = self._constant(node, lambda: left.value**right.value)
        return _Built(left.expr**exponent, work, degree, value)

    def visit_Call(self, node):
        if not isinstance(node.func, ast.Name):
            self._fail("calling anything but a whitelisted function by name")
        name = node.func.id
        if name not in _FUNCTIONS:
            self._fail(f"calling {self._snippet(node.func)!r}")
        if node.keywords or len(node.args) != 1 or isinstance(node.args[0], ast.Starred):
            raise ValueError(f"text: expected {name}(...) with exactly one positional argument")
        arg = self.visit(node.args[0])
        value = None if arg.value is None else self._constant(node, lambda: _FLOAT_FUNCTIONS[name](arg.value))
        return _Built(_FUNCTIONS[name](arg.expr), arg.work + 1, arg.degree, value)


def _check_numbers(expr: sympy.Expr) -> None:
    """Every integer, numerator and denominator of the built expression is below 1e300."""
    for number in expr.atoms(sympy.Rational):
        if max(abs(number.p), number.q) >= 10**_MAX_DIGITS:
            digits = max(_digits(number.p), _digits(number.q))
            raise ValueError(f"text: expected numbers whose numerators and denominators are below 1e300, "
                             f"got one of {digits} digits")


def parse_loss(text, symbols) -> sympy.Expr:
    r"""Parse a loss written as text, without evaluating it.

    Only these are accepted: numbers, the given symbol names, ``pi`` and
    ``E``, the operators ``+ - * / **`` (and unary ``-``), parentheses, and
    one-argument calls of ``exp, log, sin, cos, tan, atan, tanh, sinh, cosh,
    sqrt, Abs`` (``abs`` is ``Abs``). The text is parsed by :mod:`ast` and the
    sympy expression is built node by node from this whitelist; nothing is
    passed to ``eval`` or ``sympify``. Attribute access, subscripts, lambdas,
    comprehensions, dunder names, keyword arguments and calls of anything
    else are rejected.

    The cost of building is bounded before sympy computes anything: the text
    has at most 10,000 characters; it is nested at most 200 levels deep (a
    flat sum or product such as ``x + y - z + …`` counts as one level) with
    at most 1,000 terms in one sum or product; exponents are at most 1000 in
    size; every number written or built (integers, numerators, denominators,
    constant sub-expressions such as ``exp(3)``) is below 1e300 in magnitude;
    the total degree (each function call counting as a variable) is at most
    10,000; and constants are real.

    Parameters
    ----------
    text : str
        The loss, e.g. ``"log(cosh(x - 1)) + y**2 / 2"``, within the limits above.
    symbols : sequence of str or sympy.Symbol
        The variables the loss may use: distinct Python identifiers, not
        starting with ``_`` and other than the function and constant names;
        at most 50 of them.

    Returns
    -------
    sympy.Expr
        The loss as a sympy expression in ``symbols``, with exact rationals
        for the decimal numbers of the text.

    Raises
    ------
    TypeError
        ``"text: ..."`` when ``text`` is not a string, ``"symbols: ..."``
        when ``symbols`` is not a sequence of names or symbols.
    ValueError
        ``"text: ..."`` naming what is not allowed or which limit is exceeded
        (or ``"symbols: ..."`` for invalid symbol names).

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
    source = text.strip()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. SyntaxWarning: invalid decimal literal
            tree = ast.parse(source, mode="eval")
    except SyntaxError as err:
        raise ValueError(f"text: expected a valid expression, got a syntax error ({err.msg})") from None
    except Warning as warn:
        raise ValueError(f"text: expected a valid expression, got a warning ({warn})") from None
    except (RecursionError, MemoryError, ValueError):
        raise ValueError(f"text: expected a valid expression of moderate size (at most {_MAX_TERMS} terms "
                         f"in a sum or product, nested at most {_MAX_DEPTH} levels deep)") from None
    names = {}
    for s in syms:
        if s.name.isidentifier() and not keyword.iskeyword(s.name):
            names[s.name] = s
    expr = _LossBuilder(names, source).visit(tree).expr
    if expr.has(*_NOT_FINITE):
        raise ValueError(f"text: expected finite values, got {expr} (e.g. a division by zero)")
    _check_numbers(expr)
    return expr


# --- symbolic inputs ---------------------------------------------------------------------------


def _check_finite_expr(expr, name: str) -> None:
    """Refuse expressions (or matrices) containing ``nan``, ``zoo`` or infinities."""
    if expr.has(*_NOT_FINITE):
        raise ValueError(f"{name}: expected a finite expression (no nan, zoo or oo), got {describe(expr)}")


def _as_scalar(value, name: str) -> sympy.Expr:
    """A scalar sympy expression, or a real number as an exact Integer/Rational or a Float."""
    if isinstance(value, sympy.Basic):
        if isinstance(value, sympy.MatrixBase) or not isinstance(value, sympy.Expr):
            raise TypeError(f"{name}: expected a scalar sympy expression, got {describe(value)}")
        _check_finite_expr(value, name)
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a sympy expression or a real number, got {describe(value)}")
    if isinstance(value, numbers.Integral):
        return sympy.Integer(int(value))
    if isinstance(value, Fraction):
        return sympy.Rational(value.numerator, value.denominator)
    return sympy.Float(check_real(value, name))


def _as_loss(loss, syms, name: str = "loss") -> sympy.Expr:
    """A loss in the symbols ``syms``: text is parsed with :func:`parse_loss`, expressions are checked."""
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

