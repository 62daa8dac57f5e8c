"""Metrics of tabular tasks (scikit-learn): binary -> AUC, F1, macro F1, accuracy; regression -> MSE, MAE.

``f1`` is the F1 of the positive class; ``f1_macro`` the mean of both classes' F1. The PBFS paper does not
say which it reports; its census numbers (income F1 0.64-0.75 at accuracy 0.95, 6% positives) fit macro
F1, not positive-class F1 (about 0.5-0.6 at that accuracy), so its configs compare against ``f1_macro``.

``evaluate_tabular`` has the trainer's evaluator signature, so a tabular task is
``TaskSpec(name, data, metric, evaluator=evaluate_tabular, higher_is_better=metric not in LOWER_IS_BETTER)``.
Rows without a label (NaN) are skipped. Binary predictions are probabilities, thresholded at 0.5.
"""

from __future__ import annotations

import math

import numpy as np
import torch

METRICS = {"binary": ("auc", "f1", "f1_macro", "accuracy"), "regression": ("mse", "mae")}
PRIMARY = {"binary": "auc", "regression": "mse"}  # the papers' choices (PBFS Tables 2, 4, 6)
LOWER_IS_BETTER = frozenset({"mse", "mae"})


def score(kind: str, y_true: np.ndarray, y_pred: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """All metrics of one task kind; AUC is NaN when the labels hold a single class."""
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
    if not len(y_true):
        raise ValueError("no labelled rows to score")
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


@torch.no_grad()
def predictions(
    mechanism, data, task: str, split: str, batch_size: int, device
) -> tuple[np.ndarray, np.ndarray]:
    """(labels, predictions) of ``task`` on ``split`` in row order."""
    mechanism.eval()
    ys, ps = [], []
    for batch in data.batches(split, batch_size, shuffle=False):
        batch = batch.to(device)
        ps.append(mechanism.predict(batch, task).float().cpu())
        ys.append(batch.y[task].float().cpu())
    return torch.cat(ys).numpy(), torch.cat(ps).numpy()


def evaluate_tabular(mechanism, spec, split: str, batch_size: int, device) -> dict[str, float]:
    """Evaluator for ``TaskSpec``: every metric of ``spec.name``'s kind on ``split``."""
    y, p = predictions(mechanism, spec.data, spec.name, split, batch_size, device)
    return score(spec.data.kinds[spec.name], y, p)
