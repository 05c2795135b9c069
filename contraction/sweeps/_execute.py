"""Running cells: in this process, in local worker processes, or on a Dask distributed cluster.

Every cell runs through :func:`run_cell`, wherever it runs: one cell at a
time in a process, BLAS on one thread (a product's summation order then
never depends on the machine's threads), warnings recorded in the result
rather than printed, any error of a quantity caught and recorded as one line. The result depends only on
the cell: the same bit for bit in this process, in a worker process or on a
Dask worker.

The executors hand each result to ``on_result`` in the calling thread as
it arrives (the caller writes it); a cell whose worker died is handed back
as failed, with the reason.
"""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.process
import contextlib
import multiprocessing
import os
import signal
import threading
import uuid
import warnings

from threadpoolctl import threadpool_limits

from .quantities import CellContext
from .records import CellResult, json_values
from .spec import Cell

__all__ = ["default_workers", "run_cell", "run_dask", "run_here", "run_local"]

# Warnings about the libraries' own future, not about the cell's numbers.
_NOT_RECORDED = (DeprecationWarning, PendingDeprecationWarning, ResourceWarning)
_BLAS_GUARD = threading.Lock()
_BLAS_STATE = {"depth": 0, "limiter": None}
# One cell at a time in a process: the warnings a cell records are its own even where a Dask worker runs
# several threads (the numerical work, BLAS on one thread, gains little from them).
_ONE_CELL = threading.Lock()


def default_workers() -> int:
    """The default number of local worker processes: the cores this process may use, at most 4."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - platforms without affinity
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))


@contextlib.contextmanager
def _one_blas_thread():
    """BLAS on one thread while any cell of this process runs (threads of one Dask worker share the setting)."""
    with _BLAS_GUARD:
        if _BLAS_STATE["depth"] == 0:
            _BLAS_STATE["limiter"] = threadpool_limits(limits=1, user_api="blas")
        _BLAS_STATE["depth"] += 1
    try:
        yield
    finally:
        with _BLAS_GUARD:
            _BLAS_STATE["depth"] -= 1
            if _BLAS_STATE["depth"] == 0:
                _BLAS_STATE["limiter"].restore_original_limits()
                _BLAS_STATE["limiter"] = None


def one_line(exc: BaseException) -> str:
    """An exception as one line; its type is named unless it is a plain mistake or a stated failure."""
    text = " ".join(str(exc).split()) or "(no message)"
    if isinstance(exc, (ValueError, TypeError, ArithmeticError)):
        return text
    return f"{type(exc).__name__}: {text}"


def run_cell(cell: Cell, quantities: dict) -> CellResult:
    """Compute every quantity of ``cell``; an error stops the cell and is recorded, never raised.

    Parameters
    ----------
    cell : Cell
        The cell.
    quantities : dict
        Name -> :class:`~contraction.sweeps.quantities.Quantity`, for the cell's quantities.

    Returns
    -------
    CellResult
        ``ok`` with the values, or ``failed`` with the values computed before the error and the error.
    """
    context = CellContext(cell.key, cell.kind, cell.params, cell.coordinates)
    values, error = {}, None
    with _ONE_CELL, _one_blas_thread(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for category in _NOT_RECORDED:
            warnings.simplefilter("ignore", category)
        for name in cell.quantities:
            try:
                out = quantities[name].function(context.with_options(cell.options[name]), cell.rng(name))
                values.update(json_values(out))
            except Exception as exc:  # noqa: BLE001 - a cell's failure is a result, recorded with its reason
                error = f"{name}: {one_line(exc)}"
                break
    seen = dict.fromkeys(f"{w.category.__name__}: {' '.join(str(w.message).split())}" for w in caught)
    return CellResult.of(cell, values, error, tuple(seen))


def run_here(cells, quantities: dict, on_result) -> str:
    """Run the cells one after the other in this process; returns where they ran."""
    for cell in cells:
        on_result(run_cell(cell, quantities))
    return "this process"


def _start_method():
    """Forkserver, with this module preloaded (workers start without importing the package again); else spawn."""
    if "forkserver" not in multiprocessing.get_all_start_methods():  # pragma: no cover - Windows
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    server = getattr(getattr(multiprocessing, "forkserver", None), "_forkserver", None)
    preload = list(getattr(server, "_preload_modules", None) or ["__main__"])  # keep what is preloaded already
    if __name__ not in preload:
        context.set_forkserver_preload([*preload, __name__])
    return context


def _init_worker():
    """A local worker: Ctrl-C is the parent's to handle; BLAS on one thread."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threadpool_limits(limits=1, user_api="blas")


def _stop(executor) -> None:
    """Cancel the queued cells and end the worker processes now (an interrupted sweep)."""
    if hasattr(executor, "terminate_workers"):  # Python >= 3.14
        executor.terminate_workers()
        return
    processes = list((getattr(executor, "_processes", None) or {}).values())  # shutdown forgets them
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        with contextlib.suppress(OSError, AttributeError):
            process.terminate()


def _lost(cell: Cell, where: str, exc: BaseException) -> CellResult:
    return CellResult.of(cell, {}, f"{where} could not run this cell ({one_line(exc)}); rerun to retry")


_BROKEN = ("a local worker process died before this cell was done (killed, out of memory, or a script that "
           "calls sweep without `if __name__ == \"__main__\":`); rerun to retry, or run with one worker")


def run_local(cells, quantities: dict, workers: int, on_result) -> str:
    """Run the cells in ``workers`` local processes (forkserver, or spawn where there is none)."""
    n = max(1, min(workers, len(cells)))
    executor = concurrent.futures.ProcessPoolExecutor(max_workers=n, mp_context=_start_method(),
                                                      initializer=_init_worker)
    try:
        futures = {executor.submit(run_cell, cell, quantities): cell for cell in cells}
        for future in concurrent.futures.as_completed(futures):
            try:
                result = future.result()
            except concurrent.futures.process.BrokenProcessPool:
                result = CellResult.of(futures[future], {}, _BROKEN)
            except Exception as exc:  # noqa: BLE001 - a cell that cannot be sent or received: recorded
                result = _lost(futures[future], "the local worker process", exc)
            on_result(result)
    except BaseException:
        _stop(executor)
        raise
    finally:
        executor.shutdown(wait=True)
    return f"{workers} local worker process{'es' if workers > 1 else ''}"


def run_dask(client, cells, quantities: dict, on_result) -> str:
    """Run the cells on the Dask cluster of ``client``; a cell whose worker dies is run again elsewhere."""
    from distributed import as_completed

    token = uuid.uuid4().hex[:8]
    futures = {client.submit(run_cell, cell, quantities, key=f"contraction-cell-{cell.key}-{token}", pure=False): cell
               for cell in cells}
    try:
        for future in as_completed(list(futures), loop=client.loop):
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 - a cell the cluster gave up on (KilledWorker, ...): recorded
                result = _lost(futures[future], "the Dask cluster", exc)
            future.release()
            on_result(result)
    except BaseException:
        client.cancel(list(futures))
        raise
    return f"Dask cluster at {client.scheduler.address}"
