"""Sparse sharing (Sun et al., AAAI 2020): task t runs the subnet E(x; M_t ⊙ θ_E).

This is the one place where masks touch weights. Forward: the masked parameters are substituted by
``M_t ⊙ θ`` through ``torch.func.functional_call`` (the model is never modified), so gradients
outside M_t are exactly zero. Step: momentum, weight decay or Adam moments could still move weights
outside M_t (the authors' code leaks here), so the step snapshots every masked parameter and its
optimizer state and restores the entries outside M_t afterwards: a task's step never changes a
weight, or its optimizer state, outside its subnet. With all-ones masks this equals hard sharing.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.func import functional_call

from sparseshare.masks.mask import TaskMasks, validate_mask
from sparseshare.sharing.masking import MaskedStep


class SparseSharing(nn.Module):
    """A model whose encoder weights are shared through per-task binary masks."""

    def __init__(self, model: nn.Module, masks: Mapping[str, Mapping[str, torch.Tensor]]):
        super().__init__()
        self.model = model
        params = dict(model.named_parameters())
        self._masks: TaskMasks = {}
        for task in model.tasks:
            if task not in masks:
                raise KeyError(f"no mask for task '{task}'; masks cover {sorted(masks)}")
            self._masks[task] = validate_mask(masks[task], params)
        self._params = params
        self._snapshots: dict = {}
        self._step = MaskedStep()

    @property
    def tasks(self) -> list[str]:
        return self.model.tasks

    @property
    def masks(self) -> TaskMasks:
        return self._masks

    def _apply(self, fn, recurse=True):  # keep masks on the model's device
        out = super()._apply(fn, recurse)
        self._params = dict(self.model.named_parameters())
        dev = next(iter(self._params.values())).device
        self._masks = {t: {n: m.to(dev) for n, m in mk.items()} for t, mk in self._masks.items()}
        self._snapshots = {}
        self._step.reset()
        return out

    def forward(self, batch, task: str) -> torch.Tensor:
        masked = {n: self._params[n] * m for n, m in self._scales(task).items()}
        return functional_call(self.model, masked, (batch, task), strict=False)

    def loss(self, batch, task: str) -> torch.Tensor:
        return self.model.task_loss(self(batch, task), batch, task)

    def decode(self, batch, task: str) -> list[list[int]]:
        """Tag ids per sentence (sequence-labelling models)."""
        return self.model.task_decode(self(batch, task), batch, task)

    def predict(self, batch, task: str) -> torch.Tensor:
        """Probabilities or values per row (tabular models)."""
        return self.model.task_predict(self(batch, task), task)

    def step(self, optimizer: torch.optim.Optimizer, task: str) -> None:
        """Optimizer step that leaves weights and optimizer state outside M_t untouched."""
        self._step(optimizer, self._params, self._masks[task])

    def _scales(self, task: str) -> dict[str, torch.Tensor]:
        """The mask as 0/1 in each parameter's dtype (a multiply by a bool mask would cast every step)."""
        key = ("scale", task)
        out = self._snapshots.get(key)
        if out is None or any(out[n].device != self._params[n].device for n in out):
            out = self._snapshots[key] = {
                n: m.to(self._params[n].dtype) for n, m in self._masks[task].items()
            }
        return out

    def shared_parameter_names(self) -> list[str]:
        return [f"model.{n}" for n in self.model.shared_parameter_names()]

    def subnet_weights(self, task: str) -> dict[str, torch.Tensor]:
        """M_t ⊙ θ for every masked parameter (what task t actually uses)."""
        return {n: (self._params[n] * m).detach() for n, m in self._masks[task].items()}
