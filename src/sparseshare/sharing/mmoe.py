"""Multi-gate Mixture-of-Experts (Ma et al., KDD 2018).

n expert MLPs f_i shared by all tasks; task k has its own gate g^k(x) = softmax(W_gk x) (Eq. 8) and
tower h^k: y_k = h^k(Σ_i g^k(x)_i f_i(x)) (Eq. 6-7). Task k's loss reaches every expert but only its own
gate and tower.

Experts are MLPs of ``expert_hidden`` units, or modules of your own: ``expert(in_dim, expert_dim)``
builds each one (``[B, in_dim] -> [B, expert_dim]``; ``expert_dim`` defaults to ``expert_hidden[-1]``).
MLP experts run as one batched operation (``models/experts.py``), yours one by one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from sparseshare.models.experts import run_experts
from sparseshare.models.mlp import ExpertFactory, Gate, TaskTowers, check_tasks, expert_builder, towers


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
        *,
        expert: ExpertFactory | None = None,
        expert_dim: int | None = None,
    ):
        super().__init__()
        if num_experts < 1 or (expert is None and not expert_hidden):
            raise ValueError("MMoE needs at least one expert with at least one layer")
        self._tasks = check_tasks(kinds)
        self.kinds = dict(kinds)
        build, dim = expert_builder(expert, expert_hidden, dropout, activation, expert_dim)
        self.experts = nn.ModuleList(build(in_dim) for _ in range(num_experts))
        self.gates = nn.ModuleDict({t: Gate(in_dim, num_experts) for t in self._tasks})
        self.towers = towers(dim, kinds, tower, dropout, activation)

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
    *,
    expert: ExpertFactory | None = None,
    expert_dim: int | None = None,
) -> MMoE:
    """Builder; defaults follow the PBFS paper's MMoE setting (8 experts of 4 units, Section 4.3)."""
    return MMoE(
        in_dim, kinds, num_experts, expert_hidden, tower, dropout, activation, expert=expert,
        expert_dim=expert_dim,
    )  # fmt: skip
