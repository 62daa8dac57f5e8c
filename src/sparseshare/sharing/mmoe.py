"""Multi-gate Mixture-of-Experts (Ma et al., KDD 2018).

n expert MLPs f_i shared by all tasks; task k has its own gate g^k(x) = softmax(W_gk x) (Eq. 8) and
tower h^k: y_k = h^k(Σ_i g^k(x)_i f_i(x)) (Eq. 6-7). Task k's loss reaches every expert but only its own
gate and tower.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from sparseshare.models.experts import run_experts
from sparseshare.models.mlp import MLP, Gate, TaskTowers, check_tasks, towers


class MMoE(TaskTowers, nn.Module):
    """``forward(batch, task)`` returns the task's logits (binary) or values (regression), shape ``[B]``."""

    def __init__(
        self,
        in_dim: int,
        kinds: Mapping[str, str],
        num_experts: int = 8,
        expert_hidden: Sequence[int] = (4,),
        tower: Sequence[int] = (8,),
        dropout: float = 0.0,
        activation: str | Callable[[], nn.Module] = "relu",
    ):
        super().__init__()
        if num_experts < 1 or not expert_hidden:
            raise ValueError("MMoE needs at least one expert with at least one layer")
        self._tasks = check_tasks(kinds)
        self.kinds = dict(kinds)
        self.experts = nn.ModuleList(
            MLP(in_dim, expert_hidden, dropout, activation) for _ in range(num_experts)
        )
        self.gates = nn.ModuleDict({t: Gate(in_dim, num_experts) for t in self._tasks})
        self.towers = towers(expert_hidden[-1], kinds, tower, dropout, activation)

    def forward_all(self, batch, tasks: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Every requested task's output, the experts computed once, as one batched operation."""
        x = batch.x
        outs = run_experts(self.experts, [x] * len(self.experts))
        return {t: self.towers[t](self.gates[t](x, outs)) for t in (tasks or self._tasks)}

    def task_parameter_names(self, task: str) -> list[str]:
        return self._names("experts.", f"gates.{task}.", f"towers.{task}.")


def mmoe(
    in_dim: int,
    kinds: Mapping[str, str],
    num_experts: int = 8,
    expert_hidden: Sequence[int] = (4,),
    tower: Sequence[int] = (8,),
    dropout: float = 0.0,
    activation: str = "relu",
) -> MMoE:
    """Builder; defaults follow the PBFS paper's MMoE setting (8 experts of 4 units, Section 4.3)."""
    return MMoE(in_dim, kinds, num_experts, expert_hidden, tower, dropout, activation)
