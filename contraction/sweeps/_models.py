"""The models a sweep can map: their parameters, checked once, and their construction, cached per process.

A model *kind* names a family (``least_squares`` on a data set, an explicit
``quadratic``, the examples ``two_point``, ``gaussian_1d`` and
``mean_estimation``, the networks ``mlp`` and ``cnn``); its parameters are
given in the spec's ``[model]`` table or as axes of its ``[grid]``. Every
parameter is a :class:`Param`: a check that names the spec key, a default,
and (least squares) the data sets it applies to.

Data sets and models are built once per process and kept (a few of each):
the cells of a sweep that share them, in one worker, do not rebuild them.
Nothing in them is random except through an explicit ``data_seed``.
"""

from __future__ import annotations

import functools
import json
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..core._validation import describe
from ..core.models import LinearRegressionModel, QuadraticModel
from ..core.regression_data import (
    MAX_RANDOM_FEATURES,
    digits_random_features,
    load_diabetes_regression,
    load_digits_regression,
    power_law_regression,
)
from ..theory.examples import gaussian_least_squares_1d, mean_estimation, two_point_quadratic

__all__ = [
    "AFFINE_KINDS",
    "LEAST_SQUARES_DATA",
    "MODEL_KINDS",
    "NETWORK_KINDS",
    "Param",
    "SpecError",
    "build_maps",
    "build_model",
    "kind_parameters",
    "required_parameters",
    "resolve_parameters",
    "shown",
]

#: Kinds whose SGD maps are affine (every quantity of the theory applies).
AFFINE_KINDS = ("least_squares", "quadratic", "two_point", "gaussian_1d", "mean_estimation")
#: Kinds that train a network (the whole experiment is one quantity).
NETWORK_KINDS = ("mlp", "cnn")
MODEL_KINDS = AFFINE_KINDS + NETWORK_KINDS
#: The data sets of least squares (``contraction.core.regression_data``).
LEAST_SQUARES_DATA = ("digits", "random_features", "synthetic", "diabetes")
_NETWORK_DATA = ("digits", "synthetic")
# Rows kept by default: numbers with many small divisors, so that common batch sizes divide them.
_DEFAULT_ROWS = {"digits": 1792, "random_features": 1792, "synthetic": 1024, "diabetes": 440}
_MAX_ROWS = {"digits": 1797, "random_features": 1797, "diabetes": 442}
_DEFAULT_FEATURES = {"random_features": 256, "synthetic": 16}


class SpecError(ValueError):
    """A sweep specification that cannot be run: one line naming the spec key (``grid.lr: expected ...``)."""


def shown(value) -> str:
    """A spec value as the user wrote it, shortened for a message."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = describe(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class Param:
    """One model parameter: what it accepts, its default, where it applies.

    ``check(value)`` returns the normalised value or ``None`` when the value
    is not acceptable; ``what`` and ``many`` say what is accepted, in the
    singular (``"an integer >= 1"``) and the plural (``"integers >= 1"``).
    ``default`` is ``None`` for a required parameter or one left to the
    function that consumes it; ``data`` lists the least-squares data sets it
    applies to (``None``: all); ``grid`` says whether it may be a grid axis.
    """

    check: Callable
    what: str
    many: str
    default: object = None
    data: tuple[str, ...] | None = None
    grid: bool = True

    def value(self, value, where: str):
        """The normalised ``value``, or a :class:`SpecError` naming ``where``."""
        out = self.check(value)
        if out is None:
            raise SpecError(f"{where}: expected {self.what}, got {shown(value)}")
        return out


def _integer(low: int) -> Callable:
    def check(value):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            return None
        return int(value)
    return check


def _real(low: float, strict: bool) -> Callable:
    def check(value):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return None
        x = float(value)
        if not np.isfinite(x) or x < low or (strict and x == low):
            return None
        return x
    return check


def _choice(choices) -> Callable:
    return lambda value: value if isinstance(value, str) and value in choices else None


def _array(value):
    """A nested list of numbers, kept as given (the model checks its shape)."""
    def numeric(v):
        if isinstance(v, list):
            return all(numeric(x) for x in v)
        return isinstance(v, numbers.Real) and not isinstance(v, bool)
    return value if isinstance(value, list) and value and numeric(value) else None


def _integer_param(low: int, default=None, data=None) -> Param:
    return Param(_integer(low), f"an integer >= {low}", f"integers >= {low}", default, data)


def _real_param(low: float, strict: bool, default=None, data=None) -> Param:
    if low == -np.inf:
        return Param(_real(low, strict), "a finite real number", "finite real numbers", default, data)
    op = ">" if strict else ">="
    return Param(_real(low, strict), f"a real number {op} {low:g}", f"real numbers {op} {low:g}", default, data)


def _choice_param(choices, default=None, data=None) -> Param:
    listed = ", ".join(repr(c) for c in choices)
    return Param(_choice(choices), f"one of {listed}", f"strings among {listed}", default, data)


def _array_param(what: str) -> Param:
    return Param(_array, what, what, None, None, grid=False)


_LR = _real_param(0.0, True)
_PARAMETERS = {
    "least_squares": {
        "lr": _LR,
        "data": _choice_param(LEAST_SQUARES_DATA),
        "batch_size": _integer_param(1, 1),
        "n_rows": _integer_param(2),
        "n_features": _integer_param(1, data=("random_features", "synthetic")),
        "features": _choice_param(("relu", "fourier"), "relu", data=("random_features",)),
        "exponent": _real_param(0.0, False, 1.0, data=("synthetic",)),
        "noise": _real_param(0.0, False, 0.5, data=("synthetic",)),
        "data_seed": _integer_param(0, 0, data=("random_features", "synthetic")),
    },
    "quadratic": {
        "lr": _LR,
        "hessians": _array_param("a list of symmetric positive semi-definite matrices (lists of rows)"),
        "centers": _array_param("a list of vectors, one per Hessian"),
        "probs": _array_param("a list of probabilities, one per Hessian"),
    },
    "two_point": {"lr": _LR},
    "gaussian_1d": {
        "lr": _LR,
        "n_nodes": _integer_param(2, 2000),
        "noise": _real_param(0.0, False, 0.5),
        "theta_star": _real_param(-np.inf, False, 1.0),
    },
    "mean_estimation": {
        "lr": _LR,
        "points": _array_param("a list of points (vectors of one dimension)"),
        "probs": _array_param("a list of probabilities, one per point"),
    },
}
_NETWORK = {
    "lr": _LR,
    "data": _choice_param(_NETWORK_DATA),
    "batch_size": _integer_param(1),
    "steps": _integer_param(2),
    "window": _integer_param(1),
    "weight_decay": _real_param(0.0, False),
    "warmup": _integer_param(0),
}
_PARAMETERS["mlp"] = {**_NETWORK, "hidden": _integer_param(1)}
_PARAMETERS["cnn"] = dict(_NETWORK)
_REQUIRED = {"least_squares": ("lr", "data"), "quadratic": ("lr", "hessians", "centers"),
             "mean_estimation": ("lr", "points")}


def kind_parameters(kind: str) -> dict:
    """The parameters of model ``kind``: name -> :class:`Param`."""
    return _PARAMETERS[kind]


def required_parameters(kind: str) -> tuple[str, ...]:
    """The parameters that ``kind`` cannot do without (given in ``[model]`` or as a grid axis)."""
    return _REQUIRED.get(kind, ("lr",))


def resolve_parameters(kind: str, given: dict, where: dict) -> dict:
    """The parameters of one cell: those given, with the defaults that apply to it, minus the irrelevant ones.

    ``where`` maps each given name to its spec key (``model.n_rows`` or
    ``grid.n_rows``), for the messages. Least-squares parameters that do
    not apply to the cell's data set are dropped (they may apply to other
    cells of the grid); a batch size that does not divide the rows is refused.
    """
    params = kind_parameters(kind)
    data = given.get("data")
    out = {}
    for name, param in params.items():
        if kind == "least_squares" and param.data is not None and data not in param.data:
            continue
        if name in given:
            out[name] = given[name]
        elif param.default is not None:
            out[name] = param.default
    if kind == "least_squares":
        out.setdefault("n_rows", _DEFAULT_ROWS[data])
        if data in _DEFAULT_FEATURES:
            out.setdefault("n_features", _DEFAULT_FEATURES[data])
        limit = _MAX_ROWS.get(data)
        if limit is not None and out["n_rows"] > limit:
            raise SpecError(f"{where.get('n_rows', 'model.n_rows')}: expected at most {limit} rows for data "
                            f"{data!r}, got {out['n_rows']}")
        if data == "random_features" and out["n_features"] > MAX_RANDOM_FEATURES:
            raise SpecError(f"{where.get('n_features', 'model.n_features')}: expected at most "
                            f"{MAX_RANDOM_FEATURES} random features, got {out['n_features']}")
        if out["n_rows"] % out["batch_size"]:
            raise SpecError(f"{where.get('batch_size', 'model.batch_size')}: expected divisors of the number of "
                            f"rows {out['n_rows']} (model.n_rows, data {data!r}), got {out['batch_size']}")
    return out


# --- construction, cached per process -------------------------------------------------------------------
def _frozen(value):
    """A hashable copy of a parameter value (nested lists become tuples)."""
    return tuple(_frozen(v) for v in value) if isinstance(value, list) else value


def _thawed(value):
    return [_thawed(v) for v in value] if isinstance(value, tuple) else value


@functools.lru_cache(maxsize=4)
def _regression_data(data: str, n_rows: int, n_features, features, exponent, noise, data_seed):
    if data == "digits":
        X, y = load_digits_regression(n_rows)
    elif data == "diabetes":
        X, y = load_diabetes_regression(n_rows)
    elif data == "random_features":
        X, y = digits_random_features(n_features, kind=features, n_rows=n_rows, rng=data_seed)
    else:
        X, y = power_law_regression(n_rows, n_features, exponent=exponent, noise=noise, rng=data_seed)
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y


@functools.lru_cache(maxsize=16)
def _model(kind: str, items: tuple):
    p = {name: _thawed(value) for name, value in items}
    if kind == "least_squares":
        X, y = _regression_data(p["data"], p["n_rows"], p.get("n_features"), p.get("features"), p.get("exponent"),
                                p.get("noise"), p.get("data_seed"))
        return LinearRegressionModel(X, y, batch_size=p["batch_size"])
    if kind == "quadratic":
        return QuadraticModel(p["hessians"], p["centers"], p.get("probs"))
    if kind == "two_point":
        return two_point_quadratic()
    if kind == "gaussian_1d":
        return gaussian_least_squares_1d(p["n_nodes"], p["noise"], p["theta_star"])
    if kind == "mean_estimation":
        return mean_estimation(p["points"], p.get("probs"))
    raise SpecError(f"model.kind: expected a model with SGD maps (one of {', '.join(AFFINE_KINDS)}), got {kind!r}")


def build_model(kind: str, params: dict):
    """The model of one cell (a :class:`~contraction.QuadraticModel` or :class:`~contraction.LinearRegressionModel`).

    Built once per process for each kind and parameters (the learning rate
    aside) and kept; ``SpecError`` naming ``model.kind`` for a network.
    """
    items = tuple(sorted((name, _frozen(value)) for name, value in params.items() if name != "lr"))
    return _model(kind, items)


def build_maps(kind: str, params: dict):
    """The SGD maps of one cell: ``build_model(kind, params).sgd_maps(params["lr"])``."""
    return build_model(kind, params).sgd_maps(params["lr"])
