"""Loss weighting of multi-task steps (issue 24 item 1): how the per-task losses L_t of a step become
the gradient the optimizer takes.

- ``equal``: Σ_t w_t L_t with the fixed ``train.loss_weights`` (PBFS Eq. 10); the trainer's own path.
- ``uw``: uncertainty weighting (Kendall, Gal and Cipolla 2018, Eq. 7 in its log-variance form):
  L = Σ_t exp(-s_t) L_t + s_t, with learned log-variances s_t (``parameters()``, for the optimizer).
- ``dwa``: dynamic weight average (Liu, Johns and Davison 2019, Eq. 1): r_t = L_t(e-1) / L_t(e-2) from
  the last two epochs' mean losses, w_t = K · softmax(r_t / T), T = 2; equal weights for the first two.
- ``pcgrad``: projecting conflicting gradients (Yu et al. 2020, Algorithm 1): per-task gradients g_t of
  the shared parameters; each projected off every other g_j (in a random order from the step's
  generator) it conflicts with (g_t · g_j < 0): g_t ← g_t − (g_t · g_j / |g_j|²) g_j; their sum is the
  step's gradient.

Not yet wired into the trainer (see docs/NOTES.md): these objects compute the weighted loss or the
gradient; ``mechanism.step`` after them is what keeps masks exact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from sparseshare.errors import ConfigError


class Weighting:
    """Equal weights: Σ_t w_t L_t (``w``: ``train.loss_weights``, default 1)."""

    name = "equal"

    def __init__(self, tasks: Sequence[str], weights: Mapping[str, float] | None = None):
        self.tasks = list(tasks)
        self.weights = {t: float((weights or {}).get(t, 1.0)) for t in self.tasks}

    def parameters(self) -> list[torch.nn.Parameter]:
        """Learned parameters of the weighting (added to the optimizer); none here."""
        return []

    def combine(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The step's loss from the per-task losses."""
        return torch.stack([self.weights[t] * losses[t] for t in losses]).sum()

    def end_epoch(self, mean_losses: Mapping[str, float]) -> None:
        """The epoch's mean loss per task (DWA reads them)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: Mapping) -> None:
        pass


class UncertaintyWeighting(Weighting):
    """Kendall et al. 2018: L = Σ_t exp(-s_t) L_t + s_t, s_t = log σ_t² learned (initialised to 0)."""

    name = "uw"

    def __init__(self, tasks: Sequence[str], weights: Mapping[str, float] | None = None):
        super().__init__(tasks, weights)
        self.log_vars = torch.nn.ParameterDict({t: torch.nn.Parameter(torch.zeros(())) for t in self.tasks})

    def parameters(self) -> list[torch.nn.Parameter]:
        return list(self.log_vars.values())

    def combine(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.stack(
            [torch.exp(-self.log_vars[t]) * losses[t] + self.log_vars[t] for t in losses]
        ).sum()

    def state_dict(self) -> dict:
        return {"log_vars": {t: float(p.detach()) for t, p in self.log_vars.items()}}

    def load_state_dict(self, state: Mapping) -> None:
        with torch.no_grad():
            for t, v in state.get("log_vars", {}).items():
                self.log_vars[t].fill_(float(v))


class DWA(Weighting):
    """Liu et al. 2019: w_t = K exp(r_t / T) / Σ_j exp(r_j / T), r_t = L_t(e-1) / L_t(e-2), T = 2."""

    name = "dwa"

    def __init__(self, tasks: Sequence[str], weights: Mapping[str, float] | None = None, temperature=2.0):
        super().__init__(tasks, weights)
        self.temperature, self.history = float(temperature), []

    def current(self) -> dict[str, float]:
        """This epoch's weights (1 each until two epochs' losses are known)."""
        if len(self.history) < 2:
            return {t: 1.0 for t in self.tasks}
        prev, last = self.history[-2], self.history[-1]
        r = torch.tensor([last[t] / prev[t] for t in self.tasks], dtype=torch.float64)
        w = len(self.tasks) * torch.softmax(r / self.temperature, 0)
        return dict(zip(self.tasks, w.tolist()))

    def combine(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        w = self.current()
        return torch.stack([w[t] * self.weights[t] * losses[t] for t in losses]).sum()

    def end_epoch(self, mean_losses: Mapping[str, float]) -> None:
        self.history = [*self.history[-1:], {t: float(mean_losses[t]) for t in self.tasks}]

    def state_dict(self) -> dict:
        return {"history": self.history}

    def load_state_dict(self, state: Mapping) -> None:
        self.history = [dict(h) for h in state.get("history", [])]


def project_conflicts(grads: Sequence[torch.Tensor], gen: torch.Generator | None = None) -> torch.Tensor:
    """PCGrad (Yu et al. 2020, Algorithm 1) over flat per-task gradients: each g_t projected off every
    g_j it conflicts with (in a random order drawn from ``gen``); the sum of the projected ones."""
    out = []
    for i, g in enumerate(grads):
        g = g.clone()
        for j in torch.randperm(len(grads), generator=gen).tolist():
            if j == i:
                continue
            dot = torch.dot(g, grads[j])
            if dot < 0:
                g = g - dot / grads[j].pow(2).sum().clamp_min(1e-20) * grads[j]
        out.append(g)
    return torch.stack(out).sum(0)


class PCGrad(Weighting):
    """PCGrad for joint steps: ``backward(losses, params, gen)`` sets ``p.grad`` of ``params`` to the
    projected sum of the per-task gradients (weighted by ``train.loss_weights``)."""

    name = "pcgrad"

    def backward(self, losses: Mapping[str, torch.Tensor], params: Sequence[torch.Tensor], gen=None) -> None:
        params = list(params)
        flat = []
        for t in losses:
            gs = torch.autograd.grad(
                self.weights[t] * losses[t], params, retain_graph=True, allow_unused=True
            )
            flat.append(
                torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, gs)])
            )
        total, at = project_conflicts(flat, gen), 0
        for p in params:
            p.grad = total[at : at + p.numel()].view_as(p).clone()
            at += p.numel()


WEIGHTINGS = {c.name: c for c in (Weighting, UncertaintyWeighting, DWA, PCGrad)}


def make_weighting(name: str, tasks: Sequence[str], weights: Mapping[str, float] | None = None) -> Weighting:
    """The weighting ``name`` (``train.weighting``) over ``tasks``."""
    if name not in WEIGHTINGS:
        raise ConfigError(f"'train.weighting': unknown weighting {name!r}; valid: {sorted(WEIGHTINGS)}")
    return WEIGHTINGS[name](tasks, weights)
