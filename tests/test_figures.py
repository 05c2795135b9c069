"""What the figures show: mathtext labels, human legends, readable ticks, every curve in view, titled experiments.

Each figure is built as a :class:`matplotlib.figure.Figure` (quick sizes), drawn
on its own Agg canvas and inspected through its artists.
"""

import dataclasses
import os
import re

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

import contraction as ct
import contraction.experiments as ex
from contraction import _figures_phase, figures, plotting
from contraction.figures import FIGURES, build_figure

METHOD_LABELS = ["forward SGD", "backward SGD", "anchored window", "bracket-corrected forward"]


def _drawn(fig):
    FigureCanvasAgg(fig)
    fig.canvas.draw()
    return fig


@pytest.fixture(scope="module")
def experiment():
    return ex.run_nn_experiment(data="synthetic", steps=8, warmup=0, rng=0)


@pytest.fixture(scope="module")
def drawn(experiment):
    """Each figure of the examples and both experiment figures, drawn once when a test first asks for it."""
    builders = {name: (lambda name=name: build_figure(name, quick=True)) for name in FIGURES}
    builders["curves.png"] = lambda: figures.nn_curves_figure(experiment)
    builders["test_accuracy.png"] = lambda: figures.accuracy_figure(experiment)
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = _drawn(builders[name]())
        return cache[name]

    return get


# nn_curves.png trains on the digits (a few seconds): the synthetic experiment figures cover the same drawing
ALL = [pytest.param(name, marks=pytest.mark.slow) if name == "nn_curves.png" else name
       for name in [*FIGURES, "curves.png", "test_accuracy.png"]]


def _suptitle(fig) -> str:
    return fig._suptitle.get_text() if fig._suptitle is not None else ""


def _legends(fig):
    return [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None] + list(fig.legends)


def _texts(fig):
    """Every title, axis label and legend entry of a figure."""
    texts = [_suptitle(fig)]
    for ax in fig.axes:
        texts += [ax.get_title(loc) for loc in ("left", "center", "right")]
        texts += [ax.get_xlabel(), ax.get_ylabel()]
    texts += [t.get_text() for legend in _legends(fig) for t in legend.get_texts()]
    return [t for t in texts if t]


def _outside_math(text: str) -> str:
    """The text with its ``$...$`` mathtext parts removed."""
    assert text.count("$") % 2 == 0, f"unbalanced mathtext in {text!r}"
    return re.sub(r"\$[^$]*\$", "", text)


def _box(artist, renderer):
    return artist.get_window_extent(renderer)


def _in(inner, outer, tol=1.0) -> bool:
    return (inner.x0 >= outer.x0 - tol and inner.x1 <= outer.x1 + tol
            and inner.y0 >= outer.y0 - tol and inner.y1 <= outer.y1 + tol)


def _overlaps(boxes, tol=0.5):
    """Pairs of boxes that intersect by more than ``tol`` pixels in both directions."""
    return [(i, j) for i in range(len(boxes)) for j in range(i + 1, len(boxes))
            if min(boxes[i].x1, boxes[j].x1) - max(boxes[i].x0, boxes[j].x0) > tol
            and min(boxes[i].y1, boxes[j].y1) - max(boxes[i].y0, boxes[j].y0) > tol]


# --- labels -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_labels_are_mathtext_and_words_not_identifiers(drawn, name):
    texts = _texts(drawn(name))
    assert len(texts) >= 4, texts
    for text in texts:
        plain = _outside_math(text)
        assert "_" not in plain, f"{name}: a raw subscript or an identifier in {text!r}"
        assert not re.search(r"[{}\\^]", plain), f"{name}: TeX outside mathtext in {text!r}"
        assert not re.search(r"[θξγρπ][_₀-₉]", plain), f"{name}: hand-made subscript in {text!r}"


@pytest.mark.parametrize("name", ["curves.png", "test_accuracy.png",
                                  pytest.param("nn_curves.png", marks=pytest.mark.slow)])
def test_methods_have_human_legend_labels(drawn, name):
    fig = drawn(name)
    for ax in fig.axes:
        assert [t.get_text() for t in ax.get_legend().get_texts()] == METHOD_LABELS


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_experiment_titles_name_the_network_the_data_and_the_settings(model):
    res = ex.run_nn_experiment(model=model, data="synthetic", steps=4, warmup=2, lr=0.25, batch_size=8, rng=1)
    for fig in (figures.nn_curves_figure(res), figures.accuracy_figure(res)):
        title = _suptitle(fig)
        assert model.upper() in title and "synthetic" in title, title
        assert "$h = 0.25$" in title and "batch size 8" in title and "$W = 3$" in title, title


@pytest.mark.slow
def test_digits_experiment_title_names_the_data_set(drawn):
    title = _suptitle(drawn("nn_curves.png"))
    assert "MLP (one hidden layer of 16)" in title and "scikit-learn digits" in title, title


# --- what is in view ----------------------------------------------------------------------------------
def _points_outside(ax, artist_points):
    box = ax.bbox
    bad = []
    for label, xy in artist_points:
        xy = xy[np.all(np.isfinite(xy), axis=1)]
        if not xy.size:
            continue
        out = ((xy[:, 0] < box.x0 - 1) | (xy[:, 0] > box.x1 + 1) | (xy[:, 1] < box.y0 - 1) | (xy[:, 1] > box.y1 + 1))
        if out.any():
            bad.append((label, int(out.sum()), len(xy)))
    return bad


def _display_points(ax):
    """``(label, display coordinates)`` of every line and patch drawn in ``ax`` (finite data only)."""
    for line in ax.get_lines():
        xy = np.column_stack([np.asarray(line.get_xdata(), dtype=float), np.asarray(line.get_ydata(), dtype=float)])
        xy = xy[np.all(np.isfinite(xy), axis=1)]
        with np.errstate(divide="ignore", invalid="ignore"):  # a log axis sends values <= 0 to non-finite points
            yield line.get_label(), line.get_transform().transform(xy)
    for patch in ax.patches:
        yield patch.get_label(), patch.get_transform().transform(patch.get_path().vertices)


@pytest.mark.parametrize("name", ALL)
def test_every_curve_stays_inside_its_axes(drawn, name):
    for ax in drawn(name).axes:
        assert not _points_outside(ax, _display_points(ax)), f"{name}, {ax.get_title()!r}"


def test_the_curves_check_sees_a_curve_that_leaves_the_plot():
    fig, axes = plotting.new_figure()
    h = np.linspace(0.1, 2.8, 20)
    plotting.draw_stability_vs_lr(axes[0], h, -0.4 + 0.1 * h, np.exp(2 * h), 0.7, 2.4, "t")
    axes[0].set_ylim(-1, 1)  # the former fixed limits: the mean-square curve leaves the plot
    _drawn(fig)
    assert _points_outside(axes[0], _display_points(axes[0]))


def test_stability_axes_cover_both_exponents(drawn):
    ax = drawn("stability_vs_lr.png").axes[0]
    lyap, ms = ax.get_lines()[:2]
    lo, hi = ax.get_ylim()
    values = np.concatenate([lyap.get_ydata(), ms.get_ydata()])
    assert lo <= values.min() and values.max() <= hi
    assert ms.get_ydata().max() > 1  # the mean-square exponent grows well past the former limit of 1


# --- ticks and text placement ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_tick_labels_do_not_overlap(drawn, name):
    fig = drawn(name)
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            labels = [t for t in axis.get_ticklabels(minor=False) + axis.get_ticklabels(minor=True)
                      if t.get_visible() and t.get_text() and _in(_box(t, renderer), _box(ax, renderer), tol=40)]
            boxes = [_box(t, renderer) for t in labels]
            assert not _overlaps(boxes), (name, [t.get_text() for t in labels])


def test_lie_slopes_ticks_are_a_few_round_decimals(drawn):
    ax = drawn("lie_slopes.png").axes[0]
    assert [t.get_text() for t in ax.get_xticklabels() if t.get_text()] == ["0.005", "0.01", "0.02", "0.05"]
    assert not [t.get_text() for t in ax.get_xticklabels(minor=True) if t.get_text()]


def test_the_overlap_check_sees_crowded_tick_labels():
    fig, axes = plotting.new_figure(width=3.0)
    axes[0].loglog([0.005, 0.05], [1.0, 10.0])  # matplotlib's default minor labels: 3×10⁻², 4×10⁻², ...
    _drawn(fig)
    renderer = fig.canvas.get_renderer()
    labels = [t for t in axes[0].xaxis.get_ticklabels(minor=True) + axes[0].xaxis.get_ticklabels()
              if t.get_visible() and t.get_text() and _in(_box(t, renderer), _box(axes[0], renderer), tol=40)]
    assert _overlaps([_box(t, renderer) for t in labels])


@pytest.mark.parametrize("name", ALL)
def test_titles_and_legends_fit_in_the_figure_without_overlapping(drawn, name):
    fig = drawn(name)
    renderer = fig.canvas.get_renderer()
    page = fig.bbox
    titles = [ax.title for ax in fig.axes if ax.get_title()]
    if fig._suptitle is not None:
        titles.append(fig._suptitle)
    boxes = [_box(t, renderer) for t in titles] + [_box(legend, renderer) for legend in _legends(fig)]
    for box in boxes:
        assert _in(box, page), (name, box, page)
    assert not _overlaps(boxes), name


# --- the backward increments ------------------------------------------------------------------------------
def test_increments_are_dots_below_their_bound(drawn):
    fig = drawn("backward_increments.png")
    for ax in fig.axes:
        lines = ax.get_lines()
        dots = [line for line in lines if line.get_linestyle() == "None"]
        bound = next(line for line in lines if line.get_label().startswith("bound"))
        assert dots and all(line.get_marker() == "o" for line in dots)  # dots: no zig-zag between levels
        b = np.asarray(bound.get_ydata())
        for line in dots:
            y = np.asarray(line.get_ydata())
            assert np.all(np.isnan(y) | (y <= b * (1 + 1e-9)))
    e1, random = fig.axes
    assert len([line for line in random.get_lines() if "Lyapunov" in line.get_label()]) == 1
    assert not [line for line in e1.get_lines() if "Lyapunov" in line.get_label()]  # 1-D: γ = log c


# --- experiments that stopped early -----------------------------------------------------------------------
def test_a_result_with_fewer_methods_draws_those_it_has(experiment, tmp_path):
    forward = experiment.methods["forward"]
    blown = dataclasses.replace(experiment.methods["backward"],
                                loss=np.r_[experiment.methods["backward"].loss[:4], np.inf, np.nan, [1e300] * 3])
    res = dataclasses.replace(experiment, methods={"forward": forward, "backward": blown})
    curves = _drawn(figures.nn_curves_figure(res))
    assert [[t.get_text() for t in ax.get_legend().get_texts()] for ax in curves.axes] == [METHOD_LABELS[:2]] * 2
    assert curves.axes[0].get_yscale() == "log"  # a blown-up loss spans decades
    for ax in curves.axes:
        assert not _points_outside(ax, _display_points(ax))
    colors = [line.get_color() for line in curves.axes[0].get_lines()]
    assert colors == ["tab:blue", "tab:orange"]  # a method keeps its colour whichever others are missing


def test_a_diverged_run_is_drawn_and_says_so(tmp_path):
    res = ex.run_nn_experiment(data="synthetic", steps=8, warmup=0, lr=500, rng=0)
    assert res.diverged and len(res.methods) < 4
    for fig in (figures.nn_curves_figure(res), figures.accuracy_figure(res)):
        _drawn(fig)
        assert "diverged" in _suptitle(fig) and "MLP" in _suptitle(fig)
        assert [len(ax.get_lines()) for ax in fig.axes] == [len(res.methods)] * len(fig.axes)
    paths = figures.write_experiment_figures(res, tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["curves.png", "test_accuracy.png"] and len(paths) == 2


# --- files ----------------------------------------------------------------------------------------------
def test_save_figure_replaces_a_file_only_when_the_image_is_complete(tmp_path, monkeypatch):
    fig, _ = plotting.new_figure()
    path = tmp_path / "f.png"
    path.write_bytes(b"earlier")

    def broken(fh, **kwargs):
        fh.write(b"\x89PNG half an image")
        raise RuntimeError("the drawing failed")

    monkeypatch.setattr(fig, "savefig", broken)
    with pytest.raises(RuntimeError, match="drawing failed"):
        plotting.save_figure(fig, path)
    assert path.read_bytes() == b"earlier" and os.listdir(tmp_path) == ["f.png"]
    monkeypatch.undo()
    assert plotting.save_figure(fig, path) == str(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and os.listdir(tmp_path) == ["f.png"]


def test_build_figure_is_the_figure_write_figures_writes():
    a, b = build_figure("lie_slopes.png", rng=5), build_figure("lie_slopes.png", rng=5)
    c = build_figure("lie_slopes.png", rng=6)
    ya, yb, yc = ([line.get_ydata() for line in f.axes[0].get_lines()] for f in (a, b, c))
    assert all(np.array_equal(u, v) for u, v in zip(ya, yb, strict=True))
    assert not all(np.array_equal(u, v) for u, v in zip(ya, yc, strict=True))
    with pytest.raises(ValueError, match=r"^name: expected figure names"):
        build_figure("lie_slopes")


@pytest.mark.parametrize("lo,hi,expected", [
    (0.005, 0.05, [0.005, 0.01, 0.02, 0.05]),
    (0.3, 0.9, [0.3, 0.9]),                   # no round value inside: the two ends
    (1e-8, 1.0, [1e-8, 1e-6, 1e-4, 1e-2, 1.0]),
])
def test_log_ticks(lo, hi, expected):
    ticks = plotting.log_ticks(lo, hi)
    np.testing.assert_allclose(ticks, expected)
    assert ticks.size <= 6


def test_log_ticks_refuses_a_range_that_is_not_positive():
    with pytest.raises(ValueError, match=r"^lo, hi: expected 0 < lo <= hi"):
        plotting.log_ticks(0.0, 1.0)


def test_nn_phase_draws_the_sweeps_ratios_per_batch_size_with_the_claims_thresholds(drawn):
    fig = drawn("nn_phase.png")
    grid, model = _figures_phase._NN_PHASE[True]
    seed = int(figures._streams(figures.FIGURE_SEED)["nn_phase.png"].integers(2**32))
    res = ct.sweep({"sweep": {"name": "nn_phase", "seed": seed, "quantities": ["nn_experiment"]},
                    "model": {"kind": "mlp", "data": "digits", "weight_decay": 0.0, **model}, "grid": grid}, workers=1)
    assert res.ok and res.spec.shape == (2, 2, 1)
    # a cell holds the experiment's own numbers: the mean of the last step norms and the summary's ratios
    cell = res.spec.cells[-1]
    run = ex.run_nn_experiment(model="mlp", lr=cell.params["lr"], rng=cell.rng("nn_experiment"),
                               **{k: cell.params[k] for k in ("data", "batch_size", "hidden", "warmup", "steps")})
    values = res.cells[-1].values
    assert values["backward_final_step_norm"] == run.methods["backward"].final_step_norm
    assert values["backward_final_step_norm"] != float(run.methods["backward"].step_norm[-1])
    assert values["backward_over_forward_final_step_norm"] == run.summary.backward_over_forward_final_step_norm
    assert (values["backward_over_forward_loss_total_variation"]
            == run.summary.backward_over_forward_loss_total_variation)
    assert "MLP" in _suptitle(fig) and "digits" in _suptitle(fig) and "100 warm-up steps" in _suptitle(fig)
    names = ["backward_over_forward_final_step_norm", "backward_over_forward_loss_total_variation"]
    for ax, name, threshold in zip(fig.axes, names, (0.1, 1.0), strict=True):
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log" and "$" in ax.get_ylabel()
        ratios = res.values(name)[..., 0]  # one seed: the mean is the value
        containers = [c for c in ax.containers if c.get_label().startswith("batch size")]
        assert [c.get_label() for c in containers] == [rf"batch size $B = {b}$" for b in grid["batch_size"]]
        for k, container in enumerate(containers):
            line = container.lines[0]
            ok = np.isfinite(ratios[:, k])
            np.testing.assert_array_equal(line.get_xdata(), np.array(grid["lr"])[ok])
            np.testing.assert_array_equal(line.get_ydata(), ratios[ok, k])
        levels = {float(line.get_ydata()[0]) for line in ax.get_lines() if len(set(line.get_ydata())) == 1
                  and line.get_linestyle() in ("--", ":")}
        assert levels == {0.1, 1.0}
        assert any(f"< {threshold:g})" in t.get_text() for t in ax.get_legend().get_texts())


def test_heavy_tail_phase_draws_alpha_gamma_and_rho_per_batch_size_with_both_boundaries(drawn):
    fig = drawn("heavy_tail_phase.png")
    alpha_ax, gamma_ax, rho_ax = fig.axes
    X, y = ct.digits_random_features(4, n_rows=1680, rng=0)
    seeds = figures._streams(figures.FIGURE_SEED)["heavy_tail_phase.png"].spawn(4)  # quick: B = 2 and 8
    lrs = [0.1, 0.14, 0.2]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[0] == r"$B = 2$: $\alpha$ (± 2 s.e.), $\gamma$, $\rho$" and labels[-1].startswith(r"$\rho = 1$")
    for k, b in enumerate((2, 8)):
        model = ct.LinearRegressionModel(X, y, batch_size=b)
        # the α panel: the tail indices of the figure's k-th stream, one child stream per learning rate
        alpha = [ct.tail_index(model.sgd_maps(h), rng=g, n_steps=60, n_chains=64).alpha
                 for h, g in zip(lrs, seeds[k].spawn(3), strict=True)]
        np.testing.assert_array_equal(alpha_ax.containers[k].lines[0].get_ydata(), alpha)
        h_ms = ct.mean_square_threshold(model)
        color = ("tab:blue", "tab:orange")[k]
        gamma_line, rho_line = (next(line for line in ax.get_lines() if line.get_marker() == "o"
                                     and line.get_color() == color) for ax in (gamma_ax, rho_ax))
        hs = np.asarray(rho_line.get_xdata())
        np.testing.assert_allclose(rho_line.get_ydata(), [ct.mean_square_radius(model.sgd_maps(h)) for h in hs],
                                   rtol=1e-12)
        rho = np.asarray(rho_line.get_ydata())
        assert np.all((rho < 1) == (hs < h_ms))  # ρ crosses 1 at the marked mean-square boundary
        for ax, level in ((alpha_ax, 2.0), (rho_ax, 1.0)):
            squares = [line for line in ax.get_lines() if line.get_marker() == "s"]
            assert [float(line.get_xdata()[0]) for line in squares][k] == h_ms
            assert float(squares[k].get_ydata()[0]) == level
        h_gamma = {float(line.get_xdata()[0]) for ax in fig.axes for line in ax.get_lines()
                   if line.get_linestyle() == "--" and line.get_color() == color}
        assert len(h_gamma) == 1  # the same Lyapunov boundary in the three panels
        (h_gamma,) = h_gamma
        gamma, past = np.asarray(gamma_line.get_ydata()), hs > lrs[-1]
        assert np.all((gamma[past] > 0) == (hs[past] > h_gamma))  # γ crosses 0 at the marked Lyapunov boundary
    assert {float(ax.get_lines()[-1].get_ydata()[0]) for ax in fig.axes} == {2.0, 0.0, 1.0}
    assert rho_ax.get_yscale() == "log" and all(ax.get_xlim() == alpha_ax.get_xlim() for ax in fig.axes)
