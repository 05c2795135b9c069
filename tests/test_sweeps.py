"""Sweeps run locally: the spec's one-line errors, results that depend only on the cell, storage that survives SIGKILL.

A cell's results must not depend on the number of workers, the order the
cells run in, or which other cells the grid holds; a rerun computes only
what is missing; a killed run leaves whole files only.
"""

import csv
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import contraction as ct
from contraction.cli import main
from contraction.sweeps import QUANTITIES, Quantity, SpecError, read_spec

ROOT = pathlib.Path(__file__).resolve().parent.parent
QUICK = ROOT / "examples" / "sweeps" / "quick.toml"


def small_spec(**grid):
    """Least squares on a small synthetic design: Monte Carlo (Lyapunov), iterates (both orders), exact moments."""
    return {
        "sweep": {"name": "small", "seed": 3, "quantities": ["lyapunov", "step_norm", "stationary_variance"]},
        "model": {"kind": "least_squares", "data": "synthetic", "n_rows": 64, "n_features": 4},
        "grid": grid or {"lr": [0.01, 0.05, 0.2], "batch_size": [1, 4], "seed": [0, 1]},
        "options": {"lyapunov": {"n_steps": 200, "n_chains": 8}, "step_norm": {"steps": 50}},
    }


def cell_files(folder):
    return {p.name: p.read_bytes() for p in sorted(pathlib.Path(folder, "cells").glob("*.json"))}


def by_coordinates(result):
    return {json.dumps(c.coordinates, sort_keys=True): c.values for c in result.cells}


# --- the spec: one line naming the key ------------------------------------------------------------------
def _spec(change):
    doc = {"sweep": {"seed": 1, "quantities": ["lyapunov", "stationary_variance"]},
           "model": {"kind": "least_squares", "data": "synthetic", "n_rows": 64},
           "grid": {"lr": [0.1, 0.2], "batch_size": [1, 2]}}
    change(doc)
    return doc


BAD_SPECS = {
    "negative lr": (lambda d: d["grid"].update(lr=[0.1, -1]), "grid.lr: expected a non-empty list of real numbers > 0"),
    "lr not a list": (lambda d: d["grid"].update(lr=0.1), "grid.lr: expected a non-empty list"),
    "empty lr": (lambda d: d["grid"].update(lr=[]), "grid.lr: expected a non-empty list"),
    "no lr": (lambda d: d["grid"].pop("lr"), "grid.lr: expected a non-empty list of learning rates"),
    "lr twice": (lambda d: d["grid"].update(lr=[0.1, 0.1]), "grid.lr: expected distinct values, got 0.1 twice"),
    "lr in both": (lambda d: d["model"].update(lr=0.1), "grid.lr: also given as model.lr"),
    "negative replicate": (lambda d: d["grid"].update(seed=[-1]),
                           "grid.seed: expected a non-empty list of integers >= 0"),
    "batch size not a divisor": (lambda d: d["grid"].update(batch_size=[1, 5]),
                                 "grid.batch_size: expected divisors of the number of rows 64"),
    "order without a quantity using it": (lambda d: d["grid"].update(order=["forward"]),
                                          "grid.order: no requested quantity depends on the composition order"),
    "unknown axis": (lambda d: d["grid"].update(momentum=[0.9]), "grid.momentum: not a grid axis of kind"),
    "no kind": (lambda d: d["model"].pop("kind"), "model.kind: expected one of least_squares"),
    "unknown kind": (lambda d: d["model"].update(kind="svm"), "model.kind: expected one of"),
    "unknown data": (lambda d: d["model"].update(data="mnist"),
                     "model.data: expected one of 'digits', 'random_features', 'synthetic', 'diabetes'"),
    "no data": (lambda d: d["model"].pop("data"), "model.data: expected one of"),
    "parameter of other data": (lambda d: d["model"].update(features="relu"),
                                "model.features: not a parameter of data 'synthetic'"),
    "too many digits rows": (lambda d: d["model"].update(data="digits", n_rows=2000),
                             "model.n_rows: expected at most 1797 rows"),
    "unknown parameter": (lambda d: d["model"].update(momentum=0.9), "model.momentum: not a parameter of kind"),
    "bad quadratic": (lambda d: d.update(model={"kind": "quadratic", "hessians": [[[1.0]]], "centers": [[1.0], [2.0]]},
                                         grid={"lr": [0.1]}), "model.centers: expected shape"),
    "no sweep table": (lambda d: d.pop("sweep"), "sweep: expected a [sweep] table"),
    "unknown quantity": (lambda d: d["sweep"].update(quantities=["lyapunov", "entropy"]),
                         "sweep.quantities: unknown quantity 'entropy'"),
    "quantity of another kind": (lambda d: d["sweep"].update(quantities=["nn_experiment"]),
                                 "sweep.quantities: 'nn_experiment' does not apply to kind 'least_squares'"),
    "negative seed": (lambda d: d["sweep"].update(seed=-2), "sweep.seed: expected an integer >= 0, got -2"),
    "unknown sweep key": (lambda d: d["sweep"].update(workers=2), "sweep.workers: unknown key"),
    "unknown table": (lambda d: d.update(cluster={}), "cluster: unknown table"),
    "bad option": (lambda d: d.update(options={"lyapunov": {"n_steps": 0}}),
                   "options.lyapunov.n_steps: expected an integer >= 1, got 0"),
    "unknown option": (lambda d: d.update(options={"lyapunov": {"steps": 5}}),
                       "options.lyapunov.steps: unknown option"),
    "option of another quantity": (lambda d: d.update(options={"tail_index": {}}),
                                   "options.tail_index: not a requested quantity"),
}


@pytest.mark.parametrize("case", list(BAD_SPECS))
def test_a_bad_spec_is_one_line_naming_the_key(case):
    change, expected = BAD_SPECS[case]
    with pytest.raises(SpecError) as info:
        read_spec(_spec(change))
    text = str(info.value)
    assert text.startswith(expected), text
    assert "\n" not in text and "np." not in text


def test_file_errors_name_the_spec(tmp_path):
    with pytest.raises(SpecError, match=r"^spec: cannot read '.*nope\.toml' \(No such file"):
        read_spec(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[sweep]\nquantities = [lyapunov]\n")
    with pytest.raises(SpecError, match=r"^spec: '.*bad\.toml' is not valid TOML: .*line 2"):
        read_spec(bad)


def test_the_example_specs_are_valid():
    specs = sorted((ROOT / "examples" / "sweeps").glob("*.toml"))
    assert len(specs) >= 3
    for path in specs:
        spec = read_spec(path)
        assert spec.n_cells == len(spec.cells) and read_spec(spec.to_dict()).cells == spec.cells, path
    assert read_spec(ROOT / "examples" / "sweeps" / "least_squares_400.toml").n_cells == 400


# --- results that depend only on the cell ----------------------------------------------------------------
def test_one_and_two_workers_write_the_same_cells_bit_for_bit(tmp_path):
    one = ct.sweep(small_spec(), out_dir=tmp_path / "one", workers=1)
    two = ct.sweep(small_spec(), out_dir=tmp_path / "two", workers=2)
    assert (one.executor, two.executor) == ("this process", "2 local worker processes")
    assert one.ok and two.ok and one.ran == two.ran == 12
    files = cell_files(tmp_path / "one")
    assert len(files) == 12 and files == cell_files(tmp_path / "two")
    for name in ("results.jsonl", "summary.csv"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    # the randomness is real: replicates differ, and so do the two orders' iterates
    lyap = one.values("lyapunov_exponent")
    assert np.all(lyap[..., 0] != lyap[..., 1])
    assert not np.array_equal(one.values("forward_step_norm"), one.values("backward_step_norm"))


def test_a_cell_does_not_depend_on_the_order_or_the_other_cells():
    full = by_coordinates(ct.sweep(small_spec(), workers=1))
    shuffled = small_spec(seed=[1, 0], batch_size=[4, 1], lr=[0.2, 0.01, 0.05])  # other axis and value orders
    assert by_coordinates(ct.sweep(shuffled, workers=1)) == full
    alone = by_coordinates(ct.sweep(small_spec(lr=[0.05], batch_size=[4], seed=[1]), workers=1))
    (key, values), = alone.items()
    assert values == full[key]


def test_the_cells_randomness_comes_from_the_spec_seed():
    spec = small_spec(lr=[0.05], batch_size=[1], seed=[0])
    first = ct.sweep(spec, workers=1).cells[0].values
    spec["sweep"]["seed"] = 4
    other = ct.sweep(spec, workers=1).cells[0].values
    assert first["lyapunov_exponent"] != other["lyapunov_exponent"]
    assert first["stationary_variance"] == other["stationary_variance"]  # exact: no randomness in it


def test_exact_values_and_what_does_not_exist():
    res = ct.sweep({"sweep": {"quantities": ["stationary_variance", "tail_index"]},
                    "model": {"kind": "gaussian_1d"}, "grid": {"lr": [0.3, 1.0]}}, workers=1)
    variance = res.cells[0].values["stationary_variance"]
    assert res.cells[1].values["stationary_variance"] == "none exists"  # infinite from h = 2/3 on
    assert np.isnan(res.values("stationary_variance")[1]) and res.values("stationary_variance")[0] == variance
    assert res.cells[0].values["tail_index"] > 2 > res.cells[1].values["tail_index"]
    two_point = ct.sweep({"sweep": {"quantities": ["stationary_variance", "tail_index"]},
                          "model": {"kind": "two_point"}, "grid": {"lr": [0.5]}}, workers=1).cells[0].values
    assert two_point == {"stationary_variance": 0.5 / 1.5, "tail_index": "inf"}  # Var = h/(2-h), bounded support


# --- storage: reruns, failures, SIGKILL ------------------------------------------------------------------
def test_a_rerun_reuses_every_finished_cell(tmp_path):
    first = ct.sweep(small_spec(), out_dir=tmp_path, workers=1)
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "cells").iterdir()}
    again = ct.sweep(small_spec(), out_dir=tmp_path, workers=1)
    assert (again.ran, again.reused) == (0, 12)
    assert [c.to_dict() for c in again.cells] == [c.to_dict() for c in first.cells]
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cells").iterdir()} == stamps
    more = small_spec()
    more["grid"]["seed"] = [0, 1, 2]
    grown = ct.sweep(more, out_dir=tmp_path, workers=1)
    assert (grown.ran, grown.reused) == (6, 12)
    manifest = json.loads((tmp_path / "sweep.json").read_text())
    assert (manifest["cells"], manifest["ran"], manifest["reused"], manifest["failed"]) == (18, 6, 12, 0)


def _flaky(cell, rng):
    if cell.lr == 0.05:
        raise ValueError("x: expected something else,\n  got this")
    return {"flaky": cell.lr}


def test_a_failed_cell_is_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch):
    monkeypatch.setitem(QUANTITIES, "flaky", Quantity(_flaky))
    spec = small_spec()
    spec["sweep"]["quantities"] = ["lyapunov", "flaky"]
    del spec["options"]["step_norm"]
    res = ct.sweep(spec, out_dir=tmp_path, workers=1)
    bad = [c for c in res.cells if not c.ok]
    assert len(bad) == 4 and set(res.failed) == {c.key for c in bad} and not res.ok
    assert all(c.coordinates["lr"] == 0.05 and c.error == "flaky: x: expected something else, got this" for c in bad)
    assert all("lyapunov_exponent" in c.values and "flaky" not in c.values for c in bad)  # what came before stays
    assert sum(c.ok for c in res.cells) == 8
    rows = list(csv.DictReader((tmp_path / "summary.csv").read_text().splitlines()))
    assert sorted(r["status"] for r in rows) == ["failed"] * 4 + ["ok"] * 8
    rerun = ct.sweep(spec, out_dir=tmp_path, workers=1)  # failed cells run again, finished ones do not
    assert (rerun.ran, rerun.reused) == (4, 8)


def test_a_quantity_that_returns_nan_fails_its_cell(monkeypatch):
    monkeypatch.setitem(QUANTITIES, "silent", lambda cell, rng: {"value": float("nan")})
    res = ct.sweep({"sweep": {"quantities": ["silent"]}, "model": {"kind": "two_point"}, "grid": {"lr": [0.5]}},
                   workers=1)
    assert res.cells[0].error.startswith("silent: returned nan for value")


def _slow_spec(path, n_steps=800):
    path.write_text(
        '[sweep]\nname = "slow"\nseed = 9\nquantities = ["lyapunov"]\n'
        '[model]\nkind = "least_squares"\ndata = "synthetic"\nn_rows = 64\nn_features = 6\n'
        '[grid]\nlr = [0.01, 0.02, 0.03, 0.04, 0.05]\nbatch_size = [1, 2]\nseed = [0, 1, 2]\n'
        f'[options.lyapunov]\nn_steps = {n_steps}\nn_chains = 16\n')
    return path


def _every_file_parses(folder):
    for path in (folder / "cells").glob("*.json"):
        json.loads(path.read_text())
    if (folder / "results.jsonl").exists():
        for line in (folder / "results.jsonl").read_text().splitlines():
            json.loads(line)
    if (folder / "summary.csv").exists():
        rows = list(csv.reader((folder / "summary.csv").read_text().splitlines()))
        assert len({len(r) for r in rows}) == 1


def test_sigkill_then_rerun_runs_only_the_missing_cells(tmp_path):
    spec, out = _slow_spec(tmp_path / "slow.toml"), tmp_path / "out"
    with (tmp_path / "stderr").open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "contraction", "sweep", str(spec), "--out", str(out),
                                 "--workers", "1", "--quiet"], stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 120
    while len(list((out / "cells").glob("*.json"))) < 4 if (out / "cells").is_dir() else True:
        assert proc.poll() is None, (tmp_path / "stderr").read_text()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    _every_file_parses(out)
    done = len(list((out / "cells").glob("*.json")))
    assert 4 <= done < 30
    res = ct.sweep(spec, out_dir=out, workers=1)
    assert (res.ran, res.reused) == (30 - done, done) and res.ok
    _every_file_parses(out)
    assert len(cell_files(out)) == 30 and len((out / "results.jsonl").read_text().splitlines()) == 30
    assert not [p for p in out.rglob("*.tmp")]  # the killed writer's temporary file, if any, is gone


@pytest.mark.slow
def test_ctrl_c_stops_the_workers_at_once_and_leaves_whole_tables(tmp_path):
    spec, out = _slow_spec(tmp_path / "slow.toml", n_steps=10000), tmp_path / "out"  # about 1 s a cell
    with (tmp_path / "stderr").open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "contraction", "sweep", str(spec), "--out", str(out),
                                 "--workers", "2"], stdout=subprocess.DEVNULL, stderr=err,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while len(list((out / "cells").glob("*.json"))) < 3 if (out / "cells").is_dir() else True:
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "stderr").read_text()
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    start = time.monotonic()
    assert proc.wait(timeout=60) == 130
    assert time.monotonic() - start < 8  # neither the running cells nor the queued ones are waited for
    last = (tmp_path / "stderr").read_text().replace("\r", "\n").strip().splitlines()[-1]
    assert last == "contraction: interrupted; rerun the same command to resume"
    _every_file_parses(out)
    done = len(list((out / "cells").glob("*.json")))
    assert len((out / "results.jsonl").read_text().splitlines()) == done < 30  # the tables show what is done


# --- the command line ----------------------------------------------------------------------------------
def test_the_command_runs_the_quick_example_then_reuses_it(tmp_path, capsys):
    first = subprocess.run([sys.executable, "-m", "contraction", "sweep", str(QUICK), "--out", "out", "--workers", "1"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("sweep quick: 12 cells: 12 ran, 0 reused, 0 failed (this process")
    assert "tail_index" in first.stdout and "wrote out/cells" in first.stderr
    assert len(list((tmp_path / "out" / "cells").glob("*.json"))) == 12
    assert main(["sweep", str(QUICK), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "12 cells: 0 ran, 12 reused, 0 failed" in out and max(len(line) for line in out.splitlines()) <= 100


def test_command_line_mistakes_are_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[sweep]\nquantities = ["lyapunov"]\n[model]\nkind = "two_point"\n[grid]\nlr = [0.5, -1]\n')
    (tmp_path / "afile").write_text("")
    cases = [
        (["sweep", str(bad)], f"{bad}: grid.lr: expected a non-empty list of real numbers > 0, got [0.5, -1]"),
        (["sweep", str(tmp_path / "none.toml")], "SPEC: cannot read"),
        (["sweep", str(QUICK), "--out", str(tmp_path / "afile")], "--out: expected a folder"),
        (["sweep", str(QUICK), "--workers", "0"], "--workers: expected an integer >= 1, got 0"),
        (["sweep", str(QUICK), "--out", str(tmp_path / "o"), "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"],
         "--workers: applies to a local run"),
    ]
    for argv, expected in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"contraction: error: {expected}") and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()  # the folder made for the refused run is taken back


def test_a_failed_cell_exits_1_naming_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(QUANTITIES, "flaky", Quantity(_flaky))
    spec = tmp_path / "flaky.toml"
    spec.write_text('[sweep]\nquantities = ["flaky"]\n[model]\nkind = "two_point"\n[grid]\nlr = [0.05, 0.5]\n')
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o"), "--workers", "1", "--quiet"]) == 1
    out, err = capsys.readouterr()
    assert "2 cells: 2 ran, 0 reused, 1 failed" in out and "failed: lr=0.05: flaky: x: expected something else" in out
    assert err.startswith("contraction: error: 1 of 2 cells failed") and err.count("\n") == 1
