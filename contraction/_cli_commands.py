"""The sub-commands of ``contraction``: ``compare``, ``verify``, ``reproduce``, ``experiment nn`` and ``sweep``.

Each takes the parsed arguments and the :class:`~contraction._cli_support.OutputPaths`
of the run, checks its output paths before any work starts, prints its result
on stdout (progress and ``wrote`` lines on stderr) and returns the exit status.
"""

from __future__ import annotations

import math
import os
import sys
import textwrap

import proofs_checks

from . import __version__
from ._cli_support import (
    RunFailed,
    StageProgress,
    UsageError,
    flag_message,
    note,
    plain,
    progress_bar,
    terminate_like_interrupt,
)
from .core._io import hold_folder, write_json_atomic
from .core._validation import DivergenceError
from .core.iterates import backward_iterates, forward_iterates
from .core.sampling import sample_batches
from .experiments import run_nn_experiment
from .figures import FIGURE_SEED, FIGURES, write_experiment_figures, write_figures
from .sweeps import SpecError, read_spec
from .sweeps import sweep as run_sweep
from .theory.diagnostics import contraction_constant, max_stable_lr
from .theory.examples import two_point_quadratic

#: Version of the layout of ``verify --json`` (docs/verify.schema.json).
SCHEMA_VERSION = 1
WIDTH = 100


# --- compare --------------------------------------------------------------------------------------
def compare(args, outputs) -> int:
    """Print forward and backward iterates of the two-point quadratic; exit status 1 when they cannot settle."""
    model = two_point_quadratic()
    maps = model.sgd_maps(args.lr)
    c = contraction_constant(maps)
    limit = max_stable_lr(model).contraction
    idx = sample_batches(2, args.steps, rng=args.seed)
    try:
        fwd = forward_iterates(maps, [0.0], idx)[0, :, 0]
        bwd = backward_iterates(maps, [0.0], idx)[0, :, 0]
    except DivergenceError as exc:
        raise DivergenceError(f"{exc} The maps contract for --lr below {limit:g}.") from None
    print(f"two-point quadratic f±(θ) = ½(θ ∓ 1)², lr = {args.lr:g}, seed = {args.seed}")
    print(f"{'n':>5} {'batch':>5} {'forward θ_n':>14} {'backward θ̃_n':>14} {'|θ̃_n − θ̃_{n−1}|':>18}")
    for n in range(args.steps + 1):
        inc = abs(bwd[n] - bwd[n - 1]) if n else float("nan")
        batch = "+" if n and idx[0, n - 1] == 0 else ("-" if n else "")
        print(f"{n:5d} {batch:>5} {fwd[n]:14.8f} {bwd[n]:14.8f} {inc:18.3e}")
    if c >= 1:
        sys.stdout.flush()
        raise RunFailed(f"--lr: the maps do not contract at lr {args.lr:g} (c = {c:.4g} >= 1), so the iterates "
                        f"above {'grow' if c > 1 else 'do not settle'}; they settle for --lr below {limit:g}")
    return 0


# --- verify ---------------------------------------------------------------------------------------
def verify_document(results, *, quick: bool, only) -> dict:
    """The JSON written by ``verify --json`` (layout: docs/verify.schema.json)."""
    passed = sum(bool(r.passed) for r in results)
    return {
        "schema_version": SCHEMA_VERSION,
        "package_version": __version__,
        "configuration": {"quick": bool(quick), "only": list(only) if only else None,
                          "claims": [r.claim for r in results]},
        "counts": {"passed": passed, "failed": len(results) - passed},
        "results": [r.as_dict() for r in results],
    }


def _write_figures(folder, names, quick: bool, quiet: bool, unit: str = "figure"):
    """Write the named figures one at a time, with a progress bar; yields each path written."""
    with progress_bar(len(names), unit, quiet) as bar:
        for name in names:
            bar.set_description(name.removesuffix(".png"))
            (path,) = write_figures(folder, quick=quick, names=[name], rng=FIGURE_SEED)
            bar.update()
            yield path


def verify(args, outputs) -> int:
    """Run the theorem checks, print the table; exit status 1 when a claim fails."""
    claims = proofs_checks.select_claims(args.only)
    if args.json:
        outputs.file(args.json, "--json")
    if args.figures:
        outputs.folder(args.figures, "--figures")
    which = "all claims" if len(claims) == len(proofs_checks.CLAIMS) else ", ".join(claims)
    note(f"running theorem checks: {which} ({'quick' if args.quick else 'full'} size)", args.quiet)
    results = []
    with progress_bar(len(claims), "claim", args.quiet) as bar:
        for claim in claims:
            bar.set_description(claim)
            result = proofs_checks.run_check(claim, quick=args.quick)
            results.append(result)
            bar.update()
            note(f"  {claim:<4} {'PASS' if result.passed else 'FAIL'}  ({result.seconds:.1f} s)", args.quiet)
    print(proofs_checks.format_table(results, verbose=args.verbose, width=WIDTH), flush=True)
    if args.json:
        write_json_atomic(args.json, verify_document(results, quick=args.quick, only=args.only), name="--json")
        note(f"wrote {args.json}", args.quiet)
    if args.figures:
        for path in _write_figures(args.figures, list(FIGURES), args.quick, args.quiet):
            note(f"wrote {path}", args.quiet)
    return 0 if all(r.passed for r in results) else 1


# --- reproduce ------------------------------------------------------------------------------------
def reproduce(args, outputs) -> int:
    """Write the figures of the examples as PNG, one line per file written."""
    outputs.folder(args.out, "--out")
    for path in _write_figures(args.out, list(args.only or FIGURES), args.quick, args.quiet):
        print(f"wrote {path}", flush=True)
    return 0


# --- experiment nn --------------------------------------------------------------------------------
def _method_table(result) -> list[str]:
    lines = [f"{'method':<18} {'grad evals':>10} {'hvp evals':>10} {'loss TV':>10} {'last step':>10} "
             f"{'test acc':>9}"]
    for name, m in result.methods.items():
        last = float(m.step_norm[-1]) if len(m.step_norm) else math.nan
        lines.append(f"{name:<18} {m.gradient_evals:>10} {m.hvp_evals:>10} {m.loss_total_variation:>10.4g} "
                     f"{last:>10.3e} {m.final_test_accuracy:>9.3f}")
    return lines


def experiment(args, outputs) -> int:
    """Run the network experiment; exit status 1 when it diverged or its claims do not hold."""
    outputs.folder(args.out, "--out")
    # The folder is held from the first file to the last figure: a second command on it stops at once.
    with terminate_like_interrupt(), hold_folder(args.out, "--out"):
        note(f"running experiment nn: {args.model} on {args.data}, {args.steps} steps, lr {args.lr:g}, "
             f"into {args.out}", args.quiet)
        with StageProgress(args.quiet) as progress:
            result = run_nn_experiment(model=args.model, data=args.data, steps=args.steps,
                                       batch_size=args.batch_size, lr=args.lr, window=args.window, rng=args.seed,
                                       weight_decay=args.weight_decay, warmup=args.warmup, hidden=args.hidden,
                                       out_dir=args.out, progress=progress)
        paths = [] if result.diverged else write_experiment_figures(result, args.out)
    if result.reused:
        print(f"resumed: reused {', '.join(result.reused)} from the interrupted run in {args.out}")
    if result.methods:
        print("\n".join(_method_table(result)))
    print("\n".join(textwrap.fill(line, WIDTH) for line in result.summary.statement.splitlines()))
    for claim in result.claims_not_holding:
        print(textwrap.fill(f"does not hold: {claim}", WIDTH, subsequent_indent="  "))
    note(f"wrote {', '.join([os.path.join(args.out, 'results.json'), *paths])}", args.quiet)
    sys.stdout.flush()
    if result.diverged:
        raise RunFailed(flag_message(result.divergence or "the run diverged", args.flags))
    return 0 if result.claim_holds else 1


# --- sweep ----------------------------------------------------------------------------------------
_SHOWN_ROWS = 20
_SHOWN_FAILURES = 10


def _cell_text(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _sweep_table(result) -> list[str]:
    """The first cells of a sweep as a table: the grid axes, then as many values as fit in WIDTH columns.

    Values that change over the grid come first; the rest are named below the table.
    """
    axes = list(result.spec.grid)
    names = list(dict.fromkeys(name for cell in result.cells for name in cell.values))
    varies = {n: len({repr(cell.values.get(n)) for cell in result.cells}) > 1 for n in names}
    names.sort(key=lambda n: not varies[n])  # the values that change over the grid first
    columns = [(axis, max(len(axis), 8)) for axis in axes]
    used = sum(w + 1 for _, w in columns) + 8
    shown = []
    for name in names:
        width = max(len(name), 10)
        if used + width + 1 > WIDTH:
            break
        shown.append((name, width))
        used += width + 1
    lines = [" ".join(f"{n:>{w}}" for n, w in [*columns, ("status", 6), *shown])]
    for cell in result.cells[:_SHOWN_ROWS]:
        row = [_cell_text(cell.coordinates.get(a)) for a in axes] + [cell.status]
        row += [_cell_text(cell.values.get(n)) for n, _ in shown]
        lines.append(" ".join(f"{t:>{w}}" for t, (_, w) in zip(row, [*columns, ("status", 6), *shown], strict=True)))
    more = []
    if len(result.cells) > _SHOWN_ROWS:
        more.append(f"{len(result.cells) - _SHOWN_ROWS} more cells")
    if len(shown) < len(names):
        more.append(f"{len(names) - len(shown)} more values per cell ({', '.join(n for n in names[len(shown):])})")
    if more:
        where = os.path.join(result.out_dir, "summary.csv")
        lines.append(textwrap.fill(f"... {' and '.join(more)} in {where}", WIDTH, subsequent_indent="    "))
    return lines


def sweep(args, outputs) -> int:
    """Run a sweep spec; exit status 1 when a cell failed."""
    try:
        spec = read_spec(args.spec)
    except SpecError as exc:
        text = str(exc)
        raise UsageError(text if text.startswith("spec: ") else f"{args.spec}: {text}") from None
    outputs.folder(args.out, "--out")
    if args.scheduler is not None and args.workers is not None:
        raise UsageError("--workers: applies to a local run; with --scheduler the cluster's workers run the cells")
    where = f"the Dask cluster at {args.scheduler}" if args.scheduler else "local worker processes"
    note(f"running sweep {spec.name}: {spec.n_cells} cells on {where}, into {args.out}", args.quiet)
    with terminate_like_interrupt(), progress_bar(spec.n_cells, "cell", args.quiet, desc=spec.name) as bar:
        result = run_sweep(spec, args.scheduler, out_dir=args.out, workers=args.workers,
                           progress=lambda done, total: bar.update(done - bar.n))
    failed = len(result.failed)
    print(f"sweep {spec.name}: {spec.n_cells} cells: {result.ran} ran, {result.reused} reused, {failed} failed "
          f"({result.executor}, {result.seconds:.1f} s)")
    print("\n".join(_sweep_table(result)))
    for cell in [c for c in result.cells if not c.ok][:_SHOWN_FAILURES]:
        label = ", ".join(f"{k}={_cell_text(v)}" for k, v in cell.coordinates.items())
        print(textwrap.fill(plain(f"failed: {label}: {cell.error}"), WIDTH, subsequent_indent="  "))
    note(f"wrote {', '.join(os.path.join(args.out, n) for n in ('cells', 'results.jsonl', 'summary.csv'))}",
         args.quiet)
    sys.stdout.flush()
    if failed:
        raise RunFailed(f"{failed} of {spec.n_cells} cells failed (their errors are in "
                        f"{os.path.join(args.out, 'summary.csv')}); rerun the same command to run them again")
    return 0
