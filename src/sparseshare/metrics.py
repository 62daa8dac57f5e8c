"""Task metrics: thin wrappers over seqeval (strict span F1) and scikit-learn."""

from __future__ import annotations

from collections.abc import Sequence

# metric name -> what it scores; the first metric of a task kind is its primary (selection) metric
SEQUENCE_METRICS = {"accuracy": "token accuracy", "f1": "span F1 (seqeval, strict)"}
_SEQEVAL_SCHEMES = {"bio2": "IOB2", "iob2": "IOB2", "iob1": "IOB2", "bioes": "IOBES"}


def token_accuracy(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, float]:
    """Fraction of tokens whose predicted tag equals the gold tag (POS, position prediction)."""
    total = correct = 0
    for g, p in zip(gold, pred, strict=True):
        if len(g) != len(p):
            raise ValueError(f"sentence lengths differ: gold {len(g)}, predicted {len(p)}")
        total += len(g)
        correct += sum(a == b for a, b in zip(g, p))
    return {"accuracy": correct / total if total else 0.0}


def span_f1(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], scheme: str) -> dict[str, float]:
    """Strict (exact span and type) precision, recall and F1 with seqeval, as in CoNLL evaluation."""
    from seqeval.metrics import f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2, IOBES

    sch = {"IOB2": IOB2, "IOBES": IOBES}[_SEQEVAL_SCHEMES[scheme]]
    g, p = [list(s) for s in gold], [list(s) for s in pred]
    kw = {"mode": "strict", "scheme": sch, "zero_division": 0}
    return {
        "f1": float(f1_score(g, p, **kw)),
        "precision": float(precision_score(g, p, **kw)),
        "recall": float(recall_score(g, p, **kw)),
    }


def score_sequences(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], metric: str, scheme: str | None = None
) -> dict[str, float]:
    """All metrics of a sequence task; ``metric`` ('accuracy' or 'f1') names the primary one."""
    if metric == "accuracy":
        return token_accuracy(gold, pred)
    if metric == "f1":
        if scheme is None:
            raise ValueError("span F1 needs the tag scheme")
        out = span_f1(gold, pred, scheme)
        out.update(token_accuracy(gold, pred))
        return out
    raise ValueError(f"unknown metric '{metric}'; valid: {sorted(SEQUENCE_METRICS)}")
