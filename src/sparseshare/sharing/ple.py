"""Customized Gate Control (CGC) and Progressive Layered Extraction (PLE), Tang et al., RecSys 2020.

CGC (Eq. 1-3 of Tang et al.): task k gates over its own experts and the shared experts,
g^k(x) = w^k(x) S^k(x), w^k(x) = softmax(W_g^k x), S^k = [E_(k,1..m_k), E_(s,1..m_s)].
PLE (Eq. 4-5) stacks L extraction levels: at level j, task k's experts read g^(k,j-1), the shared
experts read g^(s,j-1), and every inner level has a shared gate over *all* its experts that feeds the
next level's shared experts; the last level has no shared gate. y^k = t^k(g^(k,L)). CGC = PLE, L = 1.

Experts are MLPs of ``expert_hidden`` units, or modules of your own: ``expert(in_dim, expert_dim)``
builds each one (``[B, in_dim] -> [B, expert_dim]``; level 1 reads ``in_dim`` features, the levels above
``expert_dim``; ``expert_dim`` defaults to ``expert_hidden[-1]``). MLP experts run batched, yours one by one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from sparseshare.models.experts import run_experts
from sparseshare.models.mlp import ExpertFactory, Gate, TaskTowers, check_tasks, expert_builder, towers


class ExtractionLevel(nn.Module):
    """One PLE level: per-task experts and gates, shared experts, and (inner levels) a shared gate."""

    def __init__(
        self,
        in_dim: int,
        tasks: Sequence[str],
        num_specific: int,
        num_shared: int,
        build: Callable[[int], nn.Module],
        last: bool,
    ):
        """``build(in_dim)`` makes one expert (``models.mlp.expert_builder``)."""
        super().__init__()
        self.tasks = list(tasks)
        self.specific = nn.ModuleDict(
            {t: nn.ModuleList(build(in_dim) for _ in range(num_specific)) for t in tasks}
        )
        self.shared = nn.ModuleList(build(in_dim) for _ in range(num_shared))
        self.gates = nn.ModuleDict({t: Gate(in_dim, num_specific + num_shared) for t in tasks})
        n_all = num_specific * len(self.tasks) + num_shared
        self.shared_gate = None if last else Gate(in_dim, n_all)

    def forward(
        self, inputs: Mapping[str, torch.Tensor], shared_in: torch.Tensor, tasks: Sequence[str]
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """Gated outputs of ``tasks`` (all tasks at inner levels) and of the shared gate (None if last).

        The level's experts (shared, then each needed task's) run as one batched operation."""
        need = self.tasks if self.shared_gate is not None else list(tasks)
        experts = [*self.shared, *(e for t in need for e in self.specific[t])]
        ins = [shared_in] * len(self.shared) + [inputs[t] for t in need for _ in self.specific[t]]
        outs = run_experts(experts, ins)
        shared, k = outs[: len(self.shared)], len(self.shared)
        specific = {}
        for t in need:
            specific[t], k = outs[k : k + len(self.specific[t])], k + len(self.specific[t])
        out = {t: self.gates[t](inputs[t], specific[t] + shared) for t in need}
        if self.shared_gate is None:
            return out, None
        everything = [o for t in self.tasks for o in specific[t]] + shared
        return out, self.shared_gate(shared_in, everything)


class PLE(TaskTowers, nn.Module):
    """``forward(batch, task)`` returns the task's logits (binary) or values (regression), shape ``[B]``."""

    def __init__(
        self,
        in_dim: int,
        kinds: Mapping[str, str],
        num_specific: int = 1,
        num_shared: int = 1,
        expert_hidden: Sequence[int] = (16,),
        tower: Sequence[int] = (8,),
        levels: int = 2,
        dropout: float = 0.0,
        activation: str | Callable[[], nn.Module] = "relu",
        *,
        expert: ExpertFactory | None = None,
        expert_dim: int | None = None,
    ):
        super().__init__()
        if levels < 1 or num_specific < 0 or num_shared < 0 or (expert is None and not expert_hidden):
            raise ValueError("PLE needs levels >= 1, expert counts >= 0 and at least one expert layer")
        if num_specific + num_shared < 1:
            raise ValueError("PLE needs at least one expert per gate")
        self._tasks = check_tasks(kinds)
        self.kinds = dict(kinds)
        build, dim = expert_builder(expert, expert_hidden, dropout, activation, expert_dim)
        dims = [in_dim] + [dim] * (levels - 1)
        self.levels = nn.ModuleList(
            ExtractionLevel(d, self._tasks, num_specific, num_shared, build, j == levels - 1)
            for j, d in enumerate(dims)
        )
        self.towers = towers(dim, kinds, tower, dropout, activation)

    def forward_all(self, batch, tasks: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Every requested task's output; each expert is computed once."""
        tasks = list(tasks or self._tasks)
        x = batch.x
        inputs: Mapping[str, torch.Tensor] = {t: x for t in self._tasks}
        shared_in: torch.Tensor | None = x
        for level in self.levels:
            inputs, shared_in = level(inputs, shared_in, tasks)
        return {t: self.towers[t](inputs[t]) for t in tasks}

    def task_parameter_names(self, task: str) -> list[str]:
        """What task k's output depends on. Last level L: k's experts and gate, the shared experts. An inner
        level j: the shared experts and gate, k's gate (it feeds k's experts above), and every task's
        experts (the shared gate reads them); every task's gate too when level j+1 is inner (its shared
        gate reads every task's experts, which read those gates)."""
        return self._names(f"towers.{task}.", *level_prefixes(len(self.levels), task))


def level_prefixes(n_levels: int, task: str) -> list[str]:
    """The parameter prefixes (``levels.<j>.``...) task k's output depends on in ``n_levels`` extraction
    levels (:meth:`PLE.task_parameter_names` says which and why)."""
    last, prefixes = n_levels - 1, []
    for j in range(n_levels):
        lv = f"levels.{j}."
        prefixes += [lv + "shared.", f"{lv}gates.{task}."]
        if j == last:
            prefixes.append(f"{lv}specific.{task}.")
        else:
            prefixes += [lv + "shared_gate.", lv + "specific."]
            if j + 1 < last:
                prefixes.append(lv + "gates.")
    return prefixes


def cgc(
    in_dim: int,
    kinds: Mapping[str, str],
    num_specific: int = 1,
    num_shared: int = 1,
    expert_hidden: Sequence[int] = (16,),
    tower: Sequence[int] = (8,),
    dropout: float = 0.0,
    activation: str = "relu",
    *,
    expert: ExpertFactory | None = None,
    expert_dim: int | None = None,
) -> PLE:
    """CGC: a single extraction level without a shared gate."""
    return PLE(
        in_dim, kinds, num_specific, num_shared, expert_hidden, tower, 1, dropout, activation,
        expert=expert, expert_dim=expert_dim,
    )  # fmt: skip


def ple(
    in_dim: int,
    kinds: Mapping[str, str],
    num_specific: int = 1,
    num_shared: int = 1,
    expert_hidden: Sequence[int] = (16,),
    tower: Sequence[int] = (8,),
    levels: int = 2,
    dropout: float = 0.0,
    activation: str = "relu",
    *,
    expert: ExpertFactory | None = None,
    expert_dim: int | None = None,
) -> PLE:
    """PLE with the PBFS paper's setting by default: two levels of single-layer 16-unit experts."""
    return PLE(
        in_dim, kinds, num_specific, num_shared, expert_hidden, tower, levels, dropout, activation,
        expert=expert, expert_dim=expert_dim,
    )  # fmt: skip
