"""Results tables (markdown / terminal) and figures (Figure 3 of the paper; Overlap Ratio heatmap)."""

from __future__ import annotations

import math
from pathlib import Path

from sparseshare import paths
from sparseshare.experiments.systems import label
from sparseshare.masks.mask import chance_overlap, normalised_overlap
from sparseshare.metrics import LOWER_IS_BETTER, delta_m

ERROR_METRICS = LOWER_IS_BETTER


def _fmt(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if metric in ERROR_METRICS else f"{100 * value:.2f}"


def paper_table(results: dict) -> str:
    """One column pair (ours / paper) per reported task metric, laid out as the paper's table."""
    paper = results["paper"]
    systems = results["systems"]
    first = next(iter(systems.values()))["tasks"]
    tasks = list(first)
    metrics = {t: paper["metrics"].get(t) or [first[t]["metric"]] for t in tasks}
    head = ["System"] + [f"{t} test {m} (ours / paper)" for t in tasks for m in metrics[t]] + ["# Params"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in list(systems) + [s for s in paper["values"] if s not in systems]:
        sys, ref = systems.get(name), paper["values"].get(name, {})
        cells = [label(name)]
        for t in tasks:
            for m in metrics[t]:
                ours = sys["tasks"][t]["all"]["test"].get(m) if sys else None
                cells.append(f"{_fmt(m, ours)} / {_fmt(m, ref.get(t, {}).get(m))}")
        cells.append(f"{sys['params'] / 1000:.1f}k" if sys else "-")
        rows.append("| " + " | ".join(cells) + " |")
    note = "Percent for accuracy, F1 and AUC; raw values for MSE/MAE. '-': not run here, or not in the paper."
    src = f" Paper: {paper['source']}." if paper.get("source") else ""
    return "\n".join(rows) + f"\n\n{note}{src}"


def results_table(results: dict) -> str:
    """Markdown table: one row per system, test (and dev) primary metric per task, Δ vs single, # Params;
    with the paper's numbers beside ours when the config gives them. A sweep: one row per point."""
    if "sweep" in results:
        seeds = seed_table(results)
        return sweep_table(results) + (f"\n\nOver seeds:\n\n{seeds}" if seeds else "")
    if results.get("paper", {}).get("values"):
        return paper_table(results) + "\n\n" + primary_table(results)
    return primary_table(results)


def _delta_m_text(sys: dict, base: dict, tasks: list[str]) -> str:
    metrics = {t: sys["tasks"][t]["metric"] for t in tasks}
    dm = delta_m({t: sys["tasks"][t]["test"] for t in tasks}, {t: base["tasks"][t]["test"] for t in tasks},
                 metrics)  # fmt: skip
    return "n/a" if math.isnan(dm) else f"{dm:+.2f}"


def primary_table(results: dict) -> str:
    """Each task's primary (selection) metric, test and dev, Δ vs single task, # Params."""
    systems = results["systems"]
    tasks = list(next(iter(systems.values()))["tasks"])
    base = systems.get("single")
    head = ["System"]
    for t in tasks:
        metric = next(iter(systems.values()))["tasks"][t]["metric"]
        head += [f"{t} test {metric}", "Δ" if base else "", f"{t} dev"]
    head += (["Δm%"] if base else []) + ["# Params"]
    head = [h for h in head if h]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, sys in systems.items():
        cells = [label(name)]
        for t in tasks:
            r = sys["tasks"][t]
            m = r["metric"]
            cells.append(_fmt(m, r["test"]))
            if base:
                d = r["test"] - base["tasks"][t]["test"]
                d = d if m in ERROR_METRICS else 100 * d
                cells.append(
                    "-" if name == "single" else (f"{d:+.4f}" if m in ERROR_METRICS else f"{d:+.2f}")
                )
            cells.append(_fmt(m, r["dev"]))
        if base:
            cells.append("-" if name == "single" else _delta_m_text(sys, base, tasks))
        cells.append(f"{sys['params'] / 1000:.0f}k")
        rows.append("| " + " | ".join(cells) + " |")
    out = "\n".join(rows)
    if base:
        out += (
            "\n\nΔm%: the mean over tasks of the relative change of the test score against single task, "
            "a better score counting positive (MSE/MAE included); n/a where a single-task score is 0."
        )
    if "masks" in results:
        dens = ", ".join(f"{t} {100 * v['density']:.2f}%" for t, v in results["masks"].items())
        d = {t: v["density"] for t, v in results["masks"].items()}
        pair = ", ".join(
            f"{k} {overlap_text(v, [d[t] for t in k.split('|')])}"
            for k, v in results["overlap"]["pairwise"].items()
        )
        ov = overlap_text(results["overlap"]["all"], list(d.values()))
        out += f"\n\nSelected subnet density (kept): {dens}. Overlap Ratio (Eq. 4): all {ov}"
        out += f"; pairwise {pair}." if pair else "."
        out += (
            " (chance: the OR of independent random masks of the same densities; normalised: "
            "(OR - chance) / (max possible - chance), 0 at chance, 1 for nested masks)"
        )
    search = next((r["search"] for r in results["systems"].values() if "search" in r), None)
    if search:  # the cost of IMP: training epochs over all levels, per task (warmup not included)
        spent = ", ".join(
            f"{t} {v['epochs']} over {len(v['levels'])} levels"
            + (f" (budget {v['budget']} per level)" if "budget" in v else "")
            for t, v in search.items()
        )
        out += f"\nEpochs spent in the IMP search (after the warmup): {spent}."
    training = training_text(results)
    equal = equal_epochs_table(results)
    out += f"\n\n{training}" if training else ""
    out += f"\n\n{equal}" if equal else ""
    return out


def _unconverged(sys: dict) -> bool:
    """Some network of the system had its best dev epoch last (still improving when it stopped)."""
    return any(r["best_epoch"] == r["epochs"] for r in sys.get("training", {}).get("runs", {}).values())


def training_text(results: dict) -> str | None:
    """Per system, the best-dev epoch of each trained network against the epochs it ran and its cap; a
    '†' where the best epoch was the last one run (still improving when it stopped: not converged)."""
    lines = []
    for name, sys in results["systems"].items():
        runs = sys.get("training", {}).get("runs")
        if not runs:
            continue
        cells = [
            f"{'' if key == name else key + ' '}{r['best_epoch']}/{r['epochs']} of {r['cap']}"
            + (" †" if r["best_epoch"] == r["epochs"] else "")
            for key, r in runs.items()
        ]
        lines.append(f"- {label(name)}: {', '.join(cells)}")
    if not lines:
        return None
    head = "Training (best-dev epoch / epochs run, of the cap; † the best epoch was the last: not converged):"
    return head + "\n" + "\n".join(lines)


def _best_within(runs: dict, start: int, total: int) -> float | None:
    """The mean over a system's networks of the best mean dev score within ``total`` epochs, counting the
    ``start`` epochs its weights saw before (None: it had not started, or stopped at its cap before)."""
    best = []
    for r in runs.values():
        own = total - start
        if own < 1 or (own > len(r["dev_mean"]) and len(r["dev_mean"]) >= r["cap"]):
            return None
        curve = [v for v in r["dev_mean"][:own] if not math.isnan(v)]
        if not curve:
            return None
        best.append(max(curve))
    return sum(best) / len(best) if best else None


def equal_epochs_table(results: dict) -> str | None:
    """Best dev score within equal total epochs (the warmup's epochs counted for the systems that start
    from θ^(w)), at each budget some system was given; only where some system had a head start."""
    systems = {n: s["training"] for n, s in results["systems"].items() if s.get("training", {}).get("runs")}
    if not any(tr["start_epochs"] for tr in systems.values()):
        return None
    totals = sorted({tr["start_epochs"] + r["cap"] for tr in systems.values() for r in tr["runs"].values()})
    scored = [r["metric"] for s in results["systems"].values() for r in s["tasks"].values()]
    error = any(m in ERROR_METRICS for m in scored)
    head = ["System", "start"] + [f"dev at {t} epochs" for t in totals]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, tr in systems.items():
        cells = [label(name), str(tr["start_epochs"])]
        for t in totals:
            v = _best_within(tr["runs"], tr["start_epochs"], t)
            cells.append("-" if v is None else (f"{v:.4f}" if error else f"{100 * v:.2f}"))
        rows.append("| " + " | ".join(cells) + " |")
    note = (
        "Dev at equal total epochs: the best mean dev score (the selection criterion; "
        + ("MSE/MAE negated" if error else "percent")
        + ") a system reached within that many epochs, counting the multi-task warmup's epochs for the "
        "systems that start from θ^(w) ('start'); '-': not reached (it stopped at its cap before). "
        "The IMP search's epochs are not counted (every level rewinds to θ^(w))."
    )
    return "\n".join(rows) + "\n\n" + note


def _sweep_metrics(results: dict) -> dict[str, list[str]]:
    """task -> the metrics to show: the paper's for the task, else the task's primary metric.

    Points may differ in their tasks (a sweep over task pairs, say): every task of any point is shown."""
    wanted = results.get("paper", {}).get("metrics", {})
    out: dict[str, list[str]] = {}
    for pt in results["sweep"]["points"]:
        for sys in pt["systems"].values():
            for t, r in sys["tasks"].items():
                out.setdefault(t, wanted.get(t) or [r["metric"]])
    return out


def _avg_test(sys: dict) -> float:
    return sum(r["test"] for r in sys["tasks"].values()) / len(sys["tasks"])


def sweep_table(results: dict) -> str:
    """One row per (point, system): each task's test metrics, ours / paper, # Params; where every task
    is scored higher-is-better, their average; for sparse sharing, the masks' Overlap Ratio (Eq. 4) and,
    at points that also ran hard sharing, the gain in average test score over it (Table 7's Δ(S²−HS)).
    The paper's OR and gain, where it gives them, are read from ``paper.points[point].sparse.avg``
    (``overlap``, ``gain``) and printed after ours."""
    metrics = _sweep_metrics(results)
    points = results["sweep"]["points"]
    axes = list(results["sweep"]["axes"])
    average = not any(m in ERROR_METRICS for ms in metrics.values() for m in ms)
    overlap = any("overlap" in pt for pt in points)
    gain = average and any({"sparse", "hard"} <= set(pt["systems"]) for pt in points)
    head = axes + ["System"] + [f"{t} test {m} (ours / paper)" for t in metrics for m in metrics[t]]
    head += (["Avg test"] if average else []) + (["OR (all)"] if overlap else [])
    head += (["Δ avg vs hard"] if gain else []) + ["# Params"]
    flag = any(_unconverged(sys) for pt in points for sys in pt["systems"].values())
    head += ["Best = last"] if flag else []
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for pt in points:
        for name, sys in pt["systems"].items():
            ref = pt.get("paper", {}).get(name, {})
            cells = [pt["labels"][a] for a in axes] + [label(name)]
            for t, ms in metrics.items():
                for m in ms:
                    if t not in sys["tasks"]:
                        cells.append("")
                        continue
                    ours = sys["tasks"][t]["all"]["test"].get(m)
                    cells.append(f"{_fmt(m, ours)} / {_fmt(m, ref.get(t, {}).get(m))}")
            ref_avg = ref.get("avg", {})
            if average:
                cells.append(_fmt("", _avg_test(sys)))
            if overlap:
                cell = ""
                if name == "sparse" and "overlap" in pt:
                    base = pt["overlap"].get("baseline", {}).get("all")
                    cell = f"{pt['overlap']['all']:.3f}"
                    if base:
                        norm = "n/a" if math.isnan(base["normalised"]) else f"{base['normalised']:.2f}"
                        cell += f" (chance {base['chance']:.3f}, normalised {norm})"
                paper_or = ref_avg.get("overlap")
                cells.append(cell + (f" / {paper_or:.2f}" if cell and paper_or is not None else ""))
            if gain:
                cell = ""
                if name == "sparse" and "hard" in pt["systems"]:
                    cell = f"{100 * (_avg_test(sys) - _avg_test(pt['systems']['hard'])):+.2f}"
                    if ref_avg.get("gain") is not None:
                        cell += f" / {100 * ref_avg['gain']:+.2f}"
                cells.append(cell)
            cells.append(f"{sys['params'] / 1000:.1f}k")
            if flag:
                cells.append("†" if _unconverged(sys) else "")
            rows.append("| " + " | ".join(cells) + " |")
    note = "Percent for accuracy, F1 and AUC; raw values for MSE/MAE. '-': not in the paper."
    if flag:
        note += " Best = last, †: a network of the system had its best dev epoch last (not converged)."
    src = results.get("paper", {}).get("source")
    return "\n".join(rows) + f"\n\n{note}" + (f" Paper: {src}." if src else "")


def seed_table(results: dict) -> str | None:
    """Mean ± sample standard deviation over the ``seed`` axis, per point of the other axes and system."""
    axes = list(results["sweep"]["axes"])
    if "seed" not in axes or len(results["sweep"]["axes"]["seed"]) < 2:
        return None
    import statistics

    rest = [a for a in axes if a != "seed"]
    metrics = _sweep_metrics(results)
    groups: dict[tuple, dict[str, list]] = {}
    for pt in results["sweep"]["points"]:
        key = tuple(pt["labels"][a] for a in rest)
        for name, sys in pt["systems"].items():
            groups.setdefault(key, {}).setdefault(name, []).append((sys, pt.get("paper", {}).get(name, {})))
    head = rest + ["System", "n"] + [f"{t} test {m} (mean ± sd / paper)" for t in metrics for m in metrics[t]]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, systems in groups.items():
        for name, runs in systems.items():
            cells = [*key, label(name), str(len(runs))]
            for t, ms in metrics.items():
                for m in ms:
                    vals = [s["tasks"][t]["all"]["test"][m] for s, _ in runs if t in s["tasks"]]
                    if not vals:
                        cells.append("")
                        continue
                    scale = 1 if m in ERROR_METRICS else 100
                    sd = statistics.stdev(vals) * scale if len(vals) > 1 else 0.0
                    digits = 4 if m in ERROR_METRICS else 2
                    paper = runs[0][1].get(t, {}).get(m)
                    cells.append(f"{_fmt(m, statistics.mean(vals))} ± {sd:.{digits}f} / {_fmt(m, paper)}")
            rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


AVERAGE, OVERLAP = "average over tasks", "mask overlap (all tasks)"


def _panel_value(pt: dict, name: str, sys: dict, task: str, metric: str) -> float | None:
    """What a sweep panel plots for one system at one point (None: nothing to plot)."""
    if task == AVERAGE:
        return _avg_test(sys)
    if task == OVERLAP:
        return pt["overlap"]["all"] if name == "sparse" and "overlap" in pt else None
    if task not in sys["tasks"]:
        return None
    return sys["tasks"][task]["all"]["test"].get(metric)


def plot_sweep(results: dict, out: Path) -> Path | None:
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
    metrics = _sweep_metrics(results)
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
                value = _panel_value(pt, name, sys, task, metric)
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
        ax.set_ylabel(metric if task == OVERLAP else f"test {metric}")
        ax.set_title(task)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = out / "sweep.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_search(results: dict, out: Path) -> Path | None:
    """Figure 3: dev score against density for every IMP level of every task."""
    search = results["systems"].get("sparse", {}).get("search")
    if not search:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(search), figsize=(4 * len(search), 3.2), squeeze=False)
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
        ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    path = out / "search_dev_vs_density.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def overlap_text(ratio: float, densities: list[float]) -> str:
    """An Overlap Ratio beside its chance level and normalised value, e.g. ``0.843 (chance 0.136,
    normalised 0.79)``."""
    chance, norm = chance_overlap(densities), normalised_overlap(ratio, densities)
    norm_text = "n/a" if math.isnan(norm) else f"{norm:.2f}"
    return f"{ratio:.3f} (chance {chance:.3f}, normalised {norm_text})"


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
    path = out / "overlap.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(run: Path, results: dict) -> str:
    """Write results.md and figures/; return the table."""
    table = results_table(results)
    meta = results.get("meta", {})
    text = (
        f"# {results['experiment']}\n\nTest scores of the best-dev checkpoint, evaluated once.\n\n{table}\n"
    )
    if meta:
        text += "\n" + ", ".join(f"{k}: {v}" for k, v in meta.items()) + "\n"
    paths.results_md(run).write_text(text)
    figs = paths.figures(run)
    figs.mkdir(exist_ok=True)
    if "sweep" in results:
        plot_sweep(results, figs)
        return table
    plot_search(results, figs)
    plot_overlap(results, figs)
    return table
