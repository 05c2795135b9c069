r"""Formal series of compositions of SGD steps, in elementary differentials.

Pure Python (no sympy, no numpy): the combinatorics behind :mod:`contraction.lie`.

A *tree* ``(a, (c_1, …, c_r))`` stands for the elementary differential

    F(tree)(θ) = D^r g_a(θ)[F(c_1)(θ), …, F(c_r)(θ)],       g_a = ∇f_a,

so ``(a, ())`` is the gradient ``g_a``, ``(a, ((b, ()),))`` is ``H_a g_b`` and
``(a, ((b, ((c, ()),)),))`` is ``H_a H_b g_c``. Children are kept sorted, which
makes every tree canonical (``D^r g_a`` is symmetric).

A *series* is a dict ``{power: {tree: coefficient}}``; it stands for the
increment ``Σ_k h^k Σ_t α_t F(t)(θ)`` of a map ``θ ↦ θ + …``. Coefficients are
exact (``fractions.Fraction`` by default; anything with ``+`` and ``*`` works).

Taylor expansion is grafting: ``F(τ)(θ + δ) = Π_v exp(δ_v) F(τ)(θ)`` where
``δ_v`` attaches ``δ`` as a new child of node ``v`` (differentiating ``g``
at that node once more). Every node independently receives a multiset of
terms of ``δ``; a term attached ``n`` times carries the factor ``β^n / n!``.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from itertools import permutations

__all__ = [
    "chain_labels",
    "clean",
    "euler_word_series",
    "flow_series",
    "leaf",
    "n_nodes",
    "permutations_of",
    "series_add",
    "series_scale",
    "series_sub",
    "tree_name",
]


def leaf(a: int):
    """The tree of the gradient ``g_a``."""
    return (a, ())


def node(a: int, children) -> tuple:
    """Canonical tree with root label ``a``."""
    return (a, tuple(sorted(children)))


def n_nodes(tree) -> int:
    """Number of nodes (each node carries one derivative of one gradient)."""
    return 1 + sum(n_nodes(c) for c in tree[1])


def chain_labels(tree):
    """``(a_1, …, a_k)`` when the tree is a chain ``H_{a_1} ⋯ H_{a_{k−1}} g_{a_k}``, else ``None``."""
    labels = []
    while True:
        labels.append(tree[0])
        if not tree[1]:
            return tuple(labels)
        if len(tree[1]) != 1:
            return None
        tree = tree[1][0]


def tree_name(tree) -> str:
    """Readable name: ``g_0``, ``H_1 g_0``, ``H_2 H_1 g_0``, ``D²g_0[g_1, g_2]``."""
    chain = chain_labels(tree)
    if chain is not None:
        return " ".join(f"H_{a}" for a in chain[:-1]) + ("" if len(chain) == 1 else " ") + f"g_{chain[-1]}"
    a, children = tree
    r = len(children)
    sup = {2: "²", 3: "³", 4: "⁴", 5: "⁵"}.get(r, f"^{r}")
    return f"D{sup}g_{a}[" + ", ".join(tree_name(c) for c in children) + "]"


# --- series arithmetic ---------------------------------------------------------------


def clean(series) -> dict:
    """Drop zero coefficients and empty powers."""
    out = {}
    for k, terms in series.items():
        kept = {t: c for t, c in terms.items() if c != 0}
        if kept:
            out[k] = kept
    return out


def series_add(a, b, scale=1) -> dict:
    """``a + scale · b``."""
    out = {k: dict(v) for k, v in a.items()}
    for k, terms in b.items():
        dst = out.setdefault(k, {})
        for t, c in terms.items():
            dst[t] = dst.get(t, 0) + scale * c
    return clean(out)


def series_sub(a, b) -> dict:
    """``a − b``."""
    return series_add(a, b, -1)


def series_scale(a, scale) -> dict:
    """``scale · a``."""
    return clean({k: {t: scale * c for t, c in v.items()} for k, v in a.items()})


# --- Taylor expansion by grafting ----------------------------------------------------


def _multisets(terms, budget):
    """Multisets of ``terms`` (list of ``(p, q, tree, coef)``, ``p ≥ 1``) with total ``p ≤ budget``.

    Returns a list of ``(p, q, trees, coef)``; a term taken ``n`` times
    contributes ``coef^n / n!``. Generated as non-decreasing index sequences
    (terms sorted by ``p``), so the work is proportional to the output.
    """
    terms = sorted((x for x in terms if x[0] <= budget), key=lambda x: x[0])
    out = []

    def grow(start, p0, q0, trees, c0, last, count):
        out.append((p0, q0, trees, c0))
        for j in range(start, len(terms)):
            p, q, t, c = terms[j]
            if p0 + p > budget:
                break  # sorted by p: no later term fits either
            n = count + 1 if j == last else 1
            grow(j, p0 + p, q0 + q, (*trees, t), c0 * c if n == 1 else c0 * c * Fraction(1, n), j, n)

    grow(0, 0, 0, (), 1, -1, 0)
    return out


def _variants(tree, terms, budget):
    """Taylor expansion ``F(tree)(θ + δ)`` with ``δ = Σ terms``, up to extra power ``budget``.

    Returns a list of ``(p, q, tree', coef)``: grafting terms of ``δ`` onto the
    nodes of ``tree`` (each node a multiset of them), ``p`` and ``q`` summed.
    """
    terms = [x for x in terms if x[0] <= budget]
    a, children = tree
    partial = [(0, 0, (), 1)]
    for child in children:
        grown = []
        for p, q, trees, c in partial:
            for p2, q2, t2, c2 in _variants(child, terms, budget - p):
                grown.append((p + p2, q + q2, (*trees, t2), c * c2))
        partial = grown
    out = []
    for p, q, trees, c in partial:
        for p2, q2, attached, c2 in _multisets(terms, budget - p):
            out.append((p + p2, q + q2, node(a, trees + attached), c * c2))
    return out


def _to_series(triples) -> dict:
    series = {}
    for p, t, c in triples:
        dst = series.setdefault(p, {})
        dst[t] = dst.get(t, 0) + c
    return clean(series)


def _freeze(series) -> tuple:
    return tuple((k, tuple(sorted(series[k].items()))) for k in sorted(series))


def _thaw(frozen) -> dict:
    return {k: dict(terms) for k, terms in frozen}


@lru_cache(maxsize=1024)
def _euler_word_frozen(word, order):
    delta = []  # (p, 0, tree, coef)
    for a, w in reversed(word):  # the last letter acts first
        acc = {(p, t): c for p, _, t, c in delta}
        for p, _, t, c in _variants(leaf(a), delta, order - 1):
            acc[(p + 1, t)] = acc.get((p + 1, t), 0) - w * c
        delta = [(p, 0, t, c) for (p, t), c in acc.items() if c != 0]
    return _freeze(_to_series((p, t, c) for p, _, t, c in delta))


def euler_word_series(word, order: int) -> dict:
    r"""Increment of ``T_{w_1} ∘ … ∘ T_{w_k}`` with ``T_{(a, c)}(θ) = θ − c h g_a(θ)``, to ``h^order``.

    ``word`` is a tuple of ``(label, weight)`` pairs, the outermost map
    first (the last letter acts first). Exact (cached) rational arithmetic.

    Examples
    --------
    >>> s = euler_word_series(((1, Fraction(1)), (0, Fraction(1))), 2)   # T_1 ∘ T_0
    >>> s[1] == {leaf(0): -1, leaf(1): -1} and s[2] == {(1, (leaf(0),)): 1}
    True
    """
    return _thaw(_euler_word_frozen(tuple(word), int(order)))


@lru_cache(maxsize=256)
def _flow_frozen(field, order):
    delta = []  # (p, q, tree, coef): h^p s^q
    for r in range(1, order + 1):  # Picard iteration: after round r the powers up to h^r are exact
        acc = {}
        for e, tau, alpha in field:
            if e + 1 > r:
                continue
            for p, q, t, c in _variants(tau, delta, r - e - 1):
                key = (p + e + 1, q + 1, t)
                acc[key] = acc.get(key, 0) + alpha * c * Fraction(1, q + 1)
        delta = [(p, q, t, c) for (p, q, t), c in acc.items() if c != 0]
    return _freeze(_to_series((p, t, c) for p, _, t, c in delta))


def flow_series(field, order: int) -> dict:
    r"""Increment of the time-``h`` flow of ``θ' = Σ_j α_j h^{e_j} F(τ_j)(θ)``, to ``h^order``.

    ``field`` is a tuple of ``(e, tree, alpha)``. Computed by Picard iteration
    ``δ(s) = ∫_0^s h F(θ + δ(σ)) dσ`` in the tree algebra.

    Examples
    --------
    >>> s = flow_series(((0, leaf(0), Fraction(-1)),), 3)      # gradient flow of f_0
    >>> s[2] == {(0, (leaf(0),)): Fraction(1, 2)} and s[3][(0, (leaf(0), leaf(0)))] == Fraction(-1, 6)
    True
    """
    return _thaw(_flow_frozen(tuple(field), int(order)))


def permutations_of(n: int):
    """All orders of ``range(n)`` (as tuples)."""
    return list(permutations(range(n)))
