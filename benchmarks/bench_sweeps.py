"""Sweeps: the 400-cell least-squares sweep of examples/sweeps/least_squares_400.toml, run locally.

1. Wall time of the whole sweep (400 cells: 10 learning rates x 4 batch
   sizes x 10 replicates; Lyapunov exponent, mean-square radius and exact
   stationary variance per cell, results written to a fresh folder) with the
   local default (``workers=None``: the usable cores, at most 4; worker
   processes start within the timing).
2. The same sweep with 1 worker (in this process) and with 2 worker
   processes: the speed-up of 2 over 1. Target: >= 1.7x on 2 idle cores.
   The runs give the same cells, bit for bit (checked). With one worker the
   process that computes also writes the results (an fsync per cell); with
   two, the writing overlaps the computing.
3. The computing alone (nothing written): 1 worker process against 2, both
   with the start of the processes.

The machine's load average is printed before and after: other work on the
cores lowers the speed-up.

Run: python benchmarks/bench_sweeps.py [--repeat K]
"""

import argparse
import os
import pathlib
import tempfile
import time

import contraction as ct
from contraction.sweeps import read_spec
from contraction.sweeps._execute import run_local
from contraction.sweeps.quantities import get_quantity

SPEC = pathlib.Path(__file__).resolve().parent.parent / "examples" / "sweeps" / "least_squares_400.toml"


def timed_sweep(workers):
    """Wall time of one run of the sweep into a fresh folder, and the cells' records."""
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        result = ct.sweep(SPEC, out_dir=out, workers=workers)
        seconds = time.perf_counter() - t
    assert result.ok and result.ran == result.spec.n_cells == 400, (result.ran, result.failed)
    return seconds, [cell.to_dict() for cell in result.cells], result.executor


def timed_processes(workers):
    """Wall time of computing every cell in ``workers`` local processes (started within the timing)."""
    spec = read_spec(SPEC)
    quantities = {name: get_quantity(name) for name in spec.quantities}
    results = []
    t = time.perf_counter()
    run_local(spec.cells, quantities, workers, results.append)
    seconds = time.perf_counter() - t
    assert len(results) == 400 and all(r.ok for r in results)
    return seconds


def main(repeat=1):
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    best = {}
    cells = {}
    for _ in range(repeat):  # interleaved, so that a change of load touches every setting alike
        for workers in (None, 1, 2):
            seconds, records, executor = timed_sweep(workers)
            best[workers] = min(best.get(workers, float("inf")), seconds)
            cells[workers] = records
            print(f"  workers={workers}: {seconds:.1f} s ({executor})", flush=True)
    assert cells[1] == cells[2] == cells[None], "the cells differ between numbers of workers"
    process = {}
    for _ in range(repeat):
        for workers in (1, 2):
            process[workers] = min(process.get(workers, float("inf")), timed_processes(workers))
            print(f"  computing only, {workers} worker process{'es' if workers > 1 else ''}: "
                  f"{process[workers]:.1f} s", flush=True)
    print(f"400-cell least-squares sweep, local default: {best[None]:.1f} s "
          f"({best[None] / 400 * 1e3:.0f} ms per cell)")
    print(f"1 worker {best[1]:.1f} s, 2 workers {best[2]:.1f} s: speed-up {best[1] / best[2]:.2f}x "
          f"(target >= 1.7x); the cells identical bit for bit")
    print(f"computing only: 1 worker process {process[1]:.1f} s, 2 {process[2]:.1f} s: speed-up "
          f"{process[1] / process[2]:.2f}x")
    print(f"load average {os.getloadavg()[0]:.2f}")
    return best[1] / best[2]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs of each setting; the best is kept (default: 1)")
    main(parser.parse_args().repeat)
