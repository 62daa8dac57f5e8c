"""Task metrics by name (thin wrappers over seqeval and scikit-learn), or a callable of your own.

A metric scores a split's predictions against its targets and returns a dict of values; its name is the
primary value, the one selection (early stopping, subnets) uses. Predictions and targets are what the
model's ``predict`` and the task's targets give, batch by batch, joined along the first dimension:

- ``accuracy``: class ids (tensors, or lists of tag sequences: token accuracy). Predictions with one more
  dimension than the targets are logits (argmax); float predictions of the targets' shape are binary
  probabilities (threshold 0.5). Negative integer targets (e.g. -100 padding) and NaN are left out.
- ``f1`` with a tag ``scheme`` (bio2/iob1/bioes): strict span F1 of tag sequences (seqeval's strict
  mode: a span counts only if well formed under the scheme, with exact bounds and type); this is the
  primary value. Also gives ``f1_lenient`` (with its precision and recall: seqeval's default mode, which
  follows conlleval, the CoNLL shared tasks' scorer and the papers'), precision, recall and token
  accuracy. Lenient scoring also takes spans from ill-formed tag sequences (a lone I-, a BIOES span
  without its E-), which strict mode drops; such fragments are mostly extra or broken spans, so lenient
  precision and F1 fall below strict: in every committed run NER's lenient F1 is 2.4-4.1 points below
  strict (chunking within 0.3 either way). The reports print the lenient F1 beside the papers' numbers,
  the strict one everywhere else. Ids become tags through ``labels``.
- ``auc``, ``f1`` (positive class), ``f1_macro``: binary tasks, predictions are probabilities; each gives
  all four with accuracy. The PBFS paper's census F1 (0.64-0.75 at accuracy 0.95, 6% positives) fits
  macro F1, not positive-class F1, so its configs compare against ``f1_macro``.
- ``mse``, ``mae``: regression (lower is better); each gives both.

Rows whose target is NaN (no label for this task) are skipped by the tabular metrics; with no labelled row
(or one class, for AUC) a metric is NaN, which selection treats as undefined (see the trainer).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sparseshare.errors import ConfigError

# data kind -> metric names the built-in data offer; the first is the kind's primary metric
METRICS = {"binary": ("auc", "f1", "f1_macro", "accuracy"), "regression": ("mse", "mae")}
PRIMARY = {"binary": "auc", "regression": "mse"}  # the papers' choices (PBFS Tables 2, 4, 6)
LOWER_IS_BETTER = frozenset({"mse", "mae"})
NAMES = ("accuracy", "f1", "f1_macro", "auc", "mse", "mae")
_SEQEVAL_SCHEMES = {"bio2": "IOB2", "iob2": "IOB2", "iob1": "IOB2", "bioes": "IOBES"}


def delta_m(scores: dict[str, float], baseline: dict[str, float], metrics: dict[str, str]) -> float:
    """Δm% (Maninis et al., CVPR 2019; the multi-task literature's summary): the mean over tasks of the
    relative change against the baseline (single task), sign-corrected so that a better score counts
    positive for lower-is-better metrics too: 100/T · Σ_t s_t (M_t - B_t) / |B_t|, s_t = -1 for MSE/MAE.
    NaN when a baseline score is 0 or missing (no relative change exists)."""
    terms = []
    for t, m in metrics.items():
        b, v = baseline.get(t), scores.get(t)
        if b is None or v is None or b == 0 or math.isnan(b) or math.isnan(v):
            return math.nan
        sign = -1.0 if m in LOWER_IS_BETTER else 1.0
        terms.append(sign * (v - b) / abs(b))
    return 100.0 * sum(terms) / len(terms) if terms else math.nan


def token_accuracy(gold: Sequence[Sequence], pred: Sequence[Sequence]) -> dict[str, float]:
    """Fraction of tokens whose predicted tag equals the gold tag (POS, position prediction)."""
    total = correct = 0
    for g, p in zip(gold, pred, strict=True):
        if len(g) != len(p):
            raise ValueError(f"sentence lengths differ: gold {len(g)}, predicted {len(p)}")
        total += len(g)
        correct += sum(a == b for a, b in zip(g, p))
    return {"accuracy": correct / total if total else 0.0}


def span_f1(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], scheme: str) -> dict[str, float]:
    """Strict precision, recall and F1 (seqeval's strict mode under ``scheme``), and the lenient ones as
    conlleval scores them (seqeval's default mode), suffixed ``_lenient``."""
    from seqeval.metrics import f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2, IOBES

    sch = {"IOB2": IOB2, "IOBES": IOBES}[_SEQEVAL_SCHEMES[scheme]]
    g, p = [list(s) for s in gold], [list(s) for s in pred]
    out = {}
    for suffix, kw in (("", {"mode": "strict", "scheme": sch}), ("_lenient", {})):
        out[f"f1{suffix}"] = float(f1_score(g, p, zero_division=0, **kw))
        out[f"precision{suffix}"] = float(precision_score(g, p, zero_division=0, **kw))
        out[f"recall{suffix}"] = float(recall_score(g, p, zero_division=0, **kw))
    return out


def score(kind: str, y_true: np.ndarray, y_pred: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """All metrics of a tabular task kind; AUC is NaN when the labels hold a single class."""
    from sklearn.metrics import (
        accuracy_score,
        f1_score,
        mean_absolute_error,
        mean_squared_error,
        roc_auc_score,
    )

    y_true, y_pred = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    keep = np.isfinite(y_true)
    y_true, y_pred = y_true[keep], y_pred[keep]
    if kind not in METRICS:
        raise ValueError(f"unknown task kind '{kind}'; valid: {sorted(METRICS)}")
    if not len(y_true):  # no labelled row in this split: every metric is undefined
        return dict.fromkeys(METRICS[kind], math.nan)
    if kind == "binary":
        hard = (y_pred >= threshold).astype(int)
        auc = roc_auc_score(y_true, y_pred) if len(np.unique(y_true)) == 2 else math.nan
        return {
            "auc": float(auc),
            "f1": float(f1_score(y_true.astype(int), hard, zero_division=0)),
            "f1_macro": float(f1_score(y_true.astype(int), hard, average="macro", zero_division=0)),
            "accuracy": float(accuracy_score(y_true.astype(int), hard)),
        }
    if kind == "regression":
        return {
            "mse": float(mean_squared_error(y_true, y_pred)),
            "mae": float(mean_absolute_error(y_true, y_pred)),
        }
    raise ValueError(f"unknown task kind '{kind}'; valid: {sorted(METRICS)}")


def _is_sequences(x: Any) -> bool:
    return isinstance(x, list) and bool(x) and isinstance(x[0], (list, tuple))


def _numpy(x: Any) -> np.ndarray:
    return x.detach().float().cpu().numpy() if torch.is_tensor(x) else np.asarray(x, dtype=np.float64)


def accuracy(pred: Any, target: Any) -> dict[str, float]:
    """Class accuracy (see the module docstring for what predictions may be)."""
    if _is_sequences(target):
        return token_accuracy(target, pred)
    p, y = torch.as_tensor(pred), torch.as_tensor(target)
    if p.dim() == y.dim() + 1:
        p = p.argmax(-1)
    elif p.is_floating_point() and p.shape == y.shape and y.dtype != torch.long:
        p = (p >= 0.5).long()
    if p.shape != y.shape:
        raise ValueError(f"predictions of shape {tuple(p.shape)} do not match targets {tuple(y.shape)}")
    keep = torch.isfinite(y) if y.is_floating_point() else y >= 0
    n = int(keep.sum())
    return {"accuracy": float((p[keep].long() == y[keep].long()).sum()) / n if n else 0.0}


@dataclass(frozen=True)
class Metric:
    """A metric as the trainer uses it: ``fn(predictions, targets) -> {name: value, ...}``."""

    name: str
    fn: Callable[[Any, Any], dict[str, float]]
    higher_is_better: bool = True

    def __call__(self, pred: Any, target: Any) -> dict[str, float]:
        out = self.fn(pred, target)
        if not isinstance(out, dict):
            out = {self.name: float(out)}
        if self.name not in out:
            raise ValueError(f"metric '{self.name}' returned {sorted(out)}, without '{self.name}'")
        return {k: float(v) for k, v in out.items()}


def _span(scheme: str, labels: Sequence[str] | None):
    if scheme.lower() not in _SEQEVAL_SCHEMES:
        raise ConfigError(f"unknown tag scheme '{scheme}'; valid: {sorted(_SEQEVAL_SCHEMES)}")

    def names(seqs):
        if labels is None or not seqs or not seqs[0] or isinstance(seqs[0][0], str):
            return seqs
        return [[labels[int(k)] for k in s] for s in seqs]

    def fn(pred, target):
        gold, guess = names(list(target)), names(list(pred))
        return {**span_f1(gold, guess, scheme.lower()), **token_accuracy(gold, guess)}

    return fn


def get_metric(
    metric: str | Callable,
    *,
    scheme: str | None = None,
    labels: Sequence[str] | None = None,
    higher_is_better: bool | None = None,
    name: str | None = None,
) -> Metric:
    """A named metric (see the module docstring) or a callable ``fn(predictions, targets)`` returning a
    number or a dict (``name`` names its primary value; default the function's name)."""
    if callable(metric):
        key = name or getattr(metric, "__name__", "score")
        key = "score" if key == "<lambda>" else key
        return Metric(key, metric, True if higher_is_better is None else higher_is_better)
    if metric not in NAMES:
        raise ConfigError(f"unknown metric '{metric}'; valid: {list(NAMES)} or a callable")
    hib = metric not in LOWER_IS_BETTER if higher_is_better is None else higher_is_better
    if metric == "f1" and scheme is not None:
        return Metric("f1", _span(scheme, labels), hib)
    if metric == "accuracy":
        return Metric("accuracy", accuracy, hib)
    kind = "regression" if metric in LOWER_IS_BETTER else "binary"
    return Metric(metric, lambda p, y: score(kind, _numpy(y).reshape(-1), _numpy(p).reshape(-1)), hib)
