"""The catalogue of deliberate errors run by ``tests/mutations/run.py``.

Each mutant is one exact text replacement in one file. ``tests`` holds the
pytest arguments (test files, ``-k`` expressions) that select the part of the
suite expected to catch it; the harness runs them with slow cases included.
``claim_relies`` marks mutants of a function a claim of SPEC.md relies on:
``contraction verify`` must catch those too.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    name: str
    kind: str  # "library" or "check"
    path: str
    old: str
    new: str
    why: str
    tests: tuple[str, ...]
    claim_relies: bool = True


CHECKS = "tests/test_checks.py"
CORE = ("tests/test_iterates.py", "tests/test_core.py", "tests/test_determinism.py", "tests/test_approximations.py")
# The engines' mutants: the core tests and every kernel regime.
CORE_AND_REGIMES = (*CORE, "tests/test_kernel_regimes.py")
MODELS = ("tests/test_core.py", "tests/test_theory.py", "tests/test_theory_pins.py")
APPROX = ("tests/test_approximations.py", "tests/test_approximation_pins.py")
THEORY = ("tests/test_theory.py", "tests/test_existence.py", "tests/test_certified.py", "tests/test_theory_pins.py")

MUTANTS: list[Mutant] = [
    # --- theorem checks: a loosened tolerance or a wrong theory value -------------------------------
    Mutant("c03_tolerance_x100", "check", "proofs_checks/c03_forward_no_pointwise.py",
           '"C3", STATEMENT, mc, exact, "==", 4 * se,', '"C3", STATEMENT, mc, exact, "==", 400 * se,',
           "C3 tolerance 100 times too loose", (CHECKS, "-k", "c03"), False),
    Mutant("c07_tolerance_x100", "check", "proofs_checks/c07_exact_moments.py",
           '"C7", STATEMENT, zmax, 0.0, "==", 4.0,', '"C7", STATEMENT, zmax, 0.0, "==", 400.0,',
           "C7 z-score tolerance 100 times too loose", (CHECKS, "-k", "c07"), False),
    Mutant("c08_tolerance_x100", "check", "proofs_checks/c08_average_contraction.py",
           '"C8", STATEMENT, float(np.abs(z).max()), 0.0, "==", 4.0,',
           '"C8", STATEMENT, float(np.abs(z).max()), 0.0, "==", 400.0,',
           "C8 z-score tolerance 100 times too loose", (CHECKS, "-k", "c08"), False),
    Mutant("c04_alpha_zero", "check", "proofs_checks/c04_equality_in_law.py",
           "ALPHA = 1e-3", "ALPHA = 0.0", "C4 significance level 0: every p-value passes",
           (CHECKS, "-k", "c04"), False),
    Mutant("c05_alpha_zero", "check", "proofs_checks/c05_letac.py",
           "ALPHA = 1e-3", "ALPHA = 0.0", "C5 significance level 0: every p-value passes",
           (CHECKS, "-k", "c05"), False),
    Mutant("c13_tolerance_x100", "check", "proofs_checks/c13_neural_networks.py",
           '"C13", statement, float(np.abs(z).max()), 0.0, "==", 4.0,',
           '"C13", statement, float(np.abs(z).max()), 0.0, "==", 400.0,',
           "C13 z-score tolerance 100 times too loose", (CHECKS, "-k", "c13"), False),
    Mutant("c12_wrong_variance_theory", "check", "proofs_checks/c12_examples.py",
           "ct.stationary_moments(maps).cov[0, 0] - h / (2 - h)",
           "ct.stationary_moments(maps).cov[0, 0] - h / (2 + h)",
           "C12 wrong theoretical variance h/(2+h) for E1", (CHECKS, "-k", "c12"), False),
    # --- networks -------------------------------------------------------------------------------
    Mutant("hvp_drops_second_derivative", "library", "contraction/nn/_passes.py",
           "Rdelta = Rdprev * d1 + dprev * d2 * Rpre[layer - 1]", "Rdelta = Rdprev * d1",
           "Hessian-vector product without the σ'' term", ("tests/test_nn.py",)),
    Mutant("tanh_second_derivative_sign", "library", "contraction/nn/_activations.py",
           "return d1, -2.0 * a * d1", "return d1, 2.0 * a * d1",
           "tanh'' with the wrong sign", ("tests/test_nn.py",)),
    Mutant("softplus_second_derivative", "library", "contraction/nn/_activations.py",
           "return s, s * (1.0 - s)", "return s, s",
           "softplus'' = σ instead of σ(1 − σ)", ("tests/test_nn.py",)),
    Mutant("hvp_weight_decay_on_theta", "library", "contraction/nn/_passes.py",
           "out += weight_decay * v", "out += 2 * weight_decay * v",
           "weight decay term of the hvp doubled", ("tests/test_nn.py",)),
    # --- theory --------------------------------------------------------------------------------
    Mutant("moments_at_step_transposed", "library", "contraction/theory/moments.py",
           'S_next = np.einsum("m,mij,jk,mlk->il", p, A, S, A, optimize=path)',
           'S_next = np.einsum("m,mji,jk,mkl->il", p, A, S, A, optimize=path)',
           "finite-n second moment with AᵀSA instead of ASAᵀ", THEORY),
    Mutant("distance_AQAt", "library", "contraction/theory/moments.py",
           'Q_next = np.einsum("m,mji,jk,mkl->il", maps.probs, maps.A, Q, maps.A, optimize=path)',
           'Q_next = np.einsum("m,mij,jk,mlk->il", maps.probs, maps.A, Q, maps.A, optimize=path)',
           "backward distance recursion A Q Aᵀ instead of Aᵀ Q A", THEORY),
    Mutant("bound_without_1_minus_c", "library", "contraction/theory/fixed_point.py",
           "return G / (1.0 - c_up) * _GROW * _GROW", "return G * _GROW * _GROW",
           "certified bound without the factor 1/(1 − c)", THEORY),
    Mutant("bound_c_power_n_plus_1", "library", "contraction/theory/fixed_point.py",
           "c_up**n * _GROW", "c_up**(n + 1) * _GROW",
           "certified bound with c^(n+1) instead of c^n", THEORY),
    Mutant("kronecker_wrong_factor", "library", "contraction/theory/diagnostics.py",
           '"m,mij,mkl->ikjl", maps.probs, maps.A, maps.A', '"m,mij,mlk->ikjl", maps.probs, maps.A, maps.A',
           "mean-square operator Σ p A ⊗ Aᵀ instead of A ⊗ A", THEORY),
    Mutant("second_moment_cross_term_half", "library", "contraction/theory/moments.py",
           'return R + R.T + np.einsum("m,mi,mj->ij", p, b, b)', 'return R + np.einsum("m,mi,mj->ij", p, b, b)',
           "second-moment source without the transposed cross term", THEORY),
    Mutant("covariance_ignores_probs", "library", "contraction/theory/moments.py",
           'C = np.einsum("m,mi,mj->ij", reduced.probs, reduced.b, reduced.b)',
           'C = np.einsum("mi,mj->ij", reduced.b, reduced.b) / reduced.n_maps',
           "stationary covariance source ignores the probabilities", THEORY),
    Mutant("lyapunov_1d_ignores_probs", "library", "contraction/theory/diagnostics.py",
           "gamma = float(np.sum(maps.probs[pos] * logs[pos]))", "gamma = float(np.mean(logs[pos]))",
           "exact 1-D Lyapunov exponent ignores the probabilities", THEORY),
    Mutant("increment_without_cross_term", "library", "contraction/theory/moments.py",
           'cross = 2 * np.einsum("mi,mij,j->m", maps.b, B, mom.mean)',
           'cross = 0 * np.einsum("mi,mij,j->m", maps.b, B, mom.mean)',
           "stationary mean squared increment without the cross term", THEORY),
    # --- core ----------------------------------------------------------------------------------
    Mutant("backward_scan_order_swapped", "library", "contraction/core/_scan.py",
           "Rt = np.matmul(ends[:, b], Rt)", "Rt = np.matmul(Rt, ends[:, b])",
           "backward blocks joined in the forward order", CORE),
    Mutant("maps_A_transposed", "library", "contraction/core/maps.py",
           "E[:, :d, :d] = self.A", "E[:, :d, :d] = np.swapaxes(self.A, 1, 2)",
           "Aᵀ for A in the augmented maps every engine uses", CORE),
    Mutant("maps_missing_b", "library", "contraction/core/maps.py",
           "E[:, :d, d] = self.b", "E[:, :d, d] = 0.0",
           "offsets b dropped from the augmented maps", CORE),
    Mutant("grouped_forward_wrong_batch", "library", "contraction/core/_rows.py",
           "np.matmul(self.X[starts[i]:starts[i + 1]], self.M[i], out=self.Y[starts[i]:starts[i + 1], :self.k])",
           "np.matmul(self.X[starts[i]:starts[i + 1]], self.M[(i + 1) % self.m], "
           "out=self.Y[starts[i]:starts[i + 1], :self.k])",
           "rows grouped by map get the next map's product", CORE_AND_REGIMES),
    Mutant("diagonal_backward_carry_dropped", "library", "contraction/core/_diagonal.py",
           "np.add(q, W[0], out=W[0])", "np.add(0.0 * q, W[0], out=W[0])",
           "diagonal backward offsets not carried from one chunk of steps to the next",
           CORE_AND_REGIMES),
    Mutant("all_maps_wrong_block", "library", "contraction/core/_rows.py",
           "np.add(self.base, row_letters, out=self.pick[:n])",
           "np.add(self.base, (row_letters + 1) % self.m, out=self.pick[:n])",
           "rows against all maps read the next map's block", CORE_AND_REGIMES),
    Mutant("word_products_reversed", "library", "contraction/core/_scan.py",
           "tables.append(np.matmul(Et[None], tables[-1][:, None]).reshape(-1, D, D))",
           "tables.append(np.matmul(tables[-1][:, None], Et[None]).reshape(-1, D, D))",
           "the backward scan's words composed right to left", CORE_AND_REGIMES),
    Mutant("word_carry_not_advanced", "library", "contraction/core/_scan.py",
           "            np.matmul(G, H[:, s:], out=spare)\n            H, spare = spare, H\n",
           "            np.matmul(G, H[:, s:], out=spare)\n            H[:, :s] = spare[:, :s]\n",
           "the backward scan reads each word's iterates but never advances the carried product",
           CORE_AND_REGIMES),
    Mutant("diagonal_words_offsets_dropped", "library", "contraction/core/_diagonal.py",
           "        nB += b_[None, :, None, :]\n", "",
           "diagonal forward words compose the slopes but drop every offset after the first map",
           CORE_AND_REGIMES),
    Mutant("diagonal_words_prefix_misread", "library", "contraction/core/_diagonal.py",
           "write_rows(out[:, pos:pos + keep.size], Y[:, :keep.size] if keep[-1] + 1 == keep.size else Y[:, keep])",
           "write_rows(out[:, pos:pos + keep.size], Y[:, ::-1][:, :keep.size] if keep[-1] + 1 == keep.size "
           "else Y[:, ::-1][:, keep])",
           "diagonal words write their steps in reverse order", CORE_AND_REGIMES),
    Mutant("diagonal_backward_words_offsets_not_carried", "library", "contraction/core/_diagonal.py",
           "                np.multiply(P, H, out=H)\n                q += H\n",
           "                np.multiply(P, H, out=H)\n                q += 0.0 * H\n",
           "diagonal backward words never carry the offsets from one word to the next",
           CORE_AND_REGIMES),
    Mutant("one_stream_for_every_chain", "library", "contraction/core/sampling.py",
           "draw_batches(gen.spawn(stop - start), m, n, scheme, probs, out=out[start:stop])",
           "draw_batches([np.random.Generator(np.random.PCG64(0)) for _ in range(stop - start)], m, n, scheme, "
           "probs, out=out[start:stop])",
           "every chain draws from the same stream", CORE),
    Mutant("reshuffle_with_replacement", "library", "contraction/core/sampling.py",
           "out[c] = g.permuted(base, axis=1).ravel()[:n_steps]", "out[c] = g.integers(0, m, size=base.size)[:n_steps]",
           "random reshuffling drawn with replacement", CORE),
    Mutant("sampling_ignores_probs", "library", "contraction/core/sampling.py",
           "cdf = check_probs(probs, m).cumsum()", "cdf = check_probs(None, m).cumsum()",
           "i.i.d. batches drawn uniformly whatever the probabilities", CORE),
    # --- symbolic layer --------------------------------------------------------------------------
    Mutant("bracket_sign", "library", "contraction/lie/_calculus.py",
           "_jacobian(Y, syms) * X - _jacobian(X, syms) * Y", "_jacobian(X, syms) * Y - _jacobian(Y, syms) * X",
           "Lie bracket with the wrong sign", ("tests/test_lie_brackets.py", "tests/test_lie_checks.py")),
    Mutant("regulariser_coefficient_doubled", "library", "contraction/lie/_regulariser.py",
           "return ImplicitRegulariser(m, kappa_value * h,", "return ImplicitRegulariser(m, 2 * kappa_value * h,",
           "implicit regulariser coefficient h/(2m) instead of h/(4m)",
           ("tests/test_lie_regulariser.py", "tests/test_lie_checks.py")),
    # --- models, moments, diagnostics, laws, approximations -------------------------------------
    Mutant("regression_hessian_not_averaged", "library", "contraction/core/models.py",
           'np.einsum("mki,mkj->mij", self._Xb, self._Xb) / b, "X"',
           'np.einsum("mki,mkj->mij", self._Xb, self._Xb), "X"',
           "batch Hessian X_BᵀX_B without the 1/|B|", MODELS),
    Mutant("regression_low_rank_scale_not_averaged", "library", "contraction/core/models.py",
           'np.full(m, h / b), "lr"', 'np.full(m, h), "lr"',
           "low-rank least-squares maps I − h X_BᵀX_B without the 1/|B|", (*MODELS, "tests/test_lowrank.py")),
    Mutant("regression_offset_sign", "library", "contraction/core/models.py",
           'np.einsum("mki,mk->mi", Xb, yb) / b, "y"', '-np.einsum("mki,mk->mi", Xb, yb) / b, "y"',
           "linear term X_Bᵀy_B with the wrong sign", MODELS),
    Mutant("quadratic_offset_halved", "library", "contraction/core/models.py",
           'np.einsum("mij,mj->mi", H, c), "centers"', 'np.einsum("mij,mj->mi", H, c) * 0.5, "centers"',
           "linear term of a quadratic halved (b_i = h H_i c_i / 2)", MODELS),
    Mutant("stationary_mean_sign", "library", "contraction/theory/moments.py",
           "return np.linalg.solve(np.eye(maps.dim) - Abar, bbar)\n",
           "return np.linalg.solve(np.eye(maps.dim) + Abar, bbar)\n",
           "stationary mean (I + Ā)^{-1} b̄", THEORY),
    Mutant("contraction_constant_mean_norm", "library", "contraction/theory/diagnostics.py",
           "return float(np.linalg.norm(maps.A, 2, axis=(1, 2)).max())",
           "return float(np.linalg.norm(maps.A, 2, axis=(1, 2)).mean())",
           "contraction constant as the mean instead of the largest Lipschitz constant", THEORY),
    Mutant("hill_off_by_one", "library", "contraction/theory/laws.py",
           "total = float(np.sum(np.log(x[:k] / x[k])))", "total = float(np.sum(np.log(x[:k] / x[k + 1])))",
           "Hill estimator against the (k+1)-th order statistic", ("tests/test_theory.py",)),
    Mutant("bracket_correction_sign", "library", "contraction/approximations.py",
           "correction = hv[:, 0] - hv[:, 1:].sum(axis=1)", "correction = hv[:, 1:].sum(axis=1) - hv[:, 0]",
           "bracket-corrected step with the bracket's sign flipped", APPROX),
    Mutant("window_anchor_not_refreshed", "library", "contraction/approximations.py",
           "        anchor = vals[:, -1]\n", "        anchor = anchor\n",
           "anchored window never refreshes its anchor", APPROX),
]
