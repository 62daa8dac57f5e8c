"""Hard sharing (Caruana 1997; Collobert and Weston 2008): one encoder for all tasks, a head per task.

Also used for single-task models (a model with one head). Eq. 1 of the sparse-sharing paper.
"""

from __future__ import annotations

import torch
from torch import nn


class HardSharing(nn.Module):
    """Every task uses every encoder weight; a step is a plain optimizer step."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    @property
    def tasks(self) -> list[str]:
        return self.model.tasks

    def forward(self, batch, task: str) -> torch.Tensor:
        return self.model(batch, task)

    def loss(self, batch, task: str) -> torch.Tensor:
        return self.model.task_loss(self(batch, task), batch, task)

    def decode(self, batch, task: str) -> list[list[int]]:
        """Tag ids per sentence (sequence-labelling models)."""
        return self.model.task_decode(self(batch, task), batch, task)

    def predict(self, batch, task: str) -> torch.Tensor:
        """Probabilities or values per row (tabular models)."""
        return self.model.task_predict(self(batch, task), task)

    def step(self, optimizer: torch.optim.Optimizer, task: str) -> None:
        optimizer.step()

    def shared_parameter_names(self) -> list[str]:
        return [f"model.{n}" for n in self.model.shared_parameter_names()]
