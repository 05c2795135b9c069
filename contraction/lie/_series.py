r"""Words (orders of composition) and formal series in elementary differentials.

A *word* ``((w_1, c_1), …, (w_k, c_k))`` stands for ``T^{c_1}_{w_1} ∘ … ∘
T^{c_k}_{w_k}`` with ``T^c_a(θ) = θ − c h g_a(θ)`` (the last letter acts
first), as in :meth:`contraction.AffineMaps.word`. Its expansion in the
learning rate ``h`` is a :class:`FormalSeries`: exact rational combinations
of elementary differentials (``g_a``, ``H_a g_b``, ``D²g_a[g_b, g_c]``, …),
independent of the losses. At order ``h²`` every composition is a gradient
term plus brackets (:func:`second_order_structure`).

Everywhere in :mod:`contraction.lie`, ``h_order`` is the highest power of
``h`` kept: a series is exact up to ``O(h^{h_order + 1})``. It is an integer
from 1 to 6 and defaults to 3, the first order at which the ``h²`` bracket
term comes with its correction and palindromic orders show their leading error.

Sizes. The number of terms grows like ``letters^h_order``, so the sizes are
bounded before anything is expanded (a ``ValueError`` names the argument and
the limit): a word has at most 1000 letters; a formal composition at
``h_order`` 1, 2, 3, 4, 5, 6 at most 1000, 64, 24, 12, 8, 6 letters; a
modified flow at most 1000, 64, 16, 6, 3, 2 distinct batches. Each of these
expansions takes at most about a second.
"""

from __future__ import annotations

import itertools
import numbers
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import sympy

from ..core._validation import as_indices, check_choice, check_int, check_real, describe
from . import _trees

__all__ = [
    "FormalSeries",
    "SecondOrderStructure",
    "formal_composition",
    "modified_flow",
    "order_word",
    "second_order_structure",
]

# Largest order in h accepted (the formal expansion grows quickly beyond it).
_MAX_H_ORDER = 6
# Most letters in any word.
_MAX_WORD = 1000
# Most letters in a formal composition, by h_order (the terms grow like letters^h_order).
_MAX_LETTERS = {1: 1000, 2: 64, 3: 24, 4: 12, 5: 8, 6: 6}
# Most distinct batches in a modified flow, by h_order.
_MAX_FLOW_BATCHES = {1: 1000, 2: 64, 3: 16, 4: 6, 5: 3, 6: 2}

_NAMED_ORDERS = ("forward", "backward", "palindromic")


# --- words (orders of composition) ----------------------------------------------------------


def _rational(c) -> sympy.Rational:
    """An exact coefficient (int, Fraction) as a sympy Rational."""
    c = Fraction(c)
    return sympy.Rational(c.numerator, c.denominator)


def _as_weight(w, name: str) -> Fraction:
    """A step weight as an exact Fraction (floats are rounded to denominators below 10⁹)."""
    if isinstance(w, Fraction):
        return w
    if isinstance(w, sympy.Rational):
        return Fraction(int(w.p), int(w.q))
    if isinstance(w, numbers.Integral) and not isinstance(w, (bool, np.bool_)):
        return Fraction(int(w))
    return Fraction(check_real(w, name)).limit_denominator(10**9)


def _check_length(value, name: str, limit: int, what: str) -> None:
    """Refuse, before converting it, a sized argument with more than ``limit`` items."""
    if isinstance(value, (str, bytes)):
        return
    try:
        n = len(value)
    except TypeError:
        return
    if n > limit:
        raise ValueError(f"{name}: expected at most {limit} {what}, got {n}")


def _as_sequence(sequence, name: str = "sequence") -> tuple:
    """A non-empty 1-D sequence of at most 1000 non-negative batch indices, as a tuple of int."""
    _check_length(sequence, name, _MAX_WORD, "batch indices")
    arr = as_indices(sequence, name, ndim=1)
    if arr.size == 0:
        raise ValueError(f"{name}: expected at least one batch index, got an empty sequence")
    return tuple(int(i) for i in arr)


def _check_h_order(h_order) -> int:
    """``h_order``, the highest power of ``h`` kept: an integer from 1 to ``_MAX_H_ORDER``."""
    return check_int(h_order, "h_order", 1, _MAX_H_ORDER)


def _word_name(order) -> str:
    """The argument that fixes the length of a word: ``sequence`` for a named order, else ``order``."""
    return "sequence" if isinstance(order, str) else "order"


def _check_letters(word, h_order: int, name: str) -> None:
    """Refuse a formal composition whose number of terms would explode (``_MAX_LETTERS``)."""
    limit = _MAX_LETTERS[h_order]
    if len(word) > limit:
        raise ValueError(f"{name}: expected a word of at most {limit} letters at h_order={h_order} (the "
                         f"expansion grows like letters^h_order), got {len(word)} letters")


def _check_flow_batches(word, h_order: int, name: str) -> None:
    """Refuse a modified flow whose number of terms would explode (``_MAX_FLOW_BATCHES``)."""
    limit = _MAX_FLOW_BATCHES[h_order]
    n = len({a for a, _ in word})
    if n > limit:
        raise ValueError(f"{name}: expected at most {limit} distinct batches in a modified flow at "
                         f"h_order={h_order} (the expansion grows like batches^h_order), got {n}")


def order_word(order, sequence=None) -> tuple:
    r"""Build the word ``((w_1, c_1), …, (w_k, c_k))`` of an order: ``T^{c_1}_{w_1} ∘ … ∘ T^{c_k}_{w_k}``.

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
        first). Required for the named orders. A word has at most 1000
        letters (a palindromic sequence at most 500 batches).

    Returns
    -------
    tuple of (int, fractions.Fraction)
        The letters ``(batch index, weight)``, outermost map first.

    Examples
    --------
    >>> [a for a, c in order_word("forward", [0, 1, 2])]
    [2, 1, 0]
    >>> order_word("palindromic", [0, 1]) == tuple((a, Fraction(1, 2)) for a in (0, 1, 1, 0))
    True
    """
    return _word(order, sequence, "order")


def _word(order, sequence, name: str) -> tuple:
    """:func:`order_word`, with errors about the order naming the argument ``name``."""
    if isinstance(order, str):
        check_choice(order, name, _NAMED_ORDERS)
        if sequence is None:
            raise ValueError(f"sequence: expected the batch sequence of the {order!r} order, got None")
        seq = _as_sequence(sequence)
        one, half = Fraction(1), Fraction(1, 2)
        if order == "forward":
            return tuple((a, one) for a in reversed(seq))
        if order == "backward":
            return tuple((a, one) for a in seq)
        if 2 * len(seq) > _MAX_WORD:
            raise ValueError(f"sequence: expected at most {_MAX_WORD // 2} batch indices for a palindromic "
                             f"order (a word of at most {_MAX_WORD} letters), got {len(seq)}")
        return tuple((a, half) for a in seq + tuple(reversed(seq)))
    if sequence is not None:
        raise ValueError("sequence: expected None with an explicit word (the word fixes the order)")
    return _as_word(order, name)


def _as_word(order, name: str) -> tuple:
    """An explicit word: batch indices or ``(index, weight)`` pairs, at most ``_MAX_WORD`` of them."""
    if isinstance(order, (str, bytes, sympy.Basic)) or order is None:
        raise TypeError(f"{name}: expected an order name or a word, got {describe(order)}")
    _check_length(order, name, _MAX_WORD, "letters")
    try:
        letters = list(itertools.islice(order, _MAX_WORD + 1))
    except TypeError:
        raise TypeError(f"{name}: expected an order name or a word, got {describe(order)}") from None
    if len(letters) > _MAX_WORD:
        raise ValueError(f"{name}: expected at most {_MAX_WORD} letters, got more")
    if not letters:
        raise ValueError(f"{name}: expected a non-empty word")
    word = []
    for letter in letters:
        if isinstance(letter, (tuple, list)) and len(letter) == 2:
            a, c = letter
        else:
            a, c = letter, 1
        word.append((check_int(a, name, low=0), _as_weight(c, name)))
    return tuple(word)


# --- formal series --------------------------------------------------------------------------


def _frac_text(c) -> str:
    return str(c) if not isinstance(c, Fraction) or c.denominator != 1 else str(c.numerator)


def _format_terms(terms: dict) -> str:
    """Readable signed sum of ``{tree: α}``, smaller trees first."""
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
class FormalSeries:  # numpydoc ignore=PR01
    r"""An increment ``Σ_{k=1}^{h_order} h^k Σ_t α_{k,t} F(t)(θ)`` in elementary differentials.

    Attributes
    ----------
    terms : tuple
        ``((k, ((tree, α), …)), …)`` for the powers ``k`` with non-zero terms;
        ``tree = (a, children)`` is the elementary differential
        ``D^r g_a[F(c_1), …, F(c_r)]`` (see :mod:`contraction.lie._trees`).
        Coefficients are exact fractions.
    h_order : int
        Highest power of ``h`` kept: terms of order ``h^{h_order+1}`` and
        higher are dropped.
    word : tuple or None
        The word it expands, if any.

    Examples
    --------
    >>> s = formal_composition("forward", [0, 1], h_order=2)
    >>> s.leading_power(), s.coefficient(2) == {(1, ((0, ()),)): 1}
    (1, True)
    """

    terms: tuple
    h_order: int
    word: tuple | None = None

    @classmethod
    def from_dict(cls, series: dict, h_order: int, word=None) -> FormalSeries:
        """Build a series from ``{k: {tree: α}}``, dropping powers above ``h_order``.

        Parameters
        ----------
        series : dict
            ``{k: {tree: α}}``, as returned by :meth:`as_dict`.
        h_order : int
            Highest power of ``h`` kept.
        word : tuple, optional
            The word the series expands.

        Returns
        -------
        FormalSeries
            The series without zero coefficients.
        """
        series = _trees.clean({k: v for k, v in series.items() if k <= h_order})
        return cls(_trees._freeze(series), h_order, word)

    def as_dict(self) -> dict:
        """Return the terms as ``{k: {tree: α}}`` (a fresh copy).

        Returns
        -------
        dict
            ``{k: {tree: α}}`` for the powers with non-zero terms.
        """
        return _trees._thaw(self.terms)

    def coefficient(self, k: int) -> dict:
        """Return the terms of the power ``h^k``.

        Parameters
        ----------
        k : int
            The power of ``h``.

        Returns
        -------
        dict
            ``{tree: α}`` (empty when the power vanishes).
        """
        return dict(dict(self.terms).get(k, ()))

    def leading_power(self):
        """Return the smallest power of ``h`` with a non-zero term.

        Returns
        -------
        int or None
            ``None`` if every power up to ``h_order`` vanishes.
        """
        return self.terms[0][0] if self.terms else None

    def __sub__(self, other: FormalSeries) -> FormalSeries:
        h_order = min(self.h_order, other.h_order)
        return FormalSeries.from_dict(_trees.series_sub(self.as_dict(), other.as_dict()), h_order)

    def describe(self) -> str:
        """Return the series as a readable sum.

        Returns
        -------
        str
            E.g. ``h (-g_0 - g_1) + h^2 (H_1 g_0) + O(h^3)``.
        """
        if not self.terms:
            return f"0 + O(h^{self.h_order + 1})"
        parts = []
        for k, terms in self.terms:
            hk = "h" if k == 1 else f"h^{k}"
            parts.append(f"{hk} ({_format_terms(dict(terms))})")
        return " + ".join(parts) + f" + O(h^{self.h_order + 1})"


def _formal(word, h_order: int, name: str) -> FormalSeries:
    """The formal series of a validated word, after the size check (errors name ``name``)."""
    _check_letters(word, h_order, name)
    return FormalSeries.from_dict(_trees.euler_word_series(word, h_order), h_order, word)


def _flow(word, h_order: int, rho, name: str) -> FormalSeries:
    """The modified flow of a validated word (``rho``: a Fraction or None), after the size check."""
    _check_flow_batches(word, h_order, name)
    weights, rhos = {}, {}
    for a, c in word:
        weights[a] = weights.get(a, 0) + c
        rhos[a] = rhos.get(a, 0) + c * c / 4
    if rho is not None:
        rhos = {a: rho for a in rhos}
    field = tuple((0, _trees.leaf(a), -weights[a]) for a in sorted(weights))
    field += tuple((1, (a, (_trees.leaf(a),)), -2 * rhos[a]) for a in sorted(rhos) if rhos[a] != 0)
    return FormalSeries.from_dict(_trees.flow_series(field, h_order), h_order, word)


def formal_composition(order, sequence=None, *, h_order: int = 3) -> FormalSeries:
    r"""Expand a composition of SGD steps formally, up to ``h^{h_order}``.

    ``T_{w_1} ∘ … ∘ T_{w_k}(θ) = θ + Σ_{k ≤ h_order} h^k a_k(θ) + O(h^{h_order+1})``
    with each ``a_k`` an exact combination of elementary differentials; at
    order 2, ``a_2 = Σ_{p<q} c_p c_q H_{w_p} g_{w_q}`` (the outer step
    differentiates the inner one).

    Parameters
    ----------
    order : {"forward", "backward", "palindromic"} or sequence
        The order, or an explicit word, as in :func:`order_word`.
    sequence : sequence of int, optional
        Batch sequence of a named order, as in :func:`order_word`.
    h_order : int, default 3
        Highest power of ``h`` kept (1 to 6). The word may have at most
        1000, 64, 24, 12, 8, 6 letters at ``h_order`` 1, …, 6.

    Returns
    -------
    FormalSeries
        The increment ``Σ_k h^k a_k``, with ``word`` set.

    Raises
    ------
    ValueError
        ``"sequence: ..."`` (``"order: ..."`` for an explicit word) when the
        word is longer than the limit of its ``h_order``.

    Examples
    --------
    >>> s = formal_composition("forward", [0, 1], h_order=2)      # T_1 ∘ T_0
    >>> s.describe()
    'h (-g_0 - g_1) + h^2 (H_1 g_0) + O(h^3)'
    """
    word = order_word(order, sequence)
    h_order = _check_h_order(h_order)
    return _formal(word, h_order, _word_name(order))


def modified_flow(order, sequence=None, *, h_order: int = 3, rho=None) -> FormalSeries:
    r"""Expand the time-``h`` flow of the gradient field of an order, with the implicit regulariser.

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
    order : {"forward", "backward", "palindromic"} or sequence
        The order, or an explicit word, as in :func:`order_word`.
    sequence : sequence of int, optional
        Batch sequence of a named order, as in :func:`order_word`.
    h_order : int, default 3
        Highest power of ``h`` kept (1 to 6). The word may have at most
        1000, 64, 16, 6, 3, 2 distinct batches at ``h_order`` 1, …, 6.
    rho : int or fractions.Fraction, optional
        One ``ρ`` for every batch instead of the default.

    Returns
    -------
    FormalSeries
        The increment of the flow over time ``h``, with ``word`` set.

    Raises
    ------
    ValueError
        ``"sequence: ..."`` (``"order: ..."`` for an explicit word) when the
        word has more distinct batches than the limit of its ``h_order``.

    Examples
    --------
    >>> word = "forward"
    >>> diff = formal_composition(word, [0, 1, 2]) - modified_flow(word, [0, 1, 2])
    >>> s = second_order_structure(diff)
    >>> s.gradients == {} and s.brackets == {(0, 1): Fraction(1, 2), (0, 2): Fraction(1, 2), (1, 2): Fraction(1, 2)}
    True
    """
    word = order_word(order, sequence)
    h_order = _check_h_order(h_order)
    rho = None if rho is None else _as_weight(rho, "rho")
    return _flow(word, h_order, rho, _word_name(order))


@dataclass(frozen=True)
class SecondOrderStructure:  # numpydoc ignore=PR01
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

    Examples
    --------
    >>> s = second_order_structure(formal_composition("backward", [0, 1]))
    >>> s.describe()
    '1/2 ∇<g_0,g_1> - 1/2 [g_0, g_1]'
    """

    gradients: dict
    brackets: dict
    other: dict

    def describe(self) -> str:
        """Return the structure as a readable sum.

        Returns
        -------
        str
            E.g. ``1/2 ∇<g_0,g_1> + 1/2 [g_0, g_1]``; ``"0"`` when empty.
        """
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
        A series with ``h_order >= 2``; an :class:`Expansion` (anything whose
        ``formal`` attribute is a :class:`FormalSeries`) stands for its formal
        series.

    Returns
    -------
    SecondOrderStructure
        The coefficients of ``∇⟨g_i, g_j⟩`` and ``[g_i, g_j]`` in ``a_2``.

    Examples
    --------
    >>> fwd = second_order_structure(formal_composition("forward", [0, 1]))
    >>> fwd.describe()
    '1/2 ∇<g_0,g_1> + 1/2 [g_0, g_1]'
    >>> bwd = second_order_structure(formal_composition("backward", [0, 1]))
    >>> bwd.brackets == {(0, 1): Fraction(-1, 2)}
    True
    """
    if not isinstance(series, FormalSeries) and isinstance(getattr(series, "formal", None), FormalSeries):
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
