"""Per-task binary masks over a base network's parameters.

A mask is a plain mapping ``parameter name -> bool tensor`` with True meaning *kept*
(the authors' code stores True = pruned; we convert at the boundary). Per-task masks are a
mapping ``task -> mask``. Density is the fraction kept; sparsity = 1 - density.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import torch

Mask = dict[str, torch.Tensor]
TaskMasks = dict[str, Mask]


def validate_mask(mask: Mapping[str, torch.Tensor], params: Mapping[str, torch.Tensor]) -> Mask:
    """Check that every key names a parameter, shapes match and dtype is bool; return a plain dict."""
    out: Mask = {}
    for name, m in mask.items():
        if name not in params:
            raise KeyError(f"mask names '{name}', which is not a parameter of the model")
        if not isinstance(m, torch.Tensor) or m.dtype != torch.bool:
            raise TypeError(f"mask for '{name}' must be a bool tensor, got {getattr(m, 'dtype', type(m))}")
        if tuple(m.shape) != tuple(params[name].shape):
            raise ValueError(
                f"mask for '{name}' has shape {tuple(m.shape)}, parameter has {tuple(params[name].shape)}"
            )
        out[name] = m
    return out


def ones_like(params: Mapping[str, torch.Tensor], names: Sequence[str]) -> Mask:
    """The all-kept mask over ``names`` (hard sharing is sparse sharing with this mask)."""
    return {n: torch.ones_like(params[n], dtype=torch.bool) for n in names}


def density(mask: Mapping[str, torch.Tensor]) -> float:
    """Fraction of masked entries that are kept (‖M‖₀ / |θ| in Algorithm 1)."""
    total = sum(m.numel() for m in mask.values())
    if total == 0:
        return 1.0
    return sum(int(m.sum()) for m in mask.values()) / total


def union_count(masks: Sequence[Mapping[str, torch.Tensor]]) -> int:
    """Number of parameters kept by at least one mask (the sparse-sharing `# Params`)."""
    if not masks:
        return 0
    names = masks[0].keys()
    return sum(int(torch.stack([m[n] for m in masks]).any(0).sum()) for n in names)


def overlap_ratio(masks: Sequence[Mapping[str, torch.Tensor]]) -> float:
    """Overlap Ratio, Eq. 4: ‖∩ M_t‖₀ / ‖∪ M_t‖₀ over any set of task masks."""
    if not masks:
        raise ValueError("overlap_ratio needs at least one mask")
    names = list(masks[0].keys())
    for m in masks[1:]:
        if list(m.keys()) != names and set(m.keys()) != set(names):
            raise ValueError("masks cover different parameters")
    inter = union = 0
    for n in names:
        stacked = torch.stack([m[n] for m in masks])
        inter += int(stacked.all(0).sum())
        union += int(stacked.any(0).sum())
    return inter / union if union else 1.0


def overlap_matrix(task_masks: Mapping[str, Mapping[str, torch.Tensor]]) -> dict[str, float]:
    """Pairwise Overlap Ratio, keyed ``"a|b"`` for every unordered pair of tasks (in the given order)."""
    return {
        f"{a}|{b}": overlap_ratio([task_masks[a], task_masks[b]])
        for a, b in itertools.combinations(list(task_masks), 2)
    }


def chance_overlap(densities: Sequence[float]) -> float:
    """The Overlap Ratio that independent random masks of these densities have in expectation: the
    expected intersection ∏ d_t over the expected union 1 - ∏ (1 - d_t); for two masks
    d1·d2 / (d1 + d2 - d1·d2). An OR at this level says nothing about shared structure."""
    inter = math.prod(densities)
    union = 1.0 - math.prod(1.0 - d for d in densities)
    return inter / union if union > 0 else 1.0


def max_overlap(densities: Sequence[float]) -> float:
    """The largest Overlap Ratio masks of these densities can have (nested masks): min d / max d."""
    return min(densities) / max(densities) if max(densities) > 0 else 1.0


def normalised_overlap(ratio: float, densities: Sequence[float]) -> float:
    """(OR - chance) / (max possible - chance): 0 at chance, 1 for nested masks, below 0 for masks that
    avoid each other; NaN where the densities leave no room (max = chance, e.g. all-ones masks)."""
    chance, top = chance_overlap(densities), max_overlap(densities)
    if top - chance <= 1e-12:
        return math.nan
    return (ratio - chance) / (top - chance)


def overlap_report(task_masks: Mapping[str, Mapping[str, torch.Tensor]]) -> dict:
    """Overlap Ratios of all masks and of every pair, each beside its chance level, its maximum for the
    densities and the normalised overlap (results.json ``overlap``)."""
    dens = {t: density(m) for t, m in task_masks.items()}
    pairs = overlap_matrix(task_masks)

    def beside(ratio: float, tasks: Sequence[str]) -> dict:
        d = [dens[t] for t in tasks]
        return {"or": ratio, "chance": chance_overlap(d), "max": max_overlap(d),
                "normalised": normalised_overlap(ratio, d)}  # fmt: skip

    return {
        "all": overlap_ratio(list(task_masks.values())),
        "pairwise": pairs,
        "baseline": {
            "all": beside(overlap_ratio(list(task_masks.values())), list(task_masks)),
            "pairwise": {k: beside(v, k.split("|")) for k, v in pairs.items()},
        },
    }
