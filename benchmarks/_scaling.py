"""Scaling of forward and backward iterates against N, d, chains and the number of batches m.

Each sweep varies one size from a base point (float64 random affine maps of
spectral norm 0.9), times the call (best of ``repeat``), and fits the log-log
slope with ``ct.loglog_slope`` over all points and over the last two (the
large-size end, where fixed costs matter least). Forward keeps the last step only (the
arithmetic, not the output, is measured); backward saves every n (its work is
the all-n prefix products whatever is saved).
"""

from __future__ import annotations

import numpy as np
from _floors import best_of
from bench_iterates import random_maps

import contraction as ct

FORWARD_BASE = {"N": 400, "d": 8, "chains": 4096, "m": 4}
BACKWARD_BASE = {"N": 400, "d": 8, "chains": 256, "m": 4}
D_SWEEP = {"forward": {"N": 50, "chains": 1024}, "backward": {"N": 200, "chains": 16}}  # sizes held during d
EXPECTED = {"N": 1, "chains": 1, "m": 0}
EXPECTED_D = {"forward": 2, "backward": 3}


def grids(quick):
    """The values of each size, per order."""
    if quick:
        return {"forward": {"N": [200, 400, 800], "chains": [1024, 4096, 16384], "d": [32, 64, 128],
                            "m": [2, 8, 32]},
                "backward": {"N": [200, 400, 800], "chains": [64, 256, 1024], "d": [16, 32, 64], "m": [2, 8, 32]}}
    return {"forward": {"N": [200, 400, 800, 1600], "chains": [1024, 2048, 4096, 8192, 16384],
                        "d": [32, 64, 128, 256], "m": [2, 8, 32, 128]},
            "backward": {"N": [200, 400, 800, 1600], "chains": [64, 128, 256, 512, 1024], "d": [16, 32, 64, 128],
                         "m": [2, 8, 32, 128]}}


def _time(order, N, d, chains, m, repeat):
    maps = random_maps(m, d, seed=d + m)
    idx = ct.sample_batches(m, N, n_chains=chains, rng=N + chains)
    theta0 = np.random.default_rng(0).normal(size=d)
    if order == "forward":
        return best_of(lambda: ct.forward_iterates(maps, theta0, idx, save_steps=[N]), repeat)
    return best_of(lambda: ct.backward_iterates(maps, theta0, idx), repeat)


def run(quick=False, repeat=3):
    """Measure every sweep; return the markdown table as text."""
    lines = ["| order | varied (held) | values | times | fitted exponent (all; last two) | expected |",
             "|---|---|---|---|---|---|"]
    for order, sweeps in grids(quick).items():
        base = FORWARD_BASE if order == "forward" else BACKWARD_BASE
        for name, values in sweeps.items():
            held = {**base, **(D_SWEEP[order] if name == "d" else {})}
            times = [_time(order, **{**held, name: v}, repeat=repeat) for v in values]
            x, y = np.array(values, dtype=float), np.array(times)
            slope, last = ct.loglog_slope(x, y), ct.loglog_slope(x[-2:], y[-2:])
            expected = EXPECTED_D[order] if name == "d" else EXPECTED[name]
            where = ", ".join(f"{k} = {x}" for k, x in held.items() if k != name)
            suffix = " (at large d)" if name == "d" else ""
            ms = ", ".join(f"{1e3 * t:.1f}" for t in times)
            lines.append(f"| {order} | {name} ({where}) | {', '.join(map(str, values))} | {ms} ms | "
                         f"{slope:.2f}; {last:.2f} | {expected}{suffix} |")
            print(lines[-1], flush=True)
    return "\n".join(lines)
