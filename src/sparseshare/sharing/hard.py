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
        return self.model.heads[task].loss(self(batch, task), batch.tags, batch.mask)

    def decode(self, batch, task: str) -> list[list[int]]:
        return self.model.heads[task].decode(self(batch, task), batch.mask)

    def step(self, optimizer: torch.optim.Optimizer, task: str) -> None:
        optimizer.step()

    def shared_parameter_names(self) -> list[str]:
        return [f"model.{n}" for n, _ in self.model.encoder.named_parameters()]
