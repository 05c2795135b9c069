"""The common template of every theorem check (one claim, one check).

A check computes a numerical quantity and the value the theory predicts and
asserts the relation of the theorem's logical form:

* ``"=="``  equality within ``tolerance`` (closed forms, identities);
* ``"<="``  ``numerical <= theoretical + tolerance`` (bounds);
* ``">="``  ``numerical >= theoretical - tolerance``;
* ``"p>="`` a statistical test: ``numerical`` is a p-value, ``theoretical``
  the significance level; passes when ``p >= α``.

Slopes are "==" with the band half-width as tolerance.

Every check module also says what its numerical value is: ``KIND`` (one of
:data:`KINDS`) and ``MEASURES`` (a phrase); :func:`proofs_checks.run_check`
copies them into the result's ``kind`` and ``measures``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

__all__ = ["KINDS", "RELATIONS", "CheckResult", "Timer", "make_result"]

RELATIONS = ("==", "<=", ">=", "p>=")
#: What a check's numerical value can be.
KINDS = ("ratio", "estimate", "p-value", "z-score", "slope", "coefficient")


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one claim's check.

    ``kind`` (one of :data:`KINDS`) and ``measures`` say what ``numerical`` is;
    ``None`` until :func:`proofs_checks.run_check` fills them from the check module.
    """

    claim: str
    statement: str
    numerical: float
    theoretical: float
    relation: str
    tolerance: float
    passed: bool
    seconds: float
    details: dict = field(default_factory=dict)
    kind: str | None = None
    measures: str | None = None

    def as_dict(self) -> dict:
        d = asdict(self)
        for key in ("numerical", "theoretical", "tolerance"):
            v = d[key]
            d[key] = None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)
        d["details"] = {k: _jsonable(v) for k, v in self.details.items()}
        return d


def _jsonable(v):
    try:
        import numpy as np

        if isinstance(v, np.ndarray):
            return v.tolist()
        if isinstance(v, np.generic):
            return v.item()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return v


def evaluate(numerical: float, theoretical: float, relation: str, tolerance: float) -> bool:
    if relation not in RELATIONS:
        raise ValueError(f"relation: expected one of {RELATIONS}, got {relation!r}")
    if not (math.isfinite(numerical) and math.isfinite(theoretical)):
        return False
    if relation == "==":
        return abs(numerical - theoretical) <= tolerance
    if relation == "<=":
        return numerical <= theoretical + tolerance
    if relation == ">=":
        return numerical >= theoretical - tolerance
    return numerical >= theoretical  # p>=


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds``."""

    def __enter__(self):
        self._start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self._start
        return False


def make_result(claim, statement, numerical, theoretical, relation, tolerance, seconds, **details):
    """Build a :class:`CheckResult`, deciding ``passed`` from the relation."""
    numerical = float(numerical)
    theoretical = float(theoretical)
    tolerance = float(tolerance)
    passed = evaluate(numerical, theoretical, relation, tolerance)
    if "extra_conditions" in details:
        passed = passed and all(bool(c) for c in details["extra_conditions"].values())
    return CheckResult(claim, statement, numerical, theoretical, relation, tolerance, bool(passed),
                       float(seconds), details)
