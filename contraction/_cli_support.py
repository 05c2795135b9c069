"""What the commands of ``contraction`` share: one-line errors, output paths checked up front, progress.

An error the user can fix is a :class:`UsageError` (exit status 2); a run that
ends without the result it promised (a failed claim, a diverged run) is a
:class:`RunFailed` (exit status 1). Both carry one line that names the flag as
typed; :func:`flag_message` turns the library's parameter names into flags.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import tempfile
import threading

from tqdm import tqdm

# Parameter names of the library that are spelled differently on the command line.
LIBRARY_NAMES = {"n_steps": "--steps", "out_dir": "--out", "names": "--only", "only": "--only"}
_LEADING_NAME = re.compile(r"^([A-Za-z_]\w*): ")
_ADVICE = "lower|raise|increase|decrease|reduce|change|choose|set|use"
_NUMPY_SCALAR = re.compile(r"\bnp\.(?:float|int|uint|complex|bool|str)_?\d*\(([^()]*)\)")
_NUMPY_BOOL = re.compile(r"\bnp\.(True|False)_")


class UsageError(Exception):
    """A mistake in the command line (a flag's value, an unusable output path): exit status 2."""


class RunFailed(Exception):
    """The work ran but did not give what it promised (a diverged run): exit status 1."""


def plain(text: str) -> str:
    """``text`` without numpy scalar reprs: ``np.float64(0.6)`` reads ``0.6``."""
    return _NUMPY_BOOL.sub(r"\1", _NUMPY_SCALAR.sub(r"\1", str(text)))


def flag_message(text: str, flags: dict) -> str:
    """One line in the words of the command line.

    A leading parameter name (``"batch_size: ..."``) becomes its flag
    (``"--batch-size: ..."``), so does a parameter named in advice (``"lower
    lr"`` reads ``"lower --lr"``; formulas are left alone), and numpy reprs
    are written plainly.
    """
    names = {**LIBRARY_NAMES, **flags}
    text = " ".join(plain(text).split())
    match = _LEADING_NAME.match(text)
    if match and match.group(1) in names:
        text = names[match.group(1)] + text[len(match.group(1)):]
    for name, flag in names.items():
        text = re.sub(rf"\b({_ADVICE}) {re.escape(name)}\b", rf"\1 {flag}", text)
    return text


def print_error(text: str) -> None:
    """Print ``contraction: error: text`` on stderr."""
    print(f"contraction: error: {text}", file=sys.stderr, flush=True)


class OutputPaths:
    """Output paths checked before any work starts; the folders created for them are remembered.

    :meth:`remove_unused` takes back the created folders that stayed empty
    (a run that failed or was interrupted before writing into them).
    """

    def __init__(self):
        self._created: list[str] = []

    def _folder(self, folder: str, flag: str) -> None:
        missing = []
        probe = os.path.abspath(folder)
        while not os.path.lexists(probe):
            missing.append(probe)
            parent = os.path.dirname(probe)
            if parent == probe:
                break
            probe = parent
        if not os.path.isdir(probe):
            raise UsageError(f"{flag}: cannot create the folder {folder!r}: {probe!r} is a file")
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            where = exc.filename if exc.filename else folder
            raise UsageError(f"{flag}: cannot create the folder {os.fsdecode(where)!r} ({exc.strerror})") from None
        self._created.extend(reversed(missing))
        try:
            fd, path = tempfile.mkstemp(prefix=".contraction-", suffix=".probe", dir=folder)
        except OSError as exc:
            raise UsageError(f"{flag}: cannot write into the folder {folder!r} ({exc.strerror})") from None
        os.close(fd)
        os.unlink(path)

    @staticmethod
    def _text(path, flag: str) -> str:
        path = os.fsdecode(os.fspath(path))
        if not path:
            raise UsageError(f"{flag}: expected a path, got ''")
        return path

    def file(self, path, flag: str) -> str:
        """Check that ``path`` can be written as a file (its folder is created if missing)."""
        path = self._text(path, flag)
        if path.endswith(("/", os.sep)) or os.path.isdir(path):
            raise UsageError(f"{flag}: expected a file, got {path!r}, which is a folder")
        self._folder(os.path.dirname(os.path.abspath(path)), flag)
        return path

    def folder(self, path, flag: str) -> str:
        """Check that ``path`` is, or can be created as, a folder one can write into (created if missing)."""
        path = self._text(path, flag)
        if os.path.lexists(path) and not os.path.isdir(path):
            raise UsageError(f"{flag}: expected a folder, got {path!r}, which is a file")
        self._folder(path, flag)
        return path

    def remove_unused(self) -> None:
        """Remove the folders created by the checks that are still empty, deepest first."""
        for folder in reversed(self._created):
            with contextlib.suppress(OSError):
                os.rmdir(folder)
        self._created.clear()


def progress_bar(total, unit: str, quiet: bool, desc: str | None = None) -> tqdm:
    """A tqdm bar on stderr (rate, ETA); off with ``quiet`` and whenever stderr is not a terminal."""
    return tqdm(total=total, unit=unit, desc=desc, disable=True if quiet else None, leave=False, file=sys.stderr,
                dynamic_ncols=True)


def note(text: str, quiet: bool) -> None:
    """A line on stderr (unless ``quiet``) that does not break a running progress bar."""
    if not quiet:
        tqdm.write(text, file=sys.stderr)
        sys.stderr.flush()


class StageProgress:
    """The experiment's ``progress(label, done, total)`` drawn as a tqdm bar; a context manager that closes it."""

    def __init__(self, quiet: bool):
        self.bar = progress_bar(None, "stage", quiet, desc="experiment")

    def __call__(self, label, done, total):
        if self.bar.total != total:
            self.bar.total = total
        self.bar.set_postfix_str(str(label), refresh=False)
        self.bar.update(done - self.bar.n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.bar.close()
        return False


@contextlib.contextmanager
def terminate_like_interrupt():
    """While the block runs, SIGTERM ends the command the way Ctrl-C does: cleanups run first.

    A writer interrupted this way removes its temporary file; the exit status is 128 + 15.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        yield
        return

    def terminate(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
