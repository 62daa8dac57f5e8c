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
        return out

    def forward(self, batch, task: str) -> torch.Tensor:
        masked = {n: self._params[n] * m for n, m in self._scales(task).items()}
        return functional_call(self.model, masked, (batch, task), strict=False)

    def loss(self, batch, task: str) -> torch.Tensor:
        return self.model.heads[task].loss(self(batch, task), batch.tags, batch.mask)

    def decode(self, batch, task: str) -> list[list[int]]:
        return self.model.heads[task].decode(self(batch, task), batch.mask)

    @staticmethod
    def _stateless(optimizer: torch.optim.Optimizer) -> bool:
        """Plain SGD: the update is -lr * grad, exactly zero outside M_t, so nothing can leak."""
        return type(optimizer) is torch.optim.SGD and all(
            g.get("momentum", 0) == 0 and g.get("weight_decay", 0) == 0 for g in optimizer.param_groups
        )

    @torch.no_grad()
    def step(self, optimizer: torch.optim.Optimizer, task: str) -> None:
        """Optimizer step that leaves weights and optimizer state outside M_t untouched."""
        if self._stateless(optimizer):
            optimizer.step()
            return
        mask = self._masks[task]
        pairs = []  # (live tensor, snapshot buffer, mask); buffers are reused across steps
        for name, m in mask.items():
            p = self._params[name]
            pairs.append((p, self._buffer(("p", name), p), m))
            for k, v in optimizer.state.get(p, {}).items():
                if torch.is_tensor(v) and v.shape == p.shape:
                    pairs.append((v, self._buffer((k, name), v), m))
        if pairs:
            torch._foreach_copy_([b for _, b, _ in pairs], [t for t, _, _ in pairs])
        fresh = {name for name in mask if not optimizer.state.get(self._params[name])}
        optimizer.step()
        for t, b, m in pairs:
            torch.where(m, t, b, out=t)
        for name in fresh:  # state created by this step: outside M_t it must stay at its initial zeros
            p, m = self._params[name], mask[name]
            for v in optimizer.state.get(p, {}).values():
                if torch.is_tensor(v) and v.shape == p.shape:
                    v.masked_fill_(~m, 0)

    def _scales(self, task: str) -> dict[str, torch.Tensor]:
        """The mask as 0/1 in each parameter's dtype (a multiply by a bool mask would cast every step)."""
        key = ("scale", task)
        out = self._snapshots.get(key)
        if out is None or any(out[n].device != self._params[n].device for n in out):
            out = self._snapshots[key] = {
                n: m.to(self._params[n].dtype) for n, m in self._masks[task].items()
            }
        return out

    def _buffer(self, key, like: torch.Tensor) -> torch.Tensor:
        buf = self._snapshots.get(key)
        if buf is None or buf.shape != like.shape or buf.device != like.device or buf.dtype != like.dtype:
            buf = self._snapshots[key] = torch.empty_like(like)
        return buf

    def shared_parameter_names(self) -> list[str]:
        return [f"model.{n}" for n, _ in self.model.encoder.named_parameters()]

    def subnet_weights(self, task: str) -> dict[str, torch.Tensor]:
        """M_t ⊙ θ for every masked parameter (what task t actually uses)."""
        return {n: (self._params[n] * m).detach() for n, m in self._masks[task].items()}
