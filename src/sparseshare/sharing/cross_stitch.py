"""Cross-stitch networks (Misra et al. 2016) for tabular tasks: soft sharing between task columns.

Each task owns a column, an MLP with the bottom sizes of the single-task baseline. After every hidden
layer l a cross-stitch unit mixes the columns' activations linearly (Misra et al., Eq. 1):

    h̃_t^l = Σ_s α^l_{t,s} h_s^l,

with α^l a learned T x T matrix, initialised to 0.9 on the diagonal and 0.1 / (T - 1) elsewhere (the
paper's "(0.9, 0.1)" initialisation, which keeps each column mostly its own). The mixed activations feed
the next layer of each column; each task's tower reads its own column's last mixed activation. Every
task's loss reaches every column through the units, which is what makes the sharing "soft". With one
task the unit is the identity and the model is the single-task MLP. This is the PBFS paper's
cross-stitch baseline (Section 4.2).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from sparseshare.models.mlp import MLP, TaskTowers, check_tasks, towers


def stitch_init(n_tasks: int, self_weight: float = 0.9) -> torch.Tensor:
    """α with ``self_weight`` on the diagonal and the rest spread evenly over the other tasks."""
    if n_tasks == 1:
        return torch.ones(1, 1)
    a = torch.full((n_tasks, n_tasks), (1 - self_weight) / (n_tasks - 1))
    a.fill_diagonal_(self_weight)
    return a


class CrossStitch(TaskTowers, nn.Module):
    """``forward(batch, task)`` returns the task's logits (binary) or values (regression), shape ``[B]``."""

    def __init__(
        self,
        in_dim: int,
        kinds: Mapping[str, str],
        bottom: Sequence[int] = (32, 16, 8),
        tower: Sequence[int] = (8,),
        dropout: float = 0.0,
        activation: str | Callable[[], nn.Module] = "relu",
        self_weight: float = 0.9,
    ):
        super().__init__()
        self._tasks = check_tasks(kinds)
        self.kinds = dict(kinds)
        if not bottom:
            raise ValueError("cross-stitch needs at least one hidden layer to stitch")
        dims = [in_dim, *bottom]
        self.columns = nn.ModuleDict(
            {
                t: nn.ModuleList(MLP(dims[i], [dims[i + 1]], dropout, activation) for i in range(len(bottom)))
                for t in self._tasks
            }
        )
        n = len(self._tasks)
        self.stitch = nn.ParameterList(nn.Parameter(stitch_init(n, self_weight)) for _ in bottom)
        self.towers = towers(bottom[-1], kinds, tower, dropout, activation)

    def column_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """The last stitched activations of every column, ``[T, B, h]`` in task order."""
        h = x.unsqueeze(0).expand(len(self._tasks), *x.shape)
        for layer, alpha in enumerate(self.stitch):
            h = torch.stack([self.columns[t][layer](h[i]) for i, t in enumerate(self._tasks)])
            h = torch.einsum("ts,sbh->tbh", alpha, h)  # Misra et al. Eq. 1
        return h

    def forward_all(self, batch, tasks: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        h = self.column_outputs(batch.x)
        return {t: self.towers[t](h[self._tasks.index(t)]) for t in (tasks or self._tasks)}

    def task_parameter_names(self, task: str) -> list[str]:
        """Every column and unit (each task's loss reaches them all through the units) and its tower."""
        return self._names("columns.", "stitch.", f"towers.{task}.")


def cross_stitch(
    in_dim: int,
    kinds: Mapping[str, str],
    bottom: Sequence[int] = (32, 16, 8),
    tower: Sequence[int] = (8,),
    dropout: float = 0.0,
    activation: str = "relu",
) -> CrossStitch:
    """Builder: one column per task with the single-task bottom sizes, a unit after every layer."""
    return CrossStitch(in_dim, kinds, bottom, tower, dropout, activation)
