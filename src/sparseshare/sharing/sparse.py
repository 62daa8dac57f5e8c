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
bit for bit and no substitution (on a GPU, cuDNN keeps its flat LSTM weights). A forward without autograd
(evaluation, ``predict``) applies the mask in place too and puts the weights back before it returns.

Masks are held in bits: every task's mask packed 8 weights a byte (``masks.io.pack``, the bytes of
masks.safetensors), in one uint8 buffer per task that moves with the module but is not saved; only the
mask being stepped or evaluated is unpacked, to its int8 select (``masking.select``), 1 byte a weight.
``state_dict`` still holds each task's mask as a bool tensor per parameter, ``mask:<task>:<param with /
for .>``, as it always has: checkpoints written before and after load either way.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
from torch import nn
from torch.func import functional_call

from sparseshare.contracts import check_model
from sparseshare.errors import ContractError
from sparseshare.masks.io import pack, unpack, unpack_bytes
from sparseshare.masks.mask import Mask, TaskMasks, validate_mask
from sparseshare.pruning.prunable import prunable_names
from sparseshare.sharing.hard import task_parameter_names, task_predict
from sparseshare.sharing.masking import MaskedStep


def mask_key(task: str, name: str) -> str:
    """The state-dict key of ``task``'s mask of parameter ``name``."""
    return f"mask:{task}:{name.replace('.', '/')}"


def _bits_key(task: str) -> str:
    """The (unsaved) buffer holding ``task``'s packed mask."""
    return f"bits:{task}"


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
        checked = {}
        for t in tasks:
            checked[t] = validate_mask(masks[t], params)
            if set(checked[t]) != set(first):
                raise ContractError(
                    f"the masks of tasks '{tasks[0]}' and '{t}' cover different parameters; every task's "
                    f"mask must cover the same ones"
                )
        self._names = first
        self._params = params
        # each parameter's bytes in a task's packed buffer: [start, end), its mask padded to whole bytes
        self._spans, start = {}, 0
        for n in first:
            self._spans[n] = (start, start + -(-params[n].numel() // 8))
            start = self._spans[n][1]
        device = params[first[0]].device if first else None
        for t in tasks:
            self.register_buffer(_bits_key(t), torch.zeros(start, dtype=torch.uint8, device=device),
                                 persistent=False)  # fmt: skip
            self._write(t, checked[t])
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

    def _bits(self, task: str) -> torch.Tensor:
        if task not in self.model.tasks:
            raise ContractError(f"no task '{task}'; tasks are {self.tasks}")
        return getattr(self, _bits_key(task))

    def _write(self, task: str, mask: Mapping[str, torch.Tensor]) -> None:
        """Pack ``mask`` (some of the masked parameters) into ``task``'s buffer."""
        bits = self._bits(task)
        for n, m in mask.items():
            a, b = self._spans[n]
            bits[a:b].copy_(pack(m.to(bits.device)))

    def _mask(self, task: str, names: Sequence[str]) -> Mask:
        """``task``'s mask of ``names``, unpacked: bool tensors of their own."""
        return self._unpack(self._bits(task), names)

    def _unpack(self, bits: torch.Tensor, names: Sequence[str]) -> Mask:
        return {n: unpack(bits[slice(*self._spans[n])], self._params[n].shape) for n in names}

    def mask(self, task: str) -> Mask:
        """``task``'s mask, unpacked: bool tensors of their own (change a mask with :meth:`set_mask`)."""
        return self._mask(task, self._names)

    @property
    def masks(self) -> TaskMasks:
        return {t: self.mask(t) for t in self.tasks}

    def set_mask(self, task: str, mask: Mapping[str, torch.Tensor]) -> None:
        """Replace (part of) ``task``'s mask."""
        mask = validate_mask(mask, self._params)
        for n in mask:
            if n not in self._names:
                raise ContractError(f"'{n}' is not a masked parameter (masked: {self._names[:4]}...)")
        self._write(task, mask)
        self._forget()

    def _forget(self) -> None:
        self._cache = {}

    def _apply(self, fn, recurse=True):  # .to() may replace parameter tensors: re-read them
        out = super()._apply(fn, recurse)
        self._params = dict(self.model.named_parameters())
        self._forget()
        self._step.reset()
        return out

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        """Every task's mask as a bool tensor per parameter, under the keys the buffers had."""
        super()._save_to_state_dict(destination, prefix, keep_vars)
        for t in self.tasks:
            for n, m in self._mask(t, self._names).items():
                destination[prefix + mask_key(t, n)] = m

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
        """Read the masks :meth:`_save_to_state_dict` writes (as ``copy_`` into a bool buffer would: any
        dtype, nonzero = kept) and pack them."""
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing, unexpected, errors)
        for t in self.tasks:
            given = {}
            for n in self._names:
                key = prefix + mask_key(t, n)
                if key in unexpected:
                    unexpected.remove(key)
                if key not in state_dict:
                    if strict:
                        missing.append(key)
                    continue
                m, shape = state_dict[key], self._params[n].shape
                if not torch.is_tensor(m) or m.shape != shape:
                    errors.append(
                        f"size mismatch for {key}: copying a param with shape {getattr(m, 'shape', None)} "
                        f"from checkpoint, the shape in current model is {shape}."
                    )
                    continue
                given[n] = m.detach() != 0 if m.dtype != torch.bool else m.detach()
            self._write(t, given)

    def _select(self, task: str | None) -> dict[str, torch.Tensor]:
        """The select (int8, -1 where kept) of ``task``'s mask (``None``: of ∪_t M_t), by parameter: the
        one unpacked mask, kept until another is needed or a mask changes."""
        key = ("select", task)
        out = self._cache.get(key)
        if out is None:
            bits = self._union_bits() if task is None else self._bits(task)
            flat = unpack_bytes(bits, 255).view(torch.int8)
            out = {n: flat[8 * a : 8 * a + self._params[n].numel()].view(self._params[n].shape)
                   for n, (a, _) in self._spans.items()}  # fmt: skip
            self._cache = {k: v for k, v in self._cache.items() if k[0] != "select"}
            self._cache[key] = out
        return out

    def _union(self) -> Mask:
        """∪_t M_t (what a step after a joint loss keeps), unpacked."""
        return self._unpack(self._union_bits(), self._names)

    def _union_bits(self) -> torch.Tensor:
        """∪_t M_t, packed (the OR of the tasks' bytes)."""
        out = self._cache.get(("union", None))
        if out is None:
            out = self._bits(self.tasks[0]).clone()
            for t in self.tasks[1:]:
                out |= self._bits(t)
            self._cache[("union", None)] = out
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
        sel = self._select(task)
        self._step.apply(self._params, sel)
        self._applied = task
        hooks = [
            self._params[n].register_post_accumulate_grad_hook(lambda p, s=s: self._step.mask_grad(p, s))
            for n, s in sel.items()
        ]
        try:
            yield self
        finally:
            for h in hooks:
                h.remove()
            if self._applied is not None:  # no step was taken
                self._step.unapply(self._params, sel)
                self._applied = None

    def forward(self, batch, task: str):
        """Task ``task``'s output on M_t ⊙ θ. With autograd, the masked weights are substituted (the
        model untouched; a joint loss holds every task's view at once); without (an evaluation), the
        mask is applied in place for the forward and the weights put back, bit for bit, before it
        returns: the same outputs, with no per-task copy of the weights and, on a GPU, cuDNN's flat LSTM
        weights kept. Do not call it without autograd between a loss and its ``backward``: the in-place
        round trip counts as a change of the weights that graph saved."""
        if self._applied == task:
            return self.model(batch, task)
        if self._applied is not None:
            raise ContractError(
                f"forward for task '{task}' while the mask of task '{self._applied}' is applied in place"
            )
        if not torch.is_grad_enabled():
            sel = self._select(task)
            self._step.apply(self._params, sel)
            try:
                return self.model(batch, task)
            finally:
                self._step.unapply(self._params, sel)
        masked = {n: self._params[n] * s for n, s in self._scales(task).items()}
        return functional_call(self.model, masked, (batch, task), strict=False)

    def _task_names(self, task: str) -> list[str]:
        """The masked parameters ``task`` computes with (all of them)."""
        return self._names

    def _scales(self, task: str) -> dict[str, torch.Tensor]:
        """``task``'s mask as 0/1 in each parameter's dtype, made from its bits for one forward (not kept):
        M ⊙ θ as a product, whose gradient is M ⊙ g."""
        flat = unpack_bytes(self._bits(task))
        by_dtype: dict = {}
        out = {}
        for n in self._task_names(task):
            p, a = self._params[n], self._spans[n][0]
            if p.dtype not in by_dtype:
                by_dtype[p.dtype] = flat.to(p.dtype)
            out[n] = by_dtype[p.dtype][8 * a : 8 * a + p.numel()].view(p.shape)
        return out

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

    def joint_losses(self, batch, tasks: Sequence[str]) -> dict[str, torch.Tensor]:
        """Each task's unweighted loss on one batch, each on its own subnet."""
        return {t: self.loss(batch, t) for t in tasks}

    def step(self, optimizer: torch.optim.Optimizer, task: str | None = None) -> None:
        """Optimizer step that leaves weights and optimizer state outside M_t (``task=None``: ∪_t M_t,
        after a joint loss) untouched."""
        if self._applied is not None:
            if task != self._applied:
                raise ContractError(f"step for task '{task}' inside the applied block of '{self._applied}'")
            self._step(optimizer, self._params, self._select(task), applied=True)
            self._applied = None
            return
        self._step(optimizer, self._params, self._select(task))

    def task_parameter_names(self, task: str) -> list[str]:
        return task_parameter_names(self.model, task, "model.")

    def subnet_weights(self, task: str) -> dict[str, torch.Tensor]:
        """M_t ⊙ θ for every masked parameter (what task t actually uses)."""
        return {n: (self._params[n] * m).detach() for n, m in self.mask(task).items()}
