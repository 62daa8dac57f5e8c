"""The report's figures as a user sees them: the search figure's legend hides no point, and the learning
curves (mean dev score per epoch of every trained network) are drawn from results.json and redrawn by
``sparseshare report``."""

import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

from sparseshare.cli import main
from sparseshare.experiments.results.figures import (
    learning_curve_figure,
    learning_curves,
    plot_learning_curves,
    plot_search,
)

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"


def _closed_figures(monkeypatch) -> list:
    """The figures a plotting function closes, kept open (so that the test can inspect what it saved)."""
    kept = []
    monkeypatch.setattr(plt, "close", lambda fig=None: kept.append(fig))
    return kept


def _points(fig) -> np.ndarray:
    """The display coordinates of every plotted data point of every axes (lines and scatters)."""
    pts = []
    for ax in fig.axes:
        for line in ax.get_lines():
            pts.append(ax.transData.transform(line.get_xydata()))
        for coll in ax.collections:
            offsets = coll.get_offsets()
            if len(offsets):
                pts.append(coll.get_offset_transform().transform(offsets))
    pts = np.concatenate(pts)
    return pts[np.isfinite(pts).all(axis=1)]


def _assert_no_legend_hides_a_point(fig) -> None:
    """Every legend of ``fig`` (per axes or the figure's) lies clear of every plotted point."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)
    assert legends, "the figure has no legend"
    pts = _points(fig)
    assert len(pts)
    for legend in legends:
        box = legend.get_window_extent(renderer)
        hidden = [tuple(p) for p in pts if box.x0 <= p[0] <= box.x1 and box.y0 <= p[1] <= box.y1]
        assert not hidden, f"the legend {box} hides the points {hidden}"


def _search_results() -> dict:
    """A run whose search levels fill the plot's four corners, its edges' middles and its centre: no
    legend inside the axes can avoid them (the old 'lower left' legend hid the dense, worst level)."""
    dens = [1.0, 0.99, 0.98, 0.65, 0.64, 0.63, 0.31, 0.305, 0.3]
    devs = [0.1, 0.5, 0.9, 0.1, 0.5, 0.9, 0.1, 0.5, 0.9]
    levels = [{"density": d, "dev": v} for d, v in zip(dens, devs)]
    search = {t: {"levels": levels, "selected": sel} for t, sel in (("pos", 4), ("chunk", 0), ("ner", 8))}
    return {"systems": {"sparse": {"search": search}}}


def test_the_search_legend_hides_no_point(tmp_path, monkeypatch):
    kept = _closed_figures(monkeypatch)
    path = plot_search(_search_results(), tmp_path)
    assert path == tmp_path / "search_dev_vs_density.png" and path.read_bytes()[:8] == PNG
    (fig,) = kept
    assert len(fig.axes) == 3
    _assert_no_legend_hides_a_point(fig)


def _training(start: int, runs: dict) -> dict:
    return {
        "start_epochs": start,
        "runs": {
            k: {"epochs": len(dev), "best_epoch": best, "cap": 4, "dev_mean": dev, "seed": 1}
            for k, (dev, best) in runs.items()
        },
    }


def _trained_results() -> dict:
    """Three systems: a single-task one (a network per task), hard sharing, sparse sharing after a
    2-epoch warmup; and one from before training summaries were recorded."""
    tasks = {"pos": {"metric": "accuracy"}, "ner": {"metric": "f1"}}
    return {
        "systems": {
            "single": {"tasks": tasks, "training": _training(0, {"pos": ([0.5, 0.7], 2), "ner": ([0.3], 1)})},
            "hard": {"tasks": tasks, "training": _training(0, {"hard": ([0.4, 0.6, 0.5], 2)})},
            "sparse": {"tasks": tasks, "training": _training(2, {"sparse": ([0.6, float("nan"), 0.8], 3)})},
            "old": {"tasks": tasks},
        }
    }


def test_learning_curves_put_every_network_on_total_epochs():
    curves = learning_curves(_trained_results())
    assert [c["label"] for c in curves] == ["single pos", "single ner", "hard", "sparse"]
    assert [(c["system"], c["network"]) for c in curves][:2] == [("single", "pos"), ("single", "ner")]
    assert [c["epochs"] for c in curves] == [[1, 2], [1], [1, 2, 3], [3, 4, 5]]
    assert curves[2]["dev"] == [0.4, 0.6, 0.5] and curves[2]["best"] == (2, 0.6)
    assert curves[3]["best"] == (5, 0.8) and math.isnan(curves[3]["dev"][1])  # kept, not dropped
    assert [c["start"] for c in curves] == [0, 0, 0, 2]


def test_learning_curves_skip_a_best_epoch_outside_the_curve_and_runs_without_summaries():
    res = _trained_results()
    res["systems"]["hard"]["training"]["runs"]["hard"]["best_epoch"] = 7
    assert [c["best"] for c in learning_curves(res)][2] is None
    assert learning_curves({"systems": {"old": res["systems"]["old"]}}) == []
    assert plot_learning_curves({"systems": {"old": res["systems"]["old"]}}, Path("/nonexistent")) is None


def test_the_learning_curve_figure_draws_one_line_per_network_and_hides_no_point():
    res = _trained_results()
    fig = learning_curve_figure(res)
    (ax,) = fig.axes
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines) == ["single pos", "single ner", "hard", "sparse"]
    np.testing.assert_allclose(lines["sparse"].get_xdata(), [3, 4, 5])
    np.testing.assert_allclose(lines["sparse"].get_ydata(), [60.0, np.nan, 80.0])  # percent
    stars = [c.get_offsets().tolist() for c in ax.collections if len(c.get_offsets())]
    assert stars == [[[2.0, 70.0]], [[1.0, 30.0]], [[2.0, 60.0]], [[5.0, 80.0]]]
    assert ax.get_ylabel() == "mean dev score (%)"
    _assert_no_legend_hides_a_point(fig)
    plt.close(fig)


def test_an_error_scored_run_plots_the_negated_error_as_recorded():
    res = {
        "systems": {
            "hard": {"tasks": {"y": {"metric": "mse"}}, "training": _training(0, {"hard": ([-2.0], 1)})}
        }
    }
    fig = learning_curve_figure(res)
    assert fig.axes[0].get_lines()[0].get_ydata().tolist() == [-2.0]
    assert "negated" in fig.axes[0].get_ylabel()
    plt.close(fig)


@pytest.fixture(scope="module")
def curve_run(tmp_path_factory):
    """configs/smoke.yaml run through the CLI (about 20 s on 2 cores)."""
    out = tmp_path_factory.mktemp("runs") / "smoke"
    assert main(["run", str(ROOT / "configs/smoke.yaml"), "--out", str(out)]) == 0
    return out


@pytest.mark.integration
def test_a_run_writes_its_learning_curves_and_report_redraws_them(curve_run, capsys):
    png = curve_run / "figures" / "learning_curves.png"
    assert png.read_bytes()[:8] == PNG and plt.imread(png).shape[0] > 100
    png.unlink()
    assert main(["report", str(curve_run)]) == 0
    assert png.read_bytes()[:8] == PNG
    res = json.loads((curve_run / "results.json").read_text())
    want = [
        (name if key == name else f"{name} {key}", run["dev_mean"], sys["training"]["start_epochs"])
        for name, sys in res["systems"].items()
        for key, run in sys["training"]["runs"].items()
    ]
    assert len(want) == 5  # single: pos, chunk, ner; hard; sparse
    curves = learning_curves(res)
    assert [(c["label"], c["dev"], c["start"]) for c in curves] == want
    assert curves[-1]["label"] == "sparse" and curves[-1]["epochs"][0] == 2  # after the warmup's epoch
    fig = learning_curve_figure(res)
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == [w[0] for w in want]
    for line, (_, dev, _) in zip(lines, want):
        np.testing.assert_allclose(line.get_ydata(), [100 * v for v in dev])
    plt.close(fig)
