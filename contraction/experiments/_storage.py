"""Resumable storage of the experiment: per-method partial results and the final ``results.json``.

One run at a time per output folder: :func:`held_output` holds the folder
(:func:`contraction.core._io.hold_folder`, a lock the operating system drops
when the run ends or is killed), so a second run on the same folder is
refused at once instead of overwriting the first one's files. Holding the
folder, a run first removes the temporary files that a killed run left.

Each finished method's trajectory and cost are saved at once, atomically,
under a name keyed by a hash of the configuration; a later run with the same
configuration loads them instead of recomputing. A saved file that cannot be
read (or does not fit the configuration) is recomputed and saved again. The
partial results survive an interrupt; a run that finishes (diverged or not)
removes its own once ``results.json`` is written.
All files go through the package's one atomic writer,
:mod:`contraction.core._io`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import zipfile
from dataclasses import dataclass

import numpy as np

from ..core._io import hold_folder, remove_orphaned_temporaries, save_npz_atomic, write_json_atomic
from ..core._validation import describe

__all__ = ["PartialResults", "SavedMethod", "check_out_dir", "held_output"]


def check_out_dir(out_dir) -> str | None:
    """``None``, or the output folder as a str: a path that is not an existing file."""
    if out_dir is None:
        return None
    if not isinstance(out_dir, (str, os.PathLike)):
        raise TypeError(f"out_dir: expected None or a str or os.PathLike folder, got {describe(out_dir)}")
    path = os.fsdecode(os.fspath(out_dir))
    if not path:
        raise ValueError("out_dir: expected None or a folder, got ''")
    if os.path.lexists(path) and not os.path.isdir(path):
        raise ValueError(f"out_dir: expected a folder, got {path!r}, which is not a folder")
    return path


@contextlib.contextmanager
def held_output(out_dir: str | None):
    """Hold ``out_dir`` (and its ``partial`` folder) for one run, after removing killed runs' temporaries."""
    if out_dir is None:
        yield None
        return
    with hold_folder(out_dir, "out_dir") as folder:
        partial = os.path.join(folder, "partial")
        if os.path.lexists(partial) and not os.path.isdir(partial):
            raise ValueError(f"out_dir: expected a folder whose 'partial' is a folder, got {folder!r}")
        os.makedirs(partial, exist_ok=True)
        remove_orphaned_temporaries(folder)
        remove_orphaned_temporaries(partial)
        yield folder


@dataclass(frozen=True, eq=False)
class SavedMethod:
    """A method's saved trajectory and cost."""

    trajectory: np.ndarray
    gradient_evals: int
    hvp_evals: int


class PartialResults:
    """Partial results of one configuration under ``out_dir/partial``; ``out_dir=None`` stores nothing.

    Use it while :func:`held_output` holds ``out_dir``.
    """

    def __init__(self, out_dir: str | None, config: dict):
        self.out_dir = out_dir
        self.key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]

    def _path(self, name: str) -> str | None:
        return None if self.out_dir is None else os.path.join(self.out_dir, "partial", f"{name}-{self.key}.npz")

    def load(self, name: str, shape: tuple[int, ...]) -> SavedMethod | None:
        """The saved result of method ``name`` with a trajectory of ``shape``, or ``None`` when there is none.

        A file that cannot be read, or holds something else, counts as none (it is recomputed).
        """
        path = self._path(name)
        if path is None or not os.path.exists(path):
            return None
        try:
            with np.load(path, allow_pickle=False) as f:
                trajectory = np.array(f["trajectory"], dtype=np.float64)
                cost = json.loads(str(f["cost"]))
            saved = SavedMethod(trajectory, int(cost["gradient"]), int(cost["hvp"]))
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile):
            return None
        if saved.trajectory.shape != shape or not np.isfinite(saved.trajectory).all():
            return None
        return saved

    def save(self, name: str, trajectory: np.ndarray, gradient_evals: int, hvp_evals: int) -> None:
        """Save method ``name``'s trajectory and cost (nothing when there is no ``out_dir``)."""
        path = self._path(name)
        if path is not None:
            cost = json.dumps({"gradient": int(gradient_evals), "hvp": int(hvp_evals)})
            save_npz_atomic(path, trajectory=trajectory, cost=cost)

    def remove(self) -> None:
        """Remove this configuration's partial results, and the ``partial`` folder once nothing is left in it.

        Called when a run has finished (``results.json`` written): the partial
        results only serve to resume an interrupted run. Those of other
        configurations (other interrupted runs in the folder) are kept.
        """
        if self.out_dir is None:
            return
        folder = os.path.join(self.out_dir, "partial")
        remove_orphaned_temporaries(folder)
        try:
            entries = os.listdir(folder)
        except OSError:
            return
        for entry in entries:
            if entry.endswith(f"-{self.key}.npz"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(folder, entry))
        with contextlib.suppress(OSError):
            os.rmdir(folder)  # refused (and left) while other files are in it

    def write_results(self, payload: dict) -> str | None:
        """Write ``results.json`` atomically; returns its path (``None`` without ``out_dir``)."""
        if self.out_dir is None:
            return None
        return write_json_atomic(os.path.join(self.out_dir, "results.json"), payload)
