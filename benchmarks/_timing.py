"""Shared timing helper of the benchmark scripts."""

import time


def best_of(fn, repeat=5):
    """Smallest wall time of ``repeat`` calls of ``fn`` (seconds)."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)
