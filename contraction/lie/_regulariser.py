r"""Orders of composition against flows: leading errors and the implicit regulariser.

:func:`leading_error` finds the first power of ``h`` at which an order of
composition departs from a reference (the modified flow, the gradient flow or
another order); :func:`implicit_regulariser` averages one forward epoch over
random orders and solves for the coefficient ``λ = h/(4m)`` of the
regulariser ``λ Σ_k ‖∇f_k‖²`` (SPEC C10; Smith et al., 2021).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from fractions import Fraction

import sympy

from ..core._validation import check_choice, check_positive_int, describe
from . import _trees
from ._series import (
    _MAX_LETTERS,
    _NAMED_ORDERS,
    FormalSeries,
    SecondOrderStructure,
    _as_sequence,
    _check_h_order,
    _check_length,
    _flow,
    _formal,
    _format_terms,
    _rational,
    _word,
    _word_name,
    order_word,
    second_order_structure,
)

__all__ = ["ImplicitRegulariser", "LeadingError", "implicit_regulariser", "leading_error"]

# Largest (number of orders) × m² averaged: all 5040 orders of 7 batches.
_MAX_ORDER_WORK = 5040 * 49


@dataclass(frozen=True)
class LeadingError:  # numpydoc ignore=PR01
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
        The leading term in words, e.g. ``h^2 ([g_0, g_1]) + O(h^3) relative to backward``.

    Examples
    --------
    >>> err = leading_error("backward", [0, 1], reference="forward")
    >>> err.power, err.second_order.brackets == {(0, 1): -1}
    (2, True)
    """

    power: object
    terms: dict
    second_order: object
    description: str


def leading_error(order, sequence=None, *, reference="modified_flow", h_order: int = 3) -> LeadingError:
    r"""Find the leading term of ``order − reference`` as a series in ``h``.

    Parameters
    ----------
    order : {"forward", "backward", "palindromic"} or sequence
        The order, or an explicit word, as in :func:`order_word`.
    sequence : sequence of int, optional
        Batch sequence of named orders (required for them).
    reference : {"modified_flow", "flow"} or order, default "modified_flow"
        ``"modified_flow"``: the flow of :func:`modified_flow` (gradient flow
        with the implicit regulariser), so forward and backward orders differ
        from it at ``h²`` by their bracket part ``±½ Σ_{i<j} [g_{ξ_i}, g_{ξ_j}]``
        while palindromic orders differ only at ``h³``; ``"flow"``: the plain
        gradient flow of ``Σ_a W_a f_a`` for time ``h``; or another order
        (name or word).
    h_order : int, default 3
        Highest power of ``h`` kept in both series: powers up to ``h_order``
        are searched for the leading term (1 to 6), within the size limits of
        :func:`formal_composition` (letters) and :func:`modified_flow`
        (distinct batches).

    Returns
    -------
    LeadingError
        The first non-vanishing power, its coefficient and, at ``h²``, its
        gradient and bracket parts.

    Examples
    --------
    >>> leading_error("forward", [0, 1, 2]).power, leading_error("palindromic", [0, 1, 2]).power
    (2, 3)
    >>> leading_error("forward", [0, 1], reference="backward").second_order.describe()
    '[g_0, g_1]'
    """
    h_order = _check_h_order(h_order)
    word = order_word(order, sequence)
    series = _formal(word, h_order, _word_name(order))
    if isinstance(reference, str) and reference in ("modified_flow", "flow"):
        ref = _flow(word, h_order, Fraction(0) if reference == "flow" else None, _word_name(order))
        name = reference
    else:
        if isinstance(reference, str):
            check_choice(reference, "reference", ("modified_flow", "flow", *_NAMED_ORDERS))
        ref_word = _word(reference, sequence if isinstance(reference, str) else None, "reference")
        ref = _formal(ref_word, h_order, "reference")
        name = reference if isinstance(reference, str) else "the given word"
    diff = series - ref
    p = diff.leading_power()
    if p is None:
        return LeadingError(None, {}, None, f"agrees with {name} up to O(h^{h_order + 1})")
    terms = diff.coefficient(p)
    second = second_order_structure(diff) if p == 2 else None
    body = second.describe() if second is not None else _format_terms(terms)
    return LeadingError(p, terms, second, f"h^{p} ({body}) + O(h^{p + 1}) relative to {name}")


@dataclass(frozen=True)
class ImplicitRegulariser:  # numpydoc ignore=PR01
    r"""Symbolic result of averaging one epoch over random orders (SPEC C10).

    Attributes
    ----------
    n_batches : int
        The number of batches ``m``.
    coefficient : sympy.Expr
        ``λ`` solved from the symmetric (gradient) part of the mean ``h²``
        term: mean forward epoch = flow for time ``m h`` on
        ``L + λ Σ_k ‖∇f_k‖²`` up to ``O(h³)`` and up to the bracket part;
        ``h/(4m)`` for every set of permutations.
    bracket_mean : dict
        ``{(i, j): β}``: mean bracket coefficients of the epoch (empty when
        the orders balance every pair of batches, as all ``m!`` orders do).
    gradient_terms : dict
        ``{(i, j): γ}``: mean symmetric ``h²`` part, in ``∇⟨g_i, g_j⟩``.
    residual : dict
        ``{tree: α}``: mean ``h²`` term minus that of the regularised flow
        with the solved ``λ``; the bracket part in elementary differentials
        (empty when it is matched).
    n_orders : int
        Number of orders averaged.
    matched : bool
        Whether the regularised flow reproduces the whole mean ``h²`` term
        (``residual`` empty).
    message : str
        What was matched and, when ``matched`` is false, why the rest is
        not: a bracket part is not a gradient field, so no regulariser
        reproduces it.

    Examples
    --------
    >>> r = implicit_regulariser(2)
    >>> r.n_orders, str(r.coefficient), r.gradient_terms == {(0, 1): Fraction(1, 2)}, r.matched
    (2, 'h/8', True, True)
    """

    n_batches: int
    coefficient: sympy.Expr
    bracket_mean: dict
    gradient_terms: dict
    residual: dict
    n_orders: int
    matched: bool
    message: str


def _symmetric_part(terms: dict) -> dict:
    """``c H_a g_b ↦ ½ c (H_a g_b + H_b g_a)`` (the gradient ``½ c ∇⟨g_a, g_b⟩``); other trees unchanged."""
    out = {}
    for t, c in terms.items():
        a, children = t
        if len(children) == 1 and not children[0][1]:
            b = children[0][0]
            for key in ((a, ((b, ()),)), (b, ((a, ()),))):
                out[key] = out.get(key, 0) + Fraction(c) / 2
        else:
            out[t] = out.get(t, 0) + c
    return {t: c for t, c in out.items() if c != 0}


def implicit_regulariser(n_batches: int, orders=None) -> ImplicitRegulariser:
    r"""Average the forward epoch over random orders and solve for the regulariser coefficient.

    Forward SGD over one epoch in the order ``σ`` expands as
    ``θ − h Σ_k g_k + h² Σ_{i<j} H_{σ_j} g_{σ_i} + O(h³)``. Averaged over all
    ``m!`` orders each ordered pair of distinct batches is equally likely, so
    the bracket part vanishes and the ``h²`` term is
    ``½ Σ_{a≠b} H_b g_a = ¼ ∇‖Σ_k g_k‖² − ¼ ∇Σ_k ‖g_k‖²``. Gradient flow for
    time ``m h`` on ``L + λ Σ_k ‖∇f_k‖²`` (``L = (1/m) Σ f_k``) has the same
    ``h²`` term iff ``λ = h/(4m)`` (Smith et al., 2021). ``λ`` is solved here
    with sympy from the exact coefficients of the symmetric part, the only
    part a flow of a gradient can match: when the orders do not balance
    every pair of batches the mean keeps a bracket part, reported in
    ``bracket_mean``, ``residual``, ``matched`` and ``message``.

    Parameters
    ----------
    n_batches : int
        The number of batches ``m``: at most 7 when all ``m!`` orders are
        averaged, at most 64 with explicit ``orders``.
    orders : sequence of sequences of int, optional
        The epoch orders to average (uniformly), each a permutation of
        ``range(m)``; default all ``m!`` permutations. At most
        ``5040 · 49 // m²`` orders (the work grows like the number of orders
        times ``m²``; all 5040 orders of 7 batches is the largest default).

    Returns
    -------
    ImplicitRegulariser
        The solved coefficient ``λ``, the mean bracket and gradient terms,
        the residual and whether the whole ``h²`` term is matched.

    Raises
    ------
    ValueError
        ``"n_batches: ..."`` or ``"orders: ..."`` for invalid or too large inputs.

    Examples
    --------
    >>> import sympy
    >>> r = implicit_regulariser(3)
    >>> h = sympy.Symbol("h", positive=True)
    >>> r.coefficient == h / 12 and r.bracket_mean == {} and r.residual == {}
    True
    >>> one = implicit_regulariser(3, orders=[(0, 1, 2)])     # one fixed order: a bracket part remains
    >>> one.coefficient == h / 12 and not one.matched and one.bracket_mean != {}
    True
    """
    m = check_positive_int(n_batches, "n_batches")
    if m > _MAX_LETTERS[2]:
        raise ValueError(f"n_batches: expected at most {_MAX_LETTERS[2]} batches, got {m}")
    if orders is None:
        if m > 7:
            raise ValueError(f"n_batches: expected at most 7 batches when averaging all m! orders, got {m}")
        orders = _trees.permutations_of(m)
    else:
        limit = max(1, _MAX_ORDER_WORK // m**2)
        if isinstance(orders, (str, bytes)):
            raise TypeError(f"orders: expected a sequence of epoch orders, got {describe(orders)}")
        _check_length(orders, "orders", limit, f"orders of {m} batches")
        try:
            orders = list(itertools.islice(orders, limit + 1))
        except TypeError:
            raise TypeError(f"orders: expected a sequence of epoch orders, got {describe(orders)}") from None
        if len(orders) > limit:
            raise ValueError(f"orders: expected at most {limit} orders of {m} batches, got more")
    orders = [_as_sequence(o, "orders") for o in orders]
    if not orders:
        raise ValueError("orders: expected at least one epoch order")
    for o in orders:
        if sorted(o) != list(range(m)):
            raise ValueError(f"orders: expected permutations of range({m}), got {list(o)}")
    mean = {}
    for o in orders:
        series = _formal(order_word("forward", o), 2, "orders")
        mean = _trees.series_add(mean, series.as_dict(), Fraction(1, len(orders)))
    mean_series = FormalSeries.from_dict(mean, 2)
    structure = second_order_structure(mean_series)
    h = sympy.Symbol("h", positive=True)
    kappa = sympy.Symbol("kappa")
    # flow for time m h of −∇(L + κ h Σ‖g_k‖²) = time h of −Σ g_k − 2 m κ h Σ H_k g_k
    plain = _flow(order_word("forward", range(m)), 2, Fraction(0), "n_batches").coefficient(2)
    reg = {(a, (_trees.leaf(a),)): -2 * m for a in range(m)}  # per unit κ, at h²
    got = mean_series.coefficient(2)
    symmetric = _symmetric_part(got)
    equations = [sympy.Eq(_rational(symmetric.get(t, 0)), _rational(plain.get(t, 0)) + reg.get(t, 0) * kappa)
                 for t in set(plain) | set(reg) | set(symmetric)]
    solution = sympy.solve(equations, kappa, dict=True)
    if len(solution) != 1:  # cannot happen for permutations: their symmetric parts all agree
        raise ValueError(f"orders: expected orders whose mean symmetric h² term is a regularised flow, "
                         f"got {_format_terms(symmetric)}")
    kappa_value = sympy.Rational(solution[0][kappa])
    kappa_frac = Fraction(int(kappa_value.p), int(kappa_value.q))
    fitted = {t: plain.get(t, 0) + reg.get(t, 0) * kappa_frac for t in set(plain) | set(reg)}
    residual = _trees.series_sub({2: got}, {2: fitted}).get(2, {})
    if not residual:
        message = (f"the mean epoch equals gradient flow for time {m} h on L + λ Σ_k |∇f_k|^2 up to O(h^3), "
                   f"λ = {kappa_value * h}")
    else:
        brackets = SecondOrderStructure({}, structure.brackets, {}).describe()
        message = (f"λ = {kappa_value * h} matches the symmetric h^2 part only; the mean h^2 term keeps the "
                   f"bracket part {brackets}, which is not the gradient of any function, so no regulariser "
                   f"reproduces it (the orders do not balance every pair of batches)")
    return ImplicitRegulariser(m, kappa_value * h, structure.brackets, structure.gradients,
                               residual, len(orders), not residual, message)
