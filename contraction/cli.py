"""The ``contraction`` command (also ``python -m contraction``): the only place that prints.

Every mistake in the command line is one line, ``contraction: error: ...``,
that names the flag as typed (or the spec key of a sweep). Output paths are
checked before any work starts. Exit statuses: 0 success; 1 a failed claim,
a diverged run, an experiment whose claims do not hold or a sweep with a
failed cell; 2 a usage error (a flag's value, an
unusable output path, a folder held by another run); 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys

import proofs_checks

from . import __version__
from ._cli_commands import compare, experiment, reproduce, sweep, verify
from ._cli_support import OutputPaths, RunFailed, UsageError, flag_message, print_error
from .core._validation import DivergenceError
from .experiments import DATA_SETS, DEFAULTS, MODELS
from .figures import FIGURES
from .sweeps._execute import default_workers

__all__ = ["build_parser", "main"]

#: The default ``--seed`` of ``compare`` and ``experiment nn`` (the command line's fixed randomness).
DEFAULT_SEED = 0
_FIGURE_NAMES = ", ".join(name.removesuffix(".png") for name in FIGURES)
_EPILOG = ("exit status: 0 success; 1 a failed claim, a diverged run, an experiment whose claims do not hold or "
           "a sweep with a failed cell; 2 a usage error; 130 interrupted (Ctrl-C)")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line naming the flag, raised as :class:`UsageError`."""

    def error(self, message):
        raise UsageError(re.sub(r"^argument ([^:]+): ", r"\1: ", message))


def _integer(low: int):
    """An argparse type: an integer ``>= low``."""
    def integer(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value
    return integer


def _real(low: float, inclusive: bool):
    """An argparse type: a finite real number above ``low`` (``low`` itself allowed when ``inclusive``)."""
    interval = f"{'>=' if inclusive else '>'} {low:g}"

    def real(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a real number {interval}, got {text!r}") from None
        if not math.isfinite(value) or value < low or (value == low and not inclusive):
            raise argparse.ArgumentTypeError(f"expected a finite real number {interval}, got {text.strip()}")
        return value
    return real


def _claim(text: str) -> str:
    """An argparse type: a claim id (case-insensitive), returned as ``C7``."""
    key = text.strip().upper()
    if key not in proofs_checks.CLAIMS:
        raise argparse.ArgumentTypeError(f"expected claim ids among {', '.join(proofs_checks.CLAIMS)}, got {text!r}")
    return key


def _figure(text: str) -> str:
    """An argparse type: a figure name, with or without ``.png``, returned with it."""
    name = text.strip()
    name = name if name.endswith(".png") else f"{name}.png"
    if name not in FIGURES:
        raise argparse.ArgumentTypeError(f"expected figure names among {_FIGURE_NAMES}, got {text!r}")
    return name


def _adder(parser):
    """``add(*names, **kwargs)`` adding an argument to ``parser`` and the map ``dest -> flag`` it fills."""
    flags = {}

    def add(*names, **kwargs):
        action = parser.add_argument(*names, **kwargs)
        flags[action.dest] = action.option_strings[-1]
        return action
    return add, flags


def _quiet(add, what: str):
    add("--quiet", action="store_true", help=f"no progress bar and no {what} on stderr")


# The claims, as the help names them ("C1-C15").
_CLAIM_RANGE = f"{next(iter(proofs_checks.CLAIMS))}-{list(proofs_checks.CLAIMS)[-1]}"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``contraction`` command.

    Returns
    -------
    argparse.ArgumentParser
        With the sub-commands ``compare``, ``verify``, ``reproduce``,
        ``experiment nn`` and ``sweep``; its errors are raised as one-line exceptions
        that name the flag (``main`` prints them).

    Examples
    --------
    >>> build_parser().parse_args(["compare", "--steps", "3"]).steps == 3
    True
    """
    parser = _Parser(prog="contraction", epilog=_EPILOG,
                     description="Forward vs backward SGD: verify the theorems on convergence and stability.")
    parser.add_argument("--version", action="version", version=f"contraction {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("compare", help="print forward and backward iterates of the two-point example",
                       description="Forward and backward SGD iterates on f±(θ) = ½(θ ∓ 1)², from one batch sequence.",
                       epilog=_EPILOG)
    add, flags = _adder(p)
    add("--lr", type=_real(0.0, inclusive=False), default=0.5,
        help="constant learning rate h; the maps contract for h < 2 (default: %(default)s)")
    add("--steps", type=_integer(0), default=20, help="number of SGD steps to print (default: %(default)s)")
    add("--seed", type=_integer(0), default=DEFAULT_SEED, help="seed of the batch sequence (default: %(default)s)")
    p.set_defaults(func=compare, flags=flags)

    v = sub.add_parser("verify", help=f"run the theorem checks ({_CLAIM_RANGE}) and print a table",
                       description=f"Run the numerical check of each claim {_CLAIM_RANGE} and print a table.",
                       epilog=_EPILOG)
    add, flags = _adder(v)
    add("--quick", action="store_true", help="smaller samples: a faster, less sensitive run")
    add("--only", nargs="+", type=_claim, metavar="CLAIM",
        help=f"run only these claims, each once, among {', '.join(proofs_checks.CLAIMS)} (default: all)")
    add("--json", metavar="FILE", help="also write the results as JSON (layout: docs/verify.schema.json)")
    add("--figures", metavar="DIR", help="also write the figures as PNG into DIR")
    add("--verbose", action="store_true", help="print each claim's statement and what its value measures")
    _quiet(add, "per-claim or 'wrote' lines")
    v.set_defaults(func=verify, flags=flags)

    r = sub.add_parser("reproduce", help="write the figures of the examples as PNG",
                       description="Compute the figures of the examples and write them as PNG.", epilog=_EPILOG)
    add, flags = _adder(r)
    add("--out", default="figures", metavar="DIR", help="output folder, created if missing (default: %(default)s)")
    add("--quick", action="store_true", help="smaller samples: quicker, noisier figures")
    add("--only", nargs="+", type=_figure, metavar="NAME",
        help=f"only these figures, among {_FIGURE_NAMES} (.png may be added; default: all)")
    _quiet(add, "other lines")
    r.set_defaults(func=reproduce, flags=flags)

    e = sub.add_parser("experiment", help="neural-network proof of concept (forward vs backward SGD)",
                       description="Neural-network proof of concept.", epilog=_EPILOG)
    esub = e.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")
    nn = esub.add_parser("nn", help="train a small MLP or CNN with the four methods on one batch sequence",
                         description="Train a small network with forward, backward, windowed and "
                                     "bracket-corrected SGD on one batch sequence, and compare them.",
                         epilog=_EPILOG)
    add, flags = _adder(nn)
    add("--model", choices=MODELS, default=DEFAULTS["model"], help="the network (default: %(default)s)")
    add("--data", choices=DATA_SETS, default=DEFAULTS["data"],
        help="the data set; digits needs scikit-learn (default: %(default)s)")
    add("--steps", type=_integer(2), default=DEFAULTS["steps"],
        help="length of the compared runs (default: %(default)s)")
    add("--batch-size", type=_integer(1), default=DEFAULTS["batch_size"],
        help="examples per batch (default: %(default)s)")
    add("--lr", type=_real(0.0, inclusive=False), default=DEFAULTS["lr"],
        help="constant learning rate (default: %(default)s)")
    add("--window", type=_integer(1), default=DEFAULTS["window"],
        help="window of the anchored and corrected methods (default: %(default)s)")
    add("--seed", type=_integer(0), default=DEFAULT_SEED,
        help="seed of the start, the batches and the synthetic data; a resumed run needs the same "
             "(default: %(default)s)")
    add("--weight-decay", type=_real(0.0, inclusive=True), default=DEFAULTS["weight_decay"],
        help="weight decay λ of every batch loss (default: %(default)s)")
    add("--warmup", type=_integer(0), default=DEFAULTS["warmup"],
        help="forward SGD steps before the comparison, to start from a trained network (default: %(default)s)")
    add("--hidden", type=_integer(1), default=DEFAULTS["hidden"], help="MLP hidden width (default: %(default)s)")
    add("--out", default="nn-results", metavar="DIR",
        help="output folder, held by one run at a time; an interrupted run resumes from it (default: %(default)s)")
    _quiet(add, "'wrote' line")
    nn.set_defaults(func=experiment, flags=flags, resumable=True)

    w = sub.add_parser("sweep", help="run a parameter sweep from a TOML spec, locally or on a Dask cluster",
                       description="Run every cell of a sweep spec (learning rates x batch sizes x seeds x ...) "
                                   "in local worker processes, or on a Dask cluster with --scheduler. Each "
                                   "finished cell is written at once; a rerun reuses finished cells.",
                       epilog=_EPILOG)
    add, flags = _adder(w)
    w.add_argument("spec", metavar="SPEC", help="the sweep spec, a TOML file (examples in examples/sweeps)")
    flags["spec"] = "SPEC"
    add("--out", default="sweep-results", metavar="DIR",
        help="output folder, held by one run at a time; a rerun reuses its finished cells (default: %(default)s)")
    add("--scheduler", metavar="ADDRESS",
        help="address of a Dask scheduler (tcp://host:8786) whose workers run the cells; needs the extra "
             "'sweeps' (default: local worker processes)")
    add("--workers", type=_integer(1), metavar="N",
        help=f"local worker processes; 1 runs the cells in this process (default: the usable cores, at most 4, "
             f"here {default_workers()})")
    _quiet(add, "'wrote' line")
    w.set_defaults(func=sweep, flags={**flags, "client": "--scheduler", "out_dir": "--out"}, resumable=True)
    return parser


def _reported(exc: BaseException, flags: dict) -> str:
    """The one line printed for ``exc``."""
    text = str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        text = re.sub(r"^\[Errno -?\d+\] ", "", text)
    return flag_message(text, flags)


def main(argv=None) -> int:
    """Run the ``contraction`` command.

    Parameters
    ----------
    argv : list of str, optional
        The arguments; ``sys.argv[1:]`` when omitted.

    Returns
    -------
    int
        The exit status: 0 on success; 1 when a theorem check fails, a run
        diverges, an experiment's claims do not hold or a sweep's cell
        fails; 2 for a usage error
        (also an output path that cannot be written and a folder another run
        holds); 130 when interrupted (Ctrl-C).

    Examples
    --------
    >>> main(["compare", "--steps", "1"])  # doctest: +ELLIPSIS
    two-point quadratic ...
    0
    """
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        print_error(flag_message(str(exc), {}))
        return 2
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    if getattr(args, "only", None):
        args.only = list(dict.fromkeys(args.only))  # each claim or figure once
    outputs = OutputPaths()
    status = 1
    try:
        status = int(args.func(args, outputs) or 0)
    except KeyboardInterrupt:
        status = 130
        lead = "\n" if sys.stderr.isatty() else ""
        hint = "; rerun the same command to resume" if getattr(args, "resumable", False) else ""
        print(f"{lead}contraction: interrupted{hint}", file=sys.stderr, flush=True)
    except BrokenPipeError:  # the reader of stdout went away (``contraction compare | head``)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (RunFailed, DivergenceError) as exc:
        print_error(_reported(exc, args.flags))
    except (UsageError, ValueError, TypeError, ImportError, OSError) as exc:
        status = 2
        print_error(_reported(exc, args.flags))
    finally:
        if status != 0:
            outputs.remove_unused()
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
