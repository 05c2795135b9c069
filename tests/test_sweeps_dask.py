"""Sweeps on a Dask distributed cluster started inside the test: the same cells as locally; a worker's death survived.

The cluster (two worker processes, one thread each, on loopback, no
dashboard) is started by a context manager and stops by itself at the end.
"""

import json
import os
import pathlib
import signal
import sys
import time

import pytest

import contraction as ct
from contraction.sweeps import QUANTITIES, Quantity

distributed = pytest.importorskip(
    "distributed", reason='the Dask tests need dask.distributed (the optional extra "sweeps": '
                          'pip install -e ".[sweeps]"; the "test" extra installs it)')
cloudpickle = pytest.importorskip("cloudpickle", reason="dask.distributed sends functions with cloudpickle")

SMALL = {
    "sweep": {"name": "small", "seed": 3, "quantities": ["lyapunov", "step_norm", "stationary_variance"]},
    "model": {"kind": "least_squares", "data": "synthetic", "n_rows": 64, "n_features": 4},
    "grid": {"lr": [0.01, 0.05, 0.2], "batch_size": [1, 4], "seed": [0, 1]},
    "options": {"lyapunov": {"n_steps": 200, "n_chains": 8}, "step_norm": {"steps": 50}},
}


def cell_files(folder):
    return {p.name: p.read_bytes() for p in sorted(pathlib.Path(folder, "cells").glob("*.json"))}


@pytest.fixture(scope="module")
def client():
    """A client (not the default one) of a LocalCluster of two worker processes on 127.0.0.1, stopped at the end."""
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster, set_as_default=False) as c:
        yield c


def test_a_dask_cluster_and_the_local_default_write_the_same_cells(client, tmp_path):
    address = client.scheduler.address  # as --scheduler does: a client of its own, made from the address
    on_dask = ct.sweep(SMALL, client=address, out_dir=tmp_path / "dask")
    local = ct.sweep(SMALL, out_dir=tmp_path / "local")
    assert on_dask.executor == f"Dask cluster at {address}" and address.startswith("tcp://127.0.0.1:")
    assert local.executor.endswith("local worker processes") or local.executor == "this process"
    assert on_dask.ok and local.ok and on_dask.ran == local.ran == 12
    files = cell_files(tmp_path / "dask")
    assert len(files) == 12 and files == cell_files(tmp_path / "local")
    assert (tmp_path / "dask" / "results.jsonl").read_bytes() == (tmp_path / "local" / "results.jsonl").read_bytes()
    again = ct.sweep(SMALL, client=client, out_dir=tmp_path / "dask")  # a rerun on the cluster reuses every cell
    assert (again.ran, again.reused) == (0, 12)


def _nap(cell, rng):
    """A test-only quantity: a cell that takes a little time, so that a worker dies in the middle of the sweep."""
    time.sleep(0.25)
    return {"nap": cell.lr, "worker": 0}


def test_a_sweep_survives_the_death_of_a_worker(client, tmp_path, monkeypatch):
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module
    monkeypatch.setitem(QUANTITIES, "nap", Quantity(_nap))
    spec = {"sweep": {"quantities": ["nap"]}, "model": {"kind": "two_point"},
            "grid": {"lr": [0.1 * k for k in range(1, 9)], "seed": [0, 1]}}
    killed = []

    def progress(done, total):
        if done >= 2 and not killed:  # a few cells done, the others queued or running on both workers
            pid = sorted(client.run(os.getpid).values())[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    try:
        res = ct.sweep(spec, client=client, out_dir=tmp_path, progress=progress)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert killed and res.ok and res.ran == 16
    lines = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    keys = [line["key"] for line in lines]
    assert len(keys) == 16 and len(set(keys)) == 16 and {line["status"] for line in lines} == {"ok"}
    assert sorted(line["values"]["nap"] for line in lines) == sorted(0.1 * k for k in range(1, 9) for _ in (0, 1))
    assert len(cell_files(tmp_path)) == 16
    deadline = time.monotonic() + 60  # the nanny starts a new worker in place of the killed one
    while len(client.scheduler_info()["workers"]) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.1)
