"""The issue's iteration cases, timed here and, with ``--against PATH``, in another checkout.

Runs each case in a fresh process per checkout (started in the checkout,
with ``PYTHONPATH`` set to it, so its ``contraction`` is imported), the two checkouts interleaved,
and prints the best wall time of each with the ratio. Use it to compare the
engines with an earlier revision:

    git worktree add /tmp/old <revision>
    python benchmarks/compare_revision.py --against /tmp/old
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CASE = r"""
import json, sys, time
import numpy as np
import contraction as ct

def maps_for(m, d, seed=0):
    if d == 1:
        return ct.AffineMaps([[[0.5]], [[0.5]]], [[0.5], [-0.5]])
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(m, d, d))
    A *= 0.9 / np.linalg.norm(A, 2, axis=(1, 2))[:, None, None]
    return ct.AffineMaps(A, rng.normal(size=(m, d)))

order, m, d, chains, n = sys.argv[1], *map(int, sys.argv[2:6])
maps = maps_for(m, d)
idx = ct.sample_batches(maps.n_maps, n, n_chains=chains, rng=1)
fn = ct.forward_iterates if order == "forward" else ct.backward_iterates
best = float("inf")
for _ in range(int(sys.argv[6])):
    t = time.perf_counter()
    fn(maps, np.zeros(d), idx)
    best = min(best, time.perf_counter() - t)
print(json.dumps([best, ct.__file__]))
"""

CASES = [  # order, m, d, chains, N (every step saved)
    ("forward", 2, 1, 100_000, 200), ("backward", 2, 1, 100_000, 200),
    ("forward", 2, 1, 10_000, 2_000), ("backward", 2, 1, 10_000, 2_000),
    ("forward", 4, 8, 4_096, 400), ("backward", 4, 8, 1, 4_000),
    ("forward", 8, 32, 8_192, 100), ("forward", 16, 64, 1_024, 100), ("backward", 4, 8, 256, 400),
]


def run(checkout, case, repeat):
    env = dict(os.environ, PYTHONPATH=str(checkout))
    args = [sys.executable, "-c", CASE, case[0], *map(str, case[1:]), str(repeat)]
    done = subprocess.run(args, env=env, cwd=checkout, capture_output=True, text=True, check=True)  # cwd: first on path
    best, where = json.loads(done.stdout)
    if not Path(where).resolve().is_relative_to(Path(checkout).resolve()):
        raise RuntimeError(f"imported {where}, not the checkout {checkout}")
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", type=Path, help="another checkout of the repository")
    parser.add_argument("--repeat", type=int, default=3, help="calls per process (best kept)")
    args = parser.parse_args()
    here = Path(__file__).resolve().parents[1]
    print("load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    for case in CASES:
        ours = run(here, case, args.repeat)
        order, m, d, chains, n = case
        line = f"{order:8s} m={m:<3d} d={d:<3d} chains={chains:<7,d} N={n:<6,d} {ours * 1e3:9.1f} ms"
        if args.against:
            theirs = run(args.against, case, args.repeat)
            line += f"   other {theirs * 1e3:9.1f} ms   other / this {theirs / ours:6.2f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
