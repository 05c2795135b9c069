"""The mutation catalogue stays applicable: each mutant's text occurs exactly once in its file.

A mutant whose text no longer matches (the code moved or changed) would be reported as
"stale" by ``tests/mutations/run.py`` and test nothing; this keeps the catalogue in step
with the code it mutates.
"""

import pathlib

import pytest
from mutations.catalogue import MUTANTS

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_each_mutant_applies_exactly_once(mutant):
    text = (ROOT / mutant.path).read_text(encoding="utf-8")
    count = text.count(mutant.old)
    assert count == 1, f"{mutant.name}: its text occurs {count} times in {mutant.path}"
    assert mutant.new != mutant.old
