import json

import numpy as np
import pytest

import contraction.experiments as ex
from contraction.cli import main


def test_results_schema_and_costs(tmp_path):
    res = ex.run_nn_experiment(model="mlp", data="synthetic", steps=20, window=5, warmup=20, out_dir=str(tmp_path))
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["config"]["steps"] == 20
    assert set(on_disk["methods"]) == {"forward", "backward", "windowed", "bracket_corrected"}
    for m in on_disk["methods"].values():
        assert len(m["loss"]) == len(m["test_accuracy"]) == 21 and len(m["step_norm"]) == 20
        assert np.all(np.isfinite(m["loss"]))
    cost = {k: v["cost"] for k, v in res["methods"].items()}
    assert cost["forward"] == {"gradient": 20, "hvp": 0}
    assert cost["backward"] == {"gradient": 210, "hvp": 0}
    assert cost["windowed"]["gradient"] == 4 * 15
    assert cost["bracket_corrected"]["hvp"] > 0
    # backward and forward start at the same point and use the same batches: first step equal
    assert np.isclose(res["methods"]["forward"]["step_norm"][0], res["methods"]["backward"]["step_norm"][0])


def test_interrupted_run_resumes_without_redoing_finished_methods(tmp_path, monkeypatch):
    calls = []
    real = ex.backward_iterates

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(ex, "backward_iterates", counting)

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(ex, "windowed_backward_iterates", boom)
    with pytest.raises(KeyboardInterrupt):
        ex.run_nn_experiment(data="synthetic", steps=15, window=5, warmup=10, out_dir=str(tmp_path))
    assert len(calls) == 1 and not (tmp_path / "results.json").exists()
    monkeypatch.undo()
    monkeypatch.setattr(ex, "backward_iterates", counting)
    res = ex.run_nn_experiment(data="synthetic", steps=15, window=5, warmup=10, out_dir=str(tmp_path))
    assert len(calls) == 1  # backward was loaded from the partial results, not recomputed
    fresh = ex.run_nn_experiment(data="synthetic", steps=15, window=5, warmup=10)
    np.testing.assert_allclose(res["methods"]["backward"]["loss"], fresh["methods"]["backward"]["loss"])


def test_cli_experiment_writes_results_and_figures(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["experiment", "nn", "--model", "mlp", "--data", "synthetic", "--steps", "20", "--warmup", "20",
                 "--window", "5", "--out", str(out)]) == 0
    assert (out / "results.json").exists() and (out / "curves.png").exists()
    assert "backward" in capsys.readouterr().out


def test_total_variation():
    assert ex.total_variation([0.0, 1.0, 0.5, 0.5]) == 1.5


def test_bad_arguments():
    with pytest.raises(ValueError, match="^model:"):
        ex.run_nn_experiment(model="rnn", data="synthetic", steps=5, warmup=0)
    with pytest.raises(ValueError, match="^data:"):
        ex.run_nn_experiment(data="mnist", steps=5)
