"""Which parameters may be pruned: weight tensors (2+ dims) chosen by name globs (fnmatch), overridable.

The default fits any model: every weight tensor of 2+ dims, never embeddings, biases, task heads or CRF
transitions. Given a module (not just its parameters), embeddings are also recognised by type
(``nn.Embedding``, whatever their name), and, when the model names what each task's loss reaches
(``task_parameter_names``, or what the pipeline found each task's loss to reach), parameters that not
every task uses (task heads, towers) are left out: the base network that sparse sharing masks is what all
tasks share.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from fnmatch import fnmatchcase

import torch
from torch import nn

from sparseshare.contracts import declared_task_parameters
from sparseshare.pruning.defaults import DEFAULT_EXCLUDE, DEFAULT_INCLUDE


def _embedding_names(model: nn.Module) -> set[str]:
    return {
        f"{mod_name}.{p_name}" if mod_name else p_name
        for mod_name, mod in model.named_modules()
        if isinstance(mod, nn.Embedding)
        for p_name, _ in mod.named_parameters(recurse=False)
    }


def _task_specific_names(model: nn.Module) -> set[str]:
    """Parameters some task's loss does not reach, when the model says (``task_parameter_names``) or
    the pipeline found them (contracts.declared_task_parameters)."""
    own = declared_task_parameters(model)
    tasks = getattr(model, "tasks", None)
    if own is None or not tasks:
        return set()
    every = {n for n, _ in model.named_parameters()}
    shared = set.intersection(*(set(own(t)) for t in tasks))
    return every - shared


def prunable_names(
    params: nn.Module | Mapping[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]],
    include: Sequence[str] = DEFAULT_INCLUDE,
    exclude: Sequence[str] = DEFAULT_EXCLUDE,
) -> list[str]:
    """Names matching any ``include`` glob and no ``exclude`` glob, with at least 2 dimensions; for a
    module, minus its embeddings and its task-specific parameters (see the module docstring)."""
    skip: set[str] = set()
    if isinstance(params, nn.Module):
        skip = _embedding_names(params) | _task_specific_names(params)
        items: Iterable[tuple[str, torch.Tensor]] = params.named_parameters()
    else:
        items = params.items() if isinstance(params, Mapping) else params
    out = []
    for name, p in items:
        if p.dim() < 2 or name in skip:
            continue
        if any(fnmatchcase(name, g) for g in include) and not any(fnmatchcase(name, g) for g in exclude):
            out.append(name)
    return out
