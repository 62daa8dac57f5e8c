"""Loss weighting of multi-task steps (issue 24 item 1): how the per-task losses L_t of a step become
the gradient the optimizer takes.

- ``equal``: Σ_t w_t L_t with the fixed ``train.loss_weights`` (PBFS Eq. 10); the trainer's own path.
- ``uw``: uncertainty weighting (Kendall, Gal and Cipolla 2018, Eq. 7 in its log-variance form):
  L = Σ_t exp(-s_t) L_t + s_t, with learned log-variances s_t (``parameters()``, for the optimizer).
- ``dwa``: dynamic weight average (Liu, Johns and Davison 2019, Eq. 1): r_t = L_t(e-1) / L_t(e-2) from
  the last two epochs' mean losses, w_t = K · softmax(r_t / T), T = 2; equal weights for the first two.
- ``gradnorm``: GradNorm (Chen et al. 2018, Algorithm 1, Eq. 1-2): learned weights w_t (initially 1)
  of L = Σ_t w_t L_t; each step they move down the gradient of L_grad = Σ_t |G_t − Ḡ · r_t^α|, where
  G_t = ‖∇_W w_t L_t‖ over the shared parameters W, Ḡ their mean, r_t = L̃_t / mean(L̃), L̃_t = L_t / L_t(0)
  (the target Ḡ · r_t^α held constant), then Σ_t w_t is brought back to T. α: ``train.gradnorm_alpha``
  (default 1.5; the paper tunes it per data set). W is every shared
  parameter (one that receives gradient from two or more tasks), not only the last shared layer: a
  model of the user's has no "last layer" the trainer could name.
- ``pcgrad``: projecting conflicting gradients (Yu et al. 2020, Algorithm 1): per-task gradients g_t of
  the shared parameters; each projected off every other g_j (in a random order from the step's
  generator) it conflicts with (g_t · g_j < 0): g_t ← g_t − (g_t · g_j / |g_j|²) g_j; their sum is the
  step's gradient. A task's own parameters (its head, its experts) take its gradient as it is.
- ``torchjd.<Aggregator>``: an aggregator of the torchjd package (Jacobian descent, Quinton and Rey
  2024) over the Jacobian of the shared parameters, one row per task: ``torchjd.UPGrad``, ``MGDA``
  (Désidéri 2012), ``DualProj``, ``IMTLG`` (Liu et al. 2021), ``AlignedMTL`` (Senushkin et al. 2023),
  ``ConFIG`` (Liu et al. 2024), ``GradDrop`` (Chen et al. 2020), ``PCGrad``, ``Mean``, ``Sum``,
  ``Random`` (Lin et al. 2022): those built without arguments and holding no state between steps
  (CAGrad and Nash-MTL need cvxpy; GradVac, PCD and ExcessMTL keep state a checkpoint would have to
  hold).

``uw`` and ``dwa`` combine losses, so they weight sampled-task steps too (the sampled task's term);
``gradnorm``, ``pcgrad`` and the aggregators compare the tasks' gradients of one step and need joint steps
(``train.joint``). The trainer hands each the per-task losses of the step and then calls
``mechanism.step``, which is what keeps masks exact: nothing outside M_t (∪_t M_t for a joint step) moves,
whatever gradient a weighting makes (tests/training/test_weighting_training.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from sparseshare.errors import ConfigError
from sparseshare.training.settings import JD_AGGREGATORS


class Weighting:
    """Equal weights: Σ_t w_t L_t (``w``: ``train.loss_weights``, default 1).

    ``gradients``: False for a weighting that combines the losses (the trainer backpropagates
    ``combine(losses)``), True for one that makes the gradients itself (``backward``)."""

    name = "equal"
    gradients = False

    def __init__(self, tasks: Sequence[str], weights: Mapping[str, float] | None = None):
        self.tasks = list(tasks)
        self.weights = {t: float((weights or {}).get(t, 1.0)) for t in self.tasks}
        self.epoch_losses: dict[str, float] = {}  # the last epoch's mean loss per task (the trainer's)

    def parameters(self) -> list[torch.nn.Parameter]:
        """Learned parameters of the weighting (added to the optimizer); none here."""
        return []

    def to(self, device) -> Weighting:
        """Its learned parameters moved to ``device`` (in place)."""
        with torch.no_grad():
            for p in self.parameters():
                p.data = p.data.to(device)
        return self

    def after_step(self) -> None:
        """After the optimizer step (GradNorm renormalises its weights)."""

    def report(self) -> dict[str, float] | None:
        """The task weights now, for the epoch's record (None: fixed ones)."""
        return None

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
            [torch.exp(-self.log_vars[t]) * self.weights[t] * losses[t] + self.log_vars[t] for t in losses]
        ).sum()

    def report(self) -> dict[str, float]:
        """exp(-s_t), each task's weight of its loss."""
        return {t: float(torch.exp(-p.detach())) for t, p in self.log_vars.items()}

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
        self.used = self.current()  # the weights of the epoch last ended (its record's)

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
        """A task with no step this epoch (task sampling) keeps its last mean loss (1 at first)."""
        self.used = self.current()
        last = self.history[-1] if self.history else {}
        row = {t: float(mean_losses[t]) if t in mean_losses else last.get(t, 1.0) for t in self.tasks}
        self.history = [*self.history[-1:], row]

    def report(self) -> dict[str, float]:
        """The weights the epoch just ended trained with."""
        return dict(self.used)

    def state_dict(self) -> dict:
        return {"history": self.history, "used": self.used}

    def load_state_dict(self, state: Mapping) -> None:
        self.history = [dict(h) for h in state.get("history", [])]
        self.used = dict(state.get("used") or self.current())


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


class _TaskGradients:
    """Each task's gradient of its weighted loss w_t L_t over ``params``, split into the shared
    parameters (a gradient from two or more tasks: the Jacobian ``matrix``, one flat row per task) and
    the others (each from one task, or none)."""

    def __init__(self, losses: Mapping[str, torch.Tensor], weights: Mapping[str, float], params):
        self.params, self.tasks = list(params), list(losses)
        self.grads = [
            torch.autograd.grad(weights[t] * losses[t], self.params, retain_graph=True, allow_unused=True)
            for t in self.tasks
        ]
        self.shared = [i for i in range(len(self.params)) if sum(g[i] is not None for g in self.grads) >= 2]

    def matrix(self) -> torch.Tensor:
        """[tasks, shared weights]: row t, task t's gradient of every shared parameter, flattened."""

        def flat(g) -> torch.Tensor:
            parts = [torch.zeros_like(self.params[i]) if g[i] is None else g[i] for i in self.shared]
            return torch.cat([p.reshape(-1) for p in parts])

        return torch.stack([flat(g) for g in self.grads])

    def set(self, shared: torch.Tensor | None, scale: Sequence[float] | None = None) -> None:
        """``p.grad``: the shared parameters' from the flat ``shared``; every other one its task's
        gradient (times ``scale[t]``)."""
        scale = scale if scale is not None else [1.0] * len(self.tasks)
        shared_ids = set(self.shared)
        for i, p in enumerate(self.params):
            if i in shared_ids:
                continue
            gs = [c * g[i] for c, g in zip(scale, self.grads) if g[i] is not None]
            p.grad = torch.stack(gs).sum(0) if gs else None
        at = 0
        for i in self.shared:
            p = self.params[i]
            p.grad = shared[at : at + p.numel()].view_as(p).clone()
            at += p.numel()


class PCGrad(Weighting):
    """PCGrad for joint steps: ``backward(losses, params, gen)`` sets ``p.grad`` of ``params``: the shared
    ones to the projected sum of the per-task gradients (weighted by ``train.loss_weights``), the others
    to their task's gradient."""

    name = "pcgrad"
    gradients = True

    def backward(self, losses: Mapping[str, torch.Tensor], params: Sequence[torch.Tensor], gen=None) -> None:
        g = _TaskGradients(losses, self.weights, params)
        g.set(project_conflicts(list(g.matrix()), gen) if g.shared else None)


class GradNorm(Weighting):
    """GradNorm (Chen et al. 2018, Algorithm 1): learned task weights w_t balancing the shared
    parameters' gradient norms to the tasks' relative inverse training rates; ``alpha``
    (``train.gradnorm_alpha``, default 1.5) is how strongly a task that trains slower is pulled up."""

    name = "gradnorm"
    gradients = True

    def __init__(self, tasks: Sequence[str], weights: Mapping[str, float] | None = None, alpha: float = 1.5):
        super().__init__(tasks, weights)
        self.alpha = float(alpha)
        self.w = torch.nn.Parameter(torch.ones(len(self.tasks)))
        self.initial: dict[str, float] | None = None  # L_t(0), the first step's losses

    def parameters(self) -> list[torch.nn.Parameter]:
        return [self.w]

    def backward(self, losses: Mapping[str, torch.Tensor], params: Sequence[torch.Tensor], gen=None) -> None:
        g = _TaskGradients(losses, self.weights, params)
        idx = [self.tasks.index(t) for t in g.tasks]
        w = self.w.detach()[idx]
        if self.initial is None:
            self.initial = {t: float(losses[t].detach()) for t in g.tasks}
        if not g.shared:
            g.set(None, w.tolist())
            return
        rows = g.matrix()
        norms = rows.norm(dim=1)  # ‖∇_W L_t‖ (weighted by loss_weights); G_t = w_t times it
        ratio = torch.stack([losses[t].detach() / max(self.initial[t], 1e-12) for t in g.tasks])
        r = ratio / ratio.mean().clamp_min(1e-12)
        target = (w * norms).mean() * r.pow(self.alpha)
        grad_w = torch.zeros_like(self.w)
        grad_w[idx] = torch.sign(w * norms - target) * norms  # ∂ Σ_t |w_t ‖g_t‖ − target_t| / ∂ w_t
        self.w.grad = grad_w
        g.set((w[:, None] * rows).sum(0), w.tolist())

    def after_step(self) -> None:
        """Σ_t w_t = T again (Algorithm 1's renormalisation), weights kept positive."""
        with torch.no_grad():
            self.w.clamp_(min=1e-4)
            self.w.mul_(len(self.tasks) / self.w.sum())

    def current(self) -> dict[str, float]:
        return dict(zip(self.tasks, self.w.detach().tolist()))

    def report(self) -> dict[str, float]:
        return self.current()

    def combine(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Σ_t w_t L_t with the learned weights (what the network's gradient is of)."""
        w = self.current()
        return torch.stack([w[t] * self.weights[t] * losses[t] for t in losses]).sum()

    def state_dict(self) -> dict:
        return {"w": self.w.detach().tolist(), "initial": self.initial}

    def load_state_dict(self, state: Mapping) -> None:
        with torch.no_grad():
            if "w" in state:
                self.w.copy_(torch.tensor(state["w"], dtype=self.w.dtype))
        self.initial = dict(state["initial"]) if state.get("initial") else None


class Aggregated(Weighting):
    """A torchjd aggregator (``train.weighting: torchjd.<Name>``) of the shared parameters' Jacobian,
    one row per task (weighted by ``train.loss_weights``); a task's own parameters take its gradient."""

    gradients = True

    def __init__(
        self, tasks: Sequence[str], weights: Mapping[str, float] | None = None, *, aggregator, name: str
    ):
        super().__init__(tasks, weights)
        self.aggregator, self.name = aggregator, name

    def backward(self, losses: Mapping[str, torch.Tensor], params: Sequence[torch.Tensor], gen=None) -> None:
        g = _TaskGradients(losses, self.weights, params)
        g.set(self.aggregator(g.matrix()) if g.shared else None)


WEIGHTINGS = {c.name: c for c in (Weighting, UncertaintyWeighting, DWA, GradNorm, PCGrad)}


def _aggregator(name: str):
    """The torchjd aggregator ``torchjd.<Name>`` (one line naming the extra when torchjd is missing)."""
    what = name.removeprefix("torchjd.")
    if what not in JD_AGGREGATORS:
        raise ConfigError(
            f"'train.weighting': unknown torchjd aggregator {what!r}; valid: "
            f"{['torchjd.' + n for n in JD_AGGREGATORS]}"
        )
    try:
        import torchjd.aggregation as jd
    except ImportError:
        raise ConfigError(
            f"'train.weighting': {name} needs the torchjd package: pip install 'sparseshare[jd]'"
        ) from None
    try:
        return getattr(jd, what)()
    except ImportError as e:
        raise ConfigError(f"'train.weighting': {name}: {str(e).splitlines()[0]}") from None


def make_weighting(
    name: str, tasks: Sequence[str], weights: Mapping[str, float] | None = None, alpha: float = 1.5
) -> Weighting:
    """The weighting ``name`` (``train.weighting``) over ``tasks`` (``alpha``: GradNorm's)."""
    if name.startswith("torchjd."):
        return Aggregated(tasks, weights, aggregator=_aggregator(name), name=name)
    if name not in WEIGHTINGS:
        raise ConfigError(
            f"'train.weighting': unknown weighting {name!r}; valid: {sorted(WEIGHTINGS)} or "
            f"torchjd.<{'|'.join(JD_AGGREGATORS)}>"
        )
    if name == "gradnorm":
        return GradNorm(tasks, weights, alpha)
    return WEIGHTINGS[name](tasks, weights)
