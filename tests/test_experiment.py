"""The network experiment: the record, its JSON form, resuming, the public ingredients, the command."""

import dataclasses
import inspect
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time

import numpy as np
import pytest

import contraction as ct
import contraction.experiments as ex
import contraction.experiments._divergence as divergence
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
    assert on_disk["diverged"] is False and on_disk["divergence"] is None and on_disk["reused"] == []
    assert not (tmp_path / "partial").exists()  # a finished run removes its partial results


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
    assert res.reused == ("forward", "backward")
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
    net = ex.build_network("mlp", setup.dataset, batch_size=16, weight_decay=0.0, hidden=64)
    assert net.dim == setup.network.dim and net.n_batches == setup.network.n_batches
    assert setup.network.weight_decay == 0.0 and setup.network.hidden == (64,)  # the defaults
    cold = ex.prepare_experiment(data="synthetic", steps=15, warmup=0, rng=8)
    assert not np.array_equal(cold.theta0, setup.theta0)


def test_total_variation():
    assert ex.total_variation([0.0, 1.0, 0.5, 0.5]) == 1.5
    assert ex.total_variation([2.0]) == 0.0


def test_cli_experiment_writes_results_and_figures_and_exits_by_the_claims(tmp_path, capsys):
    out = tmp_path / "run"
    settings = {"data": "synthetic", "steps": 20, "warmup": 20, "window": 5}
    status = main(["experiment", "nn", "--model", "mlp", "--data", "synthetic", "--steps", "20", "--warmup", "20",
                   "--window", "5", "--out", str(out)])
    assert (out / "results.json").exists() and (out / "curves.png").exists()
    assert (out / "test_accuracy.png").read_bytes()[:4] == b"\x89PNG"
    assert "backward" in capsys.readouterr().out
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["config"]["seed"] == 0
    library = ex.run_nn_experiment(rng=0, **settings)
    assert on_disk["claim_holds"] == library.claim_holds
    assert status == (0 if library.claim_holds else 1)  # a claim that does not hold is a failed run


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
        assert len(err) == 1 and err[0].startswith("contraction: error: ") and "another run" in err[0]
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


def interrupt_after(stage):
    """A progress callback that interrupts the run (as Ctrl-C would) once ``stage`` has finished."""
    def progress(label, done, total):
        if label == stage:
            raise KeyboardInterrupt
    return progress


def partial_files(folder):
    return sorted(p.name.split("-")[0] for p in (folder / "partial").glob("*.npz"))


def test_a_corrupt_partial_result_is_recomputed(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        ex.run_nn_experiment(rng=2, out_dir=str(tmp_path), progress=interrupt_after("backward"), **SMALL)
    (backward,) = (tmp_path / "partial").glob("backward-*.npz")
    backward.write_bytes(b"not an archive")
    with pytest.raises(KeyboardInterrupt):
        ex.run_nn_experiment(rng=2, out_dir=str(tmp_path), progress=interrupt_after("backward"), **SMALL)
    fresh = ex.run_nn_experiment(rng=2, **SMALL)
    with np.load(backward) as f:  # recomputed, and saved again, whole
        np.testing.assert_array_equal(f["trajectory"], fresh.methods["backward"].trajectory)
    again = ex.run_nn_experiment(rng=2, out_dir=str(tmp_path), **SMALL)
    assert again.reused == ("forward", "backward")
    np.testing.assert_array_equal(again.methods["backward"].trajectory, fresh.methods["backward"].trajectory)


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


# --- interrupted and resumed runs; partial results ---------------------------------------------
def test_run_interrupted_after_forward_resumes_bit_for_bit(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        ex.run_nn_experiment(rng=5, out_dir=str(tmp_path), progress=interrupt_after("forward"), **SMALL)
    assert partial_files(tmp_path) == ["forward"] and not (tmp_path / "results.json").exists()
    resumed = ex.run_nn_experiment(rng=5, out_dir=str(tmp_path), **SMALL)
    assert resumed.reused == ("forward",)
    assert not (tmp_path / "partial").exists()
    whole = ex.run_nn_experiment(rng=5, out_dir=str(tmp_path / "whole"), **SMALL)
    assert whole.reused == ()
    for name in ex.METHODS:
        a, b = resumed.methods[name], whole.methods[name]
        for field in ("trajectory", "loss", "test_accuracy", "step_norm"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=f"{name}.{field}")
    on_disk, fresh = (json.loads((d / "results.json").read_text()) for d in (tmp_path, tmp_path / "whole"))
    assert on_disk.pop("reused") == ["forward"] and fresh.pop("reused") == []
    assert on_disk == fresh


def test_finished_run_removes_its_partial_results_and_keeps_other_runs(tmp_path):
    with pytest.raises(KeyboardInterrupt):  # another configuration, interrupted in the same folder
        ex.run_nn_experiment(rng=6, out_dir=str(tmp_path), progress=interrupt_after("forward"), **SMALL)
    ex.run_nn_experiment(rng=7, out_dir=str(tmp_path), **SMALL)
    assert partial_files(tmp_path) == ["forward"]  # only rng=6's file is left
    assert ex.run_nn_experiment(rng=6, out_dir=str(tmp_path), **SMALL).reused == ("forward",)
    assert not (tmp_path / "partial").exists()
    assert temporaries(tmp_path) == []


# --- divergence --------------------------------------------------------------------------------
def strict_json(path):
    """The JSON file, refusing NaN and Infinity."""
    def refuse(name):
        raise AssertionError(f"{path.name} holds {name}")
    return json.loads(path.read_text(), parse_constant=refuse)


def reference_loss(setup):
    """The untrained network's training loss, or log K when larger (the divergence test's reference)."""
    cold = ex.prepare_experiment(data="synthetic", steps=2, warmup=0, lr=setup.maps.lr,
                                 weight_decay=setup.network.weight_decay, hidden=setup.network.hidden[0],
                                 rng=setup.seed)
    return max(float(cold.network.evaluate(cold.theta0).loss), np.log(cold.network.n_classes))


def test_diverging_warm_up_stops_there_with_the_step(tmp_path):
    seen = []
    res = ex.run_nn_experiment(data="synthetic", steps=10, warmup=60, lr=50, weight_decay=0.05, rng=0,
                               out_dir=str(tmp_path), progress=lambda label, done, total: seen.append(label))
    assert res.diverged and not res.claim_holds and dict(res.methods) == {}
    assert seen == ["done"]
    text = res.divergence
    assert text.startswith("the warm-up (forward SGD) diverged at step ") and "\n" not in text
    assert "lower lr (now 50)" in text and "2/weight_decay = 40" in text
    step = int(text.split("diverged at step ")[1].split(" ")[0])
    # independently: the loss after step - 1 warm-up steps is within 10^6 times the reference, after step above
    before, after = (ex.prepare_experiment(data="synthetic", steps=2, warmup=w, lr=50, weight_decay=0.05, rng=0)
                     for w in (step - 1, step))
    limit = 1e6 * reference_loss(before)
    assert before.network.evaluate(before.theta0).loss <= limit < after.network.evaluate(after.theta0).loss
    on_disk = strict_json(tmp_path / "results.json")
    assert on_disk["diverged"] is True and on_disk["divergence"] == text and on_disk["methods"] == {}
    assert on_disk["claim_holds"] is False and len(on_disk["claims_not_holding"]) == 2
    statement = res.summary.statement
    assert "diverged" in statement and "bracket" not in statement and "backward" not in statement
    assert not (tmp_path / "partial").exists()


def test_diverging_method_stops_the_run_at_its_first_bad_step(tmp_path):
    settings = {"data": "synthetic", "steps": 60, "window": 5, "warmup": 0, "lr": 50, "weight_decay": 0.05, "rng": 0}
    res = ex.run_nn_experiment(out_dir=str(tmp_path), **settings)
    assert res.diverged and list(res.methods) == [] and res.contractivity.steps.size == 0
    assert res.divergence.startswith("forward SGD diverged at step ") and " of 60 (training loss " in res.divergence
    step = int(res.divergence.split("diverged at step ")[1].split(" ")[0])
    setup = ex.prepare_experiment(data="synthetic", steps=60, warmup=0, lr=50, weight_decay=0.05, rng=0)
    loss = setup.network.evaluate(ct.forward_iterates(setup.maps, setup.theta0, setup.batches)[0]).loss
    over = loss > 1e6 * reference_loss(setup)
    assert over[step] and not over[:step].any()
    on_disk = strict_json(tmp_path / "results.json")
    assert on_disk["diverged"] is True and on_disk["summary"]["backward_step_norms_decay"] is None
    # in a run one step shorter forward SGD stays below the bound: it finishes and is kept
    short = ex.run_nn_experiment(**{**settings, "steps": step - 1})
    assert "forward" in short.methods and not short.divergence.startswith("forward")
    np.testing.assert_allclose(short.methods["forward"].loss, loss[:step], rtol=1e-12)  # evaluated in other chunks


def test_non_finite_iterates_of_a_later_method_are_found_by_step(tmp_path, monkeypatch):
    real = runner.backward_iterates

    def overflowing(maps, theta0, idx, **kwargs):  # backward iterates non-finite from step 7 on
        out = real(maps, theta0, idx, **kwargs)
        if idx.shape[1] >= 7:
            raise ct.DivergenceError("backward iterates overflowed: chain 0 is non-finite at step 7")
        return out

    monkeypatch.setattr(runner, "backward_iterates", overflowing)
    res = ex.run_nn_experiment(rng=1, out_dir=str(tmp_path), **SMALL)
    assert res.diverged and list(res.methods) == ["forward"]
    assert res.divergence.startswith("backward SGD diverged at step 7 of 15 (its iterate is not finite); lower lr")
    on_disk = strict_json(tmp_path / "results.json")
    assert list(on_disk["methods"]) == ["forward"] and on_disk["contractivity"]["local_lipschitz"] == []
    assert on_disk["summary"]["statement"].startswith("the run diverged: backward SGD diverged at step 7")
    assert "bracket" not in on_disk["summary"]["statement"]
    assert not (tmp_path / "partial").exists()
    fresh = ex.run_nn_experiment(rng=1, **SMALL)
    np.testing.assert_array_equal(res.methods["forward"].loss, fresh.methods["forward"].loss)


def test_watched_warm_up_is_the_prepared_start_bit_for_bit():
    res = ex.run_nn_experiment(data="synthetic", steps=2, warmup=300, rng=9)  # the warm-up runs in two chunks
    setup = ex.prepare_experiment(data="synthetic", steps=2, warmup=300, rng=9)
    assert not res.diverged
    np.testing.assert_array_equal(res.methods["forward"].trajectory[0], setup.theta0)


# --- claims --------------------------------------------------------------------------------------
# A run where both claims hold: a small network regularised by weight decay (the maps nearly contract).
SETTLED = {"data": "synthetic", "steps": 40, "window": 5, "warmup": 200, "weight_decay": 0.05, "hidden": 16, "rng": 0}


@pytest.mark.parametrize("settings", [{**SMALL, "rng": 0}, SETTLED], ids=["short", "settled"])
def test_claims_are_the_two_verdicts_and_say_which_fail(settings, tmp_path):
    res = ex.run_nn_experiment(out_dir=str(tmp_path), **settings)
    s = res.summary
    verdicts = {"step norms": s.backward_step_norms_decay, "loss": s.backward_loss_smoother}
    assert res.claim_holds == all(verdicts.values())  # local contractivity is not a claim
    assert len(res.claims_not_holding) == sum(not v for v in verdicts.values())
    assert any("did not settle" in c for c in res.claims_not_holding) == (not verdicts["step norms"])
    assert any("not smoother" in c for c in res.claims_not_holding) == (not verdicts["loss"])
    last = s.statement.splitlines()[-1]
    assert last.startswith("claims hold:") == res.claim_holds
    assert all(c in last for c in res.claims_not_holding)
    on_disk = strict_json(tmp_path / "results.json")
    assert on_disk["claim_holds"] == res.claim_holds
    assert on_disk["claims_not_holding"] == list(res.claims_not_holding)


def test_claims_in_both_outcomes_are_covered():
    """The two cases above really are one run where the claims hold and one where one does not."""
    short = ex.run_nn_experiment(rng=0, **SMALL)
    settled = ex.run_nn_experiment(**SETTLED)
    assert not short.claim_holds and settled.claim_holds


def test_non_finite_warm_up_iterate_is_found_by_step(monkeypatch):
    at_70 = ex.prepare_experiment(data="synthetic", steps=2, warmup=70, rng=4).theta0
    real = divergence.forward_iterates

    def overflowing(maps, theta0, idx, **kwargs):  # warm-up iterates non-finite from step 70 on
        out = real(maps, theta0, idx, **kwargs)
        if (out == at_70).all(axis=-1).any():
            raise ct.DivergenceError("forward iterates overflowed: chain 0 is non-finite")
        return out

    monkeypatch.setattr(divergence, "forward_iterates", overflowing)
    res = ex.run_nn_experiment(data="synthetic", steps=2, warmup=100, rng=4)  # blocks of 64 steps: the second
    assert res.diverged and dict(res.methods) == {}
    assert res.divergence.startswith("the warm-up (forward SGD) diverged at step 70 of 100 (its iterate is not finite)")


def test_without_weight_decay_a_diverging_run_is_still_stopped_and_advised():
    res = ex.run_nn_experiment(data="synthetic", steps=10, warmup=30, lr=1e6, weight_decay=0.0, rng=0)
    assert res.diverged and dict(res.methods) == {}
    text = res.divergence
    assert text.startswith("the warm-up (forward SGD) diverged at step ") and text.endswith("lower lr (now 1e+06)")
    assert "weight_decay" not in text  # no 2/weight_decay edge without weight decay (and no division by 0)
    small = ex.run_nn_experiment(data="synthetic", steps=10, warmup=30, lr=1e6, weight_decay=1e-5, rng=0)
    assert small.diverged and ": above 2/weight_decay = 200000 the weight decay alone" in small.divergence


# --- the default operating point: a trained network ---------------------------------------------
def test_defaults_are_the_signatures_defaults():
    assert ex.DEFAULTS["weight_decay"] == 0.0 and ex.DEFAULTS["data"] == "digits"
    with pytest.raises(TypeError):
        ex.DEFAULTS["lr"] = 1.0
    for func in (ex.run_nn_experiment, ex.prepare_experiment, ex.build_network):
        params = inspect.signature(func).parameters
        shared = [name for name in ex.DEFAULTS
                  if name in params and params[name].default is not inspect.Parameter.empty]
        assert len(shared) >= 3, func.__name__
        assert {name: params[name].default for name in shared} == {name: ex.DEFAULTS[name] for name in shared}


def test_smaller_configuration_is_trained_after_its_warm_up():
    """On the digits, 500 warm-up steps of a 32-unit MLP without weight decay reach over 95% test accuracy."""
    pytest.importorskip("sklearn", reason="the digits need scikit-learn")
    small = {"hidden": 32, "weight_decay": 0.0, "lr": 0.3, "batch_size": 16, "steps": 2}
    for seed in (0, 1):
        setup = ex.prepare_experiment(warmup=500, rng=seed, **small)
        data = setup.dataset
        trained = setup.network.evaluate(setup.theta0, data.X_test, data.y_test)
        assert trained.accuracy > 0.95, seed
        cold = ex.prepare_experiment(warmup=0, rng=seed, **small)  # the test can fail: untrained is near chance
        assert cold.network.evaluate(cold.theta0, data.X_test, data.y_test).accuracy < 0.5


@pytest.mark.slow
def test_default_run_starts_from_a_trained_network():
    """The default experiment: forward SGD's warm-up reaches at least 95% test accuracy on the digits."""
    pytest.importorskip("sklearn", reason="the digits need scikit-learn")
    res = ex.run_nn_experiment()
    cfg = res.config.to_dict()
    assert {k: cfg[k] for k in ex.DEFAULTS} == dict(ex.DEFAULTS)
    assert not res.diverged
    forward = res.methods["forward"]
    assert forward.test_accuracy[0] >= 0.95  # the start of both orders
    assert forward.loss[0] < 0.1 * np.log(10)  # a tenth of the loss of uniform predictions
    for name, m in res.methods.items():
        assert m.final_test_accuracy >= 0.95, name
    last = res.summary.statement.splitlines()[-1]
    assert last.startswith("claims hold:") == res.claim_holds
    assert all(claim in last for claim in res.claims_not_holding)  # a claim that fails here is said so


# --- seed averages -----------------------------------------------------------------------------------
def fake_run(seed, *, accuracy, tv, last_step, cost, decay, smoother, steps=20, start=(0.97, 0.05)):
    """A run record in its JSON form with chosen numbers (per method, in the order of ex.METHODS)."""
    methods = {}
    for k, name in enumerate(ex.METHODS):
        step_norm = [100.0] * (steps - 5) + [last_step[k]] * 5  # only the last max(5, steps // 10) count
        methods[name] = {"loss": [start[1]] * (steps + 1), "test_accuracy": [start[0]] + [accuracy[k]] * steps,
                         "step_norm": step_norm, "loss_total_variation": tv[k], "final_test_accuracy": accuracy[k],
                         "cost": {"gradient": cost[k][0], "hvp": cost[k][1]}}
    config = ex.ExperimentConfig("mlp", "digits", steps, 16, 0.3, 3, seed, 0.0, 2000, 64).to_dict()
    summary = {"backward_step_norms_decay": decay, "backward_loss_smoother": smoother, "locally_contractive": False}
    return {"config": config, "methods": methods, "summary": summary, "diverged": False,
            "claim_holds": decay and smoother}


FAKE = {  # per seed: accuracy, loss TV, last step norm per method; the claims' verdicts
    0: ([0.90, 0.91, 0.92, 0.93], [1.0, 0.1, 0.8, 0.9], [0.2, 0.01, 0.1, 0.3], True, True),
    1: ([0.80, 0.85, 0.70, 0.75], [2.0, 0.4, 1.0, 3.0], [0.4, 0.08, 0.3, 0.2], False, True),
    2: ([0.95, 0.97, 0.96, 0.99], [0.5, 0.05, 0.2, 0.5], [0.1, 0.002, 0.1, 0.1], True, False),
}
COST = [(20, 0), (210, 0), (40, 0), (40, 38)]


def mean_se(values):
    return statistics.fmean(values), statistics.stdev(values) / math.sqrt(len(values))


def test_average_runs_means_and_standard_errors_are_exact():
    runs = [fake_run(seed, accuracy=a, tv=t, last_step=s, cost=COST, decay=d, smoother=m)
            for seed, (a, t, s, d, m) in FAKE.items()]
    avg = ex.average_runs(runs)
    assert avg.n_runs == 3 and avg.n_diverged == 0 and avg.seeds == ((0, ()), (1, ()), (2, ()))
    assert "seed" not in avg.config and avg.config["warmup"] == 2000
    for k, name in enumerate(ex.METHODS):
        m = avg.methods[name]
        columns = {
            "final_test_accuracy": [FAKE[s][0][k] for s in FAKE],
            "loss_total_variation": [FAKE[s][1][k] for s in FAKE],
            "final_step_norm": [FAKE[s][2][k] for s in FAKE],
            "final_step_norm_over_forward": [FAKE[s][2][k] / FAKE[s][2][0] for s in FAKE],
            "loss_total_variation_over_forward": [FAKE[s][1][k] / FAKE[s][1][0] for s in FAKE],
        }
        for field, values in columns.items():
            mean, se = mean_se(values)
            got = getattr(m, field)
            assert got.n == 3 and math.isclose(got.mean, mean, rel_tol=1e-12), (name, field)
            assert math.isclose(got.se, se, rel_tol=1e-12), (name, field)
        assert (m.gradient_evals.mean, m.gradient_evals.se) == (COST[k][0], 0.0)
        assert (m.hvp_evals.mean, m.hvp_evals.se) == (COST[k][1], 0.0)
    assert avg.start_test_accuracy.mean == 0.97 and avg.start_test_accuracy.se == 0.0
    assert avg.fraction_holding == {"backward_step_norms_decay": 2 / 3, "backward_loss_smoother": 2 / 3,
                                    "claim_holds": 1 / 3}
    assert avg.fraction_locally_contractive == 0.0
    lines = avg.statement.splitlines()
    assert "below 10% in 2 of 3 runs" in lines[1] and "smoother in 2 of 3 runs" in lines[2]
    assert lines[-1] == "claims NOT holding in every run: both hold in 1 of 3 runs"
    payload = json.dumps(avg.to_dict(), allow_nan=False)
    assert json.loads(payload)["methods"]["backward"]["final_test_accuracy"]["n"] == 3


def test_average_runs_leaves_diverged_runs_out_and_counts_them():
    a, t, s, d, m = FAKE[0]
    good = fake_run(0, accuracy=a, tv=t, last_step=s, cost=COST, decay=d, smoother=m)
    bad = {**fake_run(1, accuracy=a, tv=t, last_step=s, cost=COST, decay=d, smoother=m), "methods": {},
           "diverged": True, "claim_holds": False,
           "summary": {"backward_step_norms_decay": None, "backward_loss_smoother": None, "locally_contractive": None}}
    avg = ex.average_runs([good, bad])
    assert avg.n_runs == 2 and avg.n_diverged == 1
    acc = avg.methods["forward"].final_test_accuracy
    assert (acc.mean, acc.n) == (a[0], 1) and math.isnan(acc.se)  # one run: no standard error
    assert avg.fraction_holding["claim_holds"] == 0.5  # a diverged run is one where no claim held
    assert avg.to_dict()["methods"]["forward"]["final_test_accuracy"]["se"] is None
    assert "1 diverged (left out of the averages)" in avg.statement.splitlines()[0]
    only_bad = ex.average_runs([bad])
    assert dict(only_bad.methods) == {} and only_bad.fraction_holding["claim_holds"] == 0.0
    assert "every run diverged" in only_bad.statement


def test_average_runs_of_two_real_runs_matches_their_records():
    runs = [ex.run_nn_experiment(data="synthetic", steps=8, warmup=5, window=3, rng=seed) for seed in (0, 1)]
    avg = ex.average_runs(runs)
    for name in ex.METHODS:
        m = avg.methods[name]
        acc = [r.methods[name].final_test_accuracy for r in runs]
        tv = [r.methods[name].loss_total_variation for r in runs]
        last = [float(np.mean(r.methods[name].step_norm[-5:])) for r in runs]  # 8 steps: the last 5
        for got, values in ((m.final_test_accuracy, acc), (m.loss_total_variation, tv), (m.final_step_norm, last)):
            mean, se = mean_se(values)
            assert math.isclose(got.mean, mean, rel_tol=1e-12)
            assert math.isclose(got.se, se, rel_tol=1e-12, abs_tol=1e-15)
        assert m.gradient_evals.mean == runs[0].methods[name].gradient_evals
    ratio = [r.summary.backward_over_forward_final_step_norm for r in runs]
    assert math.isclose(avg.methods["backward"].final_step_norm_over_forward.mean, statistics.fmean(ratio),
                        rel_tol=1e-12)
    assert avg.fraction_holding["claim_holds"] == statistics.fmean([r.claim_holds for r in runs])
    # the JSON form of the records (results.json), with or without the curves, gives the same averages
    for curves in (True, False):
        on_disk = [json.loads(json.dumps(r.to_dict(curves=curves), allow_nan=False)) for r in runs]
        assert ex.average_runs(on_disk).to_dict() == avg.to_dict()
    compact = runs[0].to_dict(curves=False)
    assert "contractivity" not in compact and "step_norm" not in compact["methods"]["backward"]
    assert compact["start"] == {"loss": runs[0].methods["forward"].loss[0],
                                "test_accuracy": runs[0].methods["forward"].test_accuracy[0]}
    assert compact["methods"]["backward"]["final_step_norm"] == runs[0].methods["backward"].final_step_norm


ONE = fake_run(0, accuracy=[1.0] * 4, tv=[1.0] * 4, last_step=[1.0] * 4, cost=COST, decay=True, smoother=True)
BAD_AVERAGES = [
    (TypeError, lambda: ex.average_runs(None)),
    (TypeError, lambda: ex.average_runs(ONE)),  # one record, not a sequence of them
    (ValueError, lambda: ex.average_runs([])),
    (TypeError, lambda: ex.average_runs([3])),
    (ValueError, lambda: ex.average_runs([{"config": {}}])),
    (ValueError, lambda: ex.average_runs([ONE, {**ONE, "methods": {"forward": ONE["methods"]["forward"]}}])),
    (ValueError, lambda: ex.average_runs([{**ONE, "summary": {}}])),
    (ValueError, lambda: ex.average_runs([{**ONE, "methods": {**ONE["methods"], "backward": {"loss": [1.0]}}}])),
    (ValueError, lambda: ex.average_runs([ONE, ONE])),  # the same seed twice
    (ValueError, lambda: ex.average_runs([ONE, {**ONE, "config": {**ONE["config"], "seed": 1, "lr": 0.5}}])),
]


@pytest.mark.parametrize("exc,call", BAD_AVERAGES, ids=[str(k) for k in range(len(BAD_AVERAGES))])
def test_average_runs_refuses_what_it_cannot_average(exc, call):
    with pytest.raises(exc, match=r"^results: "):
        call()
