"""The ``contraction`` command (also ``python -m contraction``)."""

from __future__ import annotations

import argparse
import sys

import numpy as np

__all__ = ["main"]


def _compare(args) -> int:
    from .iterates import backward_iterates, forward_iterates
    from .models import QuadraticModel
    from .sampling import sample_batches

    model = QuadraticModel([[[1.0]], [[1.0]]], [[1.0], [-1.0]])
    maps = model.sgd_maps(args.lr)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="contraction",
        description="Forward vs backward SGD: verify the theorems on convergence and stability.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("compare", help="print forward and backward iterates of the two-point example")
    p.add_argument("--lr", type=float, default=0.5)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_compare)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError) as exc:
        print(f"contraction: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
