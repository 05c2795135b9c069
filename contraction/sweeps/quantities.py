r"""What a sweep computes in each cell: a registry of quantities, extensible by adding an entry.

:data:`QUANTITIES` maps a name to a :class:`Quantity`, whose ``function(cell,
rng)`` returns a dict of JSON values (numbers, booleans, short strings, or
``None``) for one cell. ``cell`` is a :class:`CellContext` (the learning rate,
batch size, replicate and order of the cell, its model parameters, the
quantity's options, and the model and maps, built once per process); ``rng``
is the cell's own :class:`numpy.random.SeedSequence` for this quantity,
spawned from the spec's seed and the cell's coordinates. A plain function is
accepted as an entry too (every model kind, no options)::

    def trace(cell, rng):
        return {"trace": float(np.trace(cell.model().mean_hessian()))}

    QUANTITIES["trace"] = trace

Worker processes find a function by its module and name (define it at the
top level of a module or script); a Dask cluster is sent the function itself.

The built-in quantities (the values they return in brackets):

* ``lyapunov``: top Lyapunov exponent (``lyapunov_exponent``, ``lyapunov_stderr``, ``lyapunov_exact``);
* ``mean_square_radius``: ``ρ(Σ p_i A_i ⊗ A_i)`` (``mean_square_radius``);
* ``tail_index``: Kesten's tail index (``tail_index``: a number, ``"inf"`` for
  a law of bounded support, ``"none exists"`` without a stationary law);
* ``stationary_variance``: exact total stationary variance ``tr Σ_π``
  (``stationary_variance``, or ``"none exists"`` when it is infinite);
* ``backward_convergence``: the step where the backward iterates meet
  ``tol`` (``backward_converged``, ``backward_steps``, ``backward_error_bound``;
  ``backward_converged`` is ``"diverged"`` when the products overflow);
* ``step_norm``: ``‖θ_N − θ_{N−1}‖`` after ``steps`` steps from 0 in the
  cell's composition order, or both orders (``forward_step_norm``,
  ``backward_step_norm``; ``"diverged"`` when the iterates overflow);
* ``ou_error``: ``‖Σ_OU − Σ‖_F / ‖Σ‖_F``, the relative error of the
  Ornstein–Uhlenbeck covariance (``ou_error``, or ``"none exists"``);
* ``nn_experiment``: a whole network experiment (:func:`contraction.experiments.run_nn_experiment`):
  per method the final test accuracy, loss total variation, final step norm (the mean of the last
  ``max(5, N // 10)`` step norms) and gradient evaluations, and whether the run diverged; the
  ratios backward over forward of both (``backward_over_forward_final_step_norm``,
  ``backward_over_forward_loss_total_variation``; ``None`` where nothing was compared).
"""

from __future__ import annotations

import inspect
import numbers
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from ..core._validation import DivergenceError, NonConvergenceWarning
from ..core.iterates import backward_iterates, forward_iterates
from ..core.sampling import sample_batches
from ..experiments import run_nn_experiment
from ..theory.diagnostics import lyapunov_exponent, mean_square_radius, tail_index
from ..theory.fixed_point import backward_fixed_point
from ..theory.moments import StationaryLawError, stationary_moments
from ..theory.ou import ou_covariance
from ._models import AFFINE_KINDS, NETWORK_KINDS, build_maps, build_model

__all__ = ["NONE_EXISTS", "QUANTITIES", "CellContext", "Option", "Quantity", "get_quantity"]

#: The value recorded for a stationary quantity that does not exist.
NONE_EXISTS = "none exists"


@dataclass(frozen=True)
class Option:
    """One option of a quantity, set in the spec's ``[options.<quantity>]`` table.

    Attributes
    ----------
    default : int or float
        The value when the spec does not set it; its type is the option's type.
    low : int or float
        The smallest value allowed (an integer option) or the bound below
        (a real option, excluded when ``strict``).
    strict : bool
        Whether ``low`` itself is refused (real options).
    """

    default: int | float
    low: int | float = 1
    strict: bool = False

    def what(self) -> str:
        """The values accepted, in words."""
        if isinstance(self.default, int):
            return f"an integer >= {self.low}"
        return f"a real number {'>' if self.strict else '>='} {self.low:g}"

    def value(self, value):
        """``value`` normalised, or ``None`` when it is not accepted."""
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return None
        if isinstance(self.default, int):
            ok = isinstance(value, numbers.Integral) and value >= self.low
            return int(value) if ok else None
        x = float(value)
        ok = np.isfinite(x) and (x > self.low if self.strict else x >= self.low)
        return x if ok else None


@dataclass(frozen=True)
class Quantity:
    """An entry of :data:`QUANTITIES`: what one cell computes, and where it applies.

    Attributes
    ----------
    function : callable
        ``function(cell, rng) -> dict`` of JSON values; ``cell`` is a
        :class:`CellContext`, ``rng`` a :class:`numpy.random.SeedSequence`.
    kinds : tuple of str or None
        The model kinds it applies to (``None``: every kind).
    options : Mapping of str to Option
        Its options, set in the spec's ``[options.<name>]`` table.
    uses_order : bool
        Whether it depends on the composition order (the grid axis ``order``).
    """

    function: Callable
    kinds: tuple[str, ...] | None = None
    options: Mapping[str, Option] = field(default_factory=dict)
    uses_order: bool = False


class CellContext:
    """What a quantity function receives as ``cell``: one cell's settings, its model and its maps.

    Attributes
    ----------
    key : str
        The cell's configuration hash.
    kind : str
        The model kind.
    params : dict
        The model parameters of the cell (``lr`` among them), defaults filled in.
    coordinates : dict
        The cell's values of the grid axes.
    lr : float
        The learning rate.
    batch_size : int or None
        The batch size, where the model has one.
    replicate : int or None
        The value of the grid axis ``seed`` (``None`` without that axis).
    order : str or None
        ``"forward"`` or ``"backward"``: the grid axis ``order`` (``None`` without it).
    options : dict
        The options of the quantity being computed, defaults filled in.
    """

    def __init__(self, key, kind, params, coordinates, options=None):
        self.key, self.kind, self.params, self.coordinates = key, kind, dict(params), dict(coordinates)
        self.lr = self.params.get("lr")
        self.batch_size = self.params.get("batch_size")
        self.replicate = self.coordinates.get("seed")
        self.order = self.coordinates.get("order")
        self.options = dict(options or {})

    def with_options(self, options) -> CellContext:
        """The same cell, for a quantity with these options."""
        return CellContext(self.key, self.kind, self.params, self.coordinates, options)

    def model(self):
        """The model (built once per process and kept): a ``QuadraticModel`` or ``LinearRegressionModel``."""
        return build_model(self.kind, self.params)

    def maps(self):
        """The SGD maps ``model().sgd_maps(lr)``."""
        return build_maps(self.kind, self.params)


# --- the built-in quantities --------------------------------------------------------------------------
def _lyapunov(cell, rng):
    o = cell.options
    res = lyapunov_exponent(cell.maps(), rng=rng, n_steps=o["n_steps"], n_chains=o["n_chains"], burn_in=o["burn_in"])
    return {"lyapunov_exponent": res.exponent, "lyapunov_stderr": res.stderr, "lyapunov_exact": res.exact}


def _mean_square_radius(cell, rng):
    return {"mean_square_radius": mean_square_radius(cell.maps())}


def _one_dimensional_tail(maps):
    """``inf`` (bounded support) or ``NONE_EXISTS`` (no stationary law) where 1-D maps have no finite index."""
    A = maps.to_dense().A if hasattr(maps, "to_dense") else maps.A
    a, p = np.abs(A[:, 0, 0]), maps.probs
    keep = p > 0
    a, p = a[keep], p[keep]
    with np.errstate(divide="ignore"):
        gamma = float(np.sum(p * np.log(a)))
    if not gamma < 0:
        return NONE_EXISTS
    if not np.any(a > 1):
        return float("inf")
    return None


_TAIL_MAIN = ("alpha", "index", "value", "tail_index")


def _tail_index(cell, rng):
    maps = cell.maps()
    if maps.dim == 1:
        special = _one_dimensional_tail(maps)
        if special is not None:
            return {"tail_index": special}
    takes_rng = "rng" in inspect.signature(tail_index).parameters
    res = tail_index(maps, rng=rng) if takes_rng else tail_index(maps)
    if isinstance(res, numbers.Real):
        return {"tail_index": float(res)}
    out = {}
    for name in getattr(res, "__dataclass_fields__", {}):
        value = getattr(res, name)
        if isinstance(value, (numbers.Real, str, type(None))):
            out["tail_index" if name in _TAIL_MAIN else f"tail_index_{name}"] = value
    return out


def _stationary_variance(cell, rng):
    try:
        moments = stationary_moments(cell.maps())
    except StationaryLawError:
        return {"stationary_variance": NONE_EXISTS}
    return {"stationary_variance": float(np.trace(moments.cov))}


def _backward_convergence(cell, rng):
    o = cell.options
    with warnings.catch_warnings():  # non-convergence is a result here, recorded below
        warnings.simplefilter("ignore", NonConvergenceWarning)
        try:
            res = backward_fixed_point(cell.maps(), rng=rng, tol=o["tol"], max_steps=o["max_steps"])
        except DivergenceError:
            return {"backward_converged": "diverged"}
    return {"backward_converged": res.converged, "backward_steps": res.n_steps,
            "backward_error_bound": res.error_bound}


def _step_norm(cell, rng):
    maps = cell.maps()
    steps = cell.options["steps"]
    idx = sample_batches(maps.n_maps, steps, probs=maps.probs, rng=rng)
    orders = (cell.order,) if cell.order else ("forward", "backward")
    out = {}
    for order in orders:
        run = forward_iterates if order == "forward" else backward_iterates
        try:
            last = run(maps, np.zeros(maps.dim), idx, save_steps=[steps - 1, steps])[0]
        except DivergenceError:
            out[f"{order}_step_norm"] = "diverged"
            continue
        out[f"{order}_step_norm"] = float(np.linalg.norm(last[1] - last[0]))
    return out


def _ou_error(cell, rng):
    ou = ou_covariance(cell.model(), cell.lr)
    try:
        exact = stationary_moments(cell.maps()).cov
    except StationaryLawError:
        return {"ou_error": NONE_EXISTS}
    return {"ou_error": float(np.linalg.norm(ou.cov - exact) / np.linalg.norm(exact))}


_NETWORK_SETTINGS = ("data", "batch_size", "steps", "window", "weight_decay", "warmup", "hidden")


def _nn_experiment(cell, rng):
    settings = {name: cell.params[name] for name in _NETWORK_SETTINGS if name in cell.params}
    res = run_nn_experiment(model=cell.kind, lr=cell.lr, rng=rng, **settings)
    out = {"diverged": res.diverged, "claim_holds": res.claim_holds}
    if res.diverged:
        out["divergence"] = res.divergence
    for name, m in res.methods.items():
        out[f"{name}_final_test_accuracy"] = m.final_test_accuracy
        out[f"{name}_loss_total_variation"] = float(m.loss_total_variation)
        out[f"{name}_final_step_norm"] = _number_or_none(m.final_step_norm)
        out[f"{name}_gradient_evals"] = m.gradient_evals
        out[f"{name}_hvp_evals"] = m.hvp_evals
    s = res.summary
    out["backward_over_forward_final_step_norm"] = _number_or_none(s.backward_over_forward_final_step_norm)
    out["backward_over_forward_loss_total_variation"] = _number_or_none(s.backward_over_forward_loss_total_variation)
    return out


def _number_or_none(value):
    """``value`` as a float, or ``None`` where there is no number (``nan``: no steps, or nothing to compare)."""
    x = float(value)
    return None if np.isnan(x) else x


#: The quantities a spec may ask for, by name; add an entry to register another.
QUANTITIES: dict[str, Quantity | Callable] = {
    "lyapunov": Quantity(_lyapunov, AFFINE_KINDS,
                         {"n_steps": Option(1000), "n_chains": Option(32, 2), "burn_in": Option(50, 0)}),
    "mean_square_radius": Quantity(_mean_square_radius, AFFINE_KINDS),
    "tail_index": Quantity(_tail_index, AFFINE_KINDS),
    "stationary_variance": Quantity(_stationary_variance, AFFINE_KINDS),
    "backward_convergence": Quantity(_backward_convergence, AFFINE_KINDS,
                                     {"tol": Option(1e-8, 0.0, strict=True), "max_steps": Option(20000)}),
    "step_norm": Quantity(_step_norm, AFFINE_KINDS, {"steps": Option(200)}, uses_order=True),
    "ou_error": Quantity(_ou_error, AFFINE_KINDS),
    "nn_experiment": Quantity(_nn_experiment, NETWORK_KINDS),
}


def get_quantity(name: str, registry=None) -> Quantity:
    """The registered quantity ``name`` as a :class:`Quantity` (a plain function is wrapped: every kind, no options)."""
    entry = (QUANTITIES if registry is None else registry)[name]
    if isinstance(entry, Quantity):
        return entry
    if not callable(entry):
        raise TypeError(f"QUANTITIES[{name!r}]: expected a Quantity or a function(cell, rng), got "
                        f"{type(entry).__name__}")
    return Quantity(entry)
