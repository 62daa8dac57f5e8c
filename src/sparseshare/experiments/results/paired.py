"""Paired statistics over a sweep's ``seed`` axis: differences at the same seed, mean ± standard error.

A seed draws the initialisation and, in PBFS runs, the data splits themselves, so two systems compare
on the same data only at the same seed: each difference is taken within a seed (and within the other
axes' labels), then summarised over seeds. Two families: each system against its reference system
(``paper.reference``, default the single task; a matched-budget row against the single task at the
same budget, see references.py), and each label of a non-seed axis against the axis' first label.
``paired_differences`` gives plain data (claims can be recomputed from results.json); ``paired_tables``
renders it.
"""

from __future__ import annotations

import math
import statistics

from sparseshare.experiments.results.markdown import ERROR_METRICS, markdown, unit
from sparseshare.experiments.results.references import (
    UNMATCHED_MARK,
    is_reference,
    reference_of,
    references_note,
)
from sparseshare.experiments.results.vs_paper import LENIENT
from sparseshare.experiments.systems.registry import label

SEED = "seed"
_IN = {"primary": "", "paper": " in the paper's metric and scorer"}
_WHICH = {
    "primary": "Primary test metric (span tasks: the strict span F1)",
    "paper": "Each task's first metric in the paper's tables (span tasks: the lenient F1, the papers' "
    "scorer)",
}


def _summary(diffs: list[float]) -> dict:
    """Mean, sample sd, standard error (sd/√n) and n of paired differences; ``significant``: |mean| >
    2 SE (never with one pair: no SE; with identical differences, SE 0, when they are not 0)."""
    n = len(diffs)
    mean = statistics.mean(diffs)
    sd = statistics.stdev(diffs) if n > 1 else None
    se = sd / math.sqrt(n) if sd is not None else None
    significant = se is not None and abs(mean) > max(2 * se, 1e-12)  # not float noise when se is 0
    return {"mean": mean, "sd": sd, "se": se, "n": n, "significant": significant, "diffs": diffs}


def _averageable(metrics: list[str]) -> bool:
    """Scores can be averaged over tasks when they share a scale: all errors, or all percentages."""
    return len({m in ERROR_METRICS for m in metrics}) == 1


def _primary(task: str, result: dict) -> tuple[str, float | None]:
    r = result["tasks"][task]
    return r["metric"], r["test"]


def paper_scorer(paper_metrics: dict[str, list[str]]):
    """A task's score as the paper's tables give it: the first metric the config compares for the task
    (``paper.metrics``), lenient for span F1 (the papers' scorer); the primary where none is named."""

    def pick(task: str, result: dict) -> tuple[str, float | None]:
        names = paper_metrics.get(task) or []
        if not names:
            return _primary(task, result)
        test = result["tasks"][task].get("all", {}).get("test", {})
        m = names[0]
        if m + LENIENT in test:
            return m + LENIENT, test[m + LENIENT]
        return m, test.get(m)

    return pick


def _compare(pairs: list[tuple[dict, dict]], pick=_primary) -> dict:
    """Per task (the metric ``pick`` gives: the primary test metric by default; printed units) and for
    the average over tasks, the summary of ``a - b`` over the (a, b) system results given, one pair per
    seed."""
    tasks: dict[str, dict] = {}
    names = [t for t in pairs[0][0]["tasks"] if all(t in a["tasks"] and t in b["tasks"] for a, b in pairs)]
    values: dict[str, list[float]] = {}
    for t in names:
        m = pick(t, pairs[0][0])[0]
        got = [(pick(t, a)[1], pick(t, b)[1]) for a, b in pairs]
        if any(x is None or y is None for x, y in got):
            continue
        values[t] = [x - y for x, y in got]
        tasks[t] = {"metric": m, **_summary([unit(m) * d for d in values[t]])}
    metrics = [tasks[t]["metric"] for t in tasks]
    average = None
    if tasks and _averageable(metrics):
        diffs = [unit(metrics[0]) * statistics.mean(values[t][i] for t in tasks) for i in range(len(pairs))]
        average = _summary(diffs)
    return {"n": len(pairs), "tasks": tasks, "average": average}


def _groups(results: dict, axes: list[str]) -> dict[tuple, dict[str, dict]]:
    """Points by their labels on ``axes``, then by seed label."""
    out: dict[tuple, dict[str, dict]] = {}
    for pt in results["sweep"]["points"]:
        key = tuple(pt["labels"][a] for a in axes)
        out.setdefault(key, {})[pt["labels"][SEED]] = pt
    return out


def paired_differences(results: dict, reference: str = "single", scorer: str = "primary") -> dict | None:
    """The paired differences of a sweep with a ``seed`` axis of 2+ labels (None without one).

    ``against_reference``: per point of the other axes (``at``) and system, ``system - reference`` per
    seed; ``across_axes``: per non-seed axis, label (not the first) and point of the remaining axes,
    ``label - first label`` per system present at both. Each entry: ``n`` (seeds paired), ``tasks``
    (task -> ``metric`` and the summary: ``mean``, ``sd``, ``se``, ``n``, ``significant``, ``diffs``)
    and ``average`` (over tasks, None where their metrics do not share a scale). Differences are of the
    primary test metric (span tasks: strict F1), in percentage points for accuracy, F1 and AUC, raw for
    MSE/MAE. ``skipped``: the systems and points where the reference did not run; ``disjoint``: the
    labels that share no task with their axis' first label (not compared). ``scorer="paper"``: each
    task's first metric in ``paper.metrics`` instead, lenient for span F1 (how the papers score; the
    claims compare in it)."""
    pick = paper_scorer(results.get("paper", {}).get("metrics") or {}) if scorer == "paper" else _primary
    axes = results["sweep"]["axes"]
    if SEED not in axes or len(axes[SEED]) < 2:
        return None
    rest = [a for a in axes if a != SEED]
    groups = _groups(results, rest)
    out = {"reference": reference, "against_reference": [], "across_axes": [], "skipped": [], "disjoint": []}
    for key, seeds in groups.items():
        at = dict(zip(rest, key))
        present = {s for pt in seeds.values() for s in pt["systems"]}
        for name in dict.fromkeys(s for pt in seeds.values() for s in pt["systems"]):
            ref, same = reference_of(name, present, reference)
            if ref is None:
                if not is_reference(name, reference):
                    out["skipped"].append({"at": at, "system": name, "reason": f"{reference} did not run"})
                continue
            runs = [pt["systems"] for pt in seeds.values()]
            pairs = [(r[name], r[ref]) for r in runs if name in r and ref in r]
            if pairs:
                entry = {"at": at, "system": name, "reference": ref, "budget_matched": same}
                out["against_reference"].append({**entry, **_compare(pairs, pick)})
    for axis in rest:
        first = axes[axis][0]
        for key, seeds in groups.items():
            at = dict(zip(rest, key))
            if at[axis] == first:
                continue
            base = groups.get(tuple(first if a == axis else at[a] for a in rest), {})
            for name in dict.fromkeys(s for pt in seeds.values() for s in pt["systems"]):
                runs = [(pt["systems"], base.get(sd, {}).get("systems", {})) for sd, pt in seeds.items()]
                pairs = [(a[name], b[name]) for a, b in runs if name in a and name in b]
                compared = _compare(pairs, pick) if pairs else None
                if compared is not None and not compared["tasks"]:
                    out["disjoint"].append({"axis": axis, "label": at[axis], "base": first})
                elif compared is not None:
                    where = {a: v for a, v in at.items() if a != axis}
                    entry = {"axis": axis, "label": at[axis], "base": first, "system": name, "at": where}
                    out["across_axes"].append({**entry, **compared})
    return out


def _cell(metric: str, s: dict | None) -> str:
    if s is None:
        return ""
    digits = 5 if metric in ERROR_METRICS else 2  # paired MSE differences are ~1e-4
    text = f"{s['mean']:+.{digits}f}"
    text += f" ± {s['se']:.{digits}f}" if s["se"] is not None else " (one seed)"
    return text + (" *" if s["significant"] else "")


def _task_columns(entries: list[dict]) -> dict[str, str]:
    cols: dict[str, str] = {}
    for e in entries:
        for t, s in e["tasks"].items():
            cols.setdefault(t, s["metric"])
    return cols


def _stat_cells(e: dict, cols: dict[str, str], average: bool) -> list[str]:
    cells = [str(e["n"])]
    cells += [_cell(m, e["tasks"].get(t)) for t, m in cols.items()]
    if average:
        avg_metric = next(iter(e["tasks"].values()))["metric"] if e["tasks"] else ""
        cells.append(_cell(avg_metric, e["average"]))
    return cells


def paired_tables(results: dict, reference: str = "single", scorer: str = "primary") -> str | None:
    """Markdown: the paired differences against the reference, then across each axis' labels, with a
    note on how they were taken (``scorer``: see ``paired_differences``)."""
    data = paired_differences(results, reference, scorer)
    if data is None:
        return None
    rest = [a for a in results["sweep"]["axes"] if a != SEED]
    parts = []
    vs = data["against_reference"]
    if vs:
        cols = _task_columns(vs)
        average = any(e["average"] is not None for e in vs)
        head = rest + ["System", "against", "n"] + [f"{t} Δ test {m}" for t, m in cols.items()]
        head += ["Δ avg over tasks"] if average else []
        rows = []
        for e in vs:
            against = label(e["reference"]) + ("" if e["budget_matched"] else f" {UNMATCHED_MARK}")
            cells = [e["at"][a] for a in rest] + [label(e["system"]), against]
            rows.append(cells + _stat_cells(e, cols, average))
        names = list(dict.fromkeys(e["system"] for e in vs))
        present = {s for pt in results["sweep"]["points"] for s in pt["systems"]}
        parts.append(
            f"Paired differences{_IN[scorer]}, each system minus its reference at the same seed and "
            "point:\n\n"
            f"{markdown(head, rows)}\n\n{references_note(names + [reference], present, reference)}"
        )
    skipped: dict[tuple, list[str]] = {}
    for e in data["skipped"]:
        skipped.setdefault(tuple(e["at"].items()), []).append(e["system"])
    by_systems: dict[tuple, list[str]] = {}
    for at, names in skipped.items():
        by_systems.setdefault(tuple(names), []).append(", ".join(f"{a}={v}" for a, v in at) or "every point")
    for names, ats in by_systems.items():
        parts.append(
            f"{label(reference)} (the reference) did not run at {'; '.join(ats)}: no paired differences "
            f"against it for {', '.join(label(n) for n in names)}."
        )
    disjoint = {(e["axis"], e["label"], e["base"]) for e in data["disjoint"]}
    for axis, lab, first in sorted(disjoint):
        parts.append(f"{axis}: {lab} and {first} share no task (not compared).")
    across = data["across_axes"]
    if across:
        cols = _task_columns(across)
        average = any(e["average"] is not None for e in across)
        head = ["axis", "label - first", "at", "System", "n"] + [f"{t} Δ test {m}" for t, m in cols.items()]
        head += ["Δ avg over tasks"] if average else []
        rows = []
        for e in across:
            at = ", ".join(f"{a}={v}" for a, v in e["at"].items())
            cells = [e["axis"], f"{e['label']} - {e['base']}", at, label(e["system"])]
            rows.append(cells + _stat_cells(e, cols, average))
        parts.append(
            f"Paired differences{_IN[scorer]} between an axis' labels, each label minus the axis' first, "
            "per system, "
            f"at the same seed and other labels:\n\n{markdown(head, rows)}"
        )
    if not parts:
        return None
    note = (
        "Paired differences: per seed, a difference of test scores taken at the same seed (and the same "
        "labels of the other axes); mean ± standard error (sd/√n) over the n seeds; *: |mean| > 2 SE. "
        "A seed draws the initialisation and, in PBFS runs, the data splits too, so only scores at the "
        "same seed are on the same data: pairing by seed is what makes these differences valid. "
        + _WHICH[scorer]
        + ", in percentage points for accuracy, F1 and AUC, raw for MSE/MAE (negative: lower error); Δ avg "
        "over tasks where the tasks' metrics share a scale."
    )
    return "\n\n".join(parts) + "\n\n" + note
