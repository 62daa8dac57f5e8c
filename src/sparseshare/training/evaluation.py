"""Evaluation: a mechanism's predictions on a split against the task's targets, scored by its metric."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from sparseshare.data.task import Task, move_batch


def _as_list(x: Any) -> list:
    return x.tolist() if torch.is_tensor(x) else list(x)


def join(parts: list[Any], like: list[Any] | None = None) -> Any:
    """Per-batch predictions or targets as one object: lists are concatenated; tensors are concatenated
    along the first dimension, after flattening the dimensions they share with the targets (``like``)
    when batches differ in shape (padded sequences of varying length)."""
    if not parts:
        return []
    if not all(torch.is_tensor(p) for p in parts):
        return [x for p in parts for x in _as_list(p)]
    if len({tuple(p.shape[1:]) for p in parts}) == 1:
        return torch.cat(parts)
    dims = [(y.dim() if torch.is_tensor(y) else 1) for y in (like or parts)]
    return torch.cat([p.reshape(-1, *p.shape[d:]) for p, d in zip(parts, dims)])


@torch.no_grad()
def collect(mechanism, task: Task, split: str, batch_size: int, device) -> tuple[Any, Any]:
    """(predictions, targets) of ``task`` over ``split``, in the data's order."""
    mechanism.eval()
    preds, golds = [], []
    for batch in task.data.batches(split, batch_size, shuffle=False):
        gold = task.targets(batch)
        pred = mechanism.predict(move_batch(batch, device), task.name)
        preds.append(pred.detach().cpu() if torch.is_tensor(pred) else pred)
        golds.append(gold.detach().cpu() if torch.is_tensor(gold) else gold)
    return join(preds, golds), join(golds)


def evaluate_task(mechanism, task: Task, split: str, batch_size: int, device) -> dict[str, float]:
    """Every value of ``task``'s metric on ``split``."""
    return task.score(*collect(mechanism, task, split, batch_size, device))


def undefined(scores: Mapping[str, Mapping[str, float]], tasks: Mapping[str, Task]) -> list[str]:
    """Tasks whose primary metric is undefined (NaN): e.g. AUC on a split with one class."""
    return [t for t in tasks if math.isnan(scores[t][tasks[t].key])]


def mean_primary(scores: Mapping[str, Mapping[str, float]], tasks: Mapping[str, Task]) -> float:
    """Average of each task's primary metric, oriented so higher is better: the dev criterion. Tasks whose
    metric is undefined (NaN) are left out; NaN when no task's is defined."""
    signed = [tasks[t].signed(scores[t][tasks[t].key]) for t in tasks if t not in undefined(scores, tasks)]
    return sum(signed) / len(signed) if signed else math.nan
