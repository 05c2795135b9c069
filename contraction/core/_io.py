"""Atomic file output, and an exclusive lock on an output folder.

Writers (:func:`write_atomic`, :func:`write_json_atomic`, :func:`save_npz_atomic`)
never leave a partial file under the final name. The content goes to a hidden
temporary file in the same folder, ``.<name>.<12 hex digits>.tmp``, created
exclusively (so two writers of one path never share it); it is flushed and
fsynced, then renamed over the target with :func:`os.replace` (atomic), and the
folder is fsynced after the rename. On any exception, ``KeyboardInterrupt`` and
``SystemExit`` included, the temporary file is removed before the exception
goes on.

A process killed by SIGKILL cannot clean up: its temporary file stays, an
*orphan*. A writer holds an advisory lock (``flock``) on its temporary file
until the rename, and the operating system drops that lock when the process
dies, so an orphan is a temporary file nobody holds. Every write of ``name``
first removes the orphans of ``name`` in its folder, and
:func:`remove_orphaned_temporaries` removes all the orphans of a folder.

:func:`hold_folder` takes an exclusive lock on a folder (through the lock file
``.contraction.lock`` inside it) without waiting: a second holder, in another
process or another thread, is refused at once with a one-line
:class:`ValueError`. The lock is re-entrant in the thread that holds it, and
the operating system releases it when the holder exits or is killed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import threading
from collections.abc import Callable

import numpy as np

from ._validation import describe

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None
try:  # pragma: no cover - Windows
    import msvcrt
except ImportError:
    msvcrt = None

__all__ = [
    "LOCK_NAME",
    "hold_folder",
    "remove_orphaned_temporaries",
    "save_npz_atomic",
    "write_atomic",
    "write_json_atomic",
]

#: Name of the lock file :func:`hold_folder` keeps inside the folder.
LOCK_NAME = ".contraction.lock"
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{12}\.tmp$")
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_BINARY = getattr(os, "O_BINARY", 0)
# Folders held by this process: lock file -> [thread id, depth]. Another thread is
# refused by the operating system's lock itself; this only lets the holder nest.
_HELD: dict[str, list[int]] = {}
_HELD_GUARD = threading.Lock()


def _check_path(path, name: str) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name}: expected a str or os.PathLike path, got {describe(path)}")
    path = os.fsdecode(os.fspath(path))
    if not path:
        raise ValueError(f"{name}: expected a path, got ''")
    return path


# --- writers -------------------------------------------------------------------------------------
def _create_temporary(folder: str, base: str) -> tuple[int, str]:
    """A new, exclusively created temporary file for ``folder/base``, locked while it is written."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _BINARY | _CLOEXEC
    for _ in range(100):
        tmp = os.path.join(folder, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)  # the umask applies, as for any new file
        except FileExistsError:
            continue
        if fcntl is None:  # pragma: no cover - Windows: an open file cannot be removed there
            return fd, tmp
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_nlink:
                return fd, tmp
        except OSError:  # a file system without advisory locks: the file is not recognisable as an orphan
            return fd, tmp
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        os.close(fd)  # an orphan sweep took it in the instant before the lock: take another name
    raise FileExistsError(errno.EEXIST, "could not create a temporary file", folder)


def _sync_folder(folder: str) -> None:
    """Make a rename in ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY | _CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path, write: Callable, *, name: str = "path") -> str:
    """Write a file through ``write(fh)`` so that a reader never sees a partial file.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write (replaced if it exists).
    write : callable
        Called once with a binary file object open for writing.
    name : str, default "path"
        The argument name used in error messages.

    Returns
    -------
    str
        ``path``.

    Examples
    --------
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> path = write_atomic(os.path.join(folder, "a.txt"), lambda fh: fh.write(b"done"))
    >>> with open(path, "rb") as fh:
    ...     fh.read() == b"done" and os.listdir(folder) == ["a.txt"]
    True
    """
    path = _check_path(path, name)
    folder, base = os.path.split(os.path.abspath(path))
    remove_orphaned_temporaries(folder, base)
    fd, tmp = _create_temporary(folder, base)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
            if fcntl is not None:  # renamed while the lock still marks the file as live
                os.replace(tmp, path)
        if fcntl is None:  # pragma: no cover - Windows renames closed files only
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _sync_folder(folder)
    return path


def write_json_atomic(path, payload, *, name: str = "path") -> str:
    """Write ``payload`` as JSON to ``path`` so that a reader never sees a partial file.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write (replaced if it exists).
    payload : object
        Anything :func:`json.dumps` accepts; it is serialised before any file is created.
    name : str, default "path"
        The argument name used in error messages.

    Returns
    -------
    str
        ``path``.

    Examples
    --------
    >>> import json, os, tempfile
    >>> path = write_json_atomic(os.path.join(tempfile.mkdtemp(), "r.json"), {"x": [1, 2]})
    >>> with open(path) as fh:
    ...     json.load(fh) == {"x": [1, 2]}
    True
    """
    path = _check_path(path, name)
    data = json.dumps(payload, indent=1).encode("utf-8")
    return write_atomic(path, lambda fh: fh.write(data), name=name)


def save_npz_atomic(path, **arrays) -> str:
    """Write arrays as an ``.npz`` archive (:func:`numpy.savez`) so that a reader never sees a partial file.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write, used as given (no ``.npz`` is appended).
    **arrays : array_like
        The members of the archive.

    Returns
    -------
    str
        ``path``.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> path = save_npz_atomic(os.path.join(tempfile.mkdtemp(), "m.npz"), x=np.arange(3))
    >>> with np.load(path) as f:
    ...     bool(np.array_equal(f["x"], [0, 1, 2]))
    True
    """
    path = _check_path(path, "path")
    return write_atomic(path, lambda fh: np.savez(fh, **arrays))


# --- orphans of killed writers ---------------------------------------------------------------------
def _remove_if_orphan(path: str) -> bool:
    """Remove a temporary file that no live writer holds; True when removed."""
    if fcntl is None:  # pragma: no cover - Windows refuses to remove a file a writer has open
        try:
            os.unlink(path)
        except OSError:
            return False
        return True
    try:
        fd = os.open(path, os.O_RDONLY | _CLOEXEC)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a live writer holds it (or the file system has no locks: leave it)
            return False
        try:  # still the file that was locked, not yet renamed to its target?
            now = os.stat(path)
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
            return False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return True
    finally:
        os.close(fd)


def remove_orphaned_temporaries(folder, name: str | None = None) -> list[str]:
    """Remove the temporary files that killed writers left in ``folder``.

    Parameters
    ----------
    folder : str or os.PathLike
        Where to look (not recursively); a missing folder has no orphans.
    name : str, optional
        Only the temporary files of this file name.

    Returns
    -------
    list of str
        The paths removed.

    Examples
    --------
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> open(os.path.join(folder, ".r.json.0123456789ab.tmp"), "w").close()   # a killed writer's file
    >>> [os.path.basename(p) for p in remove_orphaned_temporaries(folder)] == [".r.json.0123456789ab.tmp"]
    True
    """
    folder = _check_path(folder, "folder")
    try:
        entries = sorted(os.listdir(folder))
    except OSError:
        return []
    removed = []
    for entry in entries:
        match = _TEMPORARY.match(entry)
        if match is None or (name is not None and match.group("name") != name):
            continue
        path = os.path.join(folder, entry)
        if _remove_if_orphan(path):
            removed.append(path)
    return removed


# --- the folder lock -------------------------------------------------------------------------------
def _try_lock(fd: int) -> bool:
    """Lock an open file exclusively without waiting; False when another holder has it."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        elif msvcrt is not None:  # pragma: no cover - Windows
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except BlockingIOError:
        return False
    except OSError as exc:
        if msvcrt is not None and exc.errno in (errno.EACCES, errno.EDEADLK):  # pragma: no cover
            return False
        raise
    return True


def _holder(fd: int) -> str:
    """Who holds the lock, from the process id its holder wrote into the lock file."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 32).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    if not text.isdigit():
        return "another process"
    if int(text) == os.getpid():
        return f"process {text}, another thread of this one"
    return f"process {text}"


@contextlib.contextmanager
def hold_folder(folder, name: str = "out_dir"):
    """Hold ``folder`` exclusively while the ``with`` block runs; another holder is refused at once.

    The folder is created if missing. The lock lives in the file
    ``.contraction.lock`` inside it; the operating system releases it when
    the block ends, the process exits or the process is killed. The thread
    that holds a folder may enter it again (the lock is re-entrant).

    Parameters
    ----------
    folder : str or os.PathLike
        The folder to hold.
    name : str, default "out_dir"
        The argument name used in error messages.

    Yields
    ------
    str
        The folder's path.

    Raises
    ------
    ValueError
        When another run (another process, or another thread of this one)
        holds the folder, or ``folder`` is an existing file.

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with hold_folder(folder) as held:
    ...     with hold_folder(folder):                  # the holder may nest
    ...         held == folder
    True
    """
    folder = _check_path(folder, name)
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise ValueError(f"{name}: expected a folder, got {folder!r}, which is not a folder")
    os.makedirs(folder, exist_ok=True)
    lock_path = os.path.realpath(os.path.join(folder, LOCK_NAME))
    me = threading.get_ident()
    with _HELD_GUARD:
        held = _HELD.get(lock_path)
        nested = held is not None and held[0] == me
        if nested:
            held[1] += 1
    if nested:
        try:
            yield folder
        finally:
            with _HELD_GUARD:
                held[1] -= 1
        return
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | _BINARY | _CLOEXEC, 0o666)
    try:
        if not _try_lock(fd):
            raise ValueError(f"{name}: expected a folder that no other run is using, got {folder!r}, held by "
                             f"another run ({_holder(fd)}); wait for it to finish or choose another folder")
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        with _HELD_GUARD:
            _HELD[lock_path] = [me, 1]
        try:
            yield folder
        finally:
            with _HELD_GUARD:
                _HELD.pop(lock_path, None)
    finally:
        os.close(fd)
