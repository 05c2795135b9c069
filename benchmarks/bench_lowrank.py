"""Least squares at data scale: the low-rank SGD maps (ratios measured in one process).

1. Memory: peak resident memory of a process that builds the n = 60,000,
   d = 784, B = 32 least-squares model (power-law feature spectrum) and its
   SGD maps, and runs 100 forward steps (a fresh process, so the peak is
   its own). Target: < 1 GB. The dense Hessians alone would be 9.2 GB.
2. Forward iterates, d = 784, B = 8, 1,024 chains: chain-steps per second
   (a) against the dense representation of the same maps (m = 32 batches,
   where the (m, d, d) matrices fit; a dense step costs the same whatever
   m), target >= 10x; (b) against the equivalent GEMMs in the same run (one
   (C, d) x (d, B) and one (C, B) x (B, d) product and the update per step,
   preallocated buffers, BLAS with its default threads), target >= 0.5;
   also for m = 7,500 batches (n = 60,000 rows), where every chain reads
   its own batch's rows.
3. Backward iterates, all n, d = 784, B = 8, N = 500, one chain, against
   the dense closed form (the prefix scan of (d+1) x (d+1) products, timed on
   a few steps: its cost per step does not depend on the step). Target: >= 10x.

Run: python benchmarks/bench_lowrank.py
"""

import os
import subprocess
import sys

import numpy as np
from _floors import interleaved_best

import contraction as ct
from contraction.core._engines import affine_backward as _affine_backward
from contraction.core._kernels import single_thread_blas

MEMORY = r"""
import resource
import numpy as np
import contraction as ct
n, d, B = 60_000, 784, 32
rng = np.random.default_rng(0)
X = rng.standard_normal((n, d))
X *= np.arange(1, d + 1) ** -0.5  # power-law spectrum, in place
y = X @ rng.standard_normal(d) + 0.1 * rng.standard_normal(n)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
model = ct.LinearRegressionModel(X, y, batch_size=B)
maps = model.sgd_maps(0.5)
c = ct.contraction_constant(maps)
x = ct.forward_iterates(maps, np.zeros(d), ct.sample_batches(maps.n_maps, 100, rng=1), save_steps=[100])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(type(maps).__name__, maps.n_maps, maps.rank, before, peak, c)
"""


def bench_memory():
    out = subprocess.run([sys.executable, "-c", MEMORY], capture_output=True, text=True, check=True).stdout.split()
    kind, m, r, before, peak = out[0], int(out[1]), int(out[2]), int(out[3]) / 2**10, int(out[4]) / 2**10
    data = 60_000 * 784 * 8 / 2**20
    print(f"memory n=60000 d=784 B=32: {kind} with {m} maps of rank {r}; peak RSS {peak:.0f} MiB "
          f"(data X alone {data:.0f} MiB, peak before the model {before:.0f} MiB; dense Hessians would be "
          f"{m * 784**2 * 8 / 2**30:.1f} GiB) (target < 1 GB = 954 MiB)")
    return peak


def regression_maps(m, d=784, B=8, lr=1e-3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m * B, d))
    X *= np.arange(1, d + 1) ** -0.5
    return ct.LinearRegressionModel(X, rng.standard_normal(m * B), batch_size=B).sgd_maps(lr)


def gemm_run(maps, theta0, n):
    """The same arithmetic as ``n`` steps, as one pair of GEMMs per step (all chains, one batch's factors)."""
    C, d = theta0.shape
    V = np.ascontiguousarray(maps.V[0])  # (d, B)
    Ut = np.ascontiguousarray(maps.U[0].T) * maps.scale[0]  # (B, d)
    b = maps.b[0]
    S, T = np.empty((C, maps.rank)), np.empty((C, d))
    buf = [theta0.copy(), np.empty_like(theta0)]

    def run():
        x, y = buf
        for _ in range(n):
            np.matmul(x, V, out=S)
            np.matmul(S, Ut, out=T)
            np.subtract(x, T, out=y)
            y += b
            x, y = y, x

    return run


def bench_forward(chains=1024, d=784, B=8, n=20, n_dense=2):
    rng = np.random.default_rng(1)
    theta0 = rng.standard_normal((chains, d))
    maps = regression_maps(32, d, B)
    dense = maps.to_dense()
    idx = ct.sample_batches(maps.n_maps, n, chains, rng=2)
    low = ct.forward_iterates(maps, theta0, idx, save_steps=[n_dense])
    assert np.allclose(low, ct.forward_iterates(dense, theta0, idx[:, :n_dense], save_steps=[n_dense]), rtol=1e-10)
    t_ours, t_dense, t_gemm = interleaved_best([
        lambda: ct.forward_iterates(maps, theta0, idx, save_steps=[n]),
        lambda: ct.forward_iterates(dense, theta0, idx[:, :n_dense], save_steps=[n_dense]),
        gemm_run(maps, theta0, n),
    ])
    ours, theirs, gemm = chains * n / t_ours, chains * n_dense / t_dense, chains * n / t_gemm
    print(f"forward {chains} chains d={d} B={B} m=32: low-rank {ours:.3g} chain-steps/s, dense {theirs:.3g}, "
          f"speed-up {ours / theirs:.1f}x (target >= 10x); GEMMs {gemm:.3g}, fraction {ours / gemm:.2f} "
          f"(target >= 0.5)")
    big = regression_maps(7500, d, B)
    idx = ct.sample_batches(big.n_maps, n, chains, rng=3)
    t_big, t_gemm = interleaved_best([lambda: ct.forward_iterates(big, theta0, idx, save_steps=[n]),
                                      gemm_run(big, theta0, n)])
    ours_big = chains * n / t_big
    print(f"forward {chains} chains d={d} B={B} m=7500: low-rank {ours_big:.3g} chain-steps/s, "
          f"speed-up over dense (rate above) {ours_big / theirs:.1f}x, fraction of GEMMs {t_gemm / t_big:.2f}")
    return ours / theirs, ours / gemm


def bench_backward(d=784, B=8, n=500, n_dense=4):
    maps = regression_maps(32, d, B)
    dense = maps.to_dense()
    idx = ct.sample_batches(maps.n_maps, n, rng=4)
    theta0 = np.random.default_rng(5).standard_normal((1, d))

    def closed_form():
        with single_thread_blas():
            return _affine_backward(dense, theta0, idx[:, :n_dense], np.arange(n_dense + 1))

    low = ct.backward_iterates(maps, theta0, idx)
    assert np.allclose(low[:, :n_dense + 1], closed_form(), rtol=1e-10, atol=1e-10 * np.abs(low).max())
    t_ours, t_dense = interleaved_best([lambda: ct.backward_iterates(maps, theta0, idx), closed_form], 2)
    ours, theirs = t_ours / n, t_dense / n_dense
    print(f"backward all n, d={d} B={B} N={n}, one chain: low-rank {ours * 1e3:.2f} ms/step "
          f"({t_ours:.2f} s in all), dense closed form {theirs * 1e3:.0f} ms/step (timed on {n_dense} steps), "
          f"speed-up {theirs / ours:.0f}x (target >= 10x)")
    return theirs / ours


if __name__ == "__main__":
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    bench_memory()
    bench_forward()
    bench_backward()
    print(f"load average {os.getloadavg()[0]:.2f}")
