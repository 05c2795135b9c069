"""The results of a sweep: one :class:`CellResult` per cell, and the :class:`SweepResult` of the whole run.

A cell's values are JSON values: finite numbers, booleans, ``None`` and
short strings (``"none exists"``, ``"diverged"``); an infinite number is
recorded as the string ``"inf"`` or ``"-inf"``. A quantity that returns
``nan`` fails its cell: divergence and non-existence are said, never left
as ``nan``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from .spec import FORMAT, Cell, SweepSpec

__all__ = ["CellResult", "SweepResult", "json_values"]


def json_values(values) -> dict:
    """A quantity's ``values`` as JSON values (numpy scalars made plain, infinities as strings).

    ``ValueError`` or ``TypeError``, in words that follow the quantity's
    name, for anything else.
    """
    if not isinstance(values, dict):
        raise TypeError(f"returned {type(values).__name__}, not a dict of values")
    out = {}
    for name, value in values.items():
        if not isinstance(name, str):
            raise TypeError(f"returned a value named {name!r}, not by a string")
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, (bool, str, type(None))):
            out[name] = value
        elif isinstance(value, numbers.Integral):
            out[name] = int(value)
        elif isinstance(value, numbers.Real):
            x = float(value)
            if math.isnan(x):
                raise ValueError(f"returned nan for {name}; return what happened instead (a string such as "
                                 f"'diverged')")
            out[name] = x if math.isfinite(x) else ("inf" if x > 0 else "-inf")
        else:
            raise TypeError(f"returned {type(value).__name__} for {name}, not a number, boolean, string or None")
    return out


@dataclass(frozen=True)
class CellResult:
    """What one cell gave: its values, or the error that stopped it.

    Attributes
    ----------
    key : str
        The cell's configuration hash.
    coordinates : dict
        The cell's value on each grid axis.
    status : str
        ``"ok"`` or ``"failed"``.
    values : dict
        The values of the quantities (those computed before an error, for a failed cell).
    error : str or None
        One line: the quantity that failed and why (``None`` when ``ok``).
    warnings : tuple of str
        The distinct warnings the cell's computation raised (``"Category: message"``).
    config : dict
        The configuration the key hashes: seed, model kind and parameters, coordinates, quantities, options.
    """

    key: str
    coordinates: dict
    status: str
    values: dict
    error: str | None
    warnings: tuple[str, ...]
    config: dict

    @property
    def ok(self) -> bool:
        """Whether every quantity of the cell was computed."""
        return self.status == "ok"

    def to_dict(self) -> dict:
        """The cell's JSON record (``cells/<key>.json`` and a line of ``results.jsonl``)."""
        return {"format": FORMAT, "key": self.key, "coordinates": self.coordinates, "status": self.status,
                "error": self.error, "values": self.values, "warnings": list(self.warnings),
                "config": self.config}

    @classmethod
    def from_dict(cls, record: dict) -> CellResult:
        """The result recorded as ``record`` (``KeyError``/``TypeError`` when it is not one)."""
        return cls(str(record["key"]), dict(record["coordinates"]), str(record["status"]), dict(record["values"]),
                   record["error"], tuple(record["warnings"]), dict(record["config"]))

    @classmethod
    def of(cls, cell: Cell, values: dict, error: str | None, warnings=()) -> CellResult:
        """The result of ``cell``: ``ok`` without ``error``, ``failed`` with it."""
        return cls(cell.key, dict(cell.coordinates), "ok" if error is None else "failed", dict(values), error,
                   tuple(warnings), cell.config())


@dataclass(frozen=True)
class SweepResult:
    """A finished sweep: every cell's result, in the grid's order, and what the run did.

    Attributes
    ----------
    spec : SweepSpec
        The spec that was run.
    cells : tuple of CellResult
        One per cell, in the order of ``spec.cells``.
    ran : int
        Cells computed by this run.
    reused : int
        Cells whose finished result was found in ``out_dir`` and not computed again.
    failed : tuple of str
        Keys of the cells that failed (their errors are in their records).
    out_dir : str or None
        Where the results were written (``None``: nothing written).
    executor : str
        Where the cells ran: ``"this process"``, ``"2 local worker processes"``
        or ``"Dask cluster at <address>"``.
    seconds : float
        Wall time of the run.
    """

    spec: SweepSpec
    cells: tuple[CellResult, ...]
    ran: int
    reused: int
    failed: tuple[str, ...]
    out_dir: str | None
    executor: str
    seconds: float

    @property
    def ok(self) -> bool:
        """Whether no cell failed."""
        return not self.failed

    def values(self, name: str) -> np.ndarray:
        """The value ``name`` over the grid: an array of shape ``spec.shape`` (axes in the grid's order).

        Numbers as they are, ``"inf"``/``"-inf"`` as infinities, booleans as
        0/1; ``nan`` marks a cell without a number there (a failed cell, or a
        value such as ``"none exists"``).
        """
        out = np.full(len(self.cells), np.nan)
        for i, cell in enumerate(self.cells):
            value = cell.values.get(name)
            if isinstance(value, str) and value in ("inf", "-inf"):
                out[i] = float(value)
            elif isinstance(value, numbers.Real):
                out[i] = float(value)
        return out.reshape(self.spec.shape)
