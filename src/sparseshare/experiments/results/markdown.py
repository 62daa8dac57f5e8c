"""How the report writes numbers and tables: percent for accuracy, F1 and AUC, raw values for MSE/MAE."""

from __future__ import annotations

from sparseshare.metrics import LOWER_IS_BETTER

ERROR_METRICS = LOWER_IS_BETTER


def fmt(metric: str, value: float | None) -> str:
    """A score as the tables print it ('-': none)."""
    if value is None:
        return "-"
    return f"{value:.4f}" if metric in ERROR_METRICS else f"{100 * value:.2f}"


def unit(metric: str) -> float:
    """The factor from a score to the number printed (100: percent)."""
    return 1.0 if metric in ERROR_METRICS else 100.0


def fmt_delta(metric: str, value: float) -> str:
    """A difference of scores, already in printed units, with its sign."""
    return f"{value:+.4f}" if metric in ERROR_METRICS else f"{value:+.2f}"


def markdown(head: list[str], rows: list[list[str]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
