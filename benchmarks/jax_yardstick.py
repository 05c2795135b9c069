"""What a user would write instead in JAX on CPU (float64): the yardstick of the benchmark table.

* forward: ``jit(vmap over chains of lax.scan over steps of θ ↦ A[i] θ + b[i])``,
  returning every step (``θ_0`` first);
* backward all n: per chain the prefix products ``P_n = P_{n−1} E_{ξ_n}`` of the
  augmented ``(d+1) × (d+1)`` matrices ``E_i = [[A_i, b_i], [0, 1]]``, by
  ``lax.associative_scan`` or by ``lax.scan`` (the faster is reported), then
  ``θ̃_n = P_n [θ_0; 1]``;
* low-rank forward: ``θ ↦ θ − s_i U_i (V_iᵀ θ) + b_i``.

JAX is optional: when it cannot be imported, :data:`AVAILABLE` is false and
:data:`NOTE` says why; nothing here is needed by the package. Times exclude
compilation (one warm-up call first) and wait for the result
(``block_until_ready``); inputs are placed on the device before timing.

Run on its own for a smoke test: python benchmarks/jax_yardstick.py
"""

from __future__ import annotations

import time

import numpy as np

try:
    import jax
    import jax.numpy as jnp
    from jax import lax

    jax.config.update("jax_enable_x64", True)
    AVAILABLE = True
    NOTE = f"JAX {jax.__version__} on CPU, float64, jit, compile excluded"
except ImportError as exc:  # optional: the column shows '–'
    jax = jnp = lax = None
    AVAILABLE = False
    NOTE = f"JAX not importable ({exc}): its column shows '–' (pip install -r benchmarks/requirements-jax.txt)"


def _augmented(A, b):
    m, d, _ = A.shape
    E = np.zeros((m, d + 1, d + 1))
    E[:, :d, :d] = A
    E[:, :d, d] = b
    E[:, d, d] = 1.0
    return E


def forward(A, b):
    """A jitted ``f(theta0, idx) -> (C, N+1, d)`` of all forward iterates; ``theta0`` is ``(C, d)``."""
    A, b = jnp.asarray(A), jnp.asarray(b)

    def chain(theta0, seq):
        def step(x, i):
            y = A[i] @ x + b[i]
            return y, y

        _, ys = lax.scan(step, theta0, seq)
        return jnp.concatenate([theta0[None], ys])

    return jax.jit(jax.vmap(chain))


def backward(A, b, method="associative"):
    """A jitted ``f(theta0, idx) -> (C, N+1, d)`` of all backward iterates (``"associative"`` or ``"scan"``)."""
    d = A.shape[1]
    E = jnp.asarray(_augmented(np.asarray(A), np.asarray(b)))

    def chain(theta0, seq):
        v = jnp.append(theta0, 1.0)
        if method == "associative":
            P = lax.associative_scan(jnp.matmul, E[seq])  # P_n = E_{ξ_1} ⋯ E_{ξ_n}
            ys = P[:, :d, :] @ v
        else:
            def step(P, i):
                P = P @ E[i]
                return P, P[:d] @ v

            _, ys = lax.scan(step, jnp.eye(d + 1), seq)
        return jnp.concatenate([theta0[None], ys])

    return jax.jit(jax.vmap(chain))


def lowrank_forward(U, V, scale, b, last_only=False):
    """A jitted ``f(theta0, idx) -> (C, N+1, d)`` for ``A_i = I − s_i U_i V_iᵀ`` (``(C, d)``: the last step only)."""
    U, V, b = jnp.asarray(U), jnp.asarray(V), jnp.asarray(b)
    s = jnp.broadcast_to(jnp.asarray(scale, dtype=jnp.float64), (U.shape[0],))

    def chain(theta0, seq):
        def step(x, i):
            y = x - s[i] * (U[i] @ (V[i].T @ x)) + b[i]
            return y, (None if last_only else y)

        last, ys = lax.scan(step, theta0, seq)
        return last if last_only else jnp.concatenate([theta0[None], ys])

    return jax.jit(jax.vmap(chain))


def prepare(theta0, idx):
    """Device arrays of a ``(C, d)`` start and ``(C, N)`` indices (a shared start is broadcast)."""
    idx = np.asarray(idx)
    theta0 = np.broadcast_to(np.asarray(theta0, dtype=float), (idx.shape[0], np.shape(theta0)[-1]))
    return jax.device_put(np.ascontiguousarray(theta0)), jax.device_put(idx)


def timer(fn, theta0, idx):
    """``(run, first)``: a no-argument call that blocks until done, and the warm-up result as numpy."""
    args = prepare(theta0, idx)
    first = np.asarray(fn(*args).block_until_ready())
    return (lambda: fn(*args).block_until_ready()), first


if __name__ == "__main__":
    print(NOTE)
    if AVAILABLE:
        rng = np.random.default_rng(0)
        A = rng.normal(size=(4, 8, 8))
        A *= 0.9 / np.linalg.norm(A, 2, axis=(1, 2))[:, None, None]
        b = rng.normal(size=(4, 8))
        idx = rng.integers(0, 4, size=(256, 400))
        theta0 = np.ones(8)
        for name, f in [("forward", forward(A, b)), ("backward associative", backward(A, b)),
                        ("backward scan", backward(A, b, "scan"))]:
            run, out = timer(f, theta0, idx)
            t = time.perf_counter()
            run()
            print(f"{name}: {out.shape}, {1e3 * (time.perf_counter() - t):.1f} ms")
