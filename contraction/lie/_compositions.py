r"""Concrete compositions: the SGD steps of given losses and their expansions in ``h``.

:class:`SGDSteps` holds the losses ``f_i``, their gradients ``g_i`` and
Hessians ``H_i`` as sympy matrices and evaluates the elementary differentials
of :mod:`contraction.lie._series`; :func:`composition` and
:func:`order_difference` turn formal series into sympy column matrices
(:class:`Expansion`), which :meth:`Expansion.numeric` compiles to numpy to be
compared with the numeric core (direct composition of the maps).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import sympy

from ..core._validation import check_int, describe
from ..core.maps import GradientMaps
from ._calculus import _gradient, _hessian, bracket
from ._numeric import NumericFunction, lambdify
from ._parser import _as_loss, _as_scalar, _as_symbols
from ._series import (
    FormalSeries,
    SecondOrderStructure,
    _check_h_order,
    _formal,
    _word,
    _word_name,
    order_word,
    second_order_structure,
)

__all__ = ["Expansion", "SGDSteps", "composition", "order_difference"]

# Most losses (batches) in one SGDSteps.
_MAX_LOSSES = 1000
# Most second derivatives (losses × dim²) computed for one SGDSteps.
_MAX_SECOND_DERIVATIVES = 2500
# Most elementary differentials evaluated symbolically in one expansion (each costs sympy derivatives).
_MAX_DIFFERENTIALS = 500
# Largest dim**h_order: the differential D^r g_a[u_1, …, u_r] has dim^(r+1) terms, r < h_order.
_MAX_FORM_TERMS = 100_000


class SGDSteps:
    r"""The SGD steps ``T_i(θ) = θ − h ∇f_i(θ)`` of ``m`` losses, symbolically.

    Holds the losses, their gradients ``g_i`` and Hessians ``H_i`` as sympy
    matrices, evaluates elementary differentials (cached), and builds the
    numeric map family of the same steps.

    Parameters
    ----------
    losses : sequence of sympy.Expr or str
        Batch losses ``f_0, …, f_{m−1}``; strings are parsed with
        :func:`parse_loss`. At most 1000 losses and ``m · d² <= 2500``
        (the second derivatives of all Hessians).
    symbols : sequence of str or sympy.Symbol
        The coordinates ``θ``.

    Attributes
    ----------
    losses : tuple of sympy.Expr
        ``f_0, …, f_{m−1}``.
    symbols : tuple of sympy.Symbol
        The coordinates.
    gradients : tuple of sympy.ImmutableMatrix
        ``g_i = ∇f_i``, each (d, 1).
    hessians : tuple of sympy.ImmutableMatrix
        ``H_i = ∇²f_i``, each (d, d).
    h : sympy.Symbol
        The learning rate (positive).

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
            items = list(itertools.islice(losses, _MAX_LOSSES + 1))
        except TypeError:
            raise TypeError(f"losses: expected a sequence of losses, got {describe(losses)}") from None
        if not items:
            raise ValueError("losses: expected at least one loss, got an empty sequence")
        if len(items) > _MAX_LOSSES:
            raise ValueError(f"losses: expected at most {_MAX_LOSSES} losses, got more")
        if len(items) * len(syms) ** 2 > _MAX_SECOND_DERIVATIVES:
            raise ValueError(f"losses: expected at most {_MAX_SECOND_DERIVATIVES} second derivatives in all "
                             f"(losses × dim²), got {len(items)} losses in {len(syms)} coordinates")
        self.symbols = syms
        self.losses = tuple(_as_loss(f, syms, "losses") for f in items)
        self.gradients = tuple(_gradient(f, syms) for f in self.losses)
        self.hessians = tuple(_hessian(f, syms) for f in self.losses)
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
                form = [sympy.Add(*(p.diff(s) * uj for s, uj in zip(self.symbols, u, strict=True))) for p in prev]
                self._forms[key] = (sympy.ImmutableMatrix(form), [*U, u])
        return self._forms[key]

    def elementary(self, tree) -> sympy.ImmutableMatrix:
        r"""Evaluate the elementary differential ``F(tree)(θ) = D^r g_a[F(c_1), …, F(c_r)]`` (cached).

        Parameters
        ----------
        tree : tuple
            ``(a, (c_1, …, c_r))`` with batch label ``a`` and child trees
            ``c_k`` (see :mod:`contraction.lie._trees`).

        Returns
        -------
        sympy.ImmutableMatrix, shape (d, 1)
            The differential for the losses of these steps.
        """
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
                sub = {u: v for uk, vk in zip(U, values, strict=True) for u, v in zip(uk, vk, strict=True)}
                out = form.xreplace(sub)
            self._elementary[tree] = sympy.ImmutableMatrix(out)
        return self._elementary[tree]

    def evaluate(self, terms: dict) -> sympy.ImmutableMatrix:
        """Evaluate a combination ``Σ_t α_t F(t)`` of elementary differentials.

        Parameters
        ----------
        terms : dict
            ``{tree: α}``, e.g. :meth:`FormalSeries.coefficient`.

        Returns
        -------
        sympy.ImmutableMatrix, shape (d, 1)
            The sum for the losses of these steps.
        """
        entries = [[] for _ in range(self.dim)]
        for t, c in terms.items():
            coef = _as_scalar(c, "terms")
            for row, value in zip(entries, self.elementary(t), strict=True):
                row.append(coef * value)
        return sympy.ImmutableMatrix([sympy.Add(*row) for row in entries])  # one sum per entry

    def bracket(self, i: int, j: int) -> sympy.ImmutableMatrix:
        """Compute the bracket of two gradient fields, ``[g_i, g_j] = H_j g_i − H_i g_j``.

        Parameters
        ----------
        i, j : int
            Batch indices.

        Returns
        -------
        sympy.ImmutableMatrix, shape (d, 1)
            The bracket field.
        """
        i = check_int(i, "i", 0, self.n_batches - 1)
        j = check_int(j, "j", 0, self.n_batches - 1)
        return bracket(self.gradients[i], self.gradients[j], self.symbols)

    def numeric_maps(self, lr, probs=None) -> GradientMaps:
        r"""Build the same SGD maps as a numeric :class:`contraction.GradientMaps` (with ``hvp``).

        Gradients and Hessians of all batches are compiled once and evaluated
        on whole stacks; each row then takes its batch's value.

        Parameters
        ----------
        lr : float
            The learning rate ``h > 0``.
        probs : array_like, shape (m,), optional
            Sampling probabilities of the batches; uniform by default.

        Returns
        -------
        GradientMaps
            ``T_i(θ) = θ − lr g_i(θ)`` with ``gradient`` and ``hvp`` of the losses.

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
            values = fg._values(theta, (), theta.shape[:-1]).reshape((*theta.shape[:-1], m, d))
            return np.take_along_axis(values, index[..., None, None], axis=-2)[..., 0, :]

        def hvp(theta, v, index):
            theta = np.asarray(theta, dtype=np.float64)
            index = np.broadcast_to(np.asarray(index), theta.shape[:-1])
            values = fH._values(theta, (), theta.shape[:-1]).reshape((*theta.shape[:-1], m, d, d))
            Hs = np.take_along_axis(values, index[..., None, None, None], axis=-3)[..., 0, :, :]
            return np.einsum("...ij,...j->...i", Hs, np.asarray(v, dtype=np.float64))

        return GradientMaps(grad, lr, m, probs, hvp=hvp, dim=d)

    def __repr__(self) -> str:
        return f"SGDSteps(n_batches={self.n_batches}, dim={self.dim})"


@dataclass(frozen=True)
class Expansion:  # numpydoc ignore=PR01
    r"""A composition (or a difference of compositions) as a series in ``h``, for given losses.

    Attributes
    ----------
    formal : FormalSeries
        The structure: coefficients in elementary differentials.
    coefficients : tuple of sympy.ImmutableMatrix
        ``a_0, …, a_{h_order}`` (each (d, 1)) with the map
        ``θ ↦ Σ_k h^k a_k(θ) + O(h^{h_order+1})``; ``a_0 = θ`` for a
        composition and ``0`` for a difference.
    symbols : tuple of sympy.Symbol
        The coordinates ``θ``.
    h : sympy.Symbol
        The learning rate.

    Examples
    --------
    >>> e = composition(SGDSteps(["x**2 / 2"], ["x"]), "forward", h_order=2)
    >>> e.h_order, e.series()[0] == e.symbols[0] - e.h * e.symbols[0]
    (2, True)
    """

    formal: FormalSeries
    coefficients: tuple
    symbols: tuple
    h: sympy.Symbol

    @property
    def h_order(self) -> int:
        """Highest power of ``h`` kept."""
        return self.formal.h_order

    def series(self) -> sympy.ImmutableMatrix:
        """Sum the truncated series ``Σ_k h^k a_k``.

        Returns
        -------
        sympy.ImmutableMatrix, shape (d, 1)
            One column matrix in the coordinates and ``h``.
        """
        return sympy.ImmutableMatrix(sum((self.h**k * a for k, a in enumerate(self.coefficients)),
                                         sympy.zeros(len(self.symbols), 1)))

    def numeric(self) -> NumericFunction:
        """Compile the truncated series to numpy.

        Returns
        -------
        NumericFunction
            ``f(theta, h)`` of shape ``theta.shape`` for ``theta`` (..., d).
        """
        return lambdify(self.series(), self.symbols, params=(self.h,))

    def second_order(self) -> SecondOrderStructure:
        """Split the ``h²`` coefficient into gradient and bracket parts.

        Returns
        -------
        SecondOrderStructure
            As :func:`second_order_structure` of the formal series.
        """
        return second_order_structure(self.formal)


def _check_dim(steps: SGDSteps, h_order: int) -> None:
    """Refuse differentials ``D^r g`` too large to build: ``dim^h_order`` at most ``_MAX_FORM_TERMS``."""
    if steps.dim**h_order > _MAX_FORM_TERMS:
        raise ValueError(f"h_order: expected dim**h_order <= {_MAX_FORM_TERMS} (the differentials D^r g have "
                         f"dim^(r+1) terms), got dim={steps.dim} and h_order={h_order}")


def _concrete(steps: SGDSteps, formal: FormalSeries, identity: bool) -> Expansion:
    n_terms = sum(len(formal.coefficient(k)) for k in range(1, formal.h_order + 1))
    if n_terms > _MAX_DIFFERENTIALS:
        raise ValueError(f"h_order: expected an expansion with at most {_MAX_DIFFERENTIALS} elementary "
                         f"differentials to evaluate symbolically, got {n_terms} at h_order={formal.h_order} "
                         f"(use a lower h_order or a shorter word)")
    theta = sympy.ImmutableMatrix(steps.symbols) if identity else sympy.ImmutableMatrix.zeros(steps.dim, 1)
    coefs = [theta] + [steps.evaluate(formal.coefficient(k)) for k in range(1, formal.h_order + 1)]
    return Expansion(formal, tuple(coefs), steps.symbols, steps.h)


def _check_labels(word, m: int, name: str):
    bad = [a for a, _ in word if a >= m]
    if bad:
        raise ValueError(f"{name}: expected batch indices in [0, {m - 1}], got {bad[0]}")


def composition(steps, order="forward", *, sequence=None, h_order: int = 3) -> Expansion:
    r"""Expand a composition of the SGD steps of given losses up to ``h^{h_order}``.

    Parameters
    ----------
    steps : SGDSteps
        The losses and their steps.
    order : {"forward", "backward", "palindromic"} or sequence
        The order, or an explicit word, as in :func:`order_word`.
    sequence : sequence of int, optional
        Batch sequence of a named order; default ``0, 1, …, m − 1``.
    h_order : int, default 3
        Highest power of ``h`` kept (1 to 6); see :func:`formal_composition`
        for the longest word at each. Symbolic evaluation is bounded too: at
        most 500 elementary differentials and ``dim**h_order <= 100000``.

    Returns
    -------
    Expansion
        ``coefficients[0] = θ``, ``coefficients[1] = −Σ_p c_p g_{w_p}``, … .

    Raises
    ------
    ValueError
        Naming ``order``, ``sequence`` or ``h_order`` when a size limit is exceeded.

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
    h_order = _check_h_order(h_order)
    _check_labels(word, steps.n_batches, _word_name(order))
    _check_dim(steps, h_order)
    return _concrete(steps, _formal(word, h_order, _word_name(order)), identity=True)


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
        The batch losses (strings are parsed with :func:`parse_loss`), or their steps.
    symbols : sequence of str or sympy.Symbol, optional
        Coordinates (required unless ``losses`` is an ``SGDSteps``).
    h_order : int, default 3
        Highest power of ``h`` kept (1 to 6), within the size limits of
        :func:`composition`.
    orders : pair of orders, default ("forward", "backward")
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
    if not isinstance(orders, (tuple, list)) or len(orders) != 2:
        raise ValueError(f"orders: expected a pair of orders, got {describe(orders)}")
    if sequence is None:
        sequence = range(steps.n_batches)
    h_order = _check_h_order(h_order)
    _check_dim(steps, h_order)
    series = []
    for order in orders:
        word = _word(order, sequence if isinstance(order, str) else None, "orders")
        name = "sequence" if isinstance(order, str) else "orders"
        _check_labels(word, steps.n_batches, name)
        series.append(_formal(word, h_order, name))
    formal = series[0] - series[1]
    return _concrete(steps, formal, identity=False)

