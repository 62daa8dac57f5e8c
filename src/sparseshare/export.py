"""Export one task's subnet, mask applied, as one safetensors file; rebuild it with :func:`load_subnet`.

The file holds what the task's predictions need and nothing else: the parameters its loss reaches
(``task_parameter_names``: the shared network and the task's own head, not the other tasks'), with every
masked weight matrix stored as its kept values plus a bit per entry, so the file shrinks with the
subnet's density. A JSON header (the safetensors metadata) says how to rebuild the network: a recipe
(``sharing.registry``: a registered network by name and its JSON arguments) or, for a network of your
own, the ``build`` callable you give :func:`load_subnet`. The preprocessing of a run (vocabularies or the
feature encoder) rides along, so an exported tagger can tag text on its own. No pickles anywhere.

The rebuilt module computes with ``M_t ⊙ θ`` baked into its weights: the same numbers the masked
forward of sparse sharing computes, so its predictions equal the run's exactly. Parameters of other
tasks are not stored and are set to NaN on load, so a task that did use one would predict NaN (and the
tests would catch it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sparseshare.errors import ContractError, RunError
from sparseshare.masks.io import pack_bits, unpack_bits
from sparseshare.sharing.hard import HardSharing, task_parameter_names, task_predict
from sparseshare.sharing.registry import build_network, build_recipe
from sparseshare.sharing.sparse import SparseSharing
from sparseshare.training.checkpoint import load_tensors, save_tensors

FORMAT = "sparseshare-subnet"
VERSION = 1
_VALUES, _BITS, _PREPROCESS = "::kept", "::bits", "__preprocess__"


class Subnet(nn.Module):
    """One task's network: ``forward(batch)`` and ``predict(batch)`` as the run computed them.

    ``network`` is the rebuilt module (weights ``M_t ⊙ θ``), ``task`` the task it serves, ``header`` the
    file's header and ``preprocess`` the run's vocabularies or feature encoder (``{}`` when none).
    """

    def __init__(self, network: nn.Module, task: str, header: dict, preprocess: dict | None = None):
        super().__init__()
        self.network, self.task, self.header = network, task, header
        self.preprocess = preprocess or {}

    @property
    def tasks(self) -> list[str]:
        return [self.task]

    def forward(self, batch):
        return self.network(batch, self.task)

    @torch.no_grad()
    def predict(self, batch, task: str | None = None):
        if task not in (None, self.task):
            raise ContractError(f"this subnet serves task '{self.task}', not '{task}'")
        return task_predict(self.network, self(batch), batch, self.task)


def _network_and_masks(module: nn.Module, task: str, recipe: Mapping | None):
    """(the module to rebuild, the task's masks over its parameters, the recipe of that module)."""
    recipe = dict(recipe) if recipe is not None else None
    if isinstance(module, SparseSharing):  # sparse sharing and PBFS: the network, masks baked in
        masks = SparseSharing.mask(module, task)
        if recipe is not None:
            recipe = {"network": recipe["network"], "kwargs": recipe.get("kwargs", {})}
        return module.model, {n: m.detach().cpu() for n, m in masks.items()}, recipe
    if isinstance(module, HardSharing):
        if recipe is not None:
            recipe = {"network": recipe["network"], "kwargs": recipe.get("kwargs", {})}
        return module.model, {}, recipe
    return module, {}, recipe


def export_subnet(
    module: nn.Module,
    task: str,
    path: str | Path,
    *,
    recipe: Mapping[str, Any] | None = None,
    preprocess: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> dict:
    """Write ``task``'s subnet of ``module`` (a mechanism or a network) to ``path``; return its sizes.

    ``recipe``: how to rebuild the module (a registered network, see ``sharing.registry``); without one,
    :func:`load_subnet` needs ``build``. Returns ``{"bytes", "dense_bytes", "density", "kept", "masked"}``:
    the file's size, the size of the same parameters stored densely, and the kept fraction of the masked
    weights.
    """
    if task not in module.tasks:
        raise ContractError(f"no task '{task}' in this model; its tasks are {list(module.tasks)}")
    network, masks, recipe = _network_and_masks(module, task, recipe)
    params = dict(network.named_parameters())
    names = [n for n in task_parameter_names(network, task) if n in params]
    tensors: dict[str, torch.Tensor] = {}
    dense_bytes, kept, masked = 0, 0, 0
    for n in names:
        p = params[n].detach().cpu()
        dense_bytes += p.numel() * p.element_size()
        m = masks.get(n)
        if m is None:
            tensors[n] = p
            continue
        tensors[n + _VALUES] = p[m]
        tensors[n + _BITS] = torch.from_numpy(pack_bits(m))
        kept, masked = kept + int(m.sum()), masked + m.numel()
    for n, b in network.named_buffers():
        tensors[n] = b.detach().cpu()
    if preprocess:
        raw = json.dumps(preprocess, sort_keys=True).encode()
        tensors[_PREPROCESS] = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
    header = {
        "format": FORMAT,
        "version": VERSION,
        "task": task,
        "recipe": recipe,
        "parameters": names,
        "masked": {n: list(masks[n].shape) for n in names if n in masks},
        "density": kept / masked if masked else 1.0,
        **({"meta": dict(meta)} if meta else {}),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_tensors(tensors, path, header)
    return {
        "bytes": path.stat().st_size,
        "dense_bytes": dense_bytes,
        "density": header["density"],
        "kept": kept,
        "masked": masked,
    }


def load_subnet(
    path: str | Path, *, build: Callable[..., nn.Module] | None = None, device: str | torch.device = "cpu"
) -> Subnet:
    """Rebuild the module :func:`export_subnet` wrote: from its recipe, or with ``build(**kwargs)`` (your
    own network; ``kwargs`` from the recipe when there is one, else none)."""
    path = Path(path)
    tensors, header = load_tensors(path)
    if header.get("format") != FORMAT:
        raise RunError(f"{path}: not a sparseshare subnet file (format {header.get('format')!r})")
    if header.get("version", 0) > VERSION:
        raise RunError(f"{path}: written by a newer sparseshare (subnet format {header['version']})")
    recipe = header.get("recipe")
    if build is not None:
        network = build(**(recipe or {}).get("kwargs", {}))
    elif recipe is None:
        raise ContractError(f"{path}: exported without a recipe; give load_subnet(..., build=your_factory)")
    else:
        network = (
            build_recipe(recipe)
            if recipe.get("mechanism")
            else build_network(recipe["network"], recipe["kwargs"])
        )
    state = network.state_dict()
    with torch.no_grad():
        for v in state.values():  # what the file does not hold must not be used: NaN shows it if it is
            if v.is_floating_point():
                v.fill_(float("nan"))
    masked = header.get("masked", {})
    for n in header["parameters"]:
        if n not in state:
            raise RunError(f"{path}: parameter '{n}' is not in the rebuilt network (another network?)")
        if n in masked:
            m = unpack_bits(tensors[n + _BITS].numpy(), masked[n])
            full = torch.zeros(masked[n], dtype=state[n].dtype)
            full[m] = tensors[n + _VALUES].to(state[n].dtype)
            state[n].copy_(full)
        else:
            state[n].copy_(tensors[n])
    for n, _ in network.named_buffers():
        if n in tensors:
            state[n].copy_(tensors[n])
    preprocess = None
    if _PREPROCESS in tensors:
        preprocess = json.loads(bytes(tensors[_PREPROCESS].numpy().astype(np.uint8)).decode())
    sub = Subnet(network, header["task"], header, preprocess)
    return sub.to(device).eval()
