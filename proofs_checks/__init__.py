"""One check per numbered claim of the specification (C1–C13).

Each module ``cNN_*.py`` defines ``check(quick=False, **ingredients) ->
CheckResult``. Ingredients (the functions a check relies on) can be replaced
by keyword, which is how the tests show that every check can fail.

``python -m proofs_checks`` and ``contraction verify`` run them all.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from ._base import CheckResult, Timer, make_result

__all__ = ["CLAIMS", "CheckResult", "Timer", "format_table", "main", "make_result", "run_all", "run_check"]

# claim id -> module name; all claims of SPEC.md §3 in order.
CLAIMS = {
    "C1": "c01_backward_contraction",
    "C2": "c02_forgetting",
    "C3": "c03_forward_no_pointwise",
    "C4": "c04_equality_in_law",
    "C5": "c05_letac",
    "C6": "c06_geometric_in_law",
    "C7": "c07_exact_moments",
    "C8": "c08_average_contraction",
    "C9": "c09_lie_bracket",
    "C10": "c10_order_symmetry",
    "C11": "c11_practical",
    "C12": "c12_examples",
    "C13": "c13_neural_networks",
}


def load(claim: str):
    """The check module of ``claim`` (``None`` if it does not exist yet)."""
    try:
        return importlib.import_module(f"{__name__}.{CLAIMS[claim]}")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.endswith(CLAIMS[claim]):
            return None
        raise


def run_check(claim: str, quick: bool = False) -> CheckResult:
    """Run one claim's check; an exception becomes a failed result that says why."""
    module = load(claim)
    if module is None:
        return CheckResult(claim, "no check implemented", float("nan"), float("nan"), "==", 0.0,
                           False, 0.0, {"error": "missing check module"})
    with Timer() as t:
        try:
            return module.check(quick=quick)
        except Exception as exc:  # noqa: BLE001 -- any failure of a check is reported as a failed claim
            err = f"{type(exc).__name__}: {exc}"
            tb = traceback.format_exc(limit=3)
    return CheckResult(claim, getattr(module, "STATEMENT", ""), float("nan"), float("nan"), "==", 0.0,
                       False, t.seconds, {"error": err, "traceback": tb})


def run_all(quick: bool = False, only=None, progress=None) -> list[CheckResult]:
    claims = list(CLAIMS) if not only else [c.upper() for c in only]
    for c in claims:
        if c not in CLAIMS:
            raise ValueError(f"only: expected claim ids among {list(CLAIMS)}, got {c!r}")
    results = []
    for c in claims:
        r = run_check(c, quick=quick)
        results.append(r)
        if progress is not None:
            progress(r)
    return results


def _fmt(x: float) -> str:
    if x != x:  # nan
        return "-"
    return f"{x:.4g}"


def format_table(results) -> str:
    """A plain-text table: claim, relation, numerical, theoretical, tolerance, result, time."""
    header = f"{'claim':<5} {'result':<6} {'numerical':>11} {'rel':>4} {'theory':>11} {'tol':>9} {'s':>6}  statement"
    lines = [header, "-" * len(header)]
    for r in results:
        status = "PASS" if r.passed else "FAIL"
        stmt = r.statement if len(r.statement) <= 70 else r.statement[:67] + "..."
        lines.append(
            f"{r.claim:<5} {status:<6} {_fmt(r.numerical):>11} {r.relation:>4} {_fmt(r.theoretical):>11} "
            f"{_fmt(r.tolerance):>9} {r.seconds:6.1f}  {stmt}"
        )
        if "error" in r.details:
            lines.append(f"      error: {r.details['error']}")
    n_pass = sum(r.passed for r in results)
    lines.append(f"{n_pass} passed, {len(results) - n_pass} failed")
    return "\n".join(lines)


class _FirstFailure(Exception):
    """Raised by ``--fail-fast`` to stop after the first failed claim."""


def main(argv=None) -> int:
    """Run the checks from the command line (``python -m proofs_checks``); exit status 1 if a claim fails.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (``--quick``, ``--only C1 C7``, ``--fail-fast``); ``sys.argv[1:]`` when omitted.
        ``contraction verify`` runs the same checks and can also write JSON and figures.

    Returns
    -------
    int
        0 when every claim run passed, 1 when one failed, 2 for a usage error.
    """
    parser = argparse.ArgumentParser(prog="python -m proofs_checks",
                                     description="Run the theorem checks C1-C13 and print a table.")
    parser.add_argument("--quick", action="store_true", help="smaller samples")
    parser.add_argument("--only", nargs="+", metavar="CLAIM", help="run only these claims (e.g. C1 C7)")
    parser.add_argument("--fail-fast", action="store_true", help="stop at the first claim that fails")
    args = parser.parse_args(argv)
    failed = []

    def stop_at_failure(result):
        if args.fail_fast and not result.passed:
            failed.append(result)
            raise _FirstFailure

    try:
        results = run_all(quick=args.quick, only=args.only, progress=stop_at_failure)
    except _FirstFailure:
        results = failed
    except ValueError as exc:
        print(f"python -m proofs_checks: error: --{exc}", file=sys.stderr)
        return 2
    print(format_table(results))
    return 0 if all(r.passed for r in results) else 1
