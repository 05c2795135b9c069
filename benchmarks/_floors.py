"""Timing, the machine's write-only floor, and a description of the machine.

The floor of a computation is the larger of two times measured in the same
run: writing its output bytes (filling a freshly allocated array of the
output's size, page faults included, as any function returning a new array
must) and doing its flops at this machine's GEMM rate (one large
``np.matmul`` with BLAS's default threads). No code that returns the same
array from the same arithmetic can beat it.

Flop counts (multiply and add counted apart) per chain and step:

* forward ``θ ↦ A θ + b``: ``2 d²``;
* backward all n, ``P_n = P_{n−1} A_{ξ_n}`` and ``q_n = q_{n−1} + P_{n−1} b_{ξ_n}``,
  ``θ̃_n = P_n θ_0 + q_n``: ``2 d³ + 4 d²``.
"""

from __future__ import annotations

import os
import platform
import time

import numpy as np

GEMM_SIZE = 1024


def best_of(fn, repeat=3):
    """Smallest wall time of ``repeat`` calls of ``fn`` (seconds)."""
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def interleaved_best(fns, repeat=3):
    """Smallest wall time of each of ``fns`` over ``repeat`` rounds, the calls interleaved (noisy, shared CPUs)."""
    best = [np.inf] * len(fns)
    for _ in range(repeat):
        for k, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t)
    return best


def forward_flops(chains, steps, d):
    """Flops of ``steps`` forward affine steps on ``chains`` chains in dimension ``d``."""
    return 2.0 * chains * steps * d * d


def backward_flops(chains, steps, d):
    """Flops of the all-n backward prefix products (see the module docstring)."""
    return chains * steps * (2.0 * d**3 + 4.0 * d * d)


class Floors:
    """The machine's rates, measured once per run (GEMM) or per output size (writes)."""

    def __init__(self, repeat=3):
        self.repeat = repeat
        rng = np.random.default_rng(0)
        a = rng.standard_normal((GEMM_SIZE, GEMM_SIZE))
        c = rng.standard_normal((GEMM_SIZE, GEMM_SIZE))
        out = np.empty_like(a)
        self._gemm = lambda: np.matmul(a, c, out=out)
        self.gemm_rate = 0.0  # flop/s, the best seen
        self._write = {}
        self.refresh()

    def refresh(self):
        """Measure the GEMM rate and every write time again, keeping the best (call at the end of a run)."""
        t = best_of(self._gemm, max(self.repeat, 3))
        self.gemm_rate = max(self.gemm_rate, 2.0 * GEMM_SIZE**3 / t)
        for n in self._write:
            self._write[n] = min(self._write[n], best_of(lambda n=n: np.empty(n).fill(1.0), self.repeat))

    def bound(self, nbytes, flops):
        """Which time makes the floor: ``"write time"`` or ``"GEMM-rate time"``."""
        return "write time" if self.write_time(nbytes) >= flops / self.gemm_rate else "GEMM-rate time"

    def write_time(self, nbytes):
        """Best time to allocate and fill an array of ``nbytes`` bytes (seconds)."""
        n = max(int(nbytes) // 8, 1)
        if n not in self._write:
            self._write[n] = best_of(lambda: np.empty(n).fill(1.0), self.repeat)
        return self._write[n]

    def write_rate(self, nbytes):
        """Bytes per second of :meth:`write_time` at this size."""
        return 8 * max(int(nbytes) // 8, 1) / self.write_time(nbytes)

    def floor(self, nbytes, flops):
        """``max(write time of the output, flops at the GEMM rate)`` in seconds."""
        return max(self.write_time(nbytes), flops / self.gemm_rate)


def load_average():
    """The 1, 5 and 15 minute load averages as text."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine():
    """Lines describing this machine: cores, CPU, numpy and its BLAS, JAX."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if names:
            model = names[0]
    except OSError:
        pass
    lines = [f"cores: {os.cpu_count()} (nproc), CPU: {model}", f"numpy {np.__version__}"]
    try:
        from threadpoolctl import threadpool_info

        for info in threadpool_info():
            lines.append(f"  {info.get('internal_api')} {info.get('version')} ({info.get('architecture')}, "
                         f"{info.get('num_threads')} threads) in {os.path.basename(info.get('filepath', ''))}")
    except ImportError:
        lines.append("  (threadpoolctl missing: BLAS unknown)")
    try:
        import jax

        lines.append(f"jax {jax.__version__} (CPU, float64)")
    except ImportError:
        lines.append("jax: not installed")
    return lines
