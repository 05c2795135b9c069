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
]
