"""A wall-clock limit for one call or block, so a hang fails the test instead of stalling the suite."""

import contextlib
import signal


class Hang(AssertionError):
    """A call or block ran past its time limit."""


@contextlib.contextmanager
def time_limit(seconds):
    """Raise :class:`Hang` when the block is still running after ``seconds`` (SIGALRM, main thread)."""

    def handler(signum, frame):
        raise Hang(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
