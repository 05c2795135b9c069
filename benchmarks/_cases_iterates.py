"""Cases 1–9 of run_all.py: affine forward and backward iterates against JAX and the write-only floor.

Each case times ``ct.forward_iterates`` / ``ct.backward_iterates`` (all steps
saved) and the JAX equivalent interleaved, best of ``repeat``, and checks a
few chains against a plain numpy loop (and the whole output against JAX) to
1e-10, so a fast wrong engine shows up as WRONG.
"""

from __future__ import annotations

import jax_yardstick as jy
import numpy as np
from _floors import backward_flops, best_of, forward_flops, interleaved_best
from _table import Row, close, size
from bench_iterates import random_maps
from threadpoolctl import threadpool_limits

import contraction as ct


class Context:
    """What the cases share: the floors, the number of repeats, --quick, and earlier rows."""

    def __init__(self, floors, repeat, quick):
        self.floors, self.repeat, self.quick = floors, repeat, quick
        self.rows = {}
        self._idx = {}

    def batches(self, m, n, chains, seed):
        """``ct.sample_batches(m, n, chains, rng=seed)``, drawn once per run."""
        key = (m, n, chains, seed)
        if key not in self._idx:
            self._idx[key] = ct.sample_batches(m, n, n_chains=chains, rng=seed)
        return self._idx[key]


def reference(A, b, theta0, seq, kind):
    """All iterates of one chain by a plain numpy loop (backward by the O(N) prefix recursion)."""
    d = A.shape[1]
    out = np.empty((len(seq) + 1, d))
    out[0] = theta0
    if kind == "forward":
        x = theta0
        for n, i in enumerate(seq):
            x = A[i] @ x + b[i]
            out[n + 1] = x
    else:
        P, q = np.eye(d), np.zeros(d)
        for n, i in enumerate(seq):
            q = q + P @ b[i]
            P = P @ A[i]
            out[n + 1] = P @ theta0 + q
    return out


def affine_case(ctx, number, label, maps, theta0, idx, kind):
    """Time one affine case against JAX and the floor, and check it."""
    row = Row(number, label)
    call = ct.forward_iterates if kind == "forward" else ct.backward_iterates
    A, b = np.asarray(maps.A), np.asarray(maps.b)
    C, N = idx.shape
    d = A.shape[1]
    ours = call(maps, theta0, idx)
    chains = sorted({0, C // 2, C - 1})
    ref = np.stack([reference(A, b, theta0, idx[c], kind) for c in chains])
    err, ok = close(ours[chains], ref)
    if not ok:
        row.wrong = f"chains {chains} differ from a numpy loop by {err:.1e} (relative)"
    fns = [lambda: call(maps, theta0, idx)]
    if jy.AVAILABLE:
        makers = ({"scan": jy.forward(A, b)} if kind == "forward"
                  else {"associative_scan": jy.backward(A, b), "scan": jy.backward(A, b, "scan")})
        tried = {}
        for name, fn in makers.items():
            run, first = jy.timer(fn, theta0, idx)
            err_j, ok_j = close(ours, first)
            if not ok_j and not row.wrong:
                row.wrong = f"differs from JAX ({name}) by {err_j:.1e} (relative)"
            del first
            tried[name] = (best_of(run, 1), run)
        best = min(tried, key=lambda k: tried[k][0])
        fns.append(tried[best][1])
        if len(tried) > 1:
            row.notes.append("JAX " + ", ".join(f"{k} {1e3 * v[0]:.1f} ms" for k, v in tried.items())
                             + f" (one call); the table uses {best}")
    flops = (forward_flops if kind == "forward" else backward_flops)(C, N, d)
    nbytes = ours.nbytes
    del ours
    times = interleaved_best(fns, ctx.repeat)
    row.time = times[0]
    row.jax = times[1] if len(times) > 1 else None
    row.work = (nbytes, flops)
    row.notes.append(f"output {size(nbytes)}, {flops / 1e9:.2g} GFLOP")
    return row


def small_d_targets(row, forward_row=None):
    """d <= 4: within 3x of the floor; backward no slower than 1.5x forward."""
    r = row.floor_ratio
    row.target("≤ 3× floor", f"{r:.1f}×" if r else "–", None if r is None else r <= 3)
    if forward_row is not None and forward_row.time and row.time:
        q = row.time / forward_row.time
        row.target(f"≤ 1.5× case {forward_row.number}", f"{q:.2f}×", q <= 1.5)


def one_dim_case(ctx, kind, numbers, what, maps, idx, start):
    """A 1-D case (forward or backward all n, numbered ``numbers``) with the small-d targets of its row."""
    number = numbers[kind == "backward"]
    row = affine_case(ctx, number, f"{kind}{' all n' * (kind == 'backward')}, {what}", maps, np.array([start]), idx,
                      kind)
    row.post.append(lambda r: small_d_targets(r, ctx.rows.get(numbers[0]) if kind == "backward" else None))
    return row


def case_e1(ctx, kind):
    maps = ct.two_point_quadratic().sgd_maps(0.5)  # E1 at h = 1/2: θ ↦ θ/2 ± 1/2
    idx = ctx.batches(2, 200, 100_000, seed=1)
    return one_dim_case(ctx, kind, ("1", "2"), "E1 1-D, 100,000 chains, N = 200", maps, idx, 0.0)


def case_1d(ctx, kind):
    maps = random_maps(4, 1, seed=3)
    idx = ctx.batches(4, 2000, 10_000, seed=3)
    return one_dim_case(ctx, kind, ("3", "4"), "1-D, m = 4, 10,000 chains, N = 2,000", maps, idx, 0.3)


def random_case(number, kind, m, d, chains, n, seed):
    """A case on ``random_maps(m, d, seed)`` with every chain started at one random point: ``run(ctx)``."""

    def run(ctx):
        maps = random_maps(m, d, seed=seed)
        idx = ctx.batches(m, n, chains, seed=seed)
        theta0 = np.random.default_rng(seed).normal(size=d)
        label = f"{kind}{' all n' * (kind == 'backward')}, d = {d}, m = {m}, {chains:,} chains, N = {n}"
        return affine_case(ctx, number, label, maps, theta0, idx, kind)

    return run


def naive_backward_time(maps, theta0, seq, stride):
    """Time of recomputing T_{ξ1}∘…∘T_{ξn}(θ0) for every n, from every ``stride``-th n (scaled by map counts)."""
    A, b = maps.A, maps.b
    N = len(seq)
    horizons = np.arange(stride, N + 1, stride)
    out = np.empty((len(horizons), len(theta0)))

    def naive():
        for k, n in enumerate(horizons):
            x = theta0
            for i in seq[:n][::-1]:
                x = A[i] @ x + b[i]
            out[k] = x

    t = best_of(naive, 1)
    return t * (N * (N + 1) / 2) / horizons.sum(), horizons, out


def case_6(ctx):
    maps = random_maps(4, 8, seed=6)
    idx = ctx.batches(4, 4000, 1, seed=6)
    theta0 = np.random.default_rng(6).normal(size=8)
    row = affine_case(ctx, "6", "backward all n, d = 8, m = 4, one chain, N = 4,000", maps, theta0, idx, "backward")
    stride = 40 if ctx.quick else 10
    t_naive, horizons, naive = naive_backward_time(maps, theta0, idx[0], stride)
    err, ok = close(ct.backward_iterates(maps, theta0, idx, save_steps=horizons)[0], naive)
    if not ok:
        row.wrong = f"differs from naive recomputation by {err:.1e} (relative)"
    speed = t_naive / row.time
    row.target("≥ 1,000× naive", f"{speed:,.0f}×", speed >= 1000)
    row.notes.append(f"naive recomputation of every n (N(N+1)/2 map applications in a Python loop): "
                     f"{t_naive:.1f} s, extrapolated from every {stride}th n by the number of applications")
    return row


def case_7b(ctx):
    """Forward at d = 32, last step only, against the same arithmetic as plain GEMMs (bench_iterates' measure)."""
    chains, d, n, m = 8192, 32, 100, 8
    maps = random_maps(m, d, seed=7)
    idx = ctx.batches(m, n, chains, seed=7)
    theta0 = np.random.default_rng(7).normal(size=(chains, d))
    row = Row("7b", "forward, same, last step only: fraction of the GEMM rate")
    M = np.ascontiguousarray(maps.A[0].T)
    buf = [theta0.copy(), np.empty_like(theta0)]

    def gemms():  # the same arithmetic: one (C, d) x (d, d) product per step into preallocated buffers
        x, y = buf
        for _ in range(n):
            np.matmul(x, M, out=y)
            x, y = y, x

    ours = ct.forward_iterates(maps, theta0, idx, save_steps=[n])
    full = ct.forward_iterates(maps, theta0[:3], idx[:3])
    err, ok = close(ours[:3, 0], full[:, -1])
    ref = reference(maps.A, maps.b, theta0[0], idx[0], "forward")[-1]
    err2, ok2 = close(ours[0, 0], ref)
    if not (ok and ok2):
        row.wrong = f"last step differs from all steps / a numpy loop by {max(err, err2):.1e}"

    def gemms_one_thread():  # under load, threaded BLAS on these small products can stall: keep the faster
        with threadpool_limits(1):
            gemms()

    t_ours, t_many, t_one = interleaved_best([lambda: ct.forward_iterates(maps, theta0, idx, save_steps=[n]), gemms,
                                              gemms_one_thread], ctx.repeat)
    t_gemm = min(t_many, t_one)
    flops = forward_flops(chains, n, d)
    row.time, row.work = t_ours, (ours.nbytes, flops)
    row.target("≥ 0.7 of the GEMM rate", f"{t_gemm / t_ours:.2f}", t_gemm / t_ours >= 0.7)
    row.notes.append(f"same-shape GEMMs ((8192, 32) x (32, 32) per step): {flops / t_many / 1e9:.1f} GFLOP/s with "
                     f"BLAS's threads, {flops / t_one / 1e9:.1f} with one (the faster is the reference); "
                     f"forward_iterates {flops / t_ours / 1e9:.1f} GFLOP/s")
    return row


CASES = {
    "1": lambda ctx: case_e1(ctx, "forward"),
    "2": lambda ctx: case_e1(ctx, "backward"),
    "3": lambda ctx: case_1d(ctx, "forward"),
    "4": lambda ctx: case_1d(ctx, "backward"),
    "5": random_case("5", "forward", 4, 8, 4096, 400, seed=5),
    "6": case_6,
    "7": random_case("7", "forward", 8, 32, 8192, 100, seed=7),
    "7b": case_7b,
    "8": random_case("8", "forward", 16, 64, 1024, 100, seed=8),
    "9": random_case("9", "backward", 4, 8, 256, 400, seed=9),
}
