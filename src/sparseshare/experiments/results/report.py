"""results.md: the tables of a run or a sweep, written from results.json (``sparseshare report``).

A single run: ours beside the paper's numbers (vs_paper.py), each task's primary metric with Δ and Δm%
against each row's reference (references.py), the masks, the PBFS subnets, training and equal-budget
comparisons. A sweep: one row per point and system, mean ± sd and paired differences over seeds
(sweep_report.py, paired.py). Figures: figures.py.
"""

from __future__ import annotations

import math
from pathlib import Path

import yaml

from sparseshare import atomic, nesting, paths, results_file
from sparseshare.errors import RunError
from sparseshare.experiments.results.figures import (
    plot_learning_curves,
    plot_overlap,
    plot_search,
    plot_sweep,
)
from sparseshare.experiments.results.markdown import ERROR_METRICS, fmt, fmt_delta, markdown, unit
from sparseshare.experiments.results.paired import paired_tables
from sparseshare.experiments.results.pbfs_subnets import subnets_line
from sparseshare.experiments.results.references import UNMATCHED_MARK, reference_of, references_note
from sparseshare.experiments.results.sweep_report import seed_table, sweep_table
from sparseshare.experiments.results.vs_paper import paper_options, paper_table
from sparseshare.experiments.systems.registry import label
from sparseshare.masks.mask import chance_overlap, normalised_overlap
from sparseshare.metrics import delta_m
from sparseshare.training.progress import duration

OPTION_KEYS = ("reference", "scale", "scale_note")


def results_table(results: dict) -> str:
    """Markdown tables: one row per system, test (and dev) primary metric per task, Δ vs each row's
    reference, # Params; with the paper's numbers beside ours when the config gives them. A sweep: one
    row per point, and over a seed axis mean ± sd and paired differences."""
    options = paper_options(results)
    if "sweep" in results:
        out = sweep_table(results, options)
        seeds = seed_table(results, options)
        paired = paired_tables(results, options["reference"])
        out += f"\n\nOver seeds:\n\n{seeds}" if seeds else ""
        out += f"\n\n{paired}" if paired else ""
        if paired and _paper_scored(results):
            out += "\n\n" + paired_tables(results, options["reference"], "paper")
        return out
    if results.get("paper", {}).get("values"):
        return paper_table(results, options) + "\n\n" + primary_table(results)
    return primary_table(results)


def _paper_scored(results: dict) -> bool:
    """The paper names other metrics than our primary ones, or scores span F1 leniently: the paired
    differences are given in its metrics too (the claims compare there)."""
    metrics = results.get("paper", {}).get("metrics") or {}
    for pt in results["sweep"]["points"]:
        for sys in pt["systems"].values():
            for t, r in sys["tasks"].items():
                names = metrics.get(t) or []
                if names and (
                    names[0] != r["metric"] or names[0] + "_lenient" in r.get("all", {}).get("test", {})
                ):
                    return True
    return False


def _delta_m_text(sys: dict, base: dict, tasks: list[str]) -> str:
    metrics = {t: sys["tasks"][t]["metric"] for t in tasks}
    dm = delta_m({t: sys["tasks"][t]["test"] for t in tasks}, {t: base["tasks"][t]["test"] for t in tasks},
                 metrics)  # fmt: skip
    return "n/a" if math.isnan(dm) else f"{dm:+.2f}"


def _masks_text(results: dict) -> str:
    dens = ", ".join(f"{t} {100 * v['density']:.2f}%" for t, v in results["masks"].items())
    d = {t: v["density"] for t, v in results["masks"].items()}
    pairwise = results["overlap"]["pairwise"].items()
    pair = ", ".join(f"{k} {overlap_text(v, [d[t] for t in k.split('|')])}" for k, v in pairwise)
    ov = overlap_text(results["overlap"]["all"], list(d.values()))
    out = f"Selected subnet density (kept): {dens}. Overlap Ratio (Eq. 4): all {ov}"
    out += f"; pairwise {pair}." if pair else "."
    return out + (
        " (chance: the OR of independent random masks of the same densities; normalised: "
        "(OR - chance) / (max possible - chance), 0 at chance, 1 for nested masks)"
    )


def primary_table(results: dict) -> str:
    """Each task's primary (selection) metric, test and dev, Δ and Δm% against the row's reference
    (the single task; a matched-budget row: the single task at the same budget), # Params."""
    systems = results["systems"]
    tasks = list(next(iter(systems.values()))["tasks"])
    refs = {n: reference_of(n, systems) for n in systems}
    compare = any(r is not None for r, _ in refs.values())
    head = ["System"]
    for t in tasks:
        metric = next(iter(systems.values()))["tasks"][t]["metric"]
        head += [f"{t} test {metric}", "Δ" if compare else "", f"{t} dev"]
    head += (["Δm%"] if compare else []) + ["# Params"]
    head = [h for h in head if h]
    rows = []
    for name, sys in systems.items():
        ref, same = refs[name]
        base = systems[ref] if ref is not None else None
        mark = "" if same else f" {UNMATCHED_MARK}"
        cells = [label(name)]
        for t in tasks:
            r = sys["tasks"][t]
            m = r["metric"]
            cells.append(fmt(m, r["test"]))
            if compare:
                d = None if base is None else unit(m) * (r["test"] - base["tasks"][t]["test"])
                cells.append("-" if d is None else fmt_delta(m, d) + mark)
            cells.append(fmt(m, r["dev"]))
        if compare:
            cells.append("-" if base is None else _delta_m_text(sys, base, tasks) + mark)
        cells.append(f"{sys['params'] / 1000:.0f}k")
        rows.append(cells)
    out = markdown(head, rows)
    if compare:
        out += (
            "\n\nΔ, Δm%: against the row's reference. Δm%: the mean over tasks of the relative change of "
            "the test score, a better score counting positive (MSE/MAE included); n/a where a reference "
            f"score is 0. {references_note(list(systems), systems)}"
        )
    if "masks" in results:
        out += "\n\n" + _masks_text(results)
    search = next((r["search"] for r in results["systems"].values() if "search" in r), None)
    if search:  # the cost of IMP: training epochs over all levels, per task (warmup not included)
        spent = ", ".join(
            f"{t} {v['epochs']} over {len(v['levels'])} levels"
            + (f" (budget {v['budget']} per level)" if "budget" in v else "")
            for t, v in search.items()
        )
        out += f"\nEpochs spent in the IMP search (after the warmup): {spent}."
    pbfs = subnets_line(results)
    out += f"\n\n{pbfs}" if pbfs else ""
    training = training_text(results)
    equal = equal_epochs_table(results)
    out += f"\n\n{training}" if training else ""
    out += f"\n\n{equal}" if equal else ""
    return out


def training_text(results: dict) -> str | None:
    """Per system, its wall time and the best-dev epoch of each trained network against the epochs it ran
    and its cap; a '†' where the best epoch was the last one run (still improving when it stopped: not
    converged)."""
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
        took = f" ({duration(sys['seconds'])})" if "seconds" in sys else ""
        lines.append(f"- {label(name)}{took}: {', '.join(cells)}")
    if not lines:
        return None
    head = (
        "Training (wall time; best-dev epoch / epochs run, of the cap; † the best epoch was the last: "
        "not converged):"
    )
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
    rows = []
    for name, tr in systems.items():
        cells = [label(name), str(tr["start_epochs"])]
        for t in totals:
            v = _best_within(tr["runs"], tr["start_epochs"], t)
            cells.append("-" if v is None else (f"{v:.4f}" if error else f"{100 * v:.2f}"))
        rows.append(cells)
    note = (
        "Dev at equal total epochs: the best mean dev score (the selection criterion; "
        + ("MSE/MAE negated" if error else "percent")
        + ") a system reached within that many epochs, counting the multi-task warmup's epochs for the "
        "systems that start from θ^(w) ('start'); '-': not reached (it stopped at its cap before). "
        "The IMP search's epochs are not counted (every level rewinds to θ^(w))."
    )
    return markdown(head, rows) + "\n\n" + note


def overlap_text(ratio: float, densities: list[float]) -> str:
    """An Overlap Ratio beside its chance level and normalised value, e.g. ``0.843 (chance 0.136,
    normalised 0.79)``."""
    chance, norm = chance_overlap(densities), normalised_overlap(ratio, densities)
    norm_text = "n/a" if math.isnan(norm) else f"{norm:.2f}"
    return f"{ratio:.3f} (chance {chance:.3f}, normalised {norm_text})"


def with_stored_options(run: Path, results: dict) -> dict:
    """``results`` with the config's comparison choices (``paper.reference``, ``scale``, ``scale_note``)
    read from the run's config.yaml where results.json does not record them (a copy; the input is kept)."""
    paper = results.get("paper", {})
    if all(k in paper for k in OPTION_KEYS) or not paths.config(run).exists():
        return results
    try:
        stored = (nesting.yaml_load(paths.config(run).read_text()) or {}).get("paper") or {}
    except (yaml.YAMLError, UnicodeDecodeError, AttributeError, ValueError):
        return results
    found = {k: stored[k] for k in OPTION_KEYS if k not in paper and k in stored}
    return {**results, "paper": {**paper, **found}} if found else results


def _departures(preset: dict) -> str:
    got = preset.get("departures") or {}
    if not got:
        return f"the '{preset['name']}' preset, no departures"
    keys = ", ".join(f"{k} {d['value']!r} (preset {d['preset']!r})" for k, d in got.items())
    return f"the '{preset['name']}' preset, departing at {keys}"


def preset_text(results: dict) -> str | None:
    """Which preset the run follows and every key where it departs from it (None: no preset)."""
    if "preset" in results:
        return f"Protocol: {_departures(results['preset'])}."
    sweep = results.get("sweep", {}).get("points", [])
    points = [(pt["point"], pt["preset"]) for pt in sweep if "preset" in pt]
    if not points:
        return None
    return "Protocol, per point: " + "; ".join(f"{name}: {_departures(p)}" for name, p in points) + "."


def check_results(results, path: Path) -> dict:
    """``results`` (read from ``path``) as the report reads it: of the shape
    ``results_file.check_shape`` checks, and every key the tables read there and of the right kind; a
    file from someone else that is not is one line naming it."""
    results_file.check_shape(results, path)
    try:  # the tables read many more keys: a dry run names the first one missing or of a wrong kind
        results_table(results)
    except (KeyError, TypeError, AttributeError, IndexError, ValueError, StopIteration) as e:
        raise RunError(
            f"{path}: not a results file this sparseshare can report ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''})"
        ) from None
    return results


def write_report(run: Path, results: dict) -> str:
    """Write results.md and figures/; return the table."""
    results = with_stored_options(run, results)
    table = results_table(results)
    meta = results.get("meta", {})
    text = (
        f"# {results['experiment']}\n\nTest scores of the best-dev checkpoint, evaluated once.\n\n{table}\n"
    )
    protocol = preset_text(results)
    if protocol:
        text += f"\n{protocol}\n"
    if meta:
        text += "\n" + ", ".join(f"{k}: {v}" for k, v in meta.items()) + "\n"
    atomic.write_text(paths.results_md(run), text, root=run)
    figs = paths.figures(run)
    figs.mkdir(exist_ok=True)
    if "sweep" in results:
        plot_sweep(results, figs, paper_options(results)["scale"])
        return table
    plot_search(results, figs)
    plot_learning_curves(results, figs)
    plot_overlap(results, figs)
    return table
