"""The ``contraction`` command (also ``python -m contraction``): the only place that prints."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import threading
import time

import proofs_checks

from .core._io import hold_folder, write_json_atomic
from .core._validation import DivergenceError, check_int, check_real
from .core.iterates import backward_iterates, forward_iterates
from .core.sampling import sample_batches
from .experiments import run_nn_experiment
from .figures import FIGURE_SEED, write_experiment_figures, write_figures
from .theory.examples import two_point_quadratic

__all__ = ["build_parser", "main"]

#: The default ``--seed`` of ``compare`` and ``experiment nn`` (the command line's fixed randomness).
DEFAULT_SEED = 0


def _compare(args) -> int:
    maps = two_point_quadratic().sgd_maps(args.lr)
    idx = sample_batches(2, args.steps, rng=args.seed)
    fwd = forward_iterates(maps, [0.0], idx)[0, :, 0]
    bwd = backward_iterates(maps, [0.0], idx)[0, :, 0]
    print(f"two-point quadratic f±(θ) = ½(θ ∓ 1)², lr = {args.lr}, seed = {args.seed}")
    print(f"{'n':>5} {'batch':>5} {'forward θ_n':>14} {'backward θ̃_n':>14} {'|θ̃_n − θ̃_{n−1}|':>18}")
    for n in range(args.steps + 1):
        inc = abs(bwd[n] - bwd[n - 1]) if n else float("nan")
        batch = "+" if n and idx[0, n - 1] == 0 else ("-" if n else "")
        print(f"{n:5d} {batch:>5} {fwd[n]:14.8f} {bwd[n]:14.8f} {inc:18.3e}")
    return 0


def _verify(args) -> int:
    def progress(r):
        status = "PASS" if r.passed else "FAIL"
        print(f"  {r.claim:<4} {status}  ({r.seconds:.1f} s)", file=sys.stderr, flush=True)

    size = "quick" if args.quick else "full"
    print(f"running theorem checks ({size} size)...", file=sys.stderr, flush=True)
    results = proofs_checks.run_all(quick=args.quick, only=args.only, progress=progress)
    print(proofs_checks.format_table(results))
    if args.json:
        write_json_atomic(args.json, {"quick": bool(args.quick), "results": [r.as_dict() for r in results]})
        print(f"wrote {args.json}", file=sys.stderr)
    if args.figures:
        for path in write_figures(args.figures, quick=args.quick, rng=FIGURE_SEED):
            print(f"wrote {path}", file=sys.stderr)
    return 0 if all(r.passed for r in results) else 1


def _reproduce(args) -> int:
    for path in write_figures(args.out, quick=args.quick, names=args.only, rng=FIGURE_SEED):
        print(f"wrote {path}")
    return 0


class _ProgressBar:
    """A one-line text progress bar on stderr: ``progress(label, done, total)`` of the experiment."""

    def __init__(self, stream=None, width=30):
        self.stream = sys.stderr if stream is None else stream
        self.width = width
        self.start = time.perf_counter()

    def __call__(self, label, done, total):
        filled = int(self.width * done / total)
        elapsed = time.perf_counter() - self.start
        self.stream.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} {label:<28} "
                          f"{elapsed:6.1f} s")
        if done == total:
            self.stream.write("\n")
        self.stream.flush()


@contextlib.contextmanager
def _terminate_like_interrupt():
    """While the block runs, SIGTERM ends the command the way Ctrl-C does: cleanups run first.

    A writer interrupted this way removes its temporary file; the exit status is 128 + 15.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        yield
        return

    def terminate(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _experiment(args) -> int:
    # The folder is held from the first file to the last figure: a second command on it stops at once.
    with _terminate_like_interrupt(), hold_folder(args.out, "out_dir"):
        result = run_nn_experiment(model=args.model, data=args.data, steps=args.steps, batch_size=args.batch_size,
                                   lr=args.lr, window=args.window, rng=args.seed, weight_decay=args.weight_decay,
                                   warmup=args.warmup, hidden=args.hidden, out_dir=args.out,
                                   progress=_ProgressBar())
        paths = write_experiment_figures(result, args.out)
    print(f"{'method':<18} {'grad evals':>10} {'hvp evals':>10} {'loss TV':>9} {'last step':>10} {'test acc':>9}")
    for name, m in result.methods.items():
        print(f"{name:<18} {m.gradient_evals:>10} {m.hvp_evals:>10} {m.loss_total_variation:>9.4f} "
              f"{m.step_norm[-1]:>10.3e} {m.final_test_accuracy:>9.3f}")
    print(result.summary.statement)
    print(f"wrote {os.path.join(args.out, 'results.json')} and " + ", ".join(paths))
    return 0


def _integer(name: str, low: int):
    """An argparse type: an integer ``>= low``, refused with the library's message."""
    def parse(text: str) -> int:
        try:
            return check_int(int(text), name, low)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc) if str(exc).startswith(name) else
                                             f"{name}: expected an integer >= {low}, got {text!r}") from exc
    parse.__name__ = "integer"
    return parse


def _real(name: str, low: float, closed: str):
    """An argparse type: a finite real number above ``low`` (included when ``closed == "left"``)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{name}: expected a real number, got {text!r}") from exc
        try:
            return check_real(value, name, low, math.inf, closed=closed)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc
    parse.__name__ = "number"
    return parse


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``contraction`` command.

    Returns
    -------
    argparse.ArgumentParser
        With the sub-commands ``compare``, ``verify``, ``reproduce`` and ``experiment nn``.

    Examples
    --------
    >>> build_parser().parse_args(["compare", "--steps", "3"]).steps == 3
    True
    """
    parser = argparse.ArgumentParser(
        prog="contraction",
        description="Forward vs backward SGD: verify the theorems on convergence and stability.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("compare", help="print forward and backward iterates of the two-point example")
    p.add_argument("--lr", type=float, default=0.5)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.set_defaults(func=_compare)
    v = sub.add_parser("verify", help="run every theorem check (C1-C13) and print a table")
    v.add_argument("--quick", action="store_true", help="smaller sizes (a few minutes on 2 cores)")
    v.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    v.add_argument("--figures", metavar="DIR", help="also write the figures as PNG into DIR")
    v.add_argument("--only", nargs="+", metavar="CLAIM", help="run only these claims (e.g. C1 C7)")
    v.set_defaults(func=_verify)
    r = sub.add_parser("reproduce", help="write every figure of the examples as PNG")
    r.add_argument("--out", default="figures", metavar="DIR", help="output folder (default: figures)")
    r.add_argument("--quick", action="store_true", help="smaller samples")
    r.add_argument("--only", nargs="+", metavar="NAME", help="only these figure files")
    r.set_defaults(func=_reproduce)
    e = sub.add_parser("experiment", help="neural-network proof of concept (forward vs backward SGD)")
    esub = e.add_subparsers(dest="experiment", required=True)
    nn = esub.add_parser("nn", help="train a small MLP or CNN with the four methods on one batch sequence")
    nn.add_argument("--model", choices=("mlp", "cnn"), default="mlp")
    nn.add_argument("--data", choices=("digits", "synthetic"), default="digits")
    nn.add_argument("--steps", type=_integer("steps", 2), default=120)
    nn.add_argument("--batch-size", type=_integer("batch_size", 1), default=16)
    nn.add_argument("--lr", type=_real("lr", 0.0, "neither"), default=0.3)
    nn.add_argument("--window", type=_integer("window", 1), default=3,
                    help="window of the anchored and corrected methods")
    nn.add_argument("--seed", type=_integer("seed", 0), default=DEFAULT_SEED)
    nn.add_argument("--weight-decay", type=_real("weight_decay", 0.0, "left"), default=0.05)
    nn.add_argument("--warmup", type=_integer("warmup", 0), default=300, help="forward SGD steps before the comparison")
    nn.add_argument("--hidden", type=_integer("hidden", 1), default=16, help="MLP hidden width")
    nn.add_argument("--out", default="nn-results", metavar="DIR",
                    help="output folder, held by one run at a time (default: nn-results)")
    nn.set_defaults(func=_experiment)
    return parser


def main(argv=None) -> int:
    """Run the ``contraction`` command.

    Parameters
    ----------
    argv : list of str, optional
        The arguments; ``sys.argv[1:]`` when omitted.

    Returns
    -------
    int
        The exit status: 0 on success, 1 when a theorem check fails, 2 for a usage error (also an
        output folder another run holds or that cannot be written, and iterates that diverge).

    Examples
    --------
    >>> main(["compare", "--steps", "1"])  # doctest: +ELLIPSIS
    two-point quadratic ...
    0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, ImportError, OSError, DivergenceError) as exc:
        print(f"contraction: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
