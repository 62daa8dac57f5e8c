"""Our numbers beside a paper's, in the paper's scorer and on its scale.

Span tasks (chunking, NER) are scored strict (``f1``, the primary metric) and lenient (``f1_lenient``,
conlleval's scoring, which both papers' authors used): beside a paper's number ours is the lenient one,
the strict one in brackets. A metric the config scales (``paper.scale``, e.g. ``{mse: 0.04}``: Student
grades /20 here, /100 in the PBFS paper) is multiplied by its factor there, the raw value in brackets.
The other tables keep the primary metric, unscaled.
"""

from __future__ import annotations

import statistics

from sparseshare.experiments.results.markdown import ERROR_METRICS, fmt, markdown
from sparseshare.experiments.systems.registry import label

LENIENT = "_lenient"


def paper_options(results: dict) -> dict:
    """The config's choices for the comparison (``paper.reference``, ``paper.scale``,
    ``paper.scale_note``) as results.json records them; defaults where it does not."""
    paper = results.get("paper", {})
    return {
        "reference": paper.get("reference") or "single",
        "scale": dict(paper.get("scale") or {}),
        "scale_note": paper.get("scale_note") or "",
    }


def _number(metric: str, value: float, scaled: bool) -> str:
    if metric in ERROR_METRICS and scaled:
        return f"{value:.5f}"  # a scaled MSE is ~0.001: one more digit than the paper's
    return fmt(metric, value)


def _spread(metric: str, values: list[float], scaled: bool) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    if metric in ERROR_METRICS:
        return f"{sd:.{5 if scaled else 4}f}"
    return f"{100 * sd:.2f}"


def ours(metric: str, scores: list[dict], scale: dict[str, float], spread: bool = False) -> str:
    """Our ``metric`` as compared with a paper's, over one run's test scores (``all.test``) or several
    (``spread``: mean ± sample sd): lenient F1 for a span task with the strict one beside it, a scaled
    metric times its factor with the raw value beside it ('' where no run has the metric)."""
    runs = [s for s in scores if s.get(metric) is not None]
    if not runs:
        return ""
    lenient = all(metric + LENIENT in s for s in runs)
    key = metric + LENIENT if lenient else metric
    factor = scale.get(metric)
    shown = [s[key] * (factor if factor is not None else 1.0) for s in runs]
    text = _number(metric, statistics.mean(shown), factor is not None)
    if spread:
        text += f" ± {_spread(metric, shown, factor is not None)}"
    beside = []
    if lenient:
        beside.append(f"strict {fmt(metric, statistics.mean(s[metric] for s in runs))}")
    if factor is not None:
        beside.append(f"raw {fmt(metric, statistics.mean(s[key] for s in runs))}")
    return text + (f" ({', '.join(beside)})" if beside else "")


def notes(shown: dict[str, list[str]], scores: list[dict[str, dict]], options: dict) -> str:
    """The lines under a comparison table: which F1 is ours for span tasks, which factor scales ours.
    ``shown``: task -> the metrics in the table; ``scores``: task -> test scores, per run."""
    spans = [t for t, ms in shown.items() if any(m + LENIENT in run.get(t, {}) for m in ms for run in scores)]
    out = []
    if spans:
        out.append(
            f"Span F1 ({', '.join(spans)}): ours is the lenient F1 (conlleval's scoring, which both "
            "papers' authors used), our strict F1 (the primary metric, which selection uses) beside it."
        )
    scale = {m: f for m, f in options["scale"].items() if any(m in ms for ms in shown.values())}
    if scale:
        factors = ", ".join(f"x{f:g} for {m}" for m, f in scale.items())
        why = options["scale_note"] or "the paper reports these metrics on another scale than ours"
        out.append(
            f"Ours {factors} to the paper's scale (the raw value beside it, and in the other tables): "
            f"{why.rstrip('.')}."
        )
    return " ".join(out)


def paper_table(results: dict, options: dict | None = None) -> str:
    """One column pair (ours / paper) per reported task metric, laid out as the paper's table."""
    options = options or paper_options(results)
    paper = results["paper"]
    systems = results["systems"]
    first = next(iter(systems.values()))["tasks"]
    tasks = list(first)
    metrics = {t: paper["metrics"].get(t) or [first[t]["metric"]] for t in tasks}
    head = ["System"] + [f"{t} test {m} (ours / paper)" for t in tasks for m in metrics[t]] + ["# Params"]
    rows = []
    for name in list(systems) + [s for s in paper["values"] if s not in systems]:
        sys, ref = systems.get(name), paper["values"].get(name, {})
        cells = [label(name)]
        for t in tasks:
            for m in metrics[t]:
                mine = ours(m, [sys["tasks"][t]["all"]["test"]], options["scale"]) if sys else ""
                cells.append(f"{mine or '-'} / {fmt(m, ref.get(t, {}).get(m))}")
        cells.append(f"{sys['params'] / 1000:.1f}k" if sys else "-")
        rows.append(cells)
    note = "Percent for accuracy, F1 and AUC; raw values for MSE/MAE. '-': not run here, or not in the paper."
    scores = [{t: r["all"]["test"] for t, r in s["tasks"].items()} for s in systems.values()]
    extra = notes(metrics, scores, options)
    src = f" Paper: {paper['source']}." if paper.get("source") else ""
    return markdown(head, rows) + f"\n\n{note}{src}" + (f"\n{extra}" if extra else "")
