"""Trainer callbacks: what ``train(..., callbacks=[...])`` calls, and the one the PBFS paper needs.

A callback defines any of the methods of :class:`Callback`; the trainer (training/trainer.py) calls
``on_step`` after every optimizer step, ``on_eval`` after every dev evaluation (once the epoch's state is
kept as the best, if it is: a change made there belongs to the next epoch), and saves ``state_dict()`` in
each checkpoint, giving it back through ``load_state_dict`` on resume.

:class:`PBFSPruner` is Algorithm 2 of the PBFS paper over a :class:`~sparseshare.sharing.pbfs.PBFS`
network; :class:`PBFSSchedule` is the callback that drives it from the trainer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import torch

from sparseshare.errors import ContractError
from sparseshare.pruning.magnitude import prune_to_sparsity
from sparseshare.pruning.schedules import polynomial_sparsity
from sparseshare.pruning.selection import beats
from sparseshare.sharing.pbfs import PBFS


class Callback(Protocol):
    """The methods the trainer calls; a callback defines the ones it needs (each is optional)."""

    def on_step(self, step: int) -> Any:
        """After optimizer step ``step`` (1-based, counted over epochs)."""

    def on_eval(self, dev: Mapping[str, Mapping[str, float]]) -> Any:
        """After the epoch's dev evaluation: task -> metric -> value."""

    def state_dict(self) -> dict:
        """What a checkpoint keeps of it."""

    def load_state_dict(self, state: Mapping) -> None:
        """Back from a checkpoint."""

    def fingerprint(self) -> dict:
        """What of it determines the training's result (training/fingerprint.py; default: its class)."""


class PBFSPruner:
    """Algorithm 2 of the PBFS paper, "Generate sparse shared-expert for each task", per task and pool:

    - step 1 (build P^s for every pool s of Q) is the network (``PBFSNet``, pools from Algorithm 1);
    - step 2, "P^s_m = prune μ_{m→s} % parameters of P^s with low magnitude, save P^s_m in P_m": the first
      ``on_step`` call (at ``begin_step``) prunes every task's part of every pool to its initial sparsity;
    - step 3, "prune parameters with polynomial decay and training until shared-expert's sparsity arrived
      to λ_{m→s}, record the performance of training process with different sparsity": ``on_step(step)``
      (after each update) re-prunes every ``frequency`` steps from ``begin_step`` to ``end_step`` to
      ``polynomial_sparsity(step, begin, end, μ, λ, power)``; ``record(task, sparsity, score)`` records
      the task's dev score at its current sparsity;
    - step 4, "replace P^s_m with the sparse shared-expert reached best performance of task m":
      ``restore_best()`` puts every task's best subnet (its mask) back into the shared network once the
      schedule has reached λ;
    - step 5, "repeat steps 3-4 until training is over", and "Return {P_1, ..., P_M}": training goes on
      with the best masks, every evaluation may find a better one, and at the end each task's P_m is the
      network state at which *its own* dev score was best (``best[task]["state"]``: the shared weights
      and the task's mask as they were scored). A task is tested on that state, not on the epoch of the
      best mean dev score over all tasks: tasks keep different subnets, which is the paper's point.

    Ties go to the sparser subnet. Sparsities may be one number per task or a mapping ``pool index ->
    sparsity`` for that task. ``state_dict()``/``load_state_dict()`` carry the record through a resume.
    """

    def __init__(
        self,
        mechanism: PBFS,
        task_target_sparsity: Mapping[str, float | Mapping[int, float]],
        initial_sparsity: float | Mapping[str, float | Mapping[int, float]] = 0.0,
        begin_step: int = 0,
        end_step: int = 1000,
        frequency: int = 100,
        power: float = 3.0,
        strategy: str = "layerwise",
        higher_is_better: bool | Mapping[str, bool] | None = None,
    ):
        if frequency < 1 or end_step < begin_step:
            raise ValueError("need frequency >= 1 and end_step >= begin_step")
        missing = [t for t in mechanism.tasks if t not in task_target_sparsity]
        if missing:
            raise KeyError(f"no target sparsity for tasks {missing}")
        self.mechanism, self.strategy = mechanism, strategy
        self.begin_step, self.end_step, self.frequency, self.power = begin_step, end_step, frequency, power
        self._target, self._initial = task_target_sparsity, initial_sparsity
        for t in mechanism.tasks:
            for s in mechanism.net.memberships[t]:
                mu, lam = self._value(self._initial, t, s), self._value(self._target, t, s)
                if not 0.0 <= mu <= lam <= 1.0:
                    raise ValueError(f"task '{t}' pool {s}: need 0 <= initial {mu} <= target {lam} <= 1")
        self._higher = higher_is_better
        self.history: list[dict] = []
        self.best: dict[str, dict] = {}  # task -> {'sparsity', 'score', 'step', 'mask'}
        self._step = None

    @staticmethod
    def _value(spec, task: str, pool: int) -> float:
        v = spec if isinstance(spec, (int, float)) else spec[task]
        return float(v if isinstance(v, (int, float)) else v[pool] if pool in v else v[str(pool)])

    def scheduled_sparsity(self, task: str, pool: int, step: int) -> float:
        """s(step) for the task's part of ``pool`` (TF-MOT PolynomialDecay)."""
        mu, lam = self._value(self._initial, task, pool), self._value(self._target, task, pool)
        return polynomial_sparsity(step, self.begin_step, self.end_step, mu, lam, self.power)

    def on_step(self, step: int) -> bool:
        """Prune on schedule; True when some mask changed."""
        self._step = step
        due = (step - self.begin_step) % self.frequency == 0 or step == self.end_step
        if not (self.begin_step <= step <= self.end_step and due):
            return False
        mech, changed = self.mechanism, False
        weights = {n: p.detach() for n, p in mech.net.named_parameters()}
        for t in mech.tasks:
            for s in mech.net.memberships[t]:
                current = mech.mask(t, s)
                new = prune_to_sparsity(weights, current, self.scheduled_sparsity(t, s, step), self.strategy)
                if any(not torch.equal(new[n], current[n]) for n in current):
                    mech.set_mask(t, new)
                    changed = True
        return changed

    def _higher_is_better(self, task: str) -> bool:
        if self._higher is None:
            raise ContractError(
                "PBFSPruner needs each task's direction to keep its best subnet: give higher_is_better "
                "(False for error metrics such as MSE), or drive it with PBFSSchedule(pruner, tasks)"
            )
        return self._higher if isinstance(self._higher, bool) else bool(self._higher[task])

    def record(self, task: str, sparsity: float | None, score: float) -> bool:
        """Record the task's dev ``score`` at ``sparsity`` (default: its current one); True if a new best."""
        sparsity = self.mechanism.sparsity(task) if sparsity is None else float(sparsity)
        self.history.append({"step": self._step, "task": task, "sparsity": sparsity, "score": float(score)})
        old = self.best.get(task) or {}
        old_density = None if old.get("sparsity") is None else 1.0 - old["sparsity"]
        better = beats(score, 1.0 - sparsity, old.get("score"), old_density, self._higher_is_better(task))
        if better:
            mask = {n: m.detach().clone() for n, m in self.mechanism.mask(task).items()}
            state = {k: v.detach().cpu().clone() for k, v in self.mechanism.state_dict().items()}
            self.best[task] = {"sparsity": sparsity, "score": float(score), "step": self._step, "mask": mask,
                               "state": state}  # fmt: skip
        return better

    def fingerprint(self) -> dict:
        """The schedule: what a resumed training must share with the one it continues."""
        return {"target": self._target, "initial": self._initial, "begin_step": self.begin_step,
                "end_step": self.end_step, "frequency": self.frequency, "power": self.power,
                "strategy": self.strategy}  # fmt: skip

    def state_dict(self) -> dict:
        """The record (history, every task's best subnet and state, the last step) for a checkpoint."""
        return {"history": list(self.history), "best": dict(self.best), "step": self._step}

    def load_state_dict(self, state: Mapping) -> None:
        self.history = list(state["history"])
        self.best = {t: dict(b) for t, b in state["best"].items()}
        self._step = state["step"]

    def restore_best(self) -> None:
        """Algorithm 2, step 4: give every evaluated task back its best subnet."""
        for task, rec in self.best.items():
            self.mechanism.set_mask(task, rec["mask"])


class PBFSSchedule:
    """Trainer callback that drives Algorithm 2 over training (``train_jointly(..., callbacks=[...])``).

    Prunes every task to its initial sparsity mu at once (step 2: before training, at ``begin_step``),
    re-prunes on schedule after every update (``on_step``), records each task's dev score at its current
    sparsity after every evaluation (step 3) and, once the schedule has ended, gives every task back its
    best subnet (steps 4-5). ``tasks``: task -> its ``Task`` (the primary metric and its direction).
    """

    def __init__(self, pruner: PBFSPruner, tasks: Mapping):
        self.pruner, self.tasks, self.step = pruner, dict(tasks), pruner.begin_step
        pruner._higher = {t: bool(task.higher_is_better) for t, task in self.tasks.items()}
        pruner.on_step(pruner.begin_step)

    def on_step(self, step: int) -> None:
        self.step = step
        self.pruner.on_step(step)

    def on_eval(self, dev: Mapping[str, Mapping[str, float]]) -> None:
        for t, task in self.tasks.items():
            self.pruner.record(t, None, dev[t][task.key])
        if self.step >= self.pruner.end_step:
            self.pruner.restore_best()

    def state_dict(self) -> dict:
        return {"pruner": self.pruner.state_dict(), "step": self.step}

    def fingerprint(self) -> dict:
        return {"PBFSSchedule": self.pruner.fingerprint()}

    def load_state_dict(self, state: Mapping) -> None:
        self.pruner.load_state_dict(state["pruner"])
        self.step = state["step"]
