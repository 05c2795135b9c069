"""``sweep(spec, client=None)``: run every cell of a spec, locally or on a Dask cluster, and keep the results."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping

from ..core._io import hold_folder
from ..core._validation import check_positive_int, describe
from ._execute import default_workers, run_dask, run_here, run_local
from ._storage import SweepFolder
from .quantities import QUANTITIES, get_quantity
from .records import SweepResult
from .spec import read_spec

__all__ = ["sweep"]

# Seconds between two rebuilds of results.jsonl and summary.csv while cells arrive.
_TABLE_EVERY = 2.0
_CONNECT_TIMEOUT = "10s"


def _connect(address: str):
    try:
        from distributed import Client
    except ImportError:
        raise ImportError('client: running on a Dask cluster needs dask.distributed (the optional extra "sweeps"): '
                          'pip install "contraction[sweeps]"') from None
    try:
        return Client(address, timeout=_CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ValueError(f"client: cannot connect to a Dask scheduler at {address!r} "
                         f"({' '.join(str(exc).split())})") from None


def _progress(progress):
    if progress is None:
        return lambda done, total: None
    if not callable(progress):
        raise TypeError(f"progress: expected None or a callable progress(done, total), got {describe(progress)}")
    return progress


def sweep(spec, client=None, *, out_dir=None, workers=None, progress=None, registry=None) -> SweepResult:
    r"""Run every cell of a sweep spec: in local worker processes by default, on a Dask cluster with ``client``.

    Each cell computes the spec's quantities for one point of its grid, with
    randomness spawned from the spec's seed and the cell's coordinates: the
    results are the same bit for bit whatever runs them, in whatever order,
    on however many workers (each worker runs BLAS on one thread).

    With ``out_dir``, each finished cell is written at once, atomically, to
    ``out_dir/cells/<key>.json`` (``key`` hashes the cell's configuration),
    and ``results.jsonl`` (one line per cell), ``summary.csv`` and
    ``sweep.json`` are rebuilt from them every few seconds and at the end.
    A rerun reuses the finished cells and runs the others (failed cells
    included); a sweep killed at any moment leaves only whole files. One run
    holds ``out_dir`` at a time.

    A cell that fails (a quantity raises) is recorded with its error, one
    line, and the sweep goes on; so does a cell whose worker died, on a Dask
    cluster after it was retried elsewhere.

    Parameters
    ----------
    spec : str, os.PathLike, Mapping or SweepSpec
        A TOML file (see :mod:`contraction.sweeps.spec`), its tables as a dict, or a checked spec.
    client : distributed.Client or str, optional
        A Dask client, or the address of a scheduler (``"tcp://host:8786"``)
        to connect to; ``None`` runs locally.
    out_dir : str or os.PathLike, optional
        Where results go (created if missing); nothing is written when ``None``.
    workers : int, optional
        Local worker processes (default: the usable cores, at most 4); 1
        runs the cells in this process. Not with ``client``.
    progress : callable, optional
        Called as ``progress(done, total)`` as cells finish (reused cells count as done).
    registry : Mapping, optional
        The quantities known by name (:data:`~contraction.sweeps.QUANTITIES` by default).

    Returns
    -------
    SweepResult
        Every cell's result in the grid's order, how many ran, were reused
        and failed, and where they ran.

    Raises
    ------
    SpecError
        For a spec that cannot run (one line naming the spec key; a ``ValueError``).
    ValueError
        Naming ``out_dir`` when another run holds it, or ``client`` when no scheduler answers.

    Examples
    --------
    >>> import numpy as np
    >>> import contraction as ct
    >>> spec = {"sweep": {"name": "two-point", "seed": 1, "quantities": ["lyapunov", "stationary_variance"]},
    ...         "model": {"kind": "two_point"}, "grid": {"lr": [0.5, 1.5], "seed": [0, 1]}}
    >>> result = ct.sweep(spec, workers=1)
    >>> result.spec.n_cells, result.ran, result.reused, result.failed
    (4, 4, 0, ())
    >>> variance = result.values("stationary_variance")          # shape (lr, seed)
    >>> bool(np.allclose(variance[:, 0], [0.5 / 1.5, 1.5 / 0.5]))  # h / (2 - h)
    True
    """
    start = time.perf_counter()
    if registry is None:
        registry = QUANTITIES
    elif not isinstance(registry, Mapping):
        raise TypeError(f"registry: expected None or a mapping of quantity names to functions, "
                        f"got {describe(registry)}")
    spec = read_spec(spec, registry)
    report = _progress(progress)
    if client is not None and workers is not None:
        raise ValueError("workers: applies to a local run; with a Dask client the cluster's workers run the cells")
    workers = default_workers() if workers is None else check_positive_int(workers, "workers")
    if out_dir is not None:
        if not isinstance(out_dir, (str, os.PathLike)) or not os.fspath(out_dir):
            raise TypeError(f"out_dir: expected None or a folder (str or os.PathLike), got {describe(out_dir)}")
        out_dir = os.fsdecode(os.fspath(out_dir))
    own_client = isinstance(client, str)
    if own_client:
        client = _connect(client)
    elif client is not None and not callable(getattr(client, "submit", None)):
        raise TypeError(f"client: expected a distributed.Client, a scheduler address or None, got {describe(client)}")
    try:
        with hold_folder(out_dir, "out_dir") if out_dir is not None else contextlib.nullcontext():
            return _run(spec, client, out_dir, workers, report, registry, start)
    finally:
        if own_client:
            client.close()


def _run(spec, client, out_dir, workers, report, registry, start) -> SweepResult:
    quantities = {name: get_quantity(name, registry) for name in spec.quantities}
    folder = SweepFolder(out_dir) if out_dir is not None else None
    results = {}
    for cell in spec.cells:
        found = folder.load(cell) if folder is not None else None
        if found is not None and found.ok:
            results[cell.key] = found
    reused = len(results)
    todo = [cell for cell in spec.cells if cell.key not in results]
    total = spec.n_cells
    report(reused, total)
    last = [time.monotonic()]

    def on_result(result):
        results[result.key] = result
        if folder is not None:
            folder.save(result)
            if time.monotonic() - last[0] >= _TABLE_EVERY:
                folder.write_tables(spec, results)
                last[0] = time.monotonic()
        report(len(results), total)

    executor = "nothing to run"
    try:
        if client is not None:
            executor = run_dask(client, todo, quantities, on_result) if todo else executor
        elif workers == 1 or len(todo) <= 1:
            executor = run_here(todo, quantities, on_result) if todo else executor
        else:
            executor = run_local(todo, quantities, workers, on_result)
    finally:  # also when interrupted: the tables show what is done
        if folder is not None:
            folder.write_tables(spec, results)
    cells = tuple(results[cell.key] for cell in spec.cells)
    failed = tuple(r.key for r in cells if not r.ok)
    seconds = time.perf_counter() - start
    if folder is not None:
        folder.write_manifest(spec, {"cells": total, "ran": len(todo), "reused": reused, "failed": len(failed),
                                     "executor": executor, "seconds": round(seconds, 3)})
    return SweepResult(spec, cells, len(todo), reused, failed, out_dir, executor, seconds)
