"""Parameter sweeps: grids of cells over learning rate, batch size, data, seed and composition order.

:func:`sweep` runs a spec (a small TOML file, :mod:`~contraction.sweeps.spec`)
in local worker processes by default, or on a Dask distributed cluster
(``client=``; the optional extra ``sweeps``). Each cell computes the spec's
quantities (:data:`QUANTITIES`, extensible) with randomness spawned from the
spec's seed and the cell's coordinates, so results are the same bit for bit
wherever and in whatever order cells run. Finished cells are written at once,
atomically, under a hash of their configuration; a rerun reuses them.

Modules, one job each:

* :mod:`~contraction.sweeps.spec`: reading and checking a spec, cells, keys and seeds;
* :mod:`~contraction.sweeps.quantities`: the quantity registry and the built-in quantities;
* ``_models``: the model kinds, their parameters, models built once per process;
* :mod:`~contraction.sweeps.records`: the results, per cell and per sweep;
* ``_execute``: running cells here, in worker processes or on Dask;
* ``_storage``: the output folder;
* :mod:`~contraction.sweeps.runner`: :func:`sweep`.
"""

from ._models import AFFINE_KINDS, LEAST_SQUARES_DATA, MODEL_KINDS, NETWORK_KINDS, SpecError
from .quantities import NONE_EXISTS, QUANTITIES, CellContext, Option, Quantity
from .records import CellResult, SweepResult
from .runner import sweep
from .spec import ORDERS, Cell, SweepSpec, read_spec

__all__ = [
    "AFFINE_KINDS",
    "LEAST_SQUARES_DATA",
    "MODEL_KINDS",
    "NETWORK_KINDS",
    "NONE_EXISTS",
    "ORDERS",
    "QUANTITIES",
    "Cell",
    "CellContext",
    "CellResult",
    "Option",
    "Quantity",
    "SpecError",
    "SweepResult",
    "SweepSpec",
    "read_spec",
    "sweep",
]
