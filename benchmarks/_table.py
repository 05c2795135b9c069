"""One row per benchmark case and the table they make (plain text and markdown alike)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

COLUMNS = ("case", "contraction", "floor", "× floor", "JAX", "JAX / contraction", "target", "holds")
DASH = "–"


@dataclass
class Target:
    """One requirement of a case: its text, the measured value as text, and whether it holds (None: no verdict)."""

    text: str
    value: str
    holds: bool | None


@dataclass
class Row:
    """The measurements of one case (times in seconds; ``None`` where not measured)."""

    number: str
    label: str
    time: float | None = None
    floor: float | None = None
    jax: float | None = None
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    wrong: str | None = None  # a failed correctness check
    error: str | None = None  # the case could not run
    work: tuple[float, float] | None = None  # (bytes written, flops): the floor, set once the rates are final
    post: list = field(default_factory=list)  # targets decided once the floor is known: f(row)

    def target(self, text, value, holds):
        """Add a requirement; ``holds`` may be None when there is nothing to decide."""
        self.targets.append(Target(text, value, None if holds is None else bool(holds)))

    @property
    def jax_ratio(self):
        """``JAX time / contraction time``: at least 1 means contraction is at least as fast."""
        return None if self.jax is None or not self.time else self.jax / self.time

    @property
    def floor_ratio(self):
        """``contraction time / floor``: at least 1 by definition of the floor."""
        return None if self.floor is None or not self.time else self.time / self.floor

    def all_targets(self):
        """The requirements, with 'at least as fast as JAX' added where JAX was timed."""
        out = list(self.targets)
        if self.jax_ratio is not None:
            out.insert(0, Target("JAX ≥ 1", f"{self.jax_ratio:.2f}", self.jax_ratio >= 1.0))
        return out


def seconds(t):
    """A time as ms (or s above 10 s), '–' when missing."""
    if t is None or not np.isfinite(t):
        return DASH
    if t >= 10:
        return f"{t:.1f} s"
    if t >= 0.1:
        return f"{t * 1e3:,.0f} ms"
    if t >= 0.001:
        return f"{t * 1e3:.2f} ms"
    return f"{t * 1e6:.0f} µs"


def ratio(x):
    """A ratio to two significant digits, '–' when missing."""
    if x is None or not np.isfinite(x):
        return DASH
    return f"{x:.2f}" if x < 10 else f"{x:,.0f}"


def cells(row: Row):
    """The table cells of ``row``."""
    targets = row.all_targets()
    verdicts = ["–" if t.holds is None else ("yes" if t.holds else "NO") for t in targets]
    if row.error:
        text, holds = "could not run", "ERROR"
    else:
        text = "; ".join(f"{t.text}: {t.value}" for t in targets) or DASH
        holds = ", ".join(verdicts) or DASH
        if row.wrong:
            holds = "WRONG"
    return [f"{row.number}. {row.label}", seconds(row.time), seconds(row.floor), ratio(row.floor_ratio),
            seconds(row.jax), ratio(row.jax_ratio), text, holds]


def markdown(rows):
    """The table of ``rows`` as markdown, with the notes of each row below it."""
    table = [list(COLUMNS)] + [cells(r) for r in rows]
    widths = [max(len(line[k]) for line in table) for k in range(len(COLUMNS))]
    fmt = lambda line: "| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |"
    lines = [fmt(table[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += [fmt(line) for line in table[1:]]
    notes = []
    for r in rows:
        extra = [f"error: {r.error}"] if r.error else []
        extra += [f"WRONG: {r.wrong}"] if r.wrong else []
        notes += [f"- {r.number}: {n}" for n in extra + r.notes]
    return "\n".join(lines + (["", *notes] if notes else []))


def size(nbytes):
    """Bytes as kB, MB or GB (decimal)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{nbytes:.0f} B"


def close(ours, reference, tol=1e-10):
    """Max difference relative to the reference's scale, and whether it is within ``tol``."""
    ours, reference = np.asarray(ours), np.asarray(reference)
    if ours.shape != reference.shape:
        return np.inf, False
    scale = max(1.0, float(np.max(np.abs(reference), initial=0.0)))
    err = float(np.max(np.abs(ours - reference), initial=0.0)) / scale
    return err, bool(err <= tol)
