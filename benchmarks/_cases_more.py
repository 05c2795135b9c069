"""Cases 10–13 of run_all.py: least squares (low-rank maps, exact covariance), Lyapunov exponent, NN, memory."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import jax_yardstick as jy
import numpy as np
from _floors import best_of, forward_flops, interleaved_best
from _table import Row, close
from bench_iterates import random_maps
from bench_lsq_covariance import exact, forward_samples
from threadpoolctl import threadpool_limits

import contraction as ct


def _lowrank_forward_loop(maps, x, seq):
    """``x ↦ x − s_i U_i (V_iᵀ x) + b_i`` along ``seq``, one vector, plain numpy."""
    s = np.broadcast_to(np.asarray(maps.scale, dtype=float), (maps.n_maps,))
    for i in seq:
        x = x - s[i] * (maps.U[i] @ (maps.V[i].T @ x)) + maps.b[i]
    return x


def case_10_forward(ctx):
    """Least squares, d = 784, B = 8, 1,024 chains, m = 32 (bench_lowrank's setup), last step of N = 20."""
    from bench_lowrank import gemm_run, regression_maps  # its module imports engine internals: keep it local

    chains, d, B, n, n_dense = (512, 392, 8, 20, 2) if ctx.quick else (1024, 784, 8, 20, 2)
    row = Row("10a", f"least squares forward, d = {d}, B = {B}, m = 32, {chains:,} chains, N = {n}, last step")
    maps = regression_maps(32, d, B)
    dense = maps.to_dense()
    theta0 = np.random.default_rng(1).standard_normal((chains, d))
    idx = ctx.batches(32, n, chains, seed=2)
    ours = ct.forward_iterates(maps, theta0, idx, save_steps=[n])
    ref = np.stack([_lowrank_forward_loop(maps, theta0[c], idx[c]) for c in (0, chains - 1)])
    err, ok = close(ours[[0, chains - 1], 0], ref)
    if not ok:
        row.wrong = f"differs from a numpy loop by {err:.1e} (relative)"
    fns = [lambda: ct.forward_iterates(maps, theta0, idx, save_steps=[n]),
           lambda: ct.forward_iterates(dense, theta0, idx[:, :n_dense], save_steps=[n_dense]),
           gemm_run(maps, theta0, n)]
    if jy.AVAILABLE:
        run, first = jy.timer(jy.lowrank_forward(maps.U, maps.V, maps.scale, maps.b, last_only=True), theta0, idx)
        err_j, ok_j = close(ours[:, 0], first)
        if not ok_j and not row.wrong:
            row.wrong = f"differs from JAX by {err_j:.1e} (relative)"
        fns.append(run)
    times = interleaved_best(fns, max(2, ctx.repeat - 2))
    row.time, t_dense, t_gemm = times[:3]
    row.jax = times[3] if len(times) > 3 else None
    flops = 4.0 * chains * n * d * B
    row.work = (ours.nbytes, flops)
    vs_dense = (t_dense / n_dense) / (row.time / n)
    row.target("≥ 10× dense", f"{vs_dense:.1f}×", vs_dense >= 10)
    row.target("≥ 0.5 of GEMMs", f"{t_gemm / row.time:.2f}", t_gemm / row.time >= 0.5)
    row.notes.append(f"dense maps {1e3 * t_dense / n_dense:.0f} ms/step, low-rank {1e3 * row.time / n:.1f} ms/step, "
                     f"equivalent GEMMs {1e3 * t_gemm / n:.1f} ms/step; JAX returns the last step only too")
    return row


def case_10_backward(ctx):
    """Least squares backward all n, one chain, against the dense closed form ((d+1)³ per step, on a few steps)."""
    from bench_lowrank import regression_maps

    d, B, n, n_dense = (392, 8, 200, 4) if ctx.quick else (784, 8, 500, 4)
    row = Row("10b", f"least squares backward all n, d = {d}, B = {B}, m = 32, one chain, N = {n}")
    maps = regression_maps(32, d, B)
    E = np.zeros((32, d + 1, d + 1))
    E[:, :d, :d] = maps.to_dense().A
    E[:, :d, d], E[:, d, d] = maps.b, 1.0
    idx = ctx.batches(32, n, 1, seed=4)
    theta0 = np.random.default_rng(5).standard_normal(d)
    v = np.append(theta0, 1.0)

    def dense_closed_form():  # P_k = P_{k-1} E_{ξ_k}, θ̃_k = P_k [θ0; 1]
        P, out = np.eye(d + 1), np.empty((n_dense + 1, d))
        out[0] = theta0
        for k, i in enumerate(idx[0, :n_dense]):
            P = P @ E[i]
            out[k + 1] = (P @ v)[:d]
        return out

    ours = ct.backward_iterates(maps, theta0, idx)[0]
    err, ok = close(ours[:n_dense + 1], dense_closed_form())
    for h in (n // 2, n):  # naive recomputation T_{ξ1}∘…∘T_{ξh}(θ0)
        e, o = close(ours[h], _lowrank_forward_loop(maps, theta0, idx[0, :h][::-1]))
        err, ok = max(err, e), ok and o
    if not ok:
        row.wrong = f"differs from the dense closed form / recomputation by {err:.1e} (relative)"
    row.time, t_dense = interleaved_best([lambda: ct.backward_iterates(maps, theta0, idx), dense_closed_form],
                                         max(2, ctx.repeat - 2))
    speed = (t_dense / n_dense) / (row.time / n)
    row.work = (ours.nbytes, n * (4.0 * B * d * d + 4.0 * d * d))
    row.target("≥ 10× dense closed form", f"{speed:.0f}×", speed >= 10)
    row.notes.append(f"low-rank {1e3 * row.time / n:.2f} ms/step, dense closed form {1e3 * t_dense / n_dense:.0f} "
                     f"ms/step (timed on {n_dense} steps); floor counts 4 B d² + 4 d² flops per step; "
                     "no JAX equivalent short of the same dense products")
    return row


def case_10_covariance(ctx):
    """Exact stationary covariance of SGD on least squares (bench_lsq_covariance's problem) at a small d."""
    d = 98  # 2B < d: low-rank maps (smaller d takes the dense path, slower)
    row = Row("10c", f"least squares exact stationary covariance, n = 60,000, d = {d}, B = 32")
    res = exact(d)
    mom, maps, theta = res["mom"], res["maps"], res["model"].minimizer()
    row.time = res["solve_s"] if ctx.quick else min(res["solve_s"], best_of(lambda: ct.stationary_moments(maps), 1))
    with threadpool_limits(1):
        t_one = best_of(lambda: ct.stationary_moments(maps), 1)
    row.notes.append(f"the same solve with one BLAS thread: {t_one:.1f} s (threaded BLAS stalls when the cores are "
                     "shared)")
    worst = max(r for r in (mom.covariance_residual, mom.residual) if r is not None)
    row.target("residual ≤ 1e-8", f"{worst:.1e}", worst <= 1e-8)
    n_b = math.ceil(math.log(0.005) / math.log(mom.radius_bounds[0]))  # to 0.5 % of stationarity
    sq = np.sum((forward_samples(maps, theta, 2000, n_b, seed=12) - theta) ** 2, axis=1)
    trace, se = float(np.trace(mom.cov)), float(sq.std(ddof=1) / math.sqrt(len(sq)))
    if abs(sq.mean() - trace) > 4 * se + 0.01 * trace:
        row.wrong = f"tr Σ = {trace:.5g}, Monte Carlo {sq.mean():.5g} ± {se:.2g}"
    row.notes.append(f"stationary_moments: {mom.iterations} CG iterations, model built in {res['setup_s']:.1f} s, "
                     f"best of {1 if ctx.quick else 2}; tr Σ = {trace:.5g}, Monte Carlo check on 2,000 chains "
                     f"× {n_b} steps {sq.mean():.5g} ± {se:.2g}")
    return row


def _numpy_lyapunov(A, seq, burn_in, start):
    """(1/n) Σ log r_k per chain by renormalised products, vectorized over chains (an independent check)."""
    x = start / np.linalg.norm(start, axis=1, keepdims=True)
    total = np.zeros(len(x))
    for k in range(seq.shape[1]):
        x = np.einsum("cij,cj->ci", A[seq[:, k]], x)
        r = np.linalg.norm(x, axis=1)
        x /= r[:, None]
        if k >= burn_in:
            total += np.log(r)
    return total / (seq.shape[1] - burn_in)


def case_11(ctx):
    """Top Lyapunov exponent of a d = 8 family to 1 % relative standard error."""
    maps = random_maps(4, 8, seed=11)
    row = Row("11", "Lyapunov exponent, d = 8, m = 4, to 1 % relative standard error")
    chains, pilot_steps = 64, 50
    pilot = ct.lyapunov_exponent(maps, rng=0, n_steps=pilot_steps, n_chains=chains)
    rse = pilot.stderr / abs(pilot.exponent)
    steps = max(10, math.ceil(1.5 * pilot_steps * (rse / 0.01) ** 2))  # se ∝ 1/sqrt(steps), 50 % margin
    res = ct.lyapunov_exponent(maps, rng=1, n_steps=steps, n_chains=chains)
    row.time = best_of(lambda: ct.lyapunov_exponent(maps, rng=1, n_steps=steps, n_chains=chains), ctx.repeat)
    got = res.stderr / abs(res.exponent)
    row.work = (0, forward_flops(chains, steps + 50, 8))
    row.target("rel. s.e. ≤ 1 %", f"{100 * got:.2f} %", got <= 0.01)
    rng = np.random.default_rng(12)
    seq = ct.sample_batches(4, 2050, 16, rng=13)
    per_chain = _numpy_lyapunov(np.asarray(maps.A), seq, 50, rng.standard_normal((16, 8)))
    est, se = per_chain.mean(), per_chain.std(ddof=1) / 4
    if abs(est - res.exponent) > 4 * math.hypot(se, res.stderr):
        row.wrong = f"γ = {res.exponent:.4f} ± {res.stderr:.4f}, an independent numpy estimate {est:.4f} ± {se:.4f}"
    row.notes.append(f"γ = {res.exponent:.4f} ± {res.stderr:.4f} from {chains} chains × {steps} steps (+ 50 burn-in; "
                     f"steps chosen from a {pilot_steps}-step pilot); numpy check {est:.4f} ± {se:.4f}; "
                     "time excludes the pilot")
    return row


def _mlp_plain_training(X, Y, theta, seq, lr, wd, sizes):
    """Plain numpy SGD on the MLP (tanh, mean cross-entropy + wd/2 ‖θ‖²), one vector, the layout of ct.nn.MLP."""
    (fin, hid), (_, out) = sizes
    B = X.shape[1]
    theta = theta.copy()
    o1, o2, o3 = fin * hid, fin * hid + hid, fin * hid + hid + hid * out
    W1, b1 = theta[:o1].reshape(fin, hid), theta[o1:o2]
    W2, b2 = theta[o2:o3].reshape(hid, out), theta[o3:]
    g = np.empty_like(theta)
    gW1, gb1 = g[:o1].reshape(fin, hid), g[o1:o2]
    gW2, gb2 = g[o2:o3].reshape(hid, out), g[o3:]
    for i in seq:
        x = X[i]
        h = np.tanh(x @ W1 + b1)
        z = h @ W2 + b2
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p -= Y[i]
        p /= B
        np.matmul(h.T, p, out=gW2)
        np.sum(p, axis=0, out=gb2)
        dh = (p @ W2.T) * (1.0 - h * h)
        np.matmul(x.T, dh, out=gW1)
        np.sum(dh, axis=0, out=gb1)
        g += wd * theta
        theta -= lr * g  # W1, b1, W2, b2 are views of theta
    return theta


def case_12(ctx):
    """The NN all-n backward pass (bench_nn's setup) vs N restarts and vs a plain numpy training loop."""
    n, B, lr, wd = (100 if ctx.quick else 200), 16, 0.1, 1e-3
    data = ct.nn.load_digits_data()
    net = ct.nn.MLP(data.X_train, data.y_train, hidden=16, batch_size=B, weight_decay=wd)
    maps = net.sgd_maps(lr)
    theta0 = net.init_params(rng=0)
    idx = ct.sample_batches(net.n_batches, n, rng=1)
    seq = idx[0]
    row = Row("12", f"NN all-n backward, digits MLP 64-16-10, B = {B}, N = {n}")
    X = np.asarray(data.X_train).reshape(net.n_batches, B, -1)
    Y = np.eye(10)[np.asarray(data.y_train)].reshape(net.n_batches, B, 10)

    def restarts():
        out = np.empty((n + 1, net.dim))
        out[0] = theta0
        for k in range(1, n + 1):
            x = theta0[None, :]
            for i in seq[:k][::-1]:
                x = maps.step(x, np.array([i]))
            out[k] = x[0]
        return out

    alln = ct.backward_iterates(maps, theta0, idx)[0]
    err, ok = close(alln, restarts())
    plain = _mlp_plain_training(X, Y, theta0, seq, lr, wd, net.layer_shapes)
    e2, ok2 = close(plain, ct.forward_iterates(maps, theta0, idx, save_steps=[n])[0, 0])
    if not (ok and ok2):
        row.wrong = f"all-n vs restarts {err:.1e}, plain numpy training vs forward_iterates {e2:.1e} (relative)"
    t_all, t_plain, t_fwd = interleaved_best([lambda: ct.backward_iterates(maps, theta0, idx),
                                              lambda: _mlp_plain_training(X, Y, theta0, seq, lr, wd,
                                                                          net.layer_shapes),
                                              lambda: ct.forward_iterates(maps, theta0, idx, save_steps=[n])],
                                             ctx.repeat)
    t_restart = best_of(restarts, 1 if ctx.quick else 2)
    row.time = t_all
    evals = n * (n + 1) // 2
    per_grad = (t_plain / n) / (t_all / evals)
    row.target("≥ 3× restarts", f"{t_restart / t_all:.1f}×", t_restart / t_all >= 3)
    row.target("gradient cost, plain loop / all-n", f"{per_grad:.1f}×", None)
    row.target("forward_iterates / plain loop", f"{t_fwd / t_plain:.1f}×", None)
    row.notes.append(f"{evals} gradients: all-n pass {1e6 * t_all / evals:.1f} µs/gradient, {n} restarts "
                     f"{t_restart:.2f} s ({1e6 * t_restart / evals:.1f} µs/gradient), plain numpy SGD loop "
                     f"{1e6 * t_plain / n:.1f} µs/gradient (the all-n pass costs {t_all / t_plain:.0f} plain "
                     f"training runs of N steps, for (N+1)/2 = {(n + 1) / 2:.0f} runs' worth of gradients); "
                     f"forward_iterates {1e6 * t_fwd / n:.1f} µs/step")
    return row


MEMORY = r"""
import json, resource, sys, time
import numpy as np
import contraction as ct

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))

chains, n, d, every = (int(a) for a in sys.argv[1:5])
rng = np.random.default_rng(0)
A = rng.normal(size=(4, d, d))
A *= 0.9 / np.linalg.norm(A, 2, axis=(1, 2))[:, None, None]
maps = ct.AffineMaps(A, rng.normal(size=(4, d)))
theta0 = rng.normal(size=d)
small = ct.forward_iterates(maps, theta0, ct.sample_batches(4, 10, 2, rng=1))  # warm every code path
before = status("VmRSS")
idx = ct.sample_batches(4, n, chains, rng=1)
with_idx = status("VmRSS")
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak (VmHWM) to the current size
    reset = True
except OSError:
    reset = False
t = time.perf_counter()
out = ct.forward_iterates(maps, theta0, idx, save_steps=range(0, n + 1, every))
seconds = time.perf_counter() - t
peak = status("VmHWM")
check = ct.forward_iterates(maps, theta0, idx[:2, : 2 * every], save_steps=[every, 2 * every])
json.dump({"before": before, "with_idx": with_idx, "peak": peak, "reset": reset, "seconds": seconds,
           "idx": idx.nbytes, "out": out.nbytes, "shape": list(out.shape),
           "check": float(np.max(np.abs(out[:2, 1:3] - check)))}, sys.stdout)
"""


def case_13(ctx):
    """Memory of a trajectory saving every 100th step, measured in a fresh process."""
    chains, n, d, every = (1000 if ctx.quick else 10_000), 10_000, 10, 100
    row = Row("13", f"memory: forward {chains:,} chains × {n:,} steps × d = {d}, every {every}th step saved")
    res = subprocess.run([sys.executable, "-c", MEMORY, str(chains), str(n), str(d), str(every)],
                         capture_output=True, text=True, timeout=1200)
    if res.returncode:
        raise RuntimeError(res.stderr.strip().splitlines()[-1])
    r = json.loads(res.stdout)
    MiB = 2.0**20
    needed = r["idx"] + r["out"]
    total = r["peak"] - r["before"]
    forward_extra = r["peak"] - r["with_idx"] - r["out"]
    row.time = r["seconds"]
    row.work = (r["out"], forward_flops(chains, n, d))
    if r["check"] > 1e-10:
        row.wrong = f"saved steps differ from a short run by {r['check']:.1e}"
    row.target("peak increase ≤ 1.25 × (idx + output)", f"{total / MiB:.0f} MiB for {needed / MiB:.0f} MiB",
               total <= 1.25 * needed if r["reset"] else None)
    row.notes.append(f"idx {r['idx'] / MiB:.0f} MiB, output {r['out'] / MiB:.1f} MiB {tuple(r['shape'])}; resident "
                     f"{r['before'] / MiB:.0f} MiB before idx, {r['with_idx'] / MiB:.0f} MiB with it; peak during "
                     f"forward_iterates {r['peak'] / MiB:.0f} MiB, i.e. {forward_extra / MiB:+.1f} MiB beyond idx and "
                     f"output" + ("" if r["reset"] else " (peak could not be reset: it includes sampling)"))
    return row


CASES = {
    "10a": case_10_forward,
    "10b": case_10_backward,
    "10c": case_10_covariance,
    "11": case_11,
    "12": case_12,
    "13": case_13,
}
