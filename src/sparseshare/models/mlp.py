"""Dense networks for tabular multi-task models: MLP experts, softmax gates, towers, the PBFS network.

These know nothing about masks or sharing; the mechanisms in ``sharing/`` compose them.
Task kinds: ``'binary'`` (one logit, BCE-with-logits) and ``'regression'`` (one value, MSE).
A label of NaN means "no label for this row" (a row of another subject, say) and is left out of the loss.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sparseshare.models.experts import SequentialExpert, run_experts

KINDS = ("binary", "regression")
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
}


def _activation(activation: str | Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    if callable(activation):
        return activation
    try:
        return ACTIVATIONS[activation]
    except KeyError:
        raise ValueError(f"unknown activation '{activation}'; valid: {sorted(ACTIVATIONS)}") from None


class MLP(SequentialExpert):
    """``Linear -> activation -> dropout`` per hidden size; ``out_dim`` is the last size (an expert's output).

    With ``hidden=[]`` it is the identity (``out_dim == in_dim``). Experts of one shape run batched
    (:func:`~sparseshare.models.experts.run_experts`).
    """

    def __init__(
        self,
        in_dim: int,
        hidden: Sequence[int],
        dropout: float = 0.0,
        activation: str | Callable[[], nn.Module] = "relu",
    ):
        super().__init__()
        act = _activation(activation)
        layers: list[nn.Module] = []
        dim = in_dim
        for h in hidden:
            layers += [nn.Linear(dim, h), act()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            dim = h
        self.layers = nn.Sequential(*layers)
        self.out_dim = dim


ExpertFactory = Callable[[int, int], nn.Module]
"""``expert(in_dim, out_dim)``: one expert, a module mapping rows ``[N, in_dim]`` to ``[N, out_dim]``."""


def expert_builder(
    expert: ExpertFactory | None,
    hidden: Sequence[int],
    dropout: float = 0.0,
    activation: str | Callable[[], nn.Module] = "relu",
    out_dim: int | None = None,
) -> tuple[Callable[[int], nn.Module], int]:
    """``(build, out_dim)``: ``build(in_dim)`` makes one expert, ``out_dim`` is the width of its output.

    Without ``expert`` it is the built-in :class:`MLP` of ``hidden`` units (the numbers of the models'
    defaults, batched by :func:`~sparseshare.models.experts.run_experts`); with it, ``expert(in_dim,
    out_dim)`` with ``out_dim`` defaulting to ``hidden[-1]`` (run expert by expert unless it is an MLP).
    """
    if expert is None:
        if not hidden:
            raise ValueError("experts need at least one layer")
        if out_dim is not None and out_dim != hidden[-1]:
            raise ValueError(
                f"expert_dim {out_dim} is for experts of your own (expert=); MLP experts end in {hidden[-1]}"
            )
        return (lambda in_dim: MLP(in_dim, hidden, dropout, activation)), hidden[-1]
    if not callable(expert):
        raise TypeError(f"expert must be a callable expert(in_dim, out_dim) -> nn.Module, got {expert!r:.60}")
    if out_dim is None:
        if not hidden:
            raise ValueError("give expert_dim: the width of your experts' outputs")
        out_dim = hidden[-1]

    def build(in_dim: int) -> nn.Module:
        module = expert(in_dim, out_dim)
        if not isinstance(module, nn.Module):
            raise TypeError(
                f"expert({in_dim}, {out_dim}) returned a {type(module).__name__}, not an nn.Module"
            )
        return module

    return build, out_dim


class Tower(nn.Module):
    """A task's tower t_m (PBFS Eq. 4/9, MMoE h^k): an MLP and one output unit, returning ``[B]``.

    Binary tasks output a logit, regression tasks a value.
    """

    def __init__(
        self,
        in_dim: int,
        hidden: Sequence[int],
        kind: str,
        dropout: float = 0.0,
        activation: str | Callable[[], nn.Module] = "relu",
    ):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown task kind '{kind}'; valid: {list(KINDS)}")
        self.kind = kind
        self.mlp = MLP(in_dim, hidden, dropout, activation)
        self.out = nn.Linear(self.mlp.out_dim, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.out(self.mlp(h)).squeeze(-1)

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return kind_loss(self.kind, out, y)

    def predict(self, out: torch.Tensor) -> torch.Tensor:
        return kind_predict(self.kind, out)


def kind_loss(kind: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """BCE-with-logits (binary) or MSE (regression), averaged over the rows that have a label.

    Without a host sync: unlabelled rows (NaN) are zero-weighted; a batch with no label gives 0.
    """
    valid = torch.isfinite(y)
    y = torch.where(valid, y, 0.0).to(out.dtype)
    if kind == "binary":
        per_row = F.binary_cross_entropy_with_logits(out, y, reduction="none")
    else:
        per_row = (out - y) ** 2
    return (per_row * valid).sum() / valid.sum().clamp(min=1)


def kind_predict(kind: str, out: torch.Tensor) -> torch.Tensor:
    """Probabilities (binary) or values (regression)."""
    return torch.sigmoid(out) if kind == "binary" else out


class Gate(nn.Module):
    """Softmax gate w(x) = softmax(W_g x) over experts (MMoE Eq. 8, PBFS Eq. 2); no bias, as in the papers."""

    def __init__(self, in_dim: int, n_experts: int):
        super().__init__()
        self.proj = nn.Linear(in_dim, n_experts, bias=False)

    def forward(self, x: torch.Tensor, experts: Sequence[torch.Tensor]) -> torch.Tensor:
        """The gated sum Σ_i w_i(x) E_i(x) of expert outputs (each ``[B, h]``): MMoE Eq. 7, PBFS Eq. 1."""
        w = torch.softmax(self.proj(x), dim=-1)
        return torch.einsum("be,beh->bh", w, torch.stack(list(experts), dim=1))


def check_tasks(kinds: Mapping[str, str]) -> list[str]:
    """Task names in order; each must be a valid module key (no '.') and have a known kind."""
    if not kinds:
        raise ValueError("at least one task is needed")
    for task, kind in kinds.items():
        if not task or "." in task:
            raise ValueError(f"task name '{task}' cannot name a module (empty or contains '.')")
        if kind not in KINDS:
            raise ValueError(f"task '{task}' has unknown kind '{kind}'; valid: {list(KINDS)}")
    return list(kinds)


def towers(
    in_dim: int, kinds: Mapping[str, str], hidden: Sequence[int], dropout: float, activation
) -> nn.ModuleDict:
    """One :class:`Tower` per task."""
    return nn.ModuleDict({t: Tower(in_dim, hidden, k, dropout, activation) for t, k in kinds.items()})


def weighted_loss(
    kinds: Mapping[str, str], outputs: Mapping[str, torch.Tensor], y, weights: Mapping[str, float]
) -> torch.Tensor:
    """PBFS Eq. 10: Σ_m w_m L_m over the tasks in ``weights``."""
    terms = [float(w) * kind_loss(kinds[t], outputs[t], y[t]) for t, w in weights.items()]
    if not terms:
        raise ValueError("joint_loss needs at least one task weight")
    return torch.stack(terms).sum()


class TaskTowers:
    """Task-facing methods of a tabular multi-task model, all from its ``forward_all`` and ``towers``.

    A model mixes this in (``class M(TaskTowers, nn.Module)``), sets ``_tasks`` and ``towers`` and defines
    ``forward_all(batch, tasks) -> {task: output}``, computing what tasks share once.
    """

    @property
    def tasks(self) -> list[str]:
        return self._tasks

    def forward(self, batch, task: str) -> torch.Tensor:
        return self.forward_all(batch, [task])[task]

    def loss(self, batch, task: str) -> torch.Tensor:
        return self.task_loss(self(batch, task), batch, task)

    def task_loss(self, out: torch.Tensor, batch, task: str) -> torch.Tensor:
        """Loss of ``task`` from an output computed elsewhere (e.g. under a sparse-sharing mask)."""
        return kind_loss(self.kinds[task], out, batch.y[task])

    def task_predict(self, out: torch.Tensor, batch, task: str) -> torch.Tensor:
        return kind_predict(self.kinds[task], out)

    def joint_loss(self, batch, weights: Mapping[str, float]) -> torch.Tensor:
        """PBFS Eq. 10, Σ w_t L_t, with what the tasks share computed once."""
        return weighted_loss(self.kinds, self.forward_all(batch, list(weights)), batch.y, weights)

    def joint_losses(self, batch, tasks: Sequence[str]) -> dict[str, torch.Tensor]:
        """Each task's unweighted loss L_t on one batch, with what the tasks share computed once (what
        a loss weighting of training/weighting.py combines)."""
        outputs = self.forward_all(batch, list(tasks))
        return {t: kind_loss(self.kinds[t], outputs[t], batch.y[t]) for t in tasks}

    @torch.no_grad()
    def predict(self, batch, task: str) -> torch.Tensor:
        """What the metric scores (no autograd graph, as a loaded subnet's predictions)."""
        return self.task_predict(self(batch, task), batch, task)

    def step(self, optimizer: torch.optim.Optimizer, task: str | None = None) -> None:
        optimizer.step()

    def _names(self, *prefixes: str) -> list[str]:
        """Parameter names starting with any of ``prefixes`` (each ending in '.')."""
        return [n for n, _ in self.named_parameters() if n.startswith(prefixes)]


class PBFSNet(nn.Module):
    """The dense PBFS base network (Entropy 2022, Eq. 1-3, 7-9); masks are applied by ``sharing.pbfs``.

    Task m's gate mixes its specific experts O_m and the shared experts P_s of every pool s in U_m
    (pools from Algorithm 1); its tower gives Y_m = t_m(G_m). Default: one pool of all tasks.
    Experts are MLPs of ``expert_hidden`` units, or your own: ``expert(in_dim, expert_dim)`` builds each
    one (a module ``x [B, in_dim] -> [B, expert_dim]``, :data:`ExpertFactory`; ``expert_dim`` defaults to
    ``expert_hidden[-1]``), as MMoE's and PLE's ``expert`` does; the older ``make_expert()`` (no arguments;
    ``expert_dim`` defaults to the expert's ``out_dim``) still works. PBFS prunes every 2+-dimensional
    parameter of the shared experts, yours too. Towers are MLPs of ``tower`` units, or
    ``make_tower(task, expert_dim)`` (a module ``[B, expert_dim] -> [B]``: a logit for binary tasks, a value
    for regression). Gates read the batch's ``x``.
    """

    def __init__(
        self,
        in_dim: int,
        kinds: Mapping[str, str],
        pools: Sequence[Sequence[str]] | None = None,
        num_specific: int = 1,
        num_shared: int = 1,
        expert_hidden: Sequence[int] = (32, 32),
        tower: Sequence[int] = (8,),
        dropout: float = 0.0,
        activation: str | Callable[[], nn.Module] = "relu",
        *,
        expert: ExpertFactory | None = None,
        make_expert: Callable[[], nn.Module] | None = None,
        expert_dim: int | None = None,
        make_tower: Callable[[str, int], nn.Module] | None = None,
    ):
        super().__init__()
        self._tasks = check_tasks(kinds)
        self.kinds = dict(kinds)
        self.pools, self.memberships = pool_memberships(pools, self._tasks)
        if make_expert is None:
            build, expert_dim = expert_builder(expert, expert_hidden, dropout, activation, expert_dim)

            def make_expert() -> nn.Module:
                return build(in_dim)

        elif expert is not None:
            raise ValueError("give expert(in_dim, out_dim) or make_expert(), not both")

        def experts(n: int) -> nn.ModuleList:
            return nn.ModuleList(make_expert() for _ in range(n))

        self.specific = nn.ModuleDict({t: experts(num_specific) for t in self._tasks})
        self.shared = nn.ModuleList(experts(num_shared) for _ in self.pools)
        if expert_dim is None:
            first = next(iter(self.shared[0]), None) or next(iter(self.specific[self._tasks[0]]), None)
            expert_dim = getattr(first, "out_dim", None)
            if expert_dim is None:
                raise ValueError("give expert_dim: your experts have no 'out_dim' attribute")
        n_experts = {t: num_specific + num_shared * len(self.memberships[t]) for t in self._tasks}
        if min(n_experts.values()) < 1:
            raise ValueError(f"every task needs at least one expert; got {n_experts}")
        self.gates = nn.ModuleDict({t: Gate(in_dim, n) for t, n in n_experts.items()})
        if make_tower is None:
            self.towers = towers(expert_dim, kinds, tower, dropout, activation)
        else:
            self.towers = nn.ModuleDict({t: make_tower(t, expert_dim) for t in self._tasks})

    @property
    def tasks(self) -> list[str]:
        return self._tasks

    def forward(self, batch, task: str) -> torch.Tensor:
        x = batch.x
        experts = [*self.specific[task], *(e for s in self.memberships[task] for e in self.shared[s])]
        outs = run_experts(experts, [x] * len(experts))  # O_m (Eq. 7), then P_s for s in U_m, batched
        return self.towers[task](self.gates[task](x, outs)).reshape(x.shape[0])  # Eq. 8-9

    def task_loss(self, out: torch.Tensor, batch, task: str) -> torch.Tensor:
        return kind_loss(self.kinds[task], out, batch.y[task])

    def task_predict(self, out: torch.Tensor, batch, task: str) -> torch.Tensor:
        return kind_predict(self.kinds[task], out)

    def task_parameter_names(self, task: str) -> list[str]:
        """Task m's specific experts, the shared experts of its pools, its gate and its tower."""
        pools = tuple(f"shared.{s}." for s in self.memberships[task])
        mine = (f"specific.{task}.", *pools, f"gates.{task}.", f"towers.{task}.")
        return [n for n, _ in self.named_parameters() if n.startswith(mine)]

    def shared_weight_names(self, task: str | None = None, pool: int | None = None) -> list[str]:
        """Weight matrices of the shared experts of the task's pools (of one pool; of all with no task)."""
        return pool_weight_names(self.shared, self.memberships, task, pool)


def pool_memberships(
    pools: Sequence[Sequence[str]] | None, tasks: list[str]
) -> tuple[list[list[str]], dict[str, list[int]]]:
    """PBFS's pools (default: one pool of all ``tasks``) and each task's U_m, the pools it is in."""
    pools = [list(p) for p in (pools if pools is not None else [tasks])]
    for p in pools:
        if not p or any(t not in tasks for t in p):
            raise ValueError(f"pool {p} names unknown tasks; tasks are {tasks}")
    return pools, {t: [s for s, p in enumerate(pools) if t in p] for t in tasks}


def pool_weight_names(
    shared: nn.ModuleList, memberships: Mapping[str, list[int]], task: str | None, pool: int | None
) -> list[str]:
    """The 2+-dimensional parameters of ``shared[s]`` (named ``shared.<s>.``) for the pools of ``task``
    (every pool with no task), or of ``pool`` alone: what PBFS prunes."""
    pools = range(len(shared)) if task is None else memberships[task]
    pools = pools if pool is None else [pool]
    return [f"shared.{s}.{n}" for s in pools for n, p in shared[s].named_parameters() if p.dim() >= 2]
