"""Exact stationary covariance of SGD on least squares at MNIST size, against Monte Carlo.

1. Exact: the synthetic power-law design n = 60,000, d = 784 (contraction's
   power_law_regression, α = 1), batches of B = 32 (low-rank maps, never the
   (m, d, d) matrices), h = 1/λ_max(Ĥ) (half the mean-stability limit; the
   solve certifies mean-square stability: its radius bounds are < 1). Reported:
   wall time of stationary_moments, Krylov iterations, relative residuals
   (targets: ≤ 1e-8, under two minutes on 2 cores), peak resident memory.
2. Monte Carlo to 1 % relative error on tr Σ, measured at d = 98, 196, 392
   (same n, B, spectrum, h; low-rank maps, 2B < d): independent forward chains started at θ*, each
   kept after a burn-in n_b; chains N = (2·CV/0.01)² (a 95 % half-width of 1 %)
   with CV the coefficient of variation of ‖θ − θ*‖² measured on pilot chains;
   n_b the steps for the slowest second-moment mode to fall to 0.5 % of
   stationarity, from the lower bound ρ_lo ≤ ρ(Σ p_i A_i⊗A_i) that the exact
   solve reports (here ρ(Ā)² = (1 − h λ_min)²): n_b = log(0.005)/log(ρ_lo)
   (optimistic for Monte Carlo); time = N · n_b · (measured time per
   chain-step of forward_iterates). At d = 98 the full Monte Carlo run is
   done and its error against the exact trace printed. The cost at d = 784 is
   extrapolated with the log-log slope measured over the three sizes, and
   stated as an extrapolation. For scale, the chains that a 1 % relative
   Frobenius error on the whole covariance would need are also printed
   (Gaussian approximation: N_F = (tr(Σ)² + ‖Σ‖_F²) / (0.01² ‖Σ‖_F²)).

The machine is shared: the load average is printed before and after.
``--threads N`` limits the BLAS threads (threadpoolctl) for the whole run.

Run: python benchmarks/bench_lsq_covariance.py            (everything, about 5-10 minutes)
     python benchmarks/bench_lsq_covariance.py --small    (Monte Carlo and small exact solves only)
"""

import math
import os
import resource
import sys
import time

import numpy as np

import contraction as ct
from contraction.core.regression_data import power_law_regression

N_ROWS, BATCH, TARGET = 60000, 32, 0.01


def load():
    return "load average (1, 5, 15 min): " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def model_at(d, seed=0):
    X, y = power_law_regression(N_ROWS, d, exponent=1.0, rng=seed)
    model = ct.LinearRegressionModel(X, y, batch_size=BATCH)
    h = 1.0 / float(np.linalg.eigvalsh(model.mean_hessian()).max())
    return model, h


def exact(d):
    t0 = time.perf_counter()
    model, h = model_at(d)
    t1 = time.perf_counter()
    maps = model.sgd_maps(h)
    mom = ct.stationary_moments(maps)
    t2 = time.perf_counter()
    return {"model": model, "h": h, "maps": maps, "mom": mom, "setup_s": t1 - t0, "solve_s": t2 - t1}


def time_per_chain_step(maps, theta, chains=1024, steps=40):
    idx = ct.sample_batches(maps.n_maps, steps, chains, rng=11)
    start = np.broadcast_to(theta, (chains, len(theta))).copy()
    best = math.inf
    for _ in range(2):
        t = time.perf_counter()
        ct.forward_iterates(maps, start, idx, save_steps=[steps])
        best = min(best, time.perf_counter() - t)
    return best / (chains * steps)


def forward_samples(maps, theta, chains, steps, seed):
    idx = ct.sample_batches(maps.n_maps, steps, chains, rng=seed)
    start = np.broadcast_to(theta, (chains, len(theta))).copy()
    return ct.forward_iterates(maps, start, idx, save_steps=[steps])[:, 0]


def monte_carlo(d, pilot=1000, full=False):
    res = exact(d)
    maps, mom, theta = res["maps"], res["mom"], res["model"].minimizer()
    trace = float(np.trace(mom.cov))
    lower = mom.radius_bounds[0]
    frob = float(np.sum(mom.cov**2))
    chains_frob = math.ceil((trace**2 + frob) / (TARGET**2 * frob))
    n_b = math.ceil(math.log(0.005) / math.log(lower))
    t_step = time_per_chain_step(maps, theta)
    sq = np.sum((forward_samples(maps, theta, pilot, n_b, seed=12) - theta) ** 2, axis=1)
    cv = float(sq.std(ddof=1) / sq.mean())
    chains = math.ceil((2 * cv / TARGET) ** 2)
    out = {"d": d, "exact_s": res["solve_s"], "iterations": mom.iterations, "trace": trace, "n_b": n_b, "cv": cv,
           "chains": chains, "t_step": t_step, "mc_s": chains * n_b * t_step, "chains_frob": chains_frob}
    if full:
        t = time.perf_counter()
        sq = np.sum((forward_samples(maps, theta, chains, n_b, seed=13) - theta) ** 2, axis=1)
        out["mc_run_s"] = time.perf_counter() - t
        out["mc_error"] = abs(float(sq.mean()) - trace) / trace
    return out


def main(small=False):
    print(load())
    rows = [monte_carlo(98, full=True), monte_carlo(196), monte_carlo(392, pilot=500)]
    for r in rows:
        extra = (f", full run {r['mc_run_s']:.1f} s with error {100 * r['mc_error']:.2f} % of tr Σ"
                 if "mc_error" in r else "")
        print(f"d={r['d']:4d}: exact {r['exact_s']:.2f} s ({r['iterations']} CG iterations); Monte Carlo to 1 %: "
              f"{r['chains']} chains x {r['n_b']} steps x {1e6 * r['t_step']:.1f} us = {r['mc_s']:.1f} s "
              f"(CV {r['cv']:.3f}){extra}; ratio {r['mc_s'] / r['exact_s']:.2f}x; 1 % on the whole covariance: "
              f"{r['chains_frob']} chains, {r['chains_frob'] * r['n_b'] * r['t_step']:.0f} s")
    ds = np.array([r["d"] for r in rows], dtype=float)
    mc = np.array([r["mc_s"] for r in rows])
    slope = ct.loglog_slope(ds, mc)
    slope_exact = ct.loglog_slope(ds, np.array([r["exact_s"] for r in rows]))
    print(f"measured scaling: Monte Carlo time ∝ d^{slope:.2f}, exact solve ∝ d^{slope_exact:.2f} (d = 98..392)")
    mc_784 = mc[-1] * (784 / ds[-1]) ** slope
    print(f"Monte Carlo at d=784, extrapolated with d^{slope:.2f} from d=392 (an extrapolation, not a run): "
          f"{mc_784:.0f} s")
    if small:
        print(load())
        return
    t = time.perf_counter()
    big = exact(784)
    mom = big["mom"]
    print(f"d=784 n={N_ROWS} B={BATCH} h={big['h']:.4g} (1/λ_max): data and model {big['setup_s']:.1f} s, "
          f"stationary_moments {big['solve_s']:.1f} s, {mom.iterations} CG iterations, method {mom.method!r}")
    print(f"  covariance residual {mom.covariance_residual:.2e}, second-moment residual {mom.residual:.2e} "
          f"(target <= 1e-8); radius bounds {mom.radius_bounds[0]:.8f} <= ρ <= {mom.radius_bounds[1]:.8f}; "
          f"tr Σ = {np.trace(mom.cov):.6g}; peak RSS {peak_rss_mb():.0f} MB; total {time.perf_counter() - t:.1f} s")
    print(f"speed-up of the exact solve over Monte Carlo (extrapolated) at d=784: {mc_784 / big['solve_s']:.1f}x "
          f"(target >= 100x)")
    print(load())


if __name__ == "__main__":
    if "--threads" in sys.argv:
        from threadpoolctl import threadpool_limits

        threads = int(sys.argv[sys.argv.index("--threads") + 1])
        print(f"BLAS threads limited to {threads}")
        with threadpool_limits(threads):
            main(small="--small" in sys.argv)
    else:
        main(small="--small" in sys.argv)
