"""The face: the command line, the figures and the drawings."""

import sys

import numpy as np
import pytest

import contraction.experiments as ex
from contraction import figures
from contraction.cli import main
from contraction.figures import FIGURES

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", list(FIGURES))
def test_reproduce_writes_each_figure(name, tmp_path, capsys):
    assert main(["reproduce", "--quick", "--out", str(tmp_path), "--only", name]) == 0
    data = (tmp_path / name).read_bytes()
    assert data[:8] == PNG and len(data) > 10_000, name
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left behind
    assert str(tmp_path / name) in capsys.readouterr().out


@pytest.mark.slow
def test_reproduce_writes_every_figure(tmp_path, capsys):
    assert main(["reproduce", "--quick", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(FIGURES)


def test_unknown_figure_is_a_clear_error(tmp_path, capsys):
    assert main(["reproduce", "--out", str(tmp_path), "--only", "nope.png"]) == 2
    assert "--only:" in capsys.readouterr().err


def test_lie_slope_data_is_a_record_with_the_orders_of_the_expansion():
    res = figures.lie_slope_data(rng=0)
    assert isinstance(res, figures.LieSlopeData)
    assert res.hs.shape == res.difference.shape == res.residual.shape == (6,)
    assert abs(res.difference_slope - 2) < 0.2 and abs(res.residual_slope - 3) < 0.3
    assert np.all(res.residual < res.difference)


def test_lie_slope_data_draws_only_from_its_rng():
    a, b, c = figures.lie_slope_data(rng=1), figures.lie_slope_data(rng=1), figures.lie_slope_data(rng=2)
    np.testing.assert_array_equal(a.difference, b.difference)
    assert not np.array_equal(a.difference, c.difference)
    with pytest.warns(DeprecationWarning, match="rng="):
        old = figures.lie_slope_data(seed=1)
    np.testing.assert_array_equal(old.residual, a.residual)


@pytest.mark.parametrize("hs,window,exc,name", [
    ([0.01], 4, ValueError, "hs"),
    ([0.01, -0.02], 4, ValueError, "hs"),
    (None, 1, ValueError, "window"),
    (None, 2.0, TypeError, "window"),
])
def test_lie_slope_data_bad_input(hs, window, exc, name):
    with pytest.raises(exc, match=f"^{name}:"):
        figures.lie_slope_data(hs, window, rng=0)


def test_experiment_figures_draw_a_record(tmp_path):
    res = ex.run_nn_experiment(data="synthetic", steps=6, warmup=0, rng=0)
    paths = figures.write_experiment_figures(res, tmp_path)
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["curves.png", "test_accuracy.png"]
    fig = figures.nn_curves_figure(res)
    assert [len(ax.get_lines()) for ax in fig.axes] == [4, 4]
    with pytest.raises(TypeError, match=r"^result:"):
        figures.write_experiment_figures(res.to_dict(), tmp_path)


def test_drawing_leaves_pyplot_and_the_backend_alone(tmp_path, monkeypatch):
    import matplotlib

    backend = matplotlib.get_backend()
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # any import of pyplot would now fail
    monkeypatch.setattr(matplotlib, "use", lambda *a, **k: pytest.fail("the backend was switched"))
    assert figures.write_figures(tmp_path, quick=True, names=["lie_slopes.png"])
    assert matplotlib.get_backend() == backend


def test_compare_prints_both_orders(capsys):
    assert main(["compare", "--steps", "4"]) == 0
    out = capsys.readouterr().out
    assert "forward" in out and "backward" in out and len(out.splitlines()) == 7


def test_bad_cli_input_is_a_clear_error(capsys):
    assert main(["compare", "--lr", "-1"]) == 2
    assert "lr:" in capsys.readouterr().err


def test_verify_runs_the_checks_and_writes_json(tmp_path, capsys):
    path = tmp_path / "checks.json"
    assert main(["verify", "--quick", "--only", "C2", "--json", str(path)]) == 0
    assert "1 passed, 0 failed" in capsys.readouterr().out
    assert path.read_text().count('"claim"') == 1
