"""Iteration benchmarks: ratios measured in one process (machines are noisy).

1. Backward closed form (blocked prefix scan) vs naive recomputation of
   T_{ξ1}∘…∘T_{ξn}(θ0) for every n (n(n+1)/2 map applications), d = 8,
   N = 400, one chain. Target: >= 100x.
2. Forward throughput on 8192 chains, d = 32, N = 200 steps, m = 2, 8, 32
   batches, as a fraction of this machine's matmul rate on the same arithmetic
   (one (C, d) x (d, d) product per step, written into a preallocated buffer,
   BLAS with its default threads). Target: >= 0.5.

Run: python benchmarks/bench_iterates.py
"""


import numpy as np
from _timing import best_of

import contraction as ct


def random_maps(m, d, seed=0, norm=0.9):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(m, d, d))
    A *= norm / np.linalg.norm(A, 2, axis=(1, 2))[:, None, None]
    return ct.AffineMaps(A, rng.normal(size=(m, d)))


def bench_backward(d=8, n=400, m=4):
    maps = random_maps(m, d)
    idx = ct.sample_batches(m, n, rng=1)
    theta0 = np.ones(d)
    A, b = maps.A, maps.b
    seq = idx[0]

    def naive():
        out = np.empty((n + 1, d))
        for k in range(n + 1):
            x = theta0
            for i in seq[:k][::-1]:
                x = A[i] @ x + b[i]
            out[k] = x
        return out

    closed = lambda: ct.backward_iterates(maps, theta0, idx)
    assert np.allclose(naive(), closed()[0], atol=1e-10)
    t_naive = best_of(naive, 2)
    t_closed = best_of(closed, 20)
    print(f"backward d={d} N={n} 1 chain: naive {t_naive * 1e3:.1f} ms, closed form "
          f"{t_closed * 1e3:.3f} ms, speed-up {t_naive / t_closed:.0f}x (target >= 100x)")
    return t_naive / t_closed


def bench_forward(chains=8192, d=32, n=200, m=8):
    maps = random_maps(m, d)
    idx = ct.sample_batches(m, n, n_chains=chains, rng=2)
    rng = np.random.default_rng(3)
    theta0 = rng.normal(size=(chains, d))
    M = np.ascontiguousarray(maps.A[0].T)
    buf = [theta0.copy(), np.empty_like(theta0)]

    def baseline():  # same arithmetic: one (C, d) x (d, d) product per step
        x, y = buf
        for _ in range(n):
            np.matmul(x, M, out=y)
            x, y = y, x

    ours = lambda: ct.forward_iterates(maps, theta0, idx, save_steps=[n])
    t_base = best_of(baseline)
    t_ours = best_of(ours)
    flops = 2.0 * chains * d * d * n
    print(f"forward {chains} chains d={d} m={m} N={n}: matmul {flops / t_base / 1e9:.1f} GFLOP/s, "
          f"forward_iterates {flops / t_ours / 1e9:.1f} GFLOP/s, fraction {t_base / t_ours:.2f} "
          f"(target >= 0.5)")
    return t_base / t_ours


if __name__ == "__main__":
    bench_backward()
    for m in (2, 8, 32):
        bench_forward(m=m)
    # Backward on many chains (sequential grouped prefix product) for reference.
    maps = random_maps(8, 32)
    idx = ct.sample_batches(8, 50, n_chains=8192, rng=4)
    t = best_of(lambda: ct.backward_iterates(maps, np.zeros(32), idx, save_steps=[50]), 3)
    print(f"backward 8192 chains d=32 N=50 (last step only): {t * 1e3:.0f} ms")
