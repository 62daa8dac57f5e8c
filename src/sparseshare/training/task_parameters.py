"""Which parameters each task's loss reaches, found rather than guessed, for a model that does not say.

A model may name them (``task_parameter_names(task)``: its own answer always wins). Without it, every
parameter used to count as every task's: a layer only one task uses was pruned and exported for every
task, and heads not named ``heads.*`` / ``towers.*`` (``classifier.*``, say) were pruned as shared. The
pipeline (``warmup``, ``search_masks``, ``train_jointly``) now finds them once per model: a forward and
a backward per task on the task's first training batch, in evaluation mode (no dropout, no running
statistics updated) and with the random state put back, so training is unchanged. A parameter is the
task's when the task's loss has a gradient path to it; a frozen one (``requires_grad=False``) counts as
every task's. The answer is kept on the model (``contracts.FOUND_TASK_PARAMETERS``) and used for the
default prunable set (what every task reaches), by export (a task's subnet) and by the mechanisms'
``task_parameter_names``; it is logged in one line.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch

from sparseshare.contracts import FOUND_TASK_PARAMETERS
from sparseshare.data.task import Task, move_batch

logger = logging.getLogger("sparseshare")


def find_task_parameters(model: torch.nn.Module, tasks: Mapping[str, Task]) -> dict[str, list[str]] | None:
    """Find (once) and keep on ``model`` the parameters each task's loss reaches; None when the model
    names them itself, or when ``tasks`` lack one of its tasks' data (nothing is then assumed)."""
    if callable(getattr(model, "task_parameter_names", None)):
        return None
    found = getattr(model, FOUND_TASK_PARAMETERS, None)
    if found is not None:
        return found
    if any(t not in tasks for t in model.tasks):
        return None
    names = [n for n, _ in model.named_parameters()]
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    found = {}
    forked = [device] if device.type == "cuda" else []
    try:
        model.eval()
        with torch.random.fork_rng(devices=forked):
            for t in model.tasks:
                batch = move_batch(next(iter(tasks[t].data.batches("train", 8, shuffle=False))), device)
                loss = model.task_loss(model(batch, t), batch, t)
                grads = torch.autograd.grad(loss, [p for _, p in trainable], allow_unused=True)
                reached = {n for (n, _), g in zip(trainable, grads) if g is not None} | set(frozen)
                found[t] = [n for n in names if n in reached]
    finally:
        model.train(was_training)
    setattr(model, FOUND_TASK_PARAMETERS, found)
    logger.info("%s", describe(found, names))
    return found


def describe(found: Mapping[str, list[str]], names: list[str]) -> str:
    """One line: how many tensors every task reaches, and the ones only some (or none) reach."""
    every = set.intersection(*(set(v) for v in found.values())) if found else set()
    some = [n for n in names if n not in every and any(n in v for v in found.values())]
    none = [n for n in names if not any(n in v for v in found.values())]
    parts = [f"every task reaches {len(every)} of {len(names)} parameter tensors"]
    if some:
        owners = {n: ",".join(t for t, v in found.items() if n in v) for n in some}
        listed = ", ".join(f"{n} ({owners[n]})" for n in some[:8])
        parts.append(f"only some: {listed}{f' and {len(some) - 8} more' if len(some) > 8 else ''}")
    if none:
        parts.append(f"none: {', '.join(none[:8])}{f' and {len(none) - 8} more' if len(none) > 8 else ''}")
    return "task parameters (found by a forward and backward per task): " + "; ".join(parts)
