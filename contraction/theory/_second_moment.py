r"""The second-moment operator of low-rank affine maps, applied and inverted without forming ``A_i``.

For ``A_i = I − s_i U_i V_iᵀ`` (``U_i, V_i`` of shape ``(d, r)``) and
``G = Σ p_i s_i U_i V_iᵀ = I − Ā``:

    𝒜(S) = Σ p_i A_i S A_iᵀ = S − G S − S Gᵀ + F(S),
    F(S) = Σ p_i s_i² U_i (V_iᵀ S V_i) U_iᵀ,

two products of the ``(m r) × d`` factors with a ``d × d`` matrix:
``O(m r d²)`` per application (``O(n d²)`` for least squares on ``n`` rows),
never the ``(m, d, d)`` matrices. For SGD on least squares ``G = h Ĥ`` and
``F(S) = h² Σ p_i H_i S H_i``, the fourth-moment term.

The covariance ``Σ = 𝒜(Σ) + C`` is solved by a Krylov method of SciPy
(conjugate gradients when ``U = V``, where ``I − 𝒜`` is self-adjoint, GMRES
otherwise) on ``vec(Σ)``, preconditioned by the inverse of
``P(S) = S − Ā S Āᵀ − β G S Gᵀ − γ tr(G S) G``: the mean map's Lyapunov
operator, corrected by the fourth moment of Gaussian rows
(``E[x xᵀ S x xᵀ] = 2 Ĥ S Ĥ + tr(Ĥ S) Ĥ``) with ``β, γ`` fitted to one
application of ``F``. In the eigenbasis of a symmetric ``Ā`` it is an
elementwise division and a rank-one correction; a general ``Ā`` uses
:func:`scipy.linalg.solve_discrete_lyapunov` (``β = γ = 0``).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse.linalg

from ._reachable import RANK_RTOL

__all__ = ["LowRankSecondMoment", "MeanUnstable", "NegativeCurvature", "NotPositive", "solve_low_rank"]

# Values per chunk of maps in the products over the family (bounded working memory).
_CHUNK_VALUES = 1 << 22


class NegativeCurvature(Exception):
    """``⟨S, (I − 𝒜) S⟩ <= 0`` for a direction of the conjugate-gradient solve: ``ρ(𝒜) >= 1``."""


class MeanUnstable(Exception):
    """``ρ(Ā) >= 1``: ``args[0]`` is the spectral radius of the mean map."""


class NotPositive(Exception):
    """The solution of ``(I − 𝒜) X = C`` is not positive semi-definite (``args[0]``: ``λ_min(X) / ‖X‖₂``)."""


class LowRankSecondMoment:
    """``𝒜``, ``I − 𝒜`` and their preconditioner for a :class:`~contraction.LowRankAffineMaps`, from its factors.

    Parameters
    ----------
    maps : LowRankAffineMaps
        The family (read through ``U``, ``V``, ``b``, ``probs``, ``scale``).
    """

    def __init__(self, maps):
        self.d, self.m, self.r = maps.dim, maps.n_maps, maps.rank
        self.symmetric = bool(maps.symmetric)
        self.right = np.swapaxes(maps.V, 1, 2)  # rows of V_i, (m, r, d), C-contiguous views
        self.left = self.right if self.symmetric else np.swapaxes(maps.U, 1, 2)
        self.probs, self.scale, self.b = maps.probs, maps.scale, maps.b
        self.step = max(1, _CHUNK_VALUES // (self.r * self.d))
        self.G = self._update_sum(self.probs * self.scale)
        if self.symmetric:
            self.G = 0.5 * (self.G + self.G.T)
        self.Abar = np.eye(self.d) - self.G
        self.matvecs = 0

    def _parts(self):
        for start in range(0, self.m, self.step):
            yield slice(start, min(self.m, start + self.step))

    def _update_sum(self, weights: np.ndarray) -> np.ndarray:
        """``Σ_i w_i U_i V_iᵀ``."""
        out = np.zeros((self.d, self.d))
        for part in self._parts():
            out += (self.left[part] * weights[part, None, None]).reshape(-1, self.d).T @ \
                self.right[part].reshape(-1, self.d)
        return out

    # --- the operator ----------------------------------------------------------------
    def fourth(self, S: np.ndarray) -> np.ndarray:
        """``F(S) = Σ p_i s_i² U_i (V_iᵀ S V_i) U_iᵀ``."""
        self.matvecs += 1
        d = self.d
        w = self.probs * self.scale**2
        out = np.zeros((d, d))
        for part in self._parts():
            R, L = self.right[part], self.left[part]
            K = np.matmul((R.reshape(-1, d) @ S).reshape(R.shape), np.swapaxes(R, 1, 2))  # V_iᵀ S V_i, (k, r, r)
            K *= w[part, None, None]
            out += L.reshape(-1, d).T @ np.matmul(K, L).reshape(-1, d)
        return out

    def apply(self, S: np.ndarray) -> np.ndarray:
        """``𝒜(S) = Σ p_i A_i S A_iᵀ``."""
        return S - self.G @ S - S @ self.G.T + self.fourth(S)

    def lhs(self, S: np.ndarray) -> np.ndarray:
        """``(I − 𝒜)(S) = G S + S Gᵀ − F(S)``."""
        return self.G @ S + S @ self.G.T - self.fourth(S)

    # --- mean, offsets and noise -------------------------------------------------------
    def images(self, x: np.ndarray) -> np.ndarray:
        """``s_i U_i V_iᵀ x`` for every map, shape (m, d)."""
        coef = np.matmul(self.right, x) * self.scale[:, None]  # (m, r)
        return np.einsum("mr,mrd->md", coef, self.left)

    def offsets(self, mu: np.ndarray) -> np.ndarray:
        """``c_i = T_i(μ) − μ = b_i − s_i U_i V_iᵀ μ``, shape (m, d)."""
        return self.b - self.images(mu)

    def weighted_outer(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """``Σ p_i x_i y_iᵀ`` for rows ``X``, ``Y`` (m, d)."""
        return (X * self.probs[:, None]).T @ Y

    def source(self, mu: np.ndarray) -> np.ndarray:
        """``Σ p_i (A_i μ b_iᵀ + b_i μᵀ A_iᵀ + b_i b_iᵀ)`` (the second-moment equation's constant term)."""
        Amu = mu[None, :] - self.images(mu)
        R = self.weighted_outer(Amu, self.b)
        return R + R.T + self.weighted_outer(self.b, self.b)

    # --- the preconditioner -------------------------------------------------------------
    def preconditioner(self, C: np.ndarray):
        """The inverse of ``P`` as a function of ``R`` (d, d), a first guess ``X₀`` and ``(I − 𝒜)(X₀)`` (or ``None``).

        Symmetric families: ``P(S) = S − ĀSĀ − β GSG − γ tr(GS) G`` in the
        eigenbasis of ``G``; ``β, γ`` fitted by least squares to
        ``F(X₀) − G X₀ G`` at ``X₀ = P₀^{-1}(C)`` (``P₀`` the Lyapunov part),
        then shrunk until ``P`` is positive definite. One application of
        ``F``.
        """
        if not self.symmetric:
            Abar = self.Abar

            def inverse(R):
                return scipy.linalg.solve_discrete_lyapunov(Abar, R)

            return inverse, inverse(C), None
        g, W = np.linalg.eigh(self.G)
        a = 1.0 - g
        lyap = 1.0 - np.outer(a, a)

        def make(beta, gamma):
            D = lyap - beta * np.outer(g, g)
            dg = np.diagonal(D)
            denom = 1.0 - gamma * np.sum(g * g / dg)
            if np.any(D <= 0) or denom <= 0:
                return None

            def inverse(R):
                Rp = W.T @ R @ W
                t = np.sum(g * np.diagonal(Rp) / dg) / denom  # tr(G S) in the eigenbasis
                Sp = Rp / D
                Sp[np.diag_indices(self.d)] += gamma * t * g / dg
                return W @ Sp @ W.T
            return inverse

        base = make(0.0, 0.0)
        X0 = base(C)
        F0 = self.fourth(X0)
        GXG = self.G @ X0 @ self.G
        basis = np.stack([GXG.ravel(), (np.trace(self.G @ X0) * self.G).ravel()], axis=1)
        coef = np.linalg.lstsq(basis, (F0 - GXG).ravel(), rcond=None)[0]
        beta, gamma = (float(c) if np.isfinite(c) else 0.0 for c in coef)
        product = self.G @ X0 + X0 @ self.G.T - F0  # CG starts from X₀: its first product is known
        for _ in range(60):
            inverse = make(beta, gamma)
            if inverse is not None:
                return inverse, X0, product
            beta, gamma = 0.5 * beta, 0.5 * gamma
        return base, X0, product

    # --- the solve --------------------------------------------------------------------
    def solve(self, C: np.ndarray, tol: float, maxiter: int):
        """Solve ``(I − 𝒜) X = C``; return ``X``, the iteration count and SciPy's ``info``.

        Conjugate gradients (symmetric family) stop with
        :class:`NegativeCurvature` as soon as a search direction has
        ``⟨p, (I − 𝒜) p⟩ <= 0``.
        """
        d = self.d
        scale = float(np.abs(C).max())  # solve for C / scale: the same digits, far from under- and overflow
        C = C / scale
        inverse, x0, product = self.preconditioner(C)
        count = [0]

        def matvec(x):
            S = np.asarray(x, dtype=np.float64).reshape(d, d)
            out = product if product is not None and np.array_equal(S, x0) else self.lhs(S)
            if self.symmetric and np.vdot(S, out) <= 0.0 and np.any(S):
                raise NegativeCurvature
            return out.ravel()

        def precond(x):
            return inverse(np.asarray(x, dtype=np.float64).reshape(d, d)).ravel()

        def callback(_):
            count[0] += 1

        op = scipy.sparse.linalg.LinearOperator((d * d, d * d), matvec=matvec, dtype=np.float64)
        M = scipy.sparse.linalg.LinearOperator((d * d, d * d), matvec=precond, dtype=np.float64)
        rhs = C.ravel()
        if self.symmetric:
            sol, info = scipy.sparse.linalg.cg(op, rhs, x0=x0.ravel(), rtol=tol, atol=0.0, maxiter=maxiter, M=M,
                                               callback=callback)
        else:
            sol, info = scipy.sparse.linalg.gmres(op, rhs, x0=x0.ravel(), rtol=tol, atol=0.0, restart=min(50, maxiter),
                                                  maxiter=max(1, maxiter // min(50, maxiter)), M=M,
                                                  callback=callback, callback_type="pr_norm")
        X = sol.reshape(d, d) * scale
        return 0.5 * (X + X.T), count[0], int(info)


#: Relative size of a negative eigenvalue of the solved covariance beyond which it is not a covariance.
PSD_RTOL = 1e-8


def _radius_bounds(X: np.ndarray, C: np.ndarray, symmetric: bool, rho_mean: float):
    """Bounds ``lower <= ρ(𝒜) <= upper`` from a solution ``X ≻ 0`` of ``X = 𝒜(X) + C`` (``None`` if ``X`` is singular).

    ``𝒜`` maps the positive semi-definite cone into itself, so
    ``(1 − λ_max) X ⪯ 𝒜(X) = X − C ⪯ (1 − λ_min) X`` with ``λ`` the
    eigenvalues of ``X^{-1/2} C X^{-1/2}`` bounds ``ρ`` on both sides
    (Collatz–Wielandt); for a self-adjoint ``𝒜`` the Rayleigh quotient
    ``1 − ⟨X, C⟩ / ⟨X, X⟩`` is also a lower bound. So is ``ρ(Ā)²``:
    ``𝒜 − Ā⊗Ā = Σ p_i (A_i − Ā) ⊗ (A_i − Ā)`` is positive too.
    """
    scale = float(np.abs(C).max())  # the bounds do not change when X and C are scaled together
    X, C = X / scale, C / scale
    try:
        lam = scipy.linalg.eigh(C, X, eigvals_only=True)
    except np.linalg.LinAlgError:
        return None
    lower = max(1.0 - float(lam.max()), rho_mean**2)
    if symmetric:
        lower = max(lower, 1.0 - float(np.vdot(X, C) / np.vdot(X, X)))
    return lower, 1.0 - float(lam.min())


def _offsets_vanish(op: LowRankSecondMoment, mu: np.ndarray, c: np.ndarray) -> bool:
    """Whether every offset ``c_i = b_i − s_i U_i V_iᵀ μ`` is zero up to its rounding error.

    The rule of the dense path's reachable subspace: an offset counts when it
    exceeds ``RANK_RTOL`` times the size of the terms that form it and 100
    times its rounding error, which includes that of ``μ`` (about
    ``cond(G) d u ‖μ‖``) carried by ``s_i U_i V_iᵀ`` (norm at most
    ``s_i ‖U_i‖_F ‖V_i‖_F``).
    """
    d, u = op.d, np.finfo(float).eps / 2
    images = op.images(mu)
    sizes = np.linalg.norm(op.b, axis=1) + np.linalg.norm(images, axis=1)
    norms = np.abs(op.scale) * np.linalg.norm(op.left, axis=(1, 2)) * np.linalg.norm(op.right, axis=(1, 2))
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        cond = float(np.linalg.cond(op.G))
    noise = (d + 2) * u * sizes + norms * min(cond, 1.0 / u) * d * u * float(np.linalg.norm(mu))
    norm_c = np.linalg.norm(c, axis=1)
    return bool(np.all((norm_c <= RANK_RTOL * sizes) | (norm_c <= 100.0 * noise)))


def solve_low_rank(maps, tol: float, maxiter: int) -> dict:
    """Stationary mean and covariance of a :class:`~contraction.LowRankAffineMaps` family, matrix-free.

    Returns a dict with ``mean``, ``cov``, ``second_moment``, ``residual``
    (of the second-moment equation, relative to its constant term),
    ``covariance_residual`` (of ``Σ = 𝒜(Σ) + Σ p_i c_i c_iᵀ``), ``iterations``,
    ``converged``, ``method`` and ``radius_bounds``. Raises
    :class:`MeanUnstable`, :class:`NegativeCurvature` or
    :class:`NotPositive` when there is no finite covariance on the whole space.
    """
    op = LowRankSecondMoment(maps)
    d = op.d
    eig = np.linalg.eigvalsh(op.Abar) if op.symmetric else np.linalg.eigvals(op.Abar)
    rho_mean = float(np.abs(eig).max())
    if not rho_mean < 1.0 - 10 * d * np.finfo(float).eps:  # a numerically singular I − Ā counts as unstable
        raise MeanUnstable(rho_mean)
    mu = np.linalg.solve(op.G, op.probs @ op.b)
    c = op.offsets(mu)
    C = op.weighted_outer(c, c)
    C = 0.5 * (C + C.T)
    method = "matrix-free " + ("cg" if op.symmetric else "gmres")
    if _offsets_vanish(op, mu, c):  # a common fixed point: a point mass
        C = np.zeros((d, d))
        X, iterations, info = np.zeros((d, d)), 0, 0
        method = "common fixed point"
    else:
        X, iterations, info = op.solve(C, tol, maxiter)
        ev = np.linalg.eigvalsh(X)
        if ev.min() < -PSD_RTOL * max(abs(ev.max()), abs(ev.min())):
            raise NotPositive(float(ev.min() / max(abs(ev.max()), abs(ev.min()))))
    tiny = np.finfo(float).tiny
    LX = op.lhs(X) if np.any(X) else np.zeros((d, d))
    cov_res = float(np.linalg.norm(LX - C) / max(float(np.linalg.norm(C)), tiny))
    # (I − 𝒜)(μμᵀ) = G μμᵀ + μμᵀ Gᵀ − Σ p_i (s_i U_i V_iᵀ μ)(…)ᵀ: no further product with the factors
    z = op.images(mu)
    Gm = np.outer(op.G @ mu, mu)
    S = X + np.outer(mu, mu)
    R = op.source(mu)
    LS = LX + Gm + Gm.T - op.weighted_outer(z, z)
    residual = float(np.linalg.norm(LS - R) / max(float(np.linalg.norm(R)), tiny))
    bounds = _radius_bounds(X, C, op.symmetric, rho_mean) if np.any(C) else None
    return {"mean": mu, "cov": X, "second_moment": S, "residual": residual, "covariance_residual": cov_res,
            "iterations": iterations, "converged": info == 0, "info": info, "method": method,
            "radius_bounds": bounds, "matvecs": op.matvecs}


def low_rank_moments_at_step(maps, theta0: np.ndarray, n: int):
    """Mean and covariance of ``θ_n`` from ``θ_0`` for a low-rank family; ``None`` when they overflow.

    ``μ_n = μ_{n−1} − G μ_{n−1} + b̄`` and ``Σ_n = 𝒜(Σ_{n−1}) + Σ p_i e_i e_iᵀ``
    with ``e_i = T_i(μ_{n−1}) − μ_n``; each step ``O(m r d²)``. Stops early
    at a fixed point in floating point. Returns ``(mean, cov, step)`` where
    ``step`` is the step at which an overflow happened (0 when none).
    """
    op = LowRankSecondMoment(maps)
    bbar = op.probs @ op.b
    mu, cov = theta0.copy(), np.zeros((op.d, op.d))
    with np.errstate(over="ignore", invalid="ignore"):
        for step in range(1, n + 1):
            images = mu[None, :] - op.images(mu) + op.b  # T_i(μ_{n−1})
            mu_next = mu - op.G @ mu + bbar
            e = images - mu_next
            cov_next = (op.apply(cov) if np.any(cov) else cov) + op.weighted_outer(e, e)
            cov_next = 0.5 * (cov_next + cov_next.T)
            if not (np.all(np.isfinite(cov_next)) and np.all(np.isfinite(mu_next))):
                return mu, cov, step
            if np.array_equal(cov_next, cov) and np.array_equal(mu_next, mu):
                break
            mu, cov = mu_next, cov_next
    return mu, cov, 0
