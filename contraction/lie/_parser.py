r"""Safe parsing of loss text and conversion of symbolic inputs.

:func:`parse_loss` walks Python's :mod:`ast` over a whitelist (numbers, the
given symbols, ``+ - * / **``, a few one-argument functions) and builds the
sympy expression node by node; nothing is passed to ``eval`` or ``sympify``.
The private helpers turn user input (symbol names, scalars, losses given as
text or expressions) into validated sympy objects for the other modules.
"""

from __future__ import annotations

import ast
import keyword
import numbers
import warnings
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
        The loss, e.g. ``"log(cosh(x - 1)) + y**2 / 2"``; at most 10,000
        characters, nested at most 200 levels deep.
    symbols : sequence of str or sympy.Symbol
        The variables the loss may use: distinct Python identifiers, not
        starting with ``_`` and other than the function and constant names.

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
        ``"text: ..."`` naming what is not allowed (or ``"symbols: ..."``
        for invalid symbol names).

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



# --- symbolic inputs ---------------------------------------------------------------------------


def _as_scalar(value, name: str) -> sympy.Expr:
    """A scalar sympy expression, or a real number as an exact Integer/Rational or a Float."""
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

