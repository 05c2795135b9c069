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

Everywhere ``h_order`` is the highest power of ``h`` kept (default 3): a
series is exact up to ``O(h^{h_order + 1})``.

The modules, one job each (lower ones never import higher ones):

* ``_parser``: safe parsing of loss text, conversion of symbolic inputs;
* ``_trees``: the combinatorics of elementary differentials (pure Python);
* ``_calculus``: gradient, Hessian and Lie bracket of fields;
* ``_numeric``: the numeric bridge (:func:`lambdify`);
* ``_series``: words of orders and formal series;
* ``_compositions``: the steps of given losses and their expansions;
* ``_quadratics``: exact differences for quadratic losses;
* ``_regulariser``: leading errors and the implicit regulariser.

The numeric bracket-corrected step (:func:`bracket_corrected_step`) lives in
:mod:`contraction.approximations` and the slope fit (:func:`loglog_slope`) in
the core; both are re-exported here.

References
----------
S. L. Smith, B. Dherin, D. Barrett, S. De, "On the origin of implicit
regularization in stochastic gradient descent", ICLR 2021.
"""

from ..approximations import BracketStep, bracket_corrected_step
from ..core._fitting import loglog_slope
from ._calculus import bracket, gradient, hessian
from ._compositions import Expansion, SGDSteps, composition, order_difference
from ._numeric import NumericFunction, lambdify
from ._parser import parse_loss
from ._quadratics import QuadraticPolynomial, quadratic_difference
from ._regulariser import ImplicitRegulariser, LeadingError, implicit_regulariser, leading_error
from ._series import (
    FormalSeries,
    SecondOrderStructure,
    formal_composition,
    modified_flow,
    order_word,
    second_order_structure,
)

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
