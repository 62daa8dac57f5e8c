"""The PBFS subnets in the report: per task, the sparsity of the shared experts it was tested at beside
the sparsity where its dev score was best (Algorithm 2 returns that subnet, so the two are equal).

Results from before the tested subnet was recorded have only the sparsity at the end of training
(``sparsity``), printed as "ended at" and flagged: it need not be the subnet the task was tested on.
"""

from __future__ import annotations

from sparseshare.experiments.systems.registry import label

OLD_MARK = "§"
DIFFER_MARK = "≠"
OLD_NOTE = (
    f"{OLD_MARK}: a result from before the tested subnet was recorded: the sparsity where training "
    "ended, not necessarily the subnet the task was tested on."
)
DIFFER_NOTE = f"{DIFFER_MARK}: tested at another sparsity than its best dev (Algorithm 2 tests at the best)."


def _pair(tested: float, best: float | None) -> str:
    text = f"{tested:.3f} / {'-' if best is None else f'{best:.3f}'}"
    return text + (f" {DIFFER_MARK}" if best is not None and abs(tested - best) > 1e-9 else "")


def _old(ended: float, best: float | None) -> str:
    return f"ended at {ended:.3f} {OLD_MARK}" + ("" if best is None else f", best {best:.3f}")


def subnets(pbfs: dict) -> dict[str, str]:
    """task -> 'tested / best' (a single run's ``systems[s].pbfs``)."""
    best = {t: b["sparsity"] for t, b in pbfs.get("best", {}).items()}
    if "tested" in pbfs:
        return {t: _pair(v["sparsity"], best.get(t)) for t, v in pbfs["tested"].items()}
    return {t: _old(v, best.get(t)) for t, v in pbfs.get("sparsity", {}).items()}


def sweep_subnets(sys: dict) -> dict[str, str]:
    """task -> 'tested / best' (a sweep point's system: ``sparsity`` tested, ``best_sparsity``; a
    sweep from before ``best_sparsity`` was recorded has the sparsity at the end of training)."""
    if "best_sparsity" not in sys:
        return {t: _old(v, None) for t, v in sys.get("sparsity", {}).items()}
    return {t: _pair(v, sys["best_sparsity"].get(t)) for t, v in sys["sparsity"].items()}


def marks_note(cells: list[str]) -> str:
    """The notes for the marks used in ``cells``."""
    text = " ".join(cells)
    return " ".join(n for m, n in ((OLD_MARK, OLD_NOTE), (DIFFER_MARK, DIFFER_NOTE)) if m in text)


def subnets_line(results: dict) -> str | None:
    """One line per system with PBFS subnets in a single run's results."""
    lines, cells = [], []
    for name, sys in results["systems"].items():
        if "pbfs" not in sys:
            continue
        per_task = subnets(sys["pbfs"])
        cells += per_task.values()
        text = ", ".join(f"{t} {v}" for t, v in per_task.items())
        lines.append(
            f"{label(name)} subnets, per task the sparsity of its shared experts (fraction pruned) tested "
            f"at / where its dev score was best: {text}."
        )
    if not lines:
        return None
    note = marks_note(cells)
    return "\n".join(lines) + (f" {note}" if note else "")
