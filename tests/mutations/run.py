"""Mutation harness: deliberate errors in the mathematics must be caught.

Each mutant replaces one exact piece of source text by a wrong one, in a
fresh copy of the repository, and runs either the test suite (``--target
suite``: the pytest files named by the mutant, which are part of the default
suite) or the theorem checks (``--target verify``: ``python -m proofs_checks
--quick``). A mutant is *killed* when the target fails, *survives* when it
passes, is *stale* when its source text is no longer found (the code moved:
update the mutant, never count it as killed), and *invalid* when the same
selection already fails on the unmutated code (checked once per selection).

Usage::

    python tests/mutations/run.py                 # every mutant against the suite
    python tests/mutations/run.py --target verify # every mutant against contraction verify --quick
    python tests/mutations/run.py --only bound_no_1_minus_c --keep

The catalogue is ``tests/mutations/catalogue.py``. Exit status 0 when every
mutant is killed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

from catalogue import MUTANTS, Mutant  # noqa: E402

COPIED = ("contraction", "proofs_checks", "tests", "notebooks", "setup.cfg", "pyproject.toml")


def _copy_tree(dest: pathlib.Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", ".pytest_cache", "mutations")
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, dest / name)


def apply(mutant: Mutant, root: pathlib.Path) -> bool:
    """Apply the mutant to the copy at ``root``; False when its text is not found exactly once."""
    path = root / mutant.path
    if not path.exists():
        return False
    text = path.read_text(encoding="utf-8")
    if text.count(mutant.old) != 1:
        return False
    path.write_text(text.replace(mutant.old, mutant.new), encoding="utf-8")
    return True


def _command(mutant: Mutant, target: str) -> list[str]:
    if target == "verify":
        return [sys.executable, "-m", "proofs_checks", "--quick", "--fail-fast"]
    tests = list(mutant.tests)
    return [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", "slow or not slow", *tests]


_BASELINE: dict[tuple, bool] = {}


def baseline_passes(mutant: Mutant, target: str, timeout: float = 900) -> bool:
    """The same selection passes on the unmutated code (cached per selection), so a kill means something."""
    key = (target, mutant.tests if target == "suite" else ())
    if key not in _BASELINE:
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg")
        res = subprocess.run(_command(mutant, target), cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=timeout)
        _BASELINE[key] = res.returncode == 0
    return _BASELINE[key]


def run_one(mutant: Mutant, target: str, keep: bool = False, timeout: float = 900) -> tuple[str, float, str]:
    """Run one mutant; returns (status, seconds, last output lines)."""
    if not baseline_passes(mutant, target, timeout):
        return "invalid", 0.0, "the selection fails without the mutation: fix the suite first"
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f"mutant-{mutant.name}-"))
    try:
        _copy_tree(tmp)
        if not apply(mutant, tmp):
            return "stale", 0.0, f"text not found exactly once in {mutant.path}"
        env = dict(os.environ, PYTHONPATH=str(tmp), PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg")
        t0 = time.perf_counter()
        try:
            res = subprocess.run(_command(mutant, target), cwd=tmp, env=env, capture_output=True, text=True,
                                 timeout=timeout)
            status = "killed" if res.returncode != 0 else "survived"
            tail = "\n".join((res.stdout + res.stderr).strip().splitlines()[-3:])
        except subprocess.TimeoutExpired:
            status, tail = "killed", f"timed out after {timeout:.0f} s"
        return status, time.perf_counter() - t0, tail
    finally:
        if keep:
            print(f"  kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=("suite", "verify"), default="suite",
                        help="what must catch the mutants (default: suite)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these mutants")
    parser.add_argument("--kind", choices=("library", "check"), help="only library or only check mutants")
    parser.add_argument("--keep", action="store_true", help="keep the mutated copies")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args(argv)
    mutants = [m for m in MUTANTS if (not args.only or m.name in args.only) and (not args.kind or m.kind == args.kind)]
    if args.only and len(mutants) != len(set(args.only)):
        known = {m.name for m in MUTANTS}
        parser.error(f"--only: unknown mutants {sorted(set(args.only) - known)}")
    if args.list:
        for m in mutants:
            print(f"{m.name:<36} {m.kind:<8} {m.path}  ({m.why})")
        return 0
    if args.target == "verify":
        mutants = [m for m in mutants if m.claim_relies]
    counts = {"killed": 0, "survived": 0, "stale": 0, "invalid": 0}
    print(f"{len(mutants)} mutants against the {args.target}", flush=True)
    for m in mutants:
        status, seconds, tail = run_one(m, args.target, keep=args.keep)
        counts[status] += 1
        print(f"{status:<8} {seconds:6.1f} s  {m.name:<36} {m.why}", flush=True)
        if status != "killed":
            print("         " + tail.replace("\n", "\n         "), flush=True)
    total = sum(counts.values())
    score = counts["killed"] / total if total else float("nan")
    print(f"score: {counts['killed']}/{total} killed ({100 * score:.0f} %), {counts['survived']} survived, "
          f"{counts['stale']} stale, {counts['invalid']} invalid (baseline fails)")
    return 0 if counts["killed"] == total else 1


if __name__ == "__main__":
    sys.exit(main())
