"""Every benchmark case in one table: contraction against the write-only floor and JAX on CPU.

Columns: the case; contraction's time (best of k, interleaved with JAX's);
the floor (max of the time to write the output bytes and the time of the
flops at this machine's GEMM rate, both measured in this run, see
_floors.py); contraction / floor; JAX's time (jit, compile excluded,
float64, see jax_yardstick.py; '–' when JAX is not installed or has no
equivalent); JAX / contraction (at least 1: contraction is at least as fast);
the targets and whether each holds. Every case also checks its output (a
few chains against a numpy loop, the whole output against JAX) and shows
WRONG when it differs by more than 1e-10 (relative).

Cases: 1–2 forward and backward all n, E1 (1-D), 100,000 chains, N = 200;
3–4 the same, 1-D with m = 4, 10,000 chains, N = 2,000; 5 forward d = 8;
6 backward all n, d = 8, one chain, N = 4,000 (and against naive
recomputation); 7 forward d = 32 (7b: against the same arithmetic as
plain GEMMs); 8 forward d = 64; 9 backward d = 8, 256 chains; 10a/10b least
squares with low-rank maps (bench_lowrank's setup); 11 the Lyapunov exponent
to 1 % relative standard error; 12 the NN all-n backward pass (bench_nn's
setup) against restarts and a plain numpy training loop; 13 peak memory of a
trajectory saving every 100th step (fresh process).

Run: python benchmarks/run_all.py [--quick] [--out table.md] [--scaling] [--cases 1,2,7b]
"""

from __future__ import annotations

import argparse
import platform
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import jax_yardstick as jy
from _cases_iterates import CASES as ITERATE_CASES
from _cases_iterates import Context
from _cases_more import CASES as MORE_CASES
from _floors import Floors, load_average, machine
from _scaling import run as run_scaling
from _table import Row, markdown

CASES = {**ITERATE_CASES, **MORE_CASES}


def run_cases(ctx, numbers):
    """Run the selected cases in order; a case that raises becomes an ERROR row."""
    rows = []
    for number in numbers:
        t = time.perf_counter()
        try:
            row = CASES[number](ctx)
        except Exception as exc:  # noqa: BLE001 - one broken case must not hide the others
            row = Row(number, f"case {number}", error=f"{type(exc).__name__}: {exc}")
            traceback.print_exc()
        ctx.rows[number] = row
        rows.append(row)
        print(f"  case {number} done in {time.perf_counter() - t:.1f} s", flush=True)
    return rows


def finish(rows, floors):
    """Measure the rates again (best kept), then set every floor and decide the targets that use it."""
    floors.refresh()
    for row in rows:
        if row.work is not None and not row.error:
            row.floor = floors.floor(*row.work)
            row.notes.append(f"floor = {floors.bound(*row.work)}")
        for decide in row.post:
            if not row.error:
                decide(row)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and smaller side cases (about 2 min)")
    parser.add_argument("--out", type=Path, help="also write the table (markdown) to this file")
    parser.add_argument("--scaling", action="store_true", help="also time against N, d, chains and m")
    parser.add_argument("--cases", help="comma-separated case numbers (default all), e.g. 1,2,7b")
    parser.add_argument("--repeat", type=int, help="best of this many timings (default 2 with --quick, else 5)")
    args = parser.parse_args(argv)
    numbers = list(CASES) if not args.cases else [c.strip() for c in args.cases.split(",")]
    unknown = [c for c in numbers if c not in CASES]
    if unknown:
        parser.error(f"--cases: unknown {', '.join(unknown)}; known {', '.join(CASES)}")
    repeat = args.repeat or (2 if args.quick else 5)
    start, load_before = time.perf_counter(), load_average()
    header = [f"date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, python {platform.python_version()}",
              *machine(), f"load average before (1, 5, 15 min): {load_before}"]
    print("\n".join(header), flush=True)
    floors = Floors(repeat=min(repeat, 3))
    floors.write_time(160e6)
    ctx = Context(floors, repeat, args.quick)
    rows = run_cases(ctx, numbers)
    finish(rows, floors)
    header.append(f"GEMM rate ({1024}³ matmul, best at the start and the end): {floors.gemm_rate / 1e9:.1f} "
                  f"GFLOP/s; write rate (fresh 160 MB array): {floors.write_rate(160e6) / 1e9:.2f} GB/s")
    header.append(jy.NOTE)
    table = markdown(rows)
    footer = [f"load average after: {load_average()}; best of {repeat}; "
              f"{'--quick; ' if args.quick else ''}total {time.perf_counter() - start:.0f} s"]
    text = "\n".join([*header, "", table, "", *footer])
    if args.scaling:
        print("scaling:", flush=True)
        text += "\n\nScaling (log-log fit of time against each size):\n\n" + run_scaling(args.quick, 3)
        text += f"\n\nload average after scaling: {load_average()}"
    print("\n" + text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 1 if any(r.wrong or r.error for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
