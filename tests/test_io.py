"""Atomic file output and the output-folder lock: no partial file, no temporary left, one run per folder."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from contraction.core import _io


def leftovers(folder):
    """Every file under ``folder`` that is neither a finished output nor the lock file."""
    return sorted(p.name for p in folder.rglob("*") if p.is_file() and (".tmp" in p.name))


def wait_for(path, proc, seconds=60.0):
    """Wait until ``path`` exists (the child reached its pause), failing if the child ended first."""
    deadline = time.monotonic() + seconds
    while not path.exists():
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"child ended with status {proc.returncode} before {path.name}: {err[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.communicate()
            pytest.fail(f"child did not reach {path.name} within {seconds} s")
        time.sleep(0.02)


class Unserialisable:
    pass


# --- the writers ---------------------------------------------------------------------------------
def test_json_and_npz_round_trip(tmp_path):
    path = _io.write_json_atomic(tmp_path / "a.json", {"x": [1, 2.5], "s": "θ"})
    assert path == os.fspath(tmp_path / "a.json")
    assert json.loads((tmp_path / "a.json").read_text(encoding="utf-8")) == {"x": [1, 2.5], "s": "θ"}
    _io.save_npz_atomic(tmp_path / "b.npz", trajectory=np.arange(6.0).reshape(2, 3), cost="{}")
    with np.load(tmp_path / "b.npz") as f:
        np.testing.assert_array_equal(f["trajectory"], np.arange(6.0).reshape(2, 3))
    assert leftovers(tmp_path) == []


def _replace_interrupted(*args, **kwargs):
    raise KeyboardInterrupt


INTERRUPTIONS = {
    # the payload fails half-way through serialisation
    "json-bad-payload": (lambda p: _io.write_json_atomic(p, {"ok": list(range(2000)), "bad": Unserialisable()}),
                         TypeError, None),
    # a Ctrl-C at the last moment, after the temporary file is complete
    "json-ctrl-c": (lambda p: _io.write_json_atomic(p, {"new": True}), KeyboardInterrupt, _replace_interrupted),
    "npz-ctrl-c": (lambda p: _io.save_npz_atomic(p, x=np.zeros(3)), KeyboardInterrupt, _replace_interrupted),
}


class Interrupting:
    """An array-like whose conversion is interrupted while ``np.savez`` is writing the archive."""

    def __init__(self, exc):
        self.exc = exc

    def __array__(self, dtype=None, copy=None):
        raise self.exc


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit, MemoryError])
def test_npz_writer_interrupted_half_way_leaves_the_old_file_and_no_temporary(tmp_path, exc):
    path = tmp_path / "m.npz"
    _io.save_npz_atomic(path, first=np.ones(4))
    with pytest.raises(exc):
        _io.save_npz_atomic(path, first=np.arange(10_000.0), second=Interrupting(exc))
    assert leftovers(tmp_path) == []
    with np.load(path) as f:  # the reader still sees the complete old file
        np.testing.assert_array_equal(f["first"], np.ones(4))


@pytest.mark.parametrize("case", list(INTERRUPTIONS))
def test_writers_interrupted_leave_the_old_file_and_no_temporary(tmp_path, monkeypatch, case):
    call, exc, replace = INTERRUPTIONS[case]
    path = tmp_path / ("out.npz" if case.startswith("npz") else "out.json")
    path.write_bytes(b"old complete content")
    if replace is not None:
        monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(exc):
        call(path)
    monkeypatch.undo()
    assert path.read_bytes() == b"old complete content"
    assert leftovers(tmp_path) == []


def test_temporary_file_is_synced_before_it_replaces_the_target(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else fd))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.path.realpath(src)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    _io.write_json_atomic(tmp_path / "r.json", [1, 2, 3])
    _io.save_npz_atomic(tmp_path / "r.npz", x=np.zeros(2))
    replaced = [k for k, (what, _) in enumerate(events) if what == "replace"]
    assert len(replaced) == 2
    for k in replaced:
        src = events[k][1]
        assert ("fsync", src) in events[:k], events  # the temporary file's data reached the disk first


def test_two_writers_of_one_path_do_not_collide(tmp_path, monkeypatch):
    """A second writer of the same path, while the first is between writing and renaming, is harmless."""
    path = tmp_path / "shared.json"
    real_replace = os.replace
    nested = []

    def replace(src, dst):
        if not nested:  # the first writer is about to rename: another one writes the same path meanwhile
            nested.append(src)
            _io.write_json_atomic(path, {"writer": 2})
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    _io.write_json_atomic(path, {"writer": 1})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"writer": 1}  # the last rename wins, whole
    assert leftovers(tmp_path) == []


def test_written_file_has_the_permissions_of_an_ordinary_file(tmp_path):
    plain = tmp_path / "plain"
    with open(plain, "w") as fh:
        fh.write("x")
    _io.write_json_atomic(tmp_path / "atomic.json", {})
    assert (tmp_path / "atomic.json").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


def test_writer_refuses_a_path_that_is_not_a_path(tmp_path):
    with pytest.raises(TypeError, match=r"^path:"):
        _io.write_json_atomic(3, {})
    with pytest.raises(TypeError, match=r"^path:"):
        _io.save_npz_atomic(None, x=np.zeros(1))


KILLED_WRITER = """
import sys, time, pathlib
import numpy as np
from contraction.core import _io
folder = pathlib.Path(sys.argv[1])
def savez(fh, **arrays):
    fh.write(b"PK\\x03\\x04 a partial archive")
    fh.flush()
    (folder.parent / "paused").touch()
    time.sleep(120)
np.savez = savez
_io.save_npz_atomic(folder / "result.npz", x=np.zeros(3))
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_next_write_removes_the_temporary_of_a_killed_writer(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(folder)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_for(tmp_path / "paused", proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert not (folder / "result.npz").exists()  # a reader never sees the partial archive
    _io.save_npz_atomic(folder / "result.npz", x=np.ones(3))
    assert leftovers(folder) == []
    with np.load(folder / "result.npz") as f:
        np.testing.assert_array_equal(f["x"], np.ones(3))


def test_a_live_writers_temporary_file_is_not_removed(tmp_path, monkeypatch):
    path = tmp_path / "live.json"
    real_replace = os.replace

    def replace(src, dst):  # while the first write holds its temporary file, another write sweeps
        if os.path.basename(os.fspath(dst)) == "live.json" and not replace.done:
            replace.done = True
            _io.write_json_atomic(path, {"writer": 2})
            assert os.path.exists(src)
        return real_replace(src, dst)

    replace.done = False
    monkeypatch.setattr(os, "replace", replace)
    _io.write_json_atomic(path, {"writer": 1})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"writer": 1}


# --- the folder lock -----------------------------------------------------------------------------
HOLDER = """
import sys, time, pathlib
from contraction.core import _io
folder = pathlib.Path(sys.argv[1])
with _io.hold_folder(folder):
    (folder.parent / "holding").touch()
    time.sleep(120)
"""


def test_folder_lock_is_exclusive_across_processes_and_released_by_a_kill(tmp_path):
    folder = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for(tmp_path / "holding", proc)
        t0 = time.monotonic()
        with pytest.raises(ValueError, match=r"^out_dir: .*another run") as info:
            with _io.hold_folder(folder):
                pass
        assert time.monotonic() - t0 < 2.0  # refused at once, not after waiting
        assert str(proc.pid) in str(info.value) and "\n" not in str(info.value)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    with _io.hold_folder(folder):  # the kill released the lock
        pass


def test_folder_lock_is_reentrant_in_one_thread_and_exclusive_between_threads(tmp_path):
    folder = tmp_path / "out"
    seen = []
    with _io.hold_folder(folder):
        with _io.hold_folder(folder, "out"):  # the same thread may nest
            pass

        def other():
            try:
                with _io.hold_folder(folder):
                    seen.append("entered")
            except ValueError as exc:
                seen.append(str(exc))

        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert seen and seen[0].startswith("out_dir:") and "another run" in seen[0]
    with _io.hold_folder(folder):  # released when the outermost holder leaves
        pass


def test_folder_lock_names_its_argument(tmp_path):
    with pytest.raises(TypeError, match=r"^out_dir:"):
        with _io.hold_folder(3):
            pass
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"^out: .*not a folder"):
        with _io.hold_folder(tmp_path / "file", "out"):
            pass


def test_holder_sweeps_orphaned_temporaries(tmp_path):
    folder = tmp_path / "out"
    (folder / "partial").mkdir(parents=True)
    orphans = [folder / ".results.json.0123456789ab.tmp", folder / "partial" / ".m-1.npz.fedcba987654.tmp"]
    for p in orphans:
        p.write_bytes(b"half")
    (folder / "keep.tmp.txt").write_text("not ours")
    with _io.hold_folder(folder) as held:
        removed = _io.remove_orphaned_temporaries(held)
        removed += _io.remove_orphaned_temporaries(os.path.join(held, "partial"))
    assert sorted(os.path.basename(p) for p in removed) == sorted(p.name for p in orphans)
    assert [p.name for p in folder.rglob("*") if p.is_file() and p.name != _io.LOCK_NAME] == ["keep.tmp.txt"]
