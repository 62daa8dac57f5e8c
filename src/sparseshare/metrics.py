"""Task metrics by name (thin wrappers over seqeval and scikit-learn), or a callable of your own.

A metric scores a split's predictions against its targets and returns a dict of values; its name is the
primary value, the one selection (early stopping, subnets) uses. Predictions and targets are what the
model's ``predict`` and the task's targets give, batch by batch, joined along the first dimension:

- ``accuracy``: class ids (tensors, or lists of tag sequences: token accuracy). Predictions with one more
  dimension than the targets are scores per class (argmax; a single column is one binary column). Float
  predictions of the targets' shape are binary (targets 0/1): probabilities (threshold 0.5), or logits
  (threshold 0) when a value lies outside [0, 1]; against integer targets, whole-number floats are class
  ids. Negative integer targets (e.g. -100 padding) and NaN are left out.
- ``f1`` with a tag ``scheme`` (bio2/iob1/bioes): strict span F1 of tag sequences (seqeval's strict
  mode: a span counts only if well formed under the scheme, with exact bounds and type); this is the
  primary value. Also gives ``f1_lenient`` (with its precision and recall: seqeval's default mode, which
  follows conlleval, the CoNLL shared tasks' scorer and the papers'), precision, recall and token
  accuracy. Lenient scoring also takes spans from ill-formed tag sequences (a lone I-, a BIOES span
  without its E-), which strict mode drops; such fragments are mostly extra or broken spans, so lenient
  precision and F1 fall below strict: in every committed run NER's lenient F1 is 2.4-4.1 points below
  strict (chunking within 0.3 either way). The reports print the lenient F1 beside the papers' numbers,
  the strict one everywhere else. Ids become tags through ``labels``.
- ``auc``, ``f1`` (positive class), ``f1_macro``: binary tasks (targets 0/1). Predictions are one column
  per example (``[N]`` or ``[N, 1]``): probabilities (the built-in models predict sigmoid outputs), or
  logits (sigmoid applied) when a value lies outside [0, 1] (logits that all lie in [0, 1] read as
  probabilities: AUC is the same, the thresholded values are not); or two logits per example (``[N, 2]``:
  class 1's softmax probability, AUC ranked by z1 - z0). Each gives all four with accuracy. The PBFS
  paper's census F1 (0.64-0.75 at accuracy 0.95, 6% positives) fits macro F1, not positive-class F1, so
  its configs compare against ``f1_macro``.
- ``mse``, ``mae``: regression (lower is better); each gives both.

Rows whose target is NaN (no label for this task) are skipped by the tabular metrics; with no labelled row
(or one class, for AUC) a metric is NaN, which selection treats as undefined (see the trainer). Inputs that
do not fit (shapes, lengths, NaN predictions, targets other than 0/1 for binary metrics, no example, tag
sequences of other lengths) raise a one-line MetricInputError (a ValueError) naming what was given and
what is needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sparseshare.errors import ConfigError, MetricInputError

# data kind -> metric names the built-in data offer; the first is the kind's primary metric
METRICS = {"binary": ("auc", "f1", "f1_macro", "accuracy"), "regression": ("mse", "mae")}
PRIMARY = {"binary": "auc", "regression": "mse"}  # the papers' choices (PBFS Tables 2, 4, 6)
LOWER_IS_BETTER = frozenset({"mse", "mae"})
NAMES = ("accuracy", "f1", "f1_macro", "auc", "mse", "mae")
_SEQEVAL_SCHEMES = {"bio2": "IOB2", "iob2": "IOB2", "iob1": "IOB2", "bioes": "IOBES"}
_NEEDS = {  # what each tabular kind takes, for its one-line errors
    "binary": "binary metrics take 1 logit per example, 2 logits (class 1 after softmax) or probabilities "
    "in [0, 1]",
    "regression": "regression metrics take one value per example ([N] or [N, 1])",
}


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


def _what(x: Any) -> str:
    """``x`` as an error message names it: an array's shape and dtype, else its type (and length)."""
    if torch.is_tensor(x) or isinstance(x, np.ndarray):
        return f"of shape {list(x.shape)} ({str(x.dtype).removeprefix('torch.')})"
    if isinstance(x, (list, tuple)):
        return f"as a {type(x).__name__} of {len(x)} items"
    return f"as {type(x).__name__} {repr(x)[:40]}"


def _values(x: Any) -> str:
    """Up to five distinct values of ``x``, for an error message."""
    v = np.unique(np.asarray(x, np.float64))
    return ", ".join(f"{a:g}" for a in v[:5]) + (", ..." if len(v) > 5 else "")


def _sentences(x: Any, who: str, metric: str) -> list[list]:
    """``x`` (a sequence of tag sequences; tensors and arrays as lists) as lists, or a one-line error."""
    x = x.tolist() if torch.is_tensor(x) or isinstance(x, np.ndarray) else x
    if isinstance(x, (str, bytes)) or not isinstance(x, Sequence):
        raise MetricInputError(f"{metric} takes a list of tag sequences; got {who} {_what(x)}")
    out = []
    for i, s in enumerate(x):
        s = s.tolist() if torch.is_tensor(s) or isinstance(s, np.ndarray) else s
        if isinstance(s, (str, bytes)) or not isinstance(s, Sequence):
            raise MetricInputError(
                f"{metric} takes a list of tag sequences; {who}[{i}] is not one: got it {_what(s)}"
            )
        out.append(list(s))
    return out


def _paired(gold: list[list], pred: list[list], metric: str) -> None:
    """One-line errors unless gold and predictions hold as many sentences, of the same lengths, and some."""
    if not gold and not pred:
        raise MetricInputError(f"{metric}: gold and predictions hold no sentence; it needs at least one")
    if len(gold) != len(pred):
        raise MetricInputError(
            f"{metric}: gold has {len(gold)} sentences, predictions {len(pred)}; "
            f"it needs one predicted tag sequence per gold sentence"
        )
    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise MetricInputError(
                f"{metric}: sentence {i} has {len(g)} gold tags but {len(p)} predicted; "
                f"it needs one predicted tag per gold token"
            )


def token_accuracy(gold: Sequence[Sequence], pred: Sequence[Sequence]) -> dict[str, float]:
    """Fraction of tokens whose predicted tag equals the gold tag (POS, position prediction); one predicted
    tag sequence per gold sentence, of its length, else a one-line ValueError."""
    gold, pred = _sentences(gold, "gold", "token accuracy"), _sentences(pred, "predictions", "token accuracy")
    _paired(gold, pred, "token accuracy")
    total = sum(len(g) for g in gold)
    correct = sum(a == b for g, p in zip(gold, pred) for a, b in zip(g, p))
    return {"accuracy": correct / total if total else 0.0}


def span_f1(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], scheme: str) -> dict[str, float]:
    """Strict precision, recall and F1 (seqeval's strict mode under ``scheme``), and the lenient ones as
    conlleval scores them (seqeval's default mode), suffixed ``_lenient``. Gold and predictions are tag
    strings, one predicted tag sequence per gold sentence, of its length, else a one-line ValueError."""
    from seqeval.metrics import f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2, IOBES

    if scheme.lower() not in _SEQEVAL_SCHEMES:
        raise ConfigError(f"unknown tag scheme '{scheme}'; valid: {sorted(_SEQEVAL_SCHEMES)}")
    g, p = _sentences(gold, "gold", "span F1"), _sentences(pred, "predictions", "span F1")
    _paired(g, p, "span F1")
    for who, seqs in (("gold", g), ("predictions", p)):
        odd = next(((i, t) for i, s in enumerate(seqs) for t in s if not isinstance(t, str)), None)
        if odd is not None:
            raise MetricInputError(
                f"span F1 takes tag strings (tag ids through the task's labels); "
                f"{who} sentence {odd[0]} holds {type(odd[1]).__name__} {repr(odd[1])[:40]}"
            )
    sch = {"IOB2": IOB2, "IOBES": IOBES}[_SEQEVAL_SCHEMES[scheme.lower()]]
    out = {}
    for suffix, kw in (("", {"mode": "strict", "scheme": sch}), ("_lenient", {})):
        out[f"f1{suffix}"] = float(f1_score(g, p, zero_division=0, **kw))
        out[f"precision{suffix}"] = float(precision_score(g, p, zero_division=0, **kw))
        out[f"recall{suffix}"] = float(recall_score(g, p, zero_division=0, **kw))
    return out


def _numpy(x: Any, who: str, needs: str) -> np.ndarray:
    """``x`` as a float64 array (a tensor through float32, as the models predict), or a one-line error."""
    try:
        a = x.detach().float().cpu().numpy() if torch.is_tensor(x) else np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError, RuntimeError):
        raise MetricInputError(f"{needs}; got {who} {_what(x)}") from None
    return np.asarray(a, np.float64)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))


def _binary(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ranking scores, class-1 probabilities) of binary predictions: two logits give z1 - z0 and its
    sigmoid (class 1's softmax probability); a column in [0, 1] is probabilities; another column is logits
    (the logit and its sigmoid). Ranking by the logit keeps AUC exact where the sigmoid saturates."""
    if p.ndim == 2:
        z = p[:, 1] - p[:, 0]
    elif ((p >= 0) & (p <= 1)).all():
        return p, p
    else:
        z = p
    return z, _sigmoid(z)


def score(kind: str, y_true: Any, y_pred: Any, threshold: float = 0.5) -> dict[str, float]:
    """All metrics of a tabular task kind, predictions as the module docstring says (arrays or tensors);
    AUC is NaN when the labels hold a single class. Inputs that do not fit raise a one-line ValueError."""
    from sklearn.metrics import (
        accuracy_score,
        f1_score,
        mean_absolute_error,
        mean_squared_error,
        roc_auc_score,
    )

    if kind not in METRICS:
        raise MetricInputError(f"unknown task kind '{kind}'; valid: {sorted(METRICS)}")
    needs = _NEEDS[kind]
    y, p = _numpy(y_true, "targets", needs), _numpy(y_pred, "predictions", needs)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise MetricInputError(
            f"{kind} metrics take one target per example ([N] or [N, 1]); got targets {_what(y_true)}"
        )
    if p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    if p.ndim != 1 and not (kind == "binary" and p.ndim == 2 and p.shape[1] == 2):
        raise MetricInputError(f"{needs}; got predictions {_what(y_pred)}")
    if len(p) != len(y):
        raise MetricInputError(
            f"predictions {_what(y_pred)} and targets {_what(y_true)}: "
            f"{kind} metrics need one prediction per target"
        )
    if not len(y):
        raise MetricInputError(
            f"{kind} metrics need at least one example; got predictions {_what(y_pred)} "
            f"and targets {_what(y_true)}"
        )
    keep = np.isfinite(y)
    y, p = y[keep], p[keep]
    if not np.isfinite(p).all():
        bad = int((~np.isfinite(p.reshape(len(p), -1))).any(1).sum())
        raise MetricInputError(
            f"predictions hold NaN or infinite values in {bad} of {len(p)} labelled rows; "
            f"{kind} metrics need finite predictions"
        )
    if kind == "binary" and ((y != 0) & (y != 1)).any():
        raise MetricInputError(f"binary targets must be 0 or 1 (NaN: no label); got values {_values(y)}")
    if not len(y):  # no labelled row in this split: every metric is undefined
        return dict.fromkeys(METRICS[kind], math.nan)
    if kind == "binary":
        rank, prob = _binary(p)
        hard = (prob >= threshold).astype(int)
        auc = roc_auc_score(y, rank) if len(np.unique(y)) == 2 else math.nan
        return {
            "auc": float(auc),
            "f1": float(f1_score(y.astype(int), hard, zero_division=0)),
            "f1_macro": float(f1_score(y.astype(int), hard, average="macro", zero_division=0)),
            "accuracy": float(accuracy_score(y.astype(int), hard)),
        }
    return {"mse": float(mean_squared_error(y, p)), "mae": float(mean_absolute_error(y, p))}


def _is_sequences(x: Any) -> bool:
    return isinstance(x, list) and bool(x) and isinstance(x[0], (list, tuple))


def _tensor(x: Any, who: str) -> torch.Tensor:
    try:
        return torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError):
        raise MetricInputError(
            f"accuracy takes class ids, probabilities or logits as numbers; got {who} {_what(x)}"
        ) from None


def _whole(x: torch.Tensor) -> bool:
    return bool((x == x.round()).all())


def accuracy(pred: Any, target: Any) -> dict[str, float]:
    """Class accuracy (see the module docstring for what predictions may be); inputs that do not fit raise
    a one-line ValueError naming what they are and what accuracy needs."""
    if _is_sequences(target) or _is_sequences(pred):
        return token_accuracy(target, pred)
    p, y = _tensor(pred, "predictions"), _tensor(target, "targets")
    got = f"predictions {_what(p)} for targets {_what(y)}"
    if not y.numel():
        raise MetricInputError(f"accuracy needs at least one example; got {got}")
    if p.dim() == y.dim() + 1 and p.shape[-1] == 1:
        p = p.squeeze(-1)  # one score column per example: binary
    keep = torch.isfinite(y) if y.is_floating_point() else y >= 0
    if y.is_floating_point() and not _whole(y[keep]):
        raise MetricInputError(f"accuracy needs class-id targets (whole numbers; NaN: no label); got {got}")
    if p.dim() == y.dim() + 1 and p.shape[:-1] == y.shape:  # scores per class: argmax
        if not torch.isfinite(p[keep]).all():
            raise MetricInputError(
                f"accuracy needs finite scores per class; got NaN or infinite values in {got}"
            )
        if y[keep].numel() and int(y[keep].max()) >= p.shape[-1]:
            raise MetricInputError(
                f"accuracy: targets hold class {int(y[keep].max())} but {got} score "
                f"{p.shape[-1]} classes; it needs a score per class"
            )
        p = p.argmax(-1)
    elif p.shape != y.shape:
        raise MetricInputError(
            f"accuracy takes predictions of the targets' shape (class ids, probabilities or 1 logit) or with "
            f"one more dimension (scores per class); got {got}"
        )
    elif p.is_floating_point() and (y.is_floating_point() or not _whole(p[keep])):  # binary
        q = p[keep]
        if not torch.isfinite(q).all():
            raise MetricInputError(f"accuracy needs finite predictions; got NaN or infinite values in {got}")
        if ((y[keep] != 0) & (y[keep] != 1)).any():
            raise MetricInputError(
                f"accuracy of float predictions of the targets' shape is binary: it needs targets 0 or 1, "
                f"got values {_values(y[keep])}; give class ids as integers, or scores per class"
            )
        p = (p >= 0.5 if bool(((q >= 0) & (q <= 1)).all()) else p >= 0).long()  # probabilities, else logits
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
            raise MetricInputError(f"metric '{self.name}' returned {sorted(out)}, without '{self.name}'")
        return {k: float(v) for k, v in out.items()}


def _span(scheme: str, labels: Sequence[str] | None):
    if scheme.lower() not in _SEQEVAL_SCHEMES:
        raise ConfigError(f"unknown tag scheme '{scheme}'; valid: {sorted(_SEQEVAL_SCHEMES)}")

    def tag(t: Any, who: str, i: int) -> Any:
        """A tag string as it is; a tag id through ``labels`` (one-line error when out of range)."""
        if isinstance(t, str) or labels is None:
            return t
        number = isinstance(t, (int, float, np.integer, np.floating)) and float(t).is_integer()
        if number and 0 <= int(t) < len(labels):
            return labels[int(t)]
        raise MetricInputError(
            f"span F1: {who} sentence {i} holds tag id {t!r}; it needs tag strings or ids "
            f"0-{len(labels) - 1} (the task's {len(labels)} labels)"
        )

    def fn(pred, target):
        gold, guess = _sentences(target, "gold", "span F1"), _sentences(pred, "predictions", "span F1")
        _paired(gold, guess, "span F1")
        gold = [[tag(t, "gold", i) for t in s] for i, s in enumerate(gold)]
        guess = [[tag(t, "predictions", i) for t in s] for i, s in enumerate(guess)]
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
    return Metric(metric, lambda p, y: score(kind, y, p), hib)
