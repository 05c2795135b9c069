"""The network experiment: the record, its JSON form, resuming, the public ingredients, the command."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import contraction.experiments as ex
import contraction.experiments.runner as runner
from contraction.cli import main
from contraction.nn import teacher_student_data

SMALL = {"data": "synthetic", "steps": 15, "window": 5, "warmup": 10}
NO_IMAGES = teacher_student_data(n_train=32, n_test=8, n_features=10, rng=0)  # 10 features: not an image


def test_record_json_and_costs(tmp_path):
    res = ex.run_nn_experiment(model="mlp", data="synthetic", steps=20, window=5, warmup=20, rng=0,
                               out_dir=str(tmp_path))
    assert isinstance(res, ex.NNExperimentResult)
    assert list(res.methods) == list(ex.METHODS)
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(res.to_dict()))
    assert on_disk["config"]["steps"] == 20 and on_disk["config"]["seed"] == 0
    for m in on_disk["methods"].values():
        assert len(m["loss"]) == len(m["test_accuracy"]) == 21 and len(m["step_norm"]) == 20
        assert np.all(np.isfinite(m["loss"]))
    cost = {k: (m.gradient_evals, m.hvp_evals) for k, m in res.methods.items()}
    assert cost["forward"] == (20, 0)
    assert cost["backward"] == (210, 0)
    assert cost["windowed"][0] == 4 * 15
    assert cost["bracket_corrected"][1] > 0
    # backward and forward start at the same point and use the same batches: first step equal
    fwd, bwd = res.methods["forward"], res.methods["backward"]
    assert np.isclose(fwd.step_norm[0], bwd.step_norm[0])
    assert fwd.trajectory.shape == (21, bwd.trajectory.shape[1])
    assert np.isclose(fwd.loss_total_variation, ex.total_variation(fwd.loss))
    assert res.summary.backward_loss_smoother == (bwd.loss_total_variation < fwd.loss_total_variation)
    assert res.summary.statement in on_disk["summary"]["statement"]


def test_record_is_frozen_and_read_only():
    res = ex.run_nn_experiment(rng=1, **SMALL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.summary = None
    with pytest.raises(TypeError):
        res.methods["forward"] = res.methods["backward"]
    with pytest.raises(ValueError, match="read-only"):
        res.methods["forward"].loss[0] = 0.0


def test_indexing_the_record_is_deprecated():
    res = ex.run_nn_experiment(rng=1, **SMALL)
    with pytest.warns(DeprecationWarning, match="to_dict"):
        methods = res["methods"]
    assert methods["forward"]["cost"]["gradient"] == 15


def test_interrupted_run_resumes_without_redoing_finished_methods(tmp_path, monkeypatch):
    calls = []
    real = runner.backward_iterates

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "backward_iterates", counting)
    monkeypatch.setattr(runner, "windowed_backward_iterates", boom)
    with pytest.raises(KeyboardInterrupt):
        ex.run_nn_experiment(rng=3, out_dir=str(tmp_path), **SMALL)
    assert len(calls) == 1 and not (tmp_path / "results.json").exists()
    assert not list(tmp_path.rglob("*.tmp"))  # partial files are written atomically
    monkeypatch.undo()
    monkeypatch.setattr(runner, "backward_iterates", counting)
    res = ex.run_nn_experiment(rng=3, out_dir=str(tmp_path), **SMALL)
    assert len(calls) == 1  # backward was loaded from the partial results, not recomputed
    # another seed is another configuration: nothing is reused
    ex.run_nn_experiment(rng=4, out_dir=str(tmp_path), **SMALL)
    assert len(calls) == 2
    monkeypatch.undo()
    fresh = ex.run_nn_experiment(rng=3, **SMALL)
    np.testing.assert_array_equal(res.methods["backward"].loss, fresh.methods["backward"].loss)


def test_same_rng_same_result_other_rng_other_result():
    a, b = ex.run_nn_experiment(rng=5, **SMALL), ex.run_nn_experiment(rng=5, **SMALL)
    c = ex.run_nn_experiment(rng=6, **SMALL)
    np.testing.assert_array_equal(a.methods["backward"].trajectory, b.methods["backward"].trajectory)
    np.testing.assert_array_equal(a.contractivity.local_lipschitz, b.contractivity.local_lipschitz)
    assert not np.array_equal(a.methods["forward"].trajectory, c.methods["forward"].trajectory)
    # a Generator contributes one draw: the seed is recorded, and reproduces the run
    d = ex.run_nn_experiment(rng=np.random.default_rng(7), **SMALL)
    e = ex.run_nn_experiment(rng=d.config.seed, **SMALL)
    np.testing.assert_array_equal(d.methods["forward"].trajectory, e.methods["forward"].trajectory)


def test_seed_keyword_is_a_deprecated_alias():
    with pytest.warns(DeprecationWarning, match="rng="):
        old = ex.run_nn_experiment(seed=2, **SMALL)
    new = ex.run_nn_experiment(rng=2, **SMALL)
    np.testing.assert_array_equal(old.methods["forward"].loss, new.methods["forward"].loss)
    with pytest.warns(DeprecationWarning, match="rng="):
        data = ex.load_experiment_data("synthetic", seed=2)
    np.testing.assert_array_equal(data.y_train, ex.load_experiment_data("synthetic", rng=2).y_train)


def test_progress_callback_sees_every_stage():
    seen = []
    ex.run_nn_experiment(rng=0, progress=lambda label, done, total: seen.append((label, done, total)), **SMALL)
    assert [s[0] for s in seen] == ["warm-up", *ex.METHODS, "contractivity", "done"]
    assert [s[1] for s in seen] == list(range(1, 8)) and {s[2] for s in seen} == {7}


def test_prepare_experiment_is_what_the_methods_start_from():
    setup = ex.prepare_experiment(data="synthetic", steps=15, warmup=10, rng=8)
    res = ex.run_nn_experiment(rng=8, **SMALL)
    np.testing.assert_array_equal(res.methods["forward"].trajectory[0], setup.theta0)
    assert setup.batches.shape == (1, 15) and setup.seed == res.config.seed == 8
    net = ex.build_network("mlp", setup.dataset, batch_size=16, weight_decay=0.05, hidden=16)
    assert net.dim == setup.network.dim and net.n_batches == setup.network.n_batches
    cold = ex.prepare_experiment(data="synthetic", steps=15, warmup=0, rng=8)
    assert not np.array_equal(cold.theta0, setup.theta0)


def test_total_variation():
    assert ex.total_variation([0.0, 1.0, 0.5, 0.5]) == 1.5
    assert ex.total_variation([2.0]) == 0.0


def test_cli_experiment_writes_results_and_figures(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["experiment", "nn", "--model", "mlp", "--data", "synthetic", "--steps", "20", "--warmup", "20",
                 "--window", "5", "--out", str(out)]) == 0
    assert (out / "results.json").exists() and (out / "curves.png").exists()
    assert (out / "test_accuracy.png").read_bytes()[:4] == b"\x89PNG"
    captured = capsys.readouterr()
    assert "backward" in captured.out and "6/7" in captured.err  # the table, and the progress bar on stderr
    assert json.loads((out / "results.json").read_text())["config"]["seed"] == 0


# --- one run per output folder; kills leave no temporary file ------------------------------------
def temporaries(folder):
    return sorted(p.name for p in folder.rglob("*") if p.is_file() and ".tmp" in p.name)


def wait_for(path, proc, seconds=90.0):
    """Wait until ``path`` exists (the child reached its pause), failing if the child ended first."""
    deadline = time.monotonic() + seconds
    while not path.exists():
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"child ended with status {proc.returncode} before {path.name}: {err[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.communicate()
            pytest.fail(f"child did not reach {path.name} within {seconds} s")
        time.sleep(0.02)


# A run that pauses after its first method until the file "go" appears.
PAUSED_RUN = """
import json, pathlib, sys, time
import contraction.experiments as ex
out = pathlib.Path(sys.argv[1])
def progress(label, done, total):
    if label == "forward":
        (out.parent / "paused").touch()
        deadline = time.monotonic() + 120
        while not (out.parent / "go").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
res = ex.run_nn_experiment(data="synthetic", steps=15, window=5, warmup=10, rng=3, out_dir=str(out),
                           progress=progress)
print(json.dumps(res.methods["backward"].loss.tolist()))
"""

# A run (through the library or the command) that stops inside the save of its second method.
SAVE_INTERRUPTED = """
import pathlib, sys, time
import numpy as np
out, how = pathlib.Path(sys.argv[1]), sys.argv[2]
real, calls = np.savez, []
def savez(fh, **arrays):
    calls.append(1)
    if len(calls) == 2:
        fh.write(b"PK\\x03\\x04 half an archive")
        fh.flush()
        (out.parent / "saving").touch()
        time.sleep(120)
    return real(fh, **arrays)
np.savez = savez
if how == "cli":
    from contraction.cli import main
    sys.exit(main(["experiment", "nn", "--data", "synthetic", "--steps", "15", "--window", "5", "--warmup",
                   "10", "--seed", "3", "--out", str(out)]))
import contraction.experiments as ex
ex.run_nn_experiment(data="synthetic", steps=15, window=5, warmup=10, rng=3, out_dir=str(out))
"""


def test_second_run_on_one_folder_is_refused_and_the_first_completes(tmp_path, capsys):
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-c", PAUSED_RUN, str(out)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        wait_for(tmp_path / "paused", first)
        t0 = time.monotonic()
        with pytest.raises(ValueError, match=r"^out_dir: .*another run"):
            ex.run_nn_experiment(rng=3, out_dir=str(out), **SMALL)
        assert main(["experiment", "nn", "--data", "synthetic", "--steps", "15", "--warmup", "10", "--window",
                     "5", "--seed", "4", "--out", str(out)]) == 2
        assert time.monotonic() - t0 < 10.0
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("contraction: error: out_dir:") and "another run" in err[0]
    finally:
        (tmp_path / "go").touch()
        stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr[-3000:]
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["config"]["seed"] == 3
    assert on_disk["methods"]["backward"]["loss"] == json.loads(stdout)
    fresh = ex.run_nn_experiment(rng=3, **SMALL)
    np.testing.assert_array_equal(fresh.methods["backward"].loss, json.loads(stdout))
    assert temporaries(out) == []


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_run_killed_while_saving_leaves_no_temporary_and_a_rerun_resumes(tmp_path, monkeypatch):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", SAVE_INTERRUPTED, str(out), "library"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(tmp_path / "saving", proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    saved = sorted(p.name.split("-")[0] for p in (out / "partial").glob("*.npz"))
    assert saved == ["forward"]  # the half-written backward result is never seen under its name
    # the next run in the folder, of any configuration, leaves no temporary file behind
    ex.run_nn_experiment(rng=4, out_dir=str(out), **SMALL)
    assert temporaries(out) == []
    # and the killed configuration resumes: forward is loaded, not recomputed
    calls = []
    real = runner.forward_iterates
    monkeypatch.setattr(runner, "forward_iterates", lambda *a, **k: calls.append(1) or real(*a, **k))
    res = ex.run_nn_experiment(rng=3, out_dir=str(out), **SMALL)
    monkeypatch.undo()
    assert calls == []
    fresh = ex.run_nn_experiment(rng=3, **SMALL)
    for name in ex.METHODS:
        np.testing.assert_array_equal(res.methods[name].trajectory, fresh.methods[name].trajectory, err_msg=name)
    assert temporaries(out) == []


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or os.name != "posix", reason="needs POSIX signals")
def test_command_terminated_while_saving_removes_its_temporary_file(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", SAVE_INTERRUPTED, str(out), "cli"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_for(tmp_path / "saving", proc)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    assert temporaries(out) == []


def test_a_corrupt_partial_result_is_recomputed(tmp_path):
    res = ex.run_nn_experiment(rng=2, out_dir=str(tmp_path), **SMALL)
    (backward,) = (tmp_path / "partial").glob("backward-*.npz")
    backward.write_bytes(b"not an archive")
    again = ex.run_nn_experiment(rng=2, out_dir=str(tmp_path), **SMALL)
    np.testing.assert_array_equal(again.methods["backward"].trajectory, res.methods["backward"].trajectory)
    with np.load(backward) as f:  # and saved again, whole
        np.testing.assert_array_equal(f["trajectory"], res.methods["backward"].trajectory)


def test_out_dir_that_is_a_file_or_not_a_path_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"^out_dir:"):
        ex.run_nn_experiment(out_dir=str(tmp_path / "file"), **SMALL)
    with pytest.raises(TypeError, match=r"^out_dir:"):
        ex.run_nn_experiment(out_dir=3, **SMALL)


BAD = [
    ("model", ValueError, lambda: ex.run_nn_experiment(model="rnn", data="synthetic", steps=5, warmup=0)),
    ("data", ValueError, lambda: ex.run_nn_experiment(data="mnist", steps=5)),
    ("steps", ValueError, lambda: ex.run_nn_experiment(data="synthetic", steps=1)),
    ("window", TypeError, lambda: ex.run_nn_experiment(data="synthetic", steps=5, window=2.5)),
    ("warmup", ValueError, lambda: ex.run_nn_experiment(data="synthetic", steps=5, warmup=-1)),
    ("lr", ValueError, lambda: ex.run_nn_experiment(data="synthetic", steps=5, lr=0.0)),
    ("rng", TypeError, lambda: ex.run_nn_experiment(data="synthetic", steps=5, rng="zero")),
    ("progress", TypeError, lambda: ex.run_nn_experiment(data="synthetic", steps=5, warmup=0, progress=3)),
    ("model", ValueError, lambda: ex.build_network("cnn", NO_IMAGES)),
    ("dataset", TypeError, lambda: ex.build_network("mlp", None)),
]


@pytest.mark.parametrize("name,exc,call", BAD, ids=[f"{c[0]}-{k}" for k, c in enumerate(BAD)])
def test_bad_arguments_name_the_argument(name, exc, call):
    with pytest.raises(exc, match=f"^{name}:"):
        call()
