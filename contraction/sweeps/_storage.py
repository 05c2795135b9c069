"""A sweep's output folder: one file per finished cell, the tables rebuilt from them, all written atomically.

Layout of ``out_dir``:

* ``cells/<key>.json``: one cell's record, written the moment it finishes
  (a failed cell too, with its error);
* ``results.jsonl``: one line per cell of the spec that has a record, in
  the grid's order;
* ``summary.csv``: the same as a table (key, status, coordinates, values, error);
* ``sweep.json``: the spec and the counts of the last run.

Every file is written whole to a temporary file and renamed
(:func:`~contraction.core._io.write_atomic`): a run killed at any moment
leaves complete files, and at worst a temporary file that the next run removes.
"""

from __future__ import annotations

import csv
import io
import json
import os

from ..core._io import remove_orphaned_temporaries, write_atomic, write_json_atomic
from .records import CellResult
from .spec import FORMAT, Cell, SweepSpec

__all__ = ["SweepFolder"]


def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


class SweepFolder:
    """The output folder of a sweep (created if missing); the caller holds it while the sweep runs."""

    def __init__(self, out_dir):
        self.root = os.fsdecode(os.fspath(out_dir))
        self.cells_dir = os.path.join(self.root, "cells")
        os.makedirs(self.cells_dir, exist_ok=True)
        remove_orphaned_temporaries(self.root)
        remove_orphaned_temporaries(self.cells_dir)

    def _cell_path(self, key: str) -> str:
        return os.path.join(self.cells_dir, f"{key}.json")

    def load(self, cell: Cell) -> CellResult | None:
        """The stored result of ``cell``, or ``None`` (none, or one of another configuration)."""
        try:
            with open(self._cell_path(cell.key), encoding="utf-8") as fh:
                record = json.load(fh)
            result = CellResult.from_dict(record)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if record.get("format") != FORMAT or result.key != cell.key or result.config != cell.config():
            return None
        return result

    def save(self, result: CellResult) -> str:
        """Write one cell's record, atomically."""
        return write_json_atomic(self._cell_path(result.key), result.to_dict())

    def write_tables(self, spec: SweepSpec, results: dict) -> list[str]:
        """Rebuild ``results.jsonl`` and ``summary.csv`` from the results at hand (key -> CellResult)."""
        ordered = [results[cell.key] for cell in spec.cells if cell.key in results]
        lines = "".join(json.dumps(r.to_dict(), ensure_ascii=False, allow_nan=False) + "\n" for r in ordered)
        jsonl = write_atomic(os.path.join(self.root, "results.jsonl"), lambda fh: fh.write(lines.encode("utf-8")))
        names = list(dict.fromkeys(name for r in ordered for name in r.values))
        buffer = io.StringIO(newline="")
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["key", "status", *spec.grid, *names, "error"])
        for r in ordered:
            writer.writerow([r.key, r.status, *(_csv_value(r.coordinates.get(a)) for a in spec.grid),
                             *(_csv_value(r.values.get(n)) for n in names), r.error or ""])
        text = buffer.getvalue().encode("utf-8")
        summary = write_atomic(os.path.join(self.root, "summary.csv"), lambda fh: fh.write(text))
        return [jsonl, summary]

    def write_manifest(self, spec: SweepSpec, counts: dict) -> str:
        """Write ``sweep.json``: the spec, as tables, and the counts of this run."""
        return write_json_atomic(os.path.join(self.root, "sweep.json"),
                                 {"format": FORMAT, "spec": spec.to_dict(), "source": spec.source, **counts})
