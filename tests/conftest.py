import os
import sys

import matplotlib
import numpy as np
import pytest
from hypothesis import HealthCheck, settings

matplotlib.use("Agg")

# the mutation harness is a command, not part of the suite (it runs the suite on mutated copies)
collect_ignore = ["mutations"]

settings.register_profile(
    "default",
    derandomize=True,
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("thorough", max_examples=400, deadline=None)
# the thorough fuzz run of tests/test_fuzz.py: 600 examples per target (over 10^4 in all)
settings.register_profile(
    "fuzz",
    derandomize=True,
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
settings.register_profile("slow", parent=settings.get_profile("fuzz"))  # the same, by the name `slow`
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def pytest_terminal_summary(terminalreporter):
    """After a run that included the fuzz suite, print how its calls ended."""
    for name, module in list(sys.modules.items()):
        counts = getattr(module, "OUTCOMES", None)
        if name.endswith("test_fuzz") and counts:
            calls = {k: v for k, v in counts.items() if k != "examples"}
            parts = ", ".join(f"{v} {k}" for k, v in sorted(calls.items()))
            terminalreporter.write_line(f"fuzz: {counts['examples']} examples, {sum(calls.values())} calls: {parts}")
