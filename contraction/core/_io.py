"""Atomic file output: write to a temporary file, then rename."""

from __future__ import annotations

import json
import os


def write_json_atomic(path, payload) -> str:
    """Write ``payload`` as JSON to ``path`` so that a reader never sees a partial file."""
    path = os.fspath(path)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=1)
    os.replace(tmp, path)
    return path
