"""The report's figures: a sweep's metrics along its last axis, Figure 3 of the sparse-sharing paper (dev
score against density for every IMP level), the learning curves (mean dev score per epoch of every trained
network) and the Overlap Ratio heatmap. The search and learning-curve legends stand beside the axes."""

from __future__ import annotations

from pathlib import Path

from sparseshare import atomic
from sparseshare.experiments.results.markdown import ERROR_METRICS
from sparseshare.experiments.results.sweep_report import avg_test, sweep_metrics
from sparseshare.experiments.results.vs_paper import LENIENT
from sparseshare.masks.mask import chance_overlap

AVERAGE, OVERLAP = "average over tasks", "mask overlap (all tasks)"


def _panel_value(pt: dict, name: str, sys: dict, task: str, metric: str, scale: dict) -> float | None:
    """What a sweep panel plots for one system at one point (None: nothing to plot): a task's metric as
    it is compared with the paper's dashed line, in the paper's scorer (lenient span F1) and on its
    scale (``paper.scale``), as the comparison tables print it."""
    if task == AVERAGE:
        return avg_test(sys, lenient=True)
    if task == OVERLAP:
        return pt["overlap"]["all"] if name == "sparse" and "overlap" in pt else None
    if task not in sys["tasks"]:
        return None
    test = sys["tasks"][task]["all"]["test"]
    value = test.get(metric + LENIENT, test.get(metric))
    return None if value is None else value * scale.get(metric, 1.0)


def plot_sweep(results: dict, out: Path, scale: dict | None = None) -> Path | None:
    """Each task's test metric along the last axis; one line per system and other-axis point (dashed:
    the paper's numbers where it gives them); where the tasks' scores can be averaged, their average,
    and for sparse sharing the masks' Overlap Ratio (as the sparse-sharing paper's Figure 4) beside its
    chance level (dotted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes = list(results["sweep"]["axes"])
    x_axis = axes[-1]
    labels = results["sweep"]["axes"][x_axis]
    try:
        xs_of = {lab: float(lab) for lab in labels}
    except ValueError:
        xs_of = {lab: i for i, lab in enumerate(labels)}
    metrics = sweep_metrics(results)
    panels = [(t, m) for t, ms in metrics.items() for m in ms]
    if not any(m in ERROR_METRICS for ms in metrics.values() for m in ms):
        panels.append((AVERAGE, "score"))  # the sparse-sharing paper's Figure 4: average and OR
    if any("overlap" in pt for pt in results["sweep"]["points"]):
        panels.append((OVERLAP, "Overlap Ratio"))
    fig, grid = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2), squeeze=False)
    for ax, (task, metric) in zip(grid[0], panels):
        lines: dict[str, tuple[list, list, list]] = {}
        chance: dict[str, tuple[list, list]] = {}
        for pt in results["sweep"]["points"]:
            rest = ",".join(f"{a}={pt['labels'][a]}" for a in axes[:-1])
            for name, sys in pt["systems"].items():
                value = _panel_value(pt, name, sys, task, metric, scale or {})
                if value is None:
                    continue
                key = f"{name} {rest}".strip()
                xs, ours, paper = lines.setdefault(key, ([], [], []))
                xs.append(xs_of[pt["labels"][x_axis]])
                ours.append(value)
                paper.append(pt.get("paper", {}).get(name, {}).get(task, {}).get(metric))
                if task == OVERLAP:  # the OR of independent masks of the same densities
                    base = pt["overlap"].get("baseline", {}).get("all", {})
                    chance.setdefault(key, ([], []))[0].append(xs[-1])
                    chance[key][1].append(base.get("chance"))
        for key, (xs, ours, paper) in lines.items():
            (line,) = ax.plot(xs, ours, "o-", ms=4, label=key)
            cx, cy = chance.get(key, ([], []))
            if cy and all(v is not None for v in cy):
                ax.plot(cx, cy, ":", color=line.get_color(), label=f"{key} (chance)")
            if any(v is not None for v in paper):
                px = [x for x, v in zip(xs, paper) if v is not None]
                ax.plot(
                    px,
                    [v for v in paper if v is not None],
                    "x--",
                    color=line.get_color(),
                    label=f"{key} (paper)",
                )
        if not all(isinstance(v, float) for v in xs_of.values()):
            ax.set_xticks(list(xs_of.values()), labels)
        ax.set_xlabel(x_axis)
        ax.set_ylabel(metric if task == OVERLAP else f"test {_axis_name(results, task, metric, scale or {})}")
        ax.set_title(task)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _write(fig, out / "sweep.png")


def _axis_name(results: dict, task: str, metric: str, scale: dict) -> str:
    """The plotted metric's name: lenient span F1 where the runs have it, a scaled metric's factor."""
    lenient = any(
        metric + LENIENT in sys["tasks"][task]["all"]["test"]
        for pt in results["sweep"]["points"]
        for sys in pt["systems"].values()
        if task in sys.get("tasks", {})
    )
    name = f"{metric} (lenient)" if lenient else metric
    return f"{name} x{scale[metric]:g}" if metric in scale else name


def _legend_beside(ax, **kw) -> None:
    """The axes' legend outside them, to the right of the plotting area, so it never hides a plotted point
    (every point lies inside the axes; the layout and the saved bbox make room for the legend)."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **kw)


def search_figure(results: dict):
    """Figure 3 as a matplotlib figure (None: the run has no IMP search): dev score against density for
    every IMP level of every task, the selected level starred; the legend beside each panel."""
    search = results["systems"].get("sparse", {}).get("search")
    if not search:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(search), figsize=(5 * len(search), 3.2), squeeze=False)
    for ax, (task, info) in zip(axes[0], search.items()):
        xs = [lv["density"] * 100 for lv in info["levels"]]
        ys = [lv["dev"] * 100 for lv in info["levels"]]
        ax.plot(xs, ys, "o-", ms=4)
        sel = info["selected"]
        ax.plot([xs[sel]], [ys[sel]], "r*", ms=12, label="selected")
        ax.invert_xaxis()
        ax.set_xlabel("density (% of prunable weights kept)")
        ax.set_ylabel("dev score (%)")
        ax.set_title(task)
        _legend_beside(ax, fontsize=8)
    fig.tight_layout()
    return fig


def plot_search(results: dict, out: Path) -> Path | None:
    """Figure 3 (``search_figure``) written to ``out``/search_dev_vs_density.png (None: no IMP search)."""
    return _save(search_figure(results), out / "search_dev_vs_density.png")


def _save(fig, path: Path) -> Path | None:
    """Write ``fig`` to ``path`` (PNG, the legends outside the axes kept in the picture) and close it."""
    return None if fig is None else _write(fig, path, bbox_inches="tight")


def _write(fig, path: Path, **options) -> Path:
    """Save ``fig`` as the PNG ``path`` (atomically, never through a link: ``sparseshare.atomic``; the
    temporary name's suffix is not .png, so the format is named) and close it."""
    import matplotlib.pyplot as plt

    try:
        with atomic.replacing(path) as tmp:
            fig.savefig(tmp, format="png", dpi=120, **options)
    finally:
        plt.close(fig)
    return path


def _error_scored(results: dict) -> bool:
    """Whether some task is scored by an error metric (MSE/MAE): its dev score is the negated error."""
    return any(r["metric"] in ERROR_METRICS for s in results["systems"].values() for r in s["tasks"].values())


def learning_curves(results: dict) -> list[dict]:
    """The learning curves of every trained network, one per network (a system's, or each task's model
    of a single-task system: ``network`` is then the task), in results.json's order: ``label`` ("hard",
    "single pos"), ``epochs`` (total epochs its weights had seen after each epoch: ``start_epochs`` + 1..n,
    so a system that starts from the warmup's θ^(w) is drawn after the warmup's epochs), ``dev`` (the mean
    dev score per epoch, as recorded), ``start`` and ``best`` ((total epoch, dev score) of its best-dev
    epoch; None where that epoch is not in the curve). Systems without a training summary are left out."""
    curves = []
    for name, sys in results["systems"].items():
        training = sys.get("training", {})
        start = training.get("start_epochs", 0)
        for key, r in training.get("runs", {}).items():
            dev = list(r["dev_mean"])
            epochs = [start + i for i in range(1, len(dev) + 1)]
            best_i = r["best_epoch"] - 1
            best = (epochs[best_i], dev[best_i]) if 0 <= best_i < len(dev) else None
            curves.append(
                {
                    "label": name if key == name else f"{name} {key}",
                    "system": name,
                    "network": key,
                    "start": start,
                    "epochs": epochs,
                    "dev": dev,
                    "best": best,
                }
            )
    return curves


def learning_curve_figure(results: dict):
    """The mean dev score per epoch of every trained network (``learning_curves``), one line each on a
    shared axis of total epochs, its best-dev epoch starred and the warmup's epochs shaded; percent, or
    the negated error where a task is scored by MSE/MAE (None: no training summaries)."""
    curves = learning_curves(results)
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    factor = 1.0 if _error_scored(results) else 100.0
    fig, ax = plt.subplots(figsize=(6, 3.6))
    warmup = max(c["start"] for c in curves)
    if warmup:
        ax.axvspan(0.5, warmup + 0.5, color="0.9", label="multi-task warmup")
    for c in curves:
        (line,) = ax.plot(c["epochs"], [v * factor for v in c["dev"]], "o-", ms=3, label=c["label"])
        if c["best"] is not None:
            bx, by = c["best"]
            ax.scatter([bx], [by * factor], marker="*", s=90, color=line.get_color(), zorder=3)
    ax.scatter([], [], marker="*", s=90, color="0.3", label="best-dev epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("epoch (total, counting the warmup)")
    ax.set_ylabel("mean dev score (MSE/MAE negated)" if factor == 1.0 else "mean dev score (%)")
    ax.set_title("Learning curves")
    _legend_beside(ax, fontsize=7)
    fig.tight_layout()
    return fig


def plot_learning_curves(results: dict, out: Path) -> Path | None:
    """The learning curves (``learning_curve_figure``) written to ``out``/learning_curves.png (None: the
    run has no training summaries)."""
    return _save(learning_curve_figure(results), out / "learning_curves.png")


def plot_overlap(results: dict, out: Path) -> Path | None:
    """Heatmap of the pairwise mask Overlap Ratio."""
    if "masks" not in results or len(results["masks"]) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    tasks = list(results["masks"])
    m = np.eye(len(tasks))
    for key, v in results["overlap"]["pairwise"].items():
        a, b = key.split("|")
        m[tasks.index(a), tasks.index(b)] = m[tasks.index(b), tasks.index(a)] = v
    fig, ax = plt.subplots(figsize=(3.6, 3.2))
    im = ax.imshow(m, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set_yticks(range(len(tasks)), tasks)
    dens = [results["masks"][t]["density"] for t in tasks]
    for i in range(len(tasks)):
        for j in range(len(tasks)):
            text = (
                f"{m[i, j]:.2f}" if i == j else f"{m[i, j]:.2f}\n({chance_overlap([dens[i], dens[j]]):.2f})"
            )
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color="w" if m[i, j] < 0.6 else "k")
    fig.colorbar(im, ax=ax)
    ax.set_title("Mask Overlap Ratio (chance)")
    fig.tight_layout()
    return _write(fig, out / "overlap.png")
