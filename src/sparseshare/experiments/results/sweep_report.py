"""A sweep's tables: one row per point and system (ours / paper), and mean ± sd over a ``seed`` axis."""

from __future__ import annotations

import math

from sparseshare.experiments.results.markdown import ERROR_METRICS, fmt, markdown
from sparseshare.experiments.results.pbfs_subnets import marks_note, sweep_subnets
from sparseshare.experiments.results.vs_paper import LENIENT, notes, ours, paper_options
from sparseshare.experiments.systems.registry import label


def unconverged(sys: dict) -> bool:
    """Some network of the system had its best dev epoch last (still improving when it stopped)."""
    return any(r["best_epoch"] == r["epochs"] for r in sys.get("training", {}).get("runs", {}).values())


def sweep_metrics(results: dict) -> dict[str, list[str]]:
    """task -> the metrics to show: the paper's for the task, else the task's primary metric.

    Points may differ in their tasks (a sweep over task pairs, say): every task of any point is shown."""
    wanted = results.get("paper", {}).get("metrics", {})
    out: dict[str, list[str]] = {}
    for pt in results["sweep"]["points"]:
        for sys in pt["systems"].values():
            for t, r in sys["tasks"].items():
                out.setdefault(t, wanted.get(t) or [r["metric"]])
    return out


def avg_test(sys: dict, lenient: bool = False) -> float:
    """The mean test score of the primary metrics; ``lenient``: span tasks' lenient F1 (conlleval's
    scoring, the papers' authors'), where the run recorded it."""

    def score(r: dict) -> float:
        return r["all"]["test"].get(r["metric"] + LENIENT, r["test"]) if lenient else r["test"]

    return sum(score(r) for r in sys["tasks"].values()) / len(sys["tasks"])


def _has_lenient(sys: dict) -> bool:
    return any(r["metric"] + LENIENT in r["all"]["test"] for r in sys["tasks"].values())


def _avg_cells(sys: dict, hard: dict | None, paper_gain: float | None) -> tuple[str, str]:
    """The 'Avg test' cell and, beside hard sharing, the 'Δ avg vs hard' one (ours / the paper's):
    lenient where a span task has it (the paper's scorer), strict beside it."""
    both = _has_lenient(sys)
    avg = fmt("", avg_test(sys, lenient=True))
    if both:
        avg += f" (strict {fmt('', avg_test(sys))})"
    if hard is None:
        return avg, ""
    gain = f"{100 * (avg_test(sys, True) - avg_test(hard, True)):+.2f}"
    if both:
        gain += f" (strict {100 * (avg_test(sys) - avg_test(hard)):+.2f})"
    if paper_gain is not None:
        gain += f" / {100 * paper_gain:+.2f}"
    return avg, gain


def _scores(results: dict) -> list[dict[str, dict]]:
    return [
        {t: r["all"]["test"] for t, r in sys["tasks"].items()}
        for pt in results["sweep"]["points"]
        for sys in pt["systems"].values()
    ]


def _overlap_cell(pt: dict, name: str, paper_or: float | None) -> str:
    if name != "sparse" or "overlap" not in pt:
        return ""
    base = pt["overlap"].get("baseline", {}).get("all")
    cell = f"{pt['overlap']['all']:.3f}"
    if base:
        norm = "n/a" if math.isnan(base["normalised"]) else f"{base['normalised']:.2f}"
        cell += f" (chance {base['chance']:.3f}, normalised {norm})"
    return cell + (f" / {paper_or:.2f}" if paper_or is not None else "")


def sweep_table(results: dict, options: dict | None = None) -> str:
    """One row per (point, system): each task's test metrics, ours / paper (vs_paper.py: span tasks
    lenient, scaled metrics scaled), # Params; where every task is scored higher-is-better, their
    average (primary metrics); for sparse sharing, the masks' Overlap Ratio (Eq. 4) and, at points that
    also ran hard sharing, the gain in average test score over it (Table 7's Δ(S²−HS)); for PBFS, each
    task's tested and best-dev sparsity. The paper's OR and gain, where it gives them, are read from
    ``paper.points[point].sparse.avg`` (``overlap``, ``gain``) and printed after ours."""
    options = options or paper_options(results)
    metrics = sweep_metrics(results)
    points = results["sweep"]["points"]
    axes = list(results["sweep"]["axes"])
    average = not any(m in ERROR_METRICS for ms in metrics.values() for m in ms)
    overlap = any("overlap" in pt for pt in points)
    gain = average and any({"sparse", "hard"} <= set(pt["systems"]) for pt in points)
    sparsity = any("sparsity" in sys for pt in points for sys in pt["systems"].values())
    head = axes + ["System"] + [f"{t} test {m} (ours / paper)" for t in metrics for m in metrics[t]]
    head += (["Avg test"] if average else []) + (["OR (all)"] if overlap else [])
    head += (["Δ avg vs hard"] if gain else []) + ["# Params"]
    head += ["PBFS sparsity, tested / best dev"] if sparsity else []
    flag = any(unconverged(sys) for pt in points for sys in pt["systems"].values())
    head += ["Best = last"] if flag else []
    rows, subnet_cells = [], []
    for pt in points:
        for name, sys in pt["systems"].items():
            ref = pt.get("paper", {}).get(name, {})
            cells = [pt["labels"][a] for a in axes] + [label(name)]
            for t, ms in metrics.items():
                for m in ms:
                    if t not in sys["tasks"]:
                        cells.append("")
                        continue
                    mine = ours(m, [sys["tasks"][t]["all"]["test"]], options["scale"]) or "-"
                    cells.append(f"{mine} / {fmt(m, ref.get(t, {}).get(m))}")
            ref_avg = ref.get("avg", {})
            hard = pt["systems"]["hard"] if name == "sparse" and "hard" in pt["systems"] else None
            avg_cell, gain_cell = _avg_cells(sys, hard, ref_avg.get("gain"))
            if average:
                cells.append(avg_cell)
            if overlap:
                cells.append(_overlap_cell(pt, name, ref_avg.get("overlap")))
            if gain:
                cells.append(gain_cell)
            cells.append(f"{sys['params'] / 1000:.1f}k")
            if sparsity:
                per_task = sweep_subnets(sys)
                subnet_cells += per_task.values()
                same = len(set(per_task.values())) == 1 and len(per_task) > 1
                text = ", ".join(f"{t} {v}" for t, v in per_task.items())
                cells.append(f"{next(iter(per_task.values()))} (every task)" if same else text)
            if flag:
                cells.append("†" if unconverged(sys) else "")
            rows.append(cells)
    note = "Percent for accuracy, F1 and AUC; raw values for MSE/MAE. '-': not in the paper."
    if average:
        note += (
            " Avg test and Δ avg vs hard: of the primary metrics, span tasks at their lenient F1 (the"
            " papers' scorer) with the strict F1 average beside it."
        )
    if flag:
        note += " Best = last, †: a network of the system had its best dev epoch last (not converged)."
    if sparsity:
        note += " PBFS sparsity: of the shared experts (fraction pruned), per task. "
        note += marks_note(subnet_cells)
    src = results.get("paper", {}).get("source")
    extra = notes(metrics, _scores(results), options)
    return (
        markdown(head, rows)
        + f"\n\n{note.rstrip()}"
        + (f" Paper: {src}." if src else "")
        + (f"\n{extra}" if extra else "")
    )


def seed_table(results: dict, options: dict | None = None) -> str | None:
    """Mean ± sample standard deviation over the ``seed`` axis, per point of the other axes and system
    (ours as compared with the paper: vs_paper.py)."""
    axes = list(results["sweep"]["axes"])
    if "seed" not in axes or len(results["sweep"]["axes"]["seed"]) < 2:
        return None
    options = options or paper_options(results)
    rest = [a for a in axes if a != "seed"]
    metrics = sweep_metrics(results)
    groups: dict[tuple, dict[str, list]] = {}
    for pt in results["sweep"]["points"]:
        key = tuple(pt["labels"][a] for a in rest)
        for name, sys in pt["systems"].items():
            groups.setdefault(key, {}).setdefault(name, []).append((sys, pt.get("paper", {}).get(name, {})))
    head = rest + ["System", "n"] + [f"{t} test {m} (mean ± sd / paper)" for t in metrics for m in metrics[t]]
    rows = []
    for key, systems in groups.items():
        for name, runs in systems.items():
            cells = [*key, label(name), str(len(runs))]
            for t, ms in metrics.items():
                for m in ms:
                    scores = [s["tasks"][t]["all"]["test"] for s, _ in runs if t in s["tasks"]]
                    mine = ours(m, scores, options["scale"], spread=True)
                    paper = runs[0][1].get(t, {}).get(m)
                    cells.append(f"{mine} / {fmt(m, paper)}" if mine else "")
            rows.append(cells)
    extra = notes(metrics, _scores(results), options)
    return markdown(head, rows) + (f"\n\n{extra}" if extra else "")
