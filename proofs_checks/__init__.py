"""One check per numbered claim of the specification (C1–C15).

Each module ``cNN_*.py`` defines ``check(quick=False, **ingredients) ->
CheckResult``. Ingredients (the functions a check relies on) can be replaced
by keyword, which is how the tests show that every check can fail.

``python -m proofs_checks`` and ``contraction verify`` run them all.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
import textwrap
import traceback

from ._base import KINDS, CheckResult, Timer, evaluate, make_result

__all__ = ["CLAIMS", "KINDS", "CheckResult", "Timer", "describe_value", "format_table", "main", "make_result",
           "run_all", "run_check", "select_claims"]

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
    "C14": "c14_ou_approximation",
    "C15": "c15_heavy_tail_phase",
}


def load(claim: str):
    """The check module of ``claim`` (``None`` if it does not exist yet)."""
    try:
        return importlib.import_module(f"{__name__}.{CLAIMS[claim]}")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.endswith(CLAIMS[claim]):
            return None
        raise


def _described(result: CheckResult, module) -> CheckResult:
    """``result`` with ``kind`` and ``measures`` taken from the check module's ``KIND`` and ``MEASURES``."""
    return dataclasses.replace(result, kind=getattr(module, "KIND", None), measures=getattr(module, "MEASURES", None))


def run_check(claim: str, quick: bool = False) -> CheckResult:
    """Run one claim's check; an exception becomes a failed result that says why.

    The result's ``kind`` and ``measures`` (what its numerical value is) come
    from the module constants ``KIND`` and ``MEASURES``.
    """
    module = load(claim)
    if module is None:
        return CheckResult(claim, "no check implemented", float("nan"), float("nan"), "==", 0.0,
                           False, 0.0, {"error": "missing check module"})
    with Timer() as t:
        try:
            return _described(module.check(quick=quick), module)
        except Exception as exc:  # noqa: BLE001 -- any failure of a check is reported as a failed claim
            err = f"{type(exc).__name__}: {exc}"
            tb = traceback.format_exc(limit=3)
    return _described(CheckResult(claim, getattr(module, "STATEMENT", ""), float("nan"), float("nan"), "==", 0.0,
                                  False, t.seconds, {"error": err, "traceback": tb}), module)


def select_claims(only=None) -> list[str]:
    """The claim ids to run: all of :data:`CLAIMS` by default, else ``only`` in its order, each once.

    Ids are case-insensitive (``c7`` is ``C7``); an unknown id is a ``ValueError`` naming ``only``.
    """
    if not only:
        return list(CLAIMS)
    chosen = []
    for c in only:
        key = str(c).strip().upper()
        if key not in CLAIMS:
            raise ValueError(f"only: expected claim ids among {', '.join(CLAIMS)}, got {str(c)!r}")
        if key not in chosen:
            chosen.append(key)
    return chosen


def run_all(quick: bool = False, only=None, progress=None) -> list[CheckResult]:
    """Run the checks of :func:`select_claims` ``(only)`` in order; ``progress(result)`` after each."""
    results = []
    for c in select_claims(only):
        r = run_check(c, quick=quick)
        results.append(r)
        if progress is not None:
            progress(r)
    return results


def _fmt(x: float) -> str:
    return "-" if x != x else f"{x:.4g}"


# relation -> (how a passing value reads, how a failing one reads)
_READS = {"<=": ("<=", ">"), ">=": (">=", "<"), "p>=": (">=", "<"), "==": ("=", "≠")}


def describe_value(result: CheckResult) -> str:
    """The numerical value against the theory, written so that it reads true exactly when the relation holds.

    ``"|z| = 2.16 <= 4"`` (a z-score), ``"p = 0.41 >= 0.001"`` (a p-value),
    ``"3.02 = 3 ± 0.2"`` (equality within a tolerance), ``"0.93 <= 1"`` (a bound).
    """
    v, t, tol, rel = result.numerical, result.theoretical, result.tolerance, result.relation
    if v != v:
        return "no value"
    holds = evaluate(v, t, rel, tol) if rel in _READS else False
    sign = _READS.get(rel, (rel, "not " + rel))[0 if holds else 1]
    if rel == "==" and result.kind == "z-score" and t == 0:
        return f"|z| = {_fmt(abs(v))} {'<=' if holds else '>'} {_fmt(tol)}"
    if rel == "p>=":
        return f"p = {_fmt(v)} {sign} {_fmt(t)}"
    if rel == "==":
        return f"{_fmt(v)} {sign} {_fmt(t)}" + (f" ± {_fmt(tol)}" if tol else "")
    bound = t + tol if rel == "<=" else t - tol if rel == ">=" else t
    return f"{_fmt(v)} {sign} {_fmt(bound)}"


def _wrapped(label: str, text: str, width: int) -> list[str]:
    indent = " " * 7
    return textwrap.wrap(str(text), width, initial_indent=f"{indent}{label}: ",
                         subsequent_indent=indent + " " * (len(label) + 2), break_on_hyphens=False) or [indent + label]


def format_table(results, verbose: bool = False, width: int = 100) -> str:
    """A plain-text table, at most ``width`` columns: claim, result, kind of value, value against theory, seconds.

    With ``verbose``, each claim's statement and what its value measures follow its row, wrapped.
    A failed claim says why: the error, or the extra conditions that do not hold.
    """
    header = f"{'claim':<5}  {'result':<6}  {'kind':<11}  {'value against theory':<38}  {'seconds':>7}"
    lines = [header, "-" * len(header)]
    for r in results:
        status = "PASS" if r.passed else "FAIL"
        kind = r.kind or "-"
        lines.append(f"{r.claim:<5}  {status:<6}  {kind:<11}  {describe_value(r):<38}  {r.seconds:7.1f}")
        if verbose:
            lines += _wrapped("claim", r.statement, width)
            if r.measures:
                lines += _wrapped("value", r.measures, width)
        if "error" in r.details:
            lines += _wrapped("error", r.details["error"], width)
        failing = [name for name, ok in r.details.get("extra_conditions", {}).items() if not ok]
        if failing:
            lines += _wrapped("does not hold", "; ".join(failing), width)
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
        Arguments (``--quick``, ``--only C1 C7``, ``--fail-fast``, ``--verbose``); ``sys.argv[1:]`` when omitted.
        ``contraction verify`` runs the same checks and can also write JSON and figures.

    Returns
    -------
    int
        0 when every claim run passed, 1 when one failed, 2 for a usage error, 130 when interrupted.
    """
    parser = argparse.ArgumentParser(prog="python -m proofs_checks",
                                     description="Run the theorem checks C1-C15 and print a table.")
    parser.add_argument("--quick", action="store_true", help="smaller samples")
    parser.add_argument("--only", nargs="+", metavar="CLAIM", help="run only these claims (e.g. C1 C7)")
    parser.add_argument("--fail-fast", action="store_true", help="stop at the first claim that fails")
    parser.add_argument("--verbose", action="store_true", help="print each claim's statement and what its value is")
    args = parser.parse_args(argv)
    try:
        claims = select_claims(args.only)
    except ValueError as exc:
        print(f"python -m proofs_checks: error: --{exc}", file=sys.stderr)
        return 2
    failed = []

    def stop_at_failure(result):
        if args.fail_fast and not result.passed:
            failed.append(result)
            raise _FirstFailure

    try:
        results = run_all(quick=args.quick, only=claims, progress=stop_at_failure)
    except _FirstFailure:
        results = failed
    except KeyboardInterrupt:
        print("python -m proofs_checks: interrupted", file=sys.stderr)
        return 130
    print(format_table(results, verbose=args.verbose))
    return 0 if all(r.passed for r in results) else 1
