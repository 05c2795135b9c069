"""Resumable storage of the experiment: per-method partial results and the final ``results.json``.

Each finished method's trajectory and cost are saved at once, atomically
(a temporary file, then a rename), under a name keyed by a hash of the
configuration; a later run with the same configuration loads them instead of
recomputing. The JSON goes through the package's one atomic writer,
:func:`contraction.core._io.write_json_atomic`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

import numpy as np

from ..core._io import write_json_atomic

__all__ = ["PartialResults", "SavedMethod", "save_npz_atomic"]


def save_npz_atomic(path, **arrays) -> str:
    """Write arrays as an ``.npz`` file so that a reader never sees a partial file; returns the path."""
    path = os.fspath(path)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, path)
    return path


@dataclass(frozen=True, eq=False)
class SavedMethod:
    """A method's saved trajectory and cost."""

    trajectory: np.ndarray
    gradient_evals: int
    hvp_evals: int


class PartialResults:
    """Partial results of one configuration under ``out_dir/partial``; ``out_dir=None`` stores nothing."""

    def __init__(self, out_dir, config: dict):
        self.out_dir = None if out_dir is None else os.fspath(out_dir)
        self.key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
        if self.out_dir is not None:
            os.makedirs(os.path.join(self.out_dir, "partial"), exist_ok=True)

    def _path(self, name: str) -> str | None:
        return None if self.out_dir is None else os.path.join(self.out_dir, "partial", f"{name}-{self.key}.npz")

    def load(self, name: str) -> SavedMethod | None:
        """The saved result of method ``name``, or ``None`` when there is none."""
        path = self._path(name)
        if path is None or not os.path.exists(path):
            return None
        with np.load(path) as f:
            trajectory, cost = f["trajectory"], json.loads(str(f["cost"]))
        return SavedMethod(trajectory, int(cost["gradient"]), int(cost["hvp"]))

    def save(self, name: str, trajectory: np.ndarray, gradient_evals: int, hvp_evals: int) -> None:
        """Save method ``name``'s trajectory and cost (nothing when there is no ``out_dir``)."""
        path = self._path(name)
        if path is not None:
            cost = json.dumps({"gradient": int(gradient_evals), "hvp": int(hvp_evals)})
            save_npz_atomic(path, trajectory=trajectory, cost=cost)

    def write_results(self, payload: dict) -> str | None:
        """Write ``results.json`` atomically; returns its path (``None`` without ``out_dir``)."""
        if self.out_dir is None:
            return None
        return write_json_atomic(os.path.join(self.out_dir, "results.json"), payload)
