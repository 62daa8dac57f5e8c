"""Sparse sharing (Sun et al., AAAI 2020): task t runs the subnet E(x; M_t ⊙ θ_E).

This is the one place where masks touch weights, for sparse sharing and PBFS alike (PBFS is this
mechanism over its expert network, with masks its pruner changes). Forward: the masked parameters are
substituted by ``M_t ⊙ θ`` through ``torch.func.functional_call`` (the model is never modified), so
gradients outside M_t are exactly zero. Step: momentum, weight decay or Adam moments could still move
weights outside M_t (the authors' code leaks here), so the step snapshots every masked parameter and its
optimizer state and restores the entries outside M_t afterwards (``masking.MaskedStep``): a task's step
never changes a weight, or its optimizer state, outside its subnet. With all-ones masks this equals hard
sharing, step for step. A training step may instead run inside :meth:`SparseSharing.applied` (the
trainer does): the mask is applied to the weights in place and undone by the step, with the same numbers
bit for bit and no substitution (on a GPU, cuDNN keeps its flat LSTM weights). Masks are buffers
(``mask:<task>:<param with / for .>``), saved in ``state_dict`` with the weights.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
from torch import nn
from torch.func import functional_call

from sparseshare.contracts import check_model
from sparseshare.errors import ContractError
from sparseshare.masks.mask import Mask, TaskMasks, validate_mask
from sparseshare.pruning.prunable import prunable_names
from sparseshare.sharing.hard import task_parameter_names, task_predict
from sparseshare.sharing.masking import MaskedStep


def mask_key(task: str, name: str) -> str:
    """The buffer holding ``task``'s mask of parameter ``name``."""
    return f"mask:{task}:{name.replace('.', '/')}"


class SparseSharing(nn.Module):
    """A model whose weights are shared through per-task binary masks (True = kept).

    ``masks``: task -> {parameter name -> bool tensor}; every task's mask covers the same parameters.
    Without ``masks``, every task starts from the all-ones mask over ``names`` (default: the prunable
    weight matrices, see :func:`sparseshare.pruning.prunable_names`), to be set with :meth:`set_mask`.
    """

    def __init__(
        self,
        model: nn.Module,
        masks: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
        *,
        names: Sequence[str] | None = None,
    ):
        super().__init__()
        check_model(model)
        self.model = model
        params = dict(model.named_parameters())
        tasks = list(model.tasks)
        if masks is None:
            names = list(names) if names is not None else prunable_names(model)
            masks = {t: {n: torch.ones_like(params[n], dtype=torch.bool) for n in names} for t in tasks}
        missing = [t for t in tasks if t not in masks]
        if missing:
            raise ContractError(f"no mask for task '{missing[0]}'; masks cover {sorted(masks)}")
        first = list(masks[tasks[0]])
        for t in tasks:
            mask = validate_mask(masks[t], params)
            if set(mask) != set(first):
                raise ContractError(
                    f"the masks of tasks '{tasks[0]}' and '{t}' cover different parameters; every task's "
                    f"mask must cover the same ones"
                )
            for n in first:
                self.register_buffer(mask_key(t, n), mask[n].detach().clone().to(params[n].device))
        self._names = first
        self._params = params
        self._cache: dict = {}
        self._step = MaskedStep()
        self._applied: str | None = None  # the task whose mask the weights hold in place
        self.register_load_state_dict_post_hook(lambda module, keys: module._forget())

    @property
    def tasks(self) -> list[str]:
        return list(self.model.tasks)

    @property
    def names(self) -> list[str]:
        """The masked parameters."""
        return list(self._names)

    def mask(self, task: str) -> Mask:
        """``task``'s mask (live buffers: copy before keeping)."""
        return {n: getattr(self, mask_key(task, n)) for n in self._names}

    @property
    def masks(self) -> TaskMasks:
        return {t: self.mask(t) for t in self.tasks}

    def set_mask(self, task: str, mask: Mapping[str, torch.Tensor]) -> None:
        """Replace (part of) ``task``'s mask in place."""
        mask = validate_mask(mask, self._params)
        for n, m in mask.items():
            if n not in self._names:
                raise ContractError(f"'{n}' is not a masked parameter (masked: {self._names[:4]}...)")
            getattr(self, mask_key(task, n)).copy_(m)
        self._forget()

    def _forget(self) -> None:
        self._cache = {}

    def _apply(self, fn, recurse=True):  # .to() may replace parameter tensors: re-read them
        out = super()._apply(fn, recurse)
        self._params = dict(self.model.named_parameters())
        self._forget()
        self._step.reset()
        return out

    def _scales(self, task: str) -> dict[str, torch.Tensor]:
        """The mask as 0/1 in each parameter's dtype (a multiply by a bool mask would cast every step)."""
        key = ("scale", task)
        out = self._cache.get(key)
        if out is None:
            out = self._cache[key] = {n: m.to(self._params[n].dtype) for n, m in self.mask(task).items()}
        return out

    @contextmanager
    def applied(self, task: str) -> Iterator[SparseSharing]:
        """A training step of ``task`` with M_t applied to the weights in place.

        Inside the block the weights hold M_t ⊙ θ (the entries outside M_t kept aside), ``forward`` for
        ``task`` runs the model's own parameters, gradients outside M_t are cleared as they accumulate,
        and :meth:`step` puts the kept entries back after the optimizer step. Leaving the block without a
        step (an error, an evaluation) puts them back too: the weights are never left masked. The numbers
        are those of the substituting forward, bit for bit::

            with mech.applied(task):
                mech.loss(batch, task).backward()
                mech.step(optimizer, task)
        """
        if self._applied is not None:
            raise ContractError(f"the mask of task '{self._applied}' is already applied; blocks do not nest")
        mask = self.mask(task)
        self._step.apply(self._params, mask)
        self._applied = task
        hooks = [
            self._params[n].register_post_accumulate_grad_hook(lambda p, m=m: self._step.mask_grad(p, m))
            for n, m in mask.items()
        ]
        try:
            yield self
        finally:
            for h in hooks:
                h.remove()
            if self._applied is not None:  # no step was taken
                self._step.unapply(self._params, mask)
                self._applied = None

    def forward(self, batch, task: str):
        if self._applied == task:
            return self.model(batch, task)
        if self._applied is not None:
            raise ContractError(
                f"forward for task '{task}' while the mask of task '{self._applied}' is applied in place"
            )
        masked = {n: self._params[n] * s for n, s in self._scales(task).items()}
        return functional_call(self.model, masked, (batch, task), strict=False)

    def loss(self, batch, task: str) -> torch.Tensor:
        return self.model.task_loss(self(batch, task), batch, task)

    @torch.no_grad()
    def predict(self, batch, task: str):
        """What the metric scores; no autograd graph, so torch takes the inference path a loaded subnet
        takes (a TransformerEncoder's fast path): the same predictions, bit for bit, as ``load_subnet``'s."""
        return task_predict(self.model, self(batch, task), batch, task)

    def joint_loss(self, batch, weights: Mapping[str, float]) -> torch.Tensor:
        """Σ_t w_t L_t, each task on its own subnet (PBFS Eq. 10)."""
        return torch.stack([float(w) * self.loss(batch, t) for t, w in weights.items()]).sum()

    def _union(self) -> Mask:
        out = self._cache.get("union")
        if out is None:
            out = {}
            for t in self.tasks:
                for n, m in self.mask(t).items():
                    out[n] = out[n] | m if n in out else m.clone()
            self._cache["union"] = out
        return out

    def step(self, optimizer: torch.optim.Optimizer, task: str | None = None) -> None:
        """Optimizer step that leaves weights and optimizer state outside M_t (``task=None``: ∪_t M_t,
        after a joint loss) untouched."""
        if self._applied is not None:
            if task != self._applied:
                raise ContractError(f"step for task '{task}' inside the applied block of '{self._applied}'")
            self._step(optimizer, self._params, self.mask(task), applied=True)
            self._applied = None
            return
        self._step(optimizer, self._params, self.mask(task) if task is not None else self._union())

    def task_parameter_names(self, task: str) -> list[str]:
        return task_parameter_names(self.model, task, "model.")

    def subnet_weights(self, task: str) -> dict[str, torch.Tensor]:
        """M_t ⊙ θ for every masked parameter (what task t actually uses)."""
        return {n: (self._params[n] * m).detach() for n, m in self.mask(task).items()}
