"""Hard sharing (Caruana 1997; Collobert and Weston 2008): one encoder for all tasks, a head per task.

Also used for single-task models (a model with one head). Eq. 1 of the sparse-sharing paper. It wraps
any object fitting :class:`~sparseshare.contracts.MultiTaskModel`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from sparseshare.contracts import check_model, declared_task_parameters, is_mechanism


def task_predict(model: nn.Module, out, batch, task: str):
    """The model's ``task_predict(out, batch, task)`` when it has one, else the output itself."""
    own = getattr(model, "task_predict", None)
    return own(out, batch, task) if callable(own) else out


def task_parameter_names(model: nn.Module, task: str, prefix: str = "") -> list[str]:
    """The model's ``task_parameter_names(task)`` when it has one, else the names the pipeline found
    ``task``'s loss to reach (contracts.declared_task_parameters), else every parameter's name."""
    own = declared_task_parameters(model)
    names = own(task) if own is not None else [n for n, _ in model.named_parameters()]
    return [f"{prefix}{n}" for n in names]


class HardSharing(nn.Module):
    """Every task uses every encoder weight; a step is a plain optimizer step."""

    def __init__(self, model: nn.Module):
        super().__init__()
        check_model(model)
        self.model = model

    @property
    def tasks(self) -> list[str]:
        return list(self.model.tasks)

    def forward(self, batch, task: str):
        return self.model(batch, task)

    def loss(self, batch, task: str) -> torch.Tensor:
        return self.model.task_loss(self(batch, task), batch, task)

    @torch.no_grad()
    def predict(self, batch, task: str):
        """What the metric scores; no autograd graph, so torch takes the inference path a loaded subnet
        takes (a TransformerEncoder's fast path): the same predictions, bit for bit, as ``load_subnet``'s."""
        return task_predict(self.model, self(batch, task), batch, task)

    def joint_loss(self, batch, weights: Mapping[str, float]) -> torch.Tensor:
        own = getattr(self.model, "joint_loss", None)
        if callable(own):
            return own(batch, weights)
        return torch.stack([float(w) * self.loss(batch, t) for t, w in weights.items()]).sum()

    def joint_losses(self, batch, tasks: Sequence[str]) -> dict[str, torch.Tensor]:
        """Each task's unweighted loss on one batch (the model's own, sharing its forward, if it has one)."""
        own = getattr(self.model, "joint_losses", None)
        if callable(own):
            return own(batch, tasks)
        return {t: self.loss(batch, t) for t in tasks}

    def step(self, optimizer: torch.optim.Optimizer, task: str | None = None) -> None:
        optimizer.step()

    def task_parameter_names(self, task: str) -> list[str]:
        return task_parameter_names(self.model, task, "model.")


def as_mechanism(obj) -> nn.Module:
    """``obj`` if it is a mechanism (loss, predict, step per task), else ``HardSharing(obj)`` (which
    checks that ``obj`` fits the model contract and names what it lacks)."""
    return obj if is_mechanism(obj) else HardSharing(obj)


def shared_parameter_names(mechanism) -> list[str]:
    """Parameters that the losses of two or more tasks reach: what the tasks share."""
    seen: dict[str, int] = {}
    for t in mechanism.tasks:
        for n in mechanism.task_parameter_names(t):
            seen[n] = seen.get(n, 0) + 1
    return [n for n, _ in mechanism.named_parameters() if seen.get(n, 0) >= 2]
