r"""Orders of composition against flows: leading errors and the implicit regulariser.

:func:`leading_error` finds the first power of ``h`` at which an order of
composition departs from a reference (the modified flow, the gradient flow or
another order); :func:`implicit_regulariser` averages one forward epoch over
random orders and solves for the coefficient ``λ = h/(4m)`` of the
regulariser ``λ Σ_k ‖∇f_k‖²`` (SPEC C10; Smith et al., 2021).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import sympy

from ..core._validation import check_positive_int
from . import _trees
from ._series import (
    FormalSeries,
    _as_sequence,
    _check_h_order,
    _format_terms,
    _rational,
    formal_composition,
    modified_flow,
    order_word,
    second_order_structure,
)

__all__ = ["ImplicitRegulariser", "LeadingError", "implicit_regulariser", "leading_error"]


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
        are searched for the leading term (1 to 6).

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
    series = formal_composition(word, h_order=h_order)
    if isinstance(reference, str) and reference in ("modified_flow", "flow"):
        ref = modified_flow(word, h_order=h_order, rho=0 if reference == "flow" else None)
        name = reference
    else:
        ref_word = order_word(reference, sequence if isinstance(reference, str) else None)
        ref = formal_composition(ref_word, h_order=h_order)
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

    Examples
    --------
    >>> r = implicit_regulariser(2)
    >>> r.n_orders, str(r.coefficient), r.gradient_terms == {(0, 1): Fraction(1, 2)}
    (2, 'h/8', True)
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
        The number of batches ``m`` of the epoch.
    orders : sequence of sequences of int, optional
        The epoch orders to average (uniformly), each a permutation of
        ``range(m)``; default all ``m!`` permutations (``m ≤ 7``).

    Returns
    -------
    ImplicitRegulariser
        The solved coefficient ``λ`` (``nan`` when the ``h²`` terms cannot be
        matched), the mean bracket and gradient terms and the residual.

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
    kappa_value = sympy.Rational(solution[0][kappa])
    kappa_frac = Fraction(int(kappa_value.p), int(kappa_value.q))
    residual = _trees.series_sub({2: got}, {2: {t: plain.get(t, 0) + reg.get(t, 0) * kappa_frac
                                                for t in set(plain) | set(reg)}})
    return ImplicitRegulariser(m, kappa_value * h, structure.brackets, structure.gradients,
                               residual.get(2, {}), len(orders))
