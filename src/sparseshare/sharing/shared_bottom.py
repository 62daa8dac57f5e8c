"""Shared-bottom multi-task model (Caruana 1997; MMoE paper Eq. 1: y_k = h^k(f(x))).

One bottom MLP f for all tasks and a tower h^k per task. With a single task it is the single-task
baseline of the PBFS paper (an MLP per task; Section 4.2). Inputs are :class:`TabularBatch` objects.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from sparseshare.models.mlp import MLP, TaskTowers, check_tasks, towers


class SharedBottom(TaskTowers, nn.Module):
    """``forward(batch, task)`` returns the task's logits (binary) or values (regression), shape ``[B]``."""

    def __init__(
        self,
        in_dim: int,
        kinds: Mapping[str, str],
        bottom: Sequence[int] = (32, 16, 8),
        tower: Sequence[int] = (8,),
        dropout: float = 0.0,
        activation: str | Callable[[], nn.Module] = "relu",
    ):
        super().__init__()
        self._tasks = check_tasks(kinds)
        self.kinds = dict(kinds)
        self.bottom = MLP(in_dim, bottom, dropout, activation)
        self.towers = towers(self.bottom.out_dim, kinds, tower, dropout, activation)

    def forward_all(self, batch, tasks: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Every requested task's output, the bottom computed once."""
        h = self.bottom(batch.x)
        return {t: self.towers[t](h) for t in (tasks or self._tasks)}

    def task_parameter_names(self, task: str) -> list[str]:
        return self._names("bottom.", f"towers.{task}.")


def shared_bottom(
    in_dim: int,
    kinds: Mapping[str, str],
    bottom: Sequence[int] = (32, 16, 8),
    tower: Sequence[int] = (8,),
    dropout: float = 0.0,
    activation: str = "relu",
) -> SharedBottom:
    """Builder with the PBFS paper's settings: bottom [32, 16, 8], tower of 8 units (Section 4.3)."""
    return SharedBottom(in_dim, kinds, bottom, tower, dropout, activation)
