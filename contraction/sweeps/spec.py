r"""The sweep specification: a small TOML file, read with :mod:`tomllib`, checked once, expanded into cells.

A spec has four tables::

    [sweep]                      # name, seed (default 0), the quantities of every cell
    name = "quick"
    seed = 2024
    quantities = ["lyapunov", "stationary_variance"]

    [model]                      # the kind and its fixed parameters
    kind = "gaussian_1d"

    [grid]                       # the axes: learning rates, replicates, ... (lists)
    lr = [0.2, 0.5, 0.8]
    seed = [0, 1]

    [options.lyapunov]           # options of a quantity (optional)
    n_steps = 2000

Grid axes are ``lr``, ``seed`` (replicates), ``order`` (``"forward"`` or
``"backward"``, for quantities that depend on it) and any scalar parameter of
the model kind (``batch_size``, ``data``, ``n_features``, ...); a parameter is
given either in ``[model]`` or as an axis, not both. Every mistake is one
line naming the key: ``grid.lr: expected a non-empty list of real numbers > 0,
got [0.1, -1]``.

Model kinds and their parameters besides ``lr`` (defaults in brackets):

* ``least_squares``: ``data`` (``"digits"``, ``"random_features"``,
  ``"synthetic"``, ``"diabetes"``: :mod:`contraction.core.regression_data`),
  ``batch_size`` [1], ``n_rows`` [1792 for the digits and their random
  features, 1024 synthetic, 440 diabetes; the batch sizes must divide it],
  ``n_features`` [256 random features, 16 synthetic], ``features``
  [``"relu"`` or ``"fourier"``, random features], ``exponent`` [1.0] and
  ``noise`` [0.5] (synthetic), ``data_seed`` [0] (random features, synthetic);
* ``quadratic``: ``hessians``, ``centers``, ``probs`` (lists, not grid axes);
* ``two_point`` (example E1): none;
* ``gaussian_1d`` (example E3): ``n_nodes`` [2000], ``noise`` [0.5], ``theta_star`` [1.0];
* ``mean_estimation`` (example E2): ``points``, ``probs``;
* ``mlp`` and ``cnn`` (quantity ``nn_experiment``): ``data`` (``"digits"``,
  ``"synthetic"``), ``batch_size``, ``steps``, ``window``, ``weight_decay``,
  ``warmup``, ``hidden`` (MLP); those not given take the defaults of
  :func:`contraction.experiments.run_nn_experiment`.

A cell is one point of the product of the axes, in the order they are
written. Its *key* is a hash of its whole configuration (the spec's seed,
the model and its parameters, the coordinates, the quantities and their
options): results are stored and reused under it. Its randomness is a
:class:`numpy.random.SeedSequence` with the spec's seed as entropy and a
spawn key made from the cell's coordinates and the quantity's name: the same
for a cell whatever the other cells, the order they run in, or the worker
that runs it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import numbers
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ._models import (
    MODEL_KINDS,
    Param,
    SpecError,
    build_model,
    kind_parameters,
    required_parameters,
    resolve_parameters,
    shown,
)
from .quantities import QUANTITIES, get_quantity

try:  # Python >= 3.11
    import tomllib
except ImportError:  # pragma: no cover - Python 3.10
    try:
        import tomli as tomllib
    except ImportError:
        tomllib = None

__all__ = ["FORMAT", "MAX_CELLS", "ORDERS", "Cell", "SpecError", "SweepSpec", "canonical_json", "read_spec"]

#: Version of the cell configuration that the keys hash (and of the stored records).
FORMAT = 1
#: Largest number of cells of one sweep.
MAX_CELLS = 1_000_000
#: Values of the grid axis ``order``.
ORDERS = ("forward", "backward")
_TABLES = ("sweep", "model", "grid", "options")
_SWEEP_KEYS = ("name", "seed", "quantities")
_REPLICATE = Param(lambda v: int(v) if isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 0
                   else None, "an integer >= 0", "integers >= 0")
_ORDER = Param(lambda v: v if v in ORDERS else None, "'forward' or 'backward'", "strings 'forward' and 'backward'")


def canonical_json(value) -> str:
    """The JSON text that keys and seeds hash: sorted keys, no spaces, exact floats."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _digest(text: str, size: int) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:2 * size]


@dataclass(frozen=True)
class Cell:
    """One point of a sweep's grid, with all it takes to compute it anywhere.

    Attributes
    ----------
    key : str
        Hash of the configuration (20 hex digits): the name its result is stored under.
    index : int
        Position in the grid (the order of :meth:`SweepSpec.cells`); neither
        the key nor the randomness depends on it.
    kind : str
        The model kind.
    params : dict
        The model parameters, defaults filled in, grid values substituted.
    coordinates : dict
        The cell's value on each grid axis, in the grid's order.
    seed : int
        The spec's seed.
    quantities : tuple of str
        What the cell computes.
    options : dict
        The options of each quantity, defaults filled in.
    """

    key: str
    index: int
    kind: str
    params: dict
    coordinates: dict
    seed: int
    quantities: tuple[str, ...]
    options: dict

    def config(self) -> dict:
        """The configuration the key hashes (JSON-ready)."""
        return {"format": FORMAT, "seed": self.seed, "kind": self.kind, "params": self.params,
                "coordinates": self.coordinates, "quantities": sorted(self.quantities),
                "options": {name: self.options[name] for name in sorted(self.quantities)}}

    def rng(self, quantity: str) -> np.random.SeedSequence:
        """The randomness of ``quantity`` in this cell: spawned from the spec's seed and the cell's coordinates."""
        where = int(_digest(canonical_json(self.coordinates), 16), 16)
        what = int(_digest(quantity, 8), 16)
        return np.random.SeedSequence(self.seed, spawn_key=(where, what))

    def label(self) -> str:
        """The coordinates in words: ``lr=0.1, batch_size=4, seed=0``."""
        return ", ".join(f"{name}={value}" for name, value in self.coordinates.items())


@dataclass(frozen=True)
class SweepSpec:
    """A checked sweep specification (see :mod:`contraction.sweeps.spec` for the TOML layout).

    Attributes
    ----------
    name : str
        The sweep's name (``[sweep] name``; the file's stem by default).
    seed : int
        The seed every cell's randomness is spawned from.
    quantities : tuple of str
        The quantities computed in every cell (names in :data:`~contraction.sweeps.QUANTITIES`).
    kind : str
        The model kind.
    model : dict
        The fixed model parameters, as given (``[model]`` without ``kind``).
    grid : dict
        Each axis and its values (tuples), in the order written.
    options : dict
        Each quantity's options, defaults filled in.
    source : str or None
        The file the spec was read from.
    """

    name: str
    seed: int
    quantities: tuple[str, ...]
    kind: str
    model: dict
    grid: dict
    options: dict
    source: str | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        """The number of values of each grid axis."""
        return tuple(len(values) for values in self.grid.values())

    @property
    def n_cells(self) -> int:
        """The number of cells, the product of :attr:`shape`."""
        return math.prod(self.shape)

    @cached_property
    def cells(self) -> tuple[Cell, ...]:
        """The cells, in the order of the grid's product (the last axis fastest)."""
        where = {name: f"model.{name}" for name in self.model} | {name: f"grid.{name}" for name in self.grid}
        cells = []
        for index, combo in enumerate(itertools.product(*self.grid.values())):
            coordinates = dict(zip(self.grid, combo, strict=True))
            given = {**self.model, **{k: v for k, v in coordinates.items() if k not in ("seed", "order")}}
            params = resolve_parameters(self.kind, given, where)
            options = {name: dict(self.options[name]) for name in self.quantities}
            cell = Cell("", index, self.kind, params, coordinates, self.seed, self.quantities, options)
            key = _digest(canonical_json(cell.config()), 10)
            cells.append(Cell(key, index, self.kind, params, coordinates, self.seed, self.quantities, options))
        return tuple(cells)

    def to_dict(self) -> dict:
        """The spec as TOML tables (``read_spec(spec.to_dict())`` gives it back)."""
        out = {"sweep": {"name": self.name, "seed": self.seed, "quantities": list(self.quantities)},
               "model": {"kind": self.kind, **self.model},
               "grid": {axis: list(values) for axis, values in self.grid.items()}}
        options = {name: dict(opts) for name, opts in self.options.items() if opts}
        if options:
            out["options"] = options
        return out


# --- reading and checking -------------------------------------------------------------------------------
def _load(path: str) -> dict:
    if tomllib is None:  # pragma: no cover - Python 3.10 without tomli
        raise ImportError('reading a sweep spec on Python 3.10 needs tomli: pip install tomli')
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise SpecError(f"spec: cannot read {path!r} ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"spec: {path!r} is not valid TOML: {exc}") from None


def _table(doc: Mapping, name: str, required: bool) -> dict:
    table = doc.get(name)
    if table is None:
        if required:
            raise SpecError(f"{name}: expected a [{name}] table, got none")
        return {}
    if not isinstance(table, Mapping):
        raise SpecError(f"{name}: expected a [{name}] table, got {shown(table)}")
    return dict(table)


def _sweep_table(doc, default_name, registry):
    sweep = _table(doc, "sweep", True)
    for key in sweep:
        if key not in _SWEEP_KEYS:
            raise SpecError(f"sweep.{key}: unknown key; expected {', '.join(_SWEEP_KEYS)}")
    name = sweep.get("name", default_name)
    if not isinstance(name, str) or not name.strip():
        raise SpecError(f"sweep.name: expected a non-empty string, got {shown(name)}")
    seed = _REPLICATE.value(sweep.get("seed", 0), "sweep.seed")
    names = sweep.get("quantities")
    listed = ", ".join(registry)
    if not isinstance(names, list) or not names or not all(isinstance(q, str) for q in names):
        raise SpecError(f"sweep.quantities: expected a non-empty list of quantity names among {listed}, "
                        f"got {shown(names)}")
    for q in names:
        if q not in registry:
            raise SpecError(f"sweep.quantities: unknown quantity {q!r}; expected names among {listed}")
        if names.count(q) > 1:
            raise SpecError(f"sweep.quantities: expected distinct names, got {q!r} twice")
    return name, seed, tuple(names)


def _model_table(doc):
    model = _table(doc, "model", True)
    kind = model.pop("kind", None)
    if kind not in MODEL_KINDS:
        raise SpecError(f"model.kind: expected one of {', '.join(MODEL_KINDS)}, got {shown(kind)}")
    params = kind_parameters(kind)
    fixed = {}
    for key, value in model.items():
        if key not in params:
            raise SpecError(f"model.{key}: not a parameter of kind {kind!r} (its parameters: {', '.join(params)})")
        fixed[key] = params[key].value(value, f"model.{key}")
    return kind, fixed


def _grid_table(doc, kind, fixed):
    params = kind_parameters(kind)
    axes = [name for name, p in params.items() if p.grid] + ["seed", "order"]
    grid = {}
    for key, values in _table(doc, "grid", False).items():
        param = {"seed": _REPLICATE, "order": _ORDER}.get(key) or (params[key] if key in params else None)
        if param is None or not param.grid:
            raise SpecError(f"grid.{key}: not a grid axis of kind {kind!r} (axes: {', '.join(axes)})")
        if key in fixed:
            raise SpecError(f"grid.{key}: also given as model.{key}; give it in one place")
        if not isinstance(values, list) or not values or any(param.check(v) is None for v in values):
            raise SpecError(f"grid.{key}: expected a non-empty list of {param.many}, got {shown(values)}")
        checked = [param.check(v) for v in values]
        for v in checked:
            if checked.count(v) > 1:
                raise SpecError(f"grid.{key}: expected distinct values, got {shown(v)} twice")
        grid[key] = tuple(checked)
    for name in required_parameters(kind):
        if name not in fixed and name not in grid:
            if name == "lr":
                raise SpecError("grid.lr: expected a non-empty list of learning rates > 0 (or a single "
                                "model.lr), got nothing")
            raise SpecError(f"model.{name}: expected {params[name].what} (required for kind {kind!r}), got nothing")
    return grid


def _check_data_parameters(kind, fixed, grid) -> None:
    """Least squares: every parameter given applies to one of the data sets used at least."""
    if kind != "least_squares":
        return
    used = grid.get("data") or (fixed.get("data"),)
    for name, param in kind_parameters(kind).items():
        if param.data is None or not set(param.data).isdisjoint(used) or (name not in fixed and name not in grid):
            continue
        key = f"model.{name}" if name in fixed else f"grid.{name}"
        raise SpecError(f"{key}: not a parameter of data {', '.join(map(repr, used))} (it applies to data "
                        f"{', '.join(map(repr, param.data))})")


def _options_table(doc, quantities, registry):
    given = _table(doc, "options", False)
    options = {}
    for name in given:
        if name not in quantities:
            raise SpecError(f"options.{name}: not a requested quantity (sweep.quantities: {', '.join(quantities)})")
    for name in quantities:
        declared = registry[name].options
        table = given.get(name, {})
        if not isinstance(table, Mapping):
            raise SpecError(f"options.{name}: expected a table [options.{name}], got {shown(table)}")
        values = {}
        for key, value in table.items():
            if key not in declared:
                expected = ", ".join(declared) if declared else "none (it takes no options)"
                raise SpecError(f"options.{name}.{key}: unknown option; expected {expected}")
            values[key] = declared[key].value(value)
            if values[key] is None:
                raise SpecError(f"options.{name}.{key}: expected {declared[key].what()}, got {shown(value)}")
        options[name] = {key: values.get(key, opt.default) for key, opt in declared.items()}
    return options


def read_spec(source, registry=None) -> SweepSpec:
    """Read and check a sweep spec: a TOML file, or its tables as a dict.

    Parameters
    ----------
    source : str, os.PathLike, Mapping or SweepSpec
        The path of a TOML file, the parsed tables, or a spec (returned as is).
    registry : Mapping, optional
        The quantities known by name (:data:`~contraction.sweeps.QUANTITIES` by default).

    Returns
    -------
    SweepSpec
        The checked spec; its cells are expanded (and checked) already.

    Raises
    ------
    SpecError
        One line naming the spec key at fault (a ``ValueError``).

    Examples
    --------
    >>> spec = read_spec({"sweep": {"quantities": ["lyapunov"]}, "model": {"kind": "two_point"},
    ...                   "grid": {"lr": [0.5, 1.0], "seed": [0, 1, 2]}})
    >>> spec.shape, spec.n_cells, spec.cells[1].coordinates
    ((2, 3), 6, {'lr': 0.5, 'seed': 1})
    >>> try:
    ...     read_spec({"sweep": {"quantities": ["lyapunov"]}, "model": {"kind": "two_point"},
    ...                "grid": {"lr": [0.5, -1]}})
    ... except SpecError as exc:
    ...     print(exc)
    grid.lr: expected a non-empty list of real numbers > 0, got [0.5, -1]
    """
    if isinstance(source, SweepSpec):
        return source
    if isinstance(source, Mapping):
        doc, path, default_name = source, None, "sweep"
    elif isinstance(source, (str, os.PathLike)):
        path = os.fsdecode(os.fspath(source))
        doc = _load(path)
        default_name = os.path.splitext(os.path.basename(path))[0] or "sweep"
    else:
        raise TypeError(f"spec: expected a path to a TOML file, a dict of its tables or a SweepSpec, "
                        f"got {type(source).__name__}")
    registry = {name: get_quantity(name, QUANTITIES if registry is None else registry)
                for name in (QUANTITIES if registry is None else registry)}
    for key in doc:
        if key not in _TABLES:
            raise SpecError(f"{key}: unknown table; expected [sweep], [model], [grid] and [options]")
    name, seed, quantities = _sweep_table(doc, default_name, registry)
    kind, fixed = _model_table(doc)
    for q in quantities:
        kinds = registry[q].kinds
        if kinds is not None and kind not in kinds:
            raise SpecError(f"sweep.quantities: {q!r} does not apply to kind {kind!r} (it applies to "
                            f"{', '.join(kinds)})")
    grid = _grid_table(doc, kind, fixed)
    _check_data_parameters(kind, fixed, grid)
    if "order" in grid and not any(registry[q].uses_order for q in quantities):
        users = ", ".join(n for n, q in registry.items() if q.uses_order) or "none"
        raise SpecError(f"grid.order: no requested quantity depends on the composition order (those that do: "
                        f"{users})")
    options = _options_table(doc, quantities, registry)
    n_cells = math.prod(len(v) for v in grid.values())
    if n_cells > MAX_CELLS:
        raise SpecError(f"grid: expected at most {MAX_CELLS} cells, got {n_cells}")
    spec = SweepSpec(name, seed, quantities, kind, fixed, grid, options, path)
    cells = spec.cells  # every cell's parameters checked (batch sizes against rows, ...) before any work
    if any(p.grid is False for p in kind_parameters(kind).values()):
        try:  # explicit arrays: the model's own checks, named as spec keys
            build_model(kind, cells[0].params)
        except (ValueError, TypeError) as exc:
            raise SpecError(f"model.{exc}") from None
    return spec
