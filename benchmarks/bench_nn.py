"""Neural-network proof of concept (SPEC C13): cost of full backward SGD, and settling.

1. Full backward SGD for every horizon n = 1..N at once: ``backward_iterates``
   on the MLP's SGD maps runs the n-th recomputation of every n side by side
   (N rounds, one vectorized gradient call per round on a stack of up to N
   parameter vectors). Baseline: N separate restarts, recomputing
   T_{ξ1}∘…∘T_{ξn}(θ0) for each n by calling the maps' ``step`` on a single
   vector (N(N+1)/2 calls). Both do the same N(N+1)/2 gradient evaluations;
   the ratio is the gain of vectorizing across n. Digits, MLP 64-16-10 tanh,
   N = 200, batch sizes 8, 16, 32. Target: >= 3x.
2. Settling on the digits (same batch sequence for both orders, started after
   a warm-up of forward SGD): backward step norms ‖θ̃_{n+1} − θ̃_n‖ against
   forward ones, and the total variation Σ_n |L(x_{n+1}) − L(x_n)| of the
   training-loss curves, for a few settings (lr, weight decay, warm-up).

All numbers are measured in this run and printed; nothing is asserted on time.

Run: python benchmarks/bench_nn.py [--quick]
"""

import os
import sys

import numpy as np
from _timing import best_of

import contraction as ct


def bench_all_n(data, batch_size, n_steps=200, hidden=16):
    net = ct.nn.MLP(data.X_train, data.y_train, hidden=hidden, batch_size=batch_size,
                    weight_decay=1e-3)
    maps = net.sgd_maps(0.1)
    theta0 = net.init_params(rng=0)
    idx = ct.sample_batches(net.n_batches, n_steps, rng=1)
    seq = idx[0]

    def restarts():
        out = np.empty((n_steps + 1, net.dim))
        out[0] = theta0
        for n in range(1, n_steps + 1):
            x = theta0[None, :]
            for i in seq[:n][::-1]:  # ξ_n first, ξ_1 last
                x = maps.step(x, np.array([i]))
            out[n] = x[0]
        return out

    vectorized = lambda: ct.backward_iterates(maps, theta0, idx)[0]
    err = np.abs(restarts() - vectorized()).max()
    t_vec = best_of(vectorized, 3)
    t_restart = best_of(restarts, 2)
    evals = n_steps * (n_steps + 1) // 2
    print(f"  B={batch_size:2d}: all-n pass {t_vec:6.3f} s "
          f"({t_vec / evals * 1e6:5.1f} us/gradient), "
          f"{n_steps} restarts {t_restart:6.3f} s ({t_restart / evals * 1e6:5.1f} us/gradient), "
          f"speed-up {t_restart / t_vec:4.1f}x, max |difference| {err:.1e}")
    return t_restart / t_vec


def settling(data, kind, lr, weight_decay, warmup, n_steps=200, batch_size=16, seed=0):
    if kind == "MLP":
        net = ct.nn.MLP(data.X_train, data.y_train, hidden=16, batch_size=batch_size,
                        weight_decay=weight_decay)
    else:
        net = ct.nn.CNN(data.X_train, data.y_train, channels=4, batch_size=batch_size,
                        weight_decay=weight_decay)
    maps = net.sgd_maps(lr)
    theta0 = net.init_params(rng=seed)
    if warmup:
        warm = ct.sample_batches(net.n_batches, warmup, rng=1000 + seed)
        theta0 = ct.forward_iterates(maps, theta0, warm, save_steps=[warmup])[0, 0]
    idx = ct.sample_batches(net.n_batches, n_steps, rng=seed)
    fwd = ct.forward_iterates(maps, theta0, idx)[0]
    bwd = ct.backward_iterates(maps, theta0, idx)[0]
    step_f = np.linalg.norm(np.diff(fwd, axis=0), axis=1)
    step_b = np.linalg.norm(np.diff(bwd, axis=0), axis=1)
    loss_f, loss_b = net.loss(fwd), net.loss(bwd)
    tv_f, tv_b = np.abs(np.diff(loss_f)).sum(), np.abs(np.diff(loss_b)).sum()
    q = n_steps // 4
    acc = net.evaluate(np.stack([fwd[-1], bwd[-1]]), data.X_test, data.y_test).accuracy
    lip = ct.nn.estimate_lipschitz(maps, np.broadcast_to(theta0, (8, net.dim)), np.arange(8), rng=0,
                                   max_iter=100)
    print(f"  {kind} lr={lr} wd={weight_decay:g} warm-up={warmup:4d} seed={seed}: "
          f"step norm first 10 / last {q}: fwd {step_f[:10].mean():.3f}/{step_f[-q:].mean():.3f}, "
          f"bwd {step_b[:10].mean():.3f}/{step_b[-q:].mean():.4f}, bwd/fwd (last {q}) "
          f"{step_b[-q:].mean() / step_f[-q:].mean():.3f} | "
          f"TV of loss fwd {tv_f:.3f} bwd {tv_b:.3f} "
          f"(ratio {tv_b / tv_f:.3f}) | final loss fwd {loss_f[-1]:.3f} bwd {loss_b[-1]:.3f}, "
          f"test acc {acc[0]:.3f}/{acc[1]:.3f} | "
          f"Lip(T_i) at θ0, max of 8 batches ≈ {lip.max():.3f}")


def main(quick=False):
    data = ct.nn.load_digits_data()
    print(f"digits: {data.X_train.shape[0]} training / {data.X_test.shape[0]} test images; "
          f"{os.cpu_count()} CPU(s)")
    print("1. backward iterates for all n <= N=200, one vectorized pass vs N restarts "
          "(MLP 64-16-10, target >= 3x)")
    ratios = [bench_all_n(data, b) for b in ((16,) if quick else (8, 16, 32))]
    print(f"  speed-up range {min(ratios):.1f}x .. {max(ratios):.1f}x")
    print("2. settling: same batch sequence for both orders, N=200, B=16")
    settings = [("MLP", 0.5, 1e-2, 1000), ("MLP", 0.2, 1e-2, 1000), ("MLP", 0.2, 1e-3, 1000),
                ("MLP", 0.2, 0.0, 1000), ("MLP", 0.5, 1e-2, 0), ("CNN", 0.5, 1e-2, 1000),
                ("CNN", 0.2, 1e-2, 1000)]
    if quick:
        settings = settings[:1]
    for kind, lr, wd, warm in settings:
        settling(data, kind, lr, wd, warm)
    if not quick:
        for seed in (1, 2, 3):
            settling(data, "MLP", 0.5, 1e-2, 1000, seed=seed)


if __name__ == "__main__":
    main(quick="--quick" in sys.argv[1:])
