"""Magnitude pruning as pure functions: ``prune(weights, mask, fraction) -> new mask``.

Algorithm 1, step 5 (sparse sharing): prune ``fraction`` of the *remaining* parameters with the
lowest magnitudes. Global pruning ranks all prunable weights together (the paper's choice);
layer-wise pruning removes the fraction from each tensor separately. Inputs are never mutated;
ties at the threshold are broken by position so exactly ``round(fraction * remaining)`` go.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from sparseshare.masks.mask import Mask


def _check(weights: Mapping[str, torch.Tensor], mask: Mapping[str, torch.Tensor], fraction: float) -> None:
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"pruning fraction must be in [0, 1], got {fraction}")
    missing = [n for n in mask if n not in weights]
    if missing:
        raise KeyError(f"mask names parameters the weights lack: {missing}")


def _prune_flat(scores: torch.Tensor, kept: torch.Tensor, fraction: float) -> torch.Tensor:
    """Return a new kept-vector with ``round(fraction * kept.sum())`` of the lowest scores removed."""
    n_remove = int(round(fraction * int(kept.sum())))
    new = kept.clone()
    if n_remove == 0:
        return new
    idx = torch.nonzero(kept, as_tuple=True)[0]
    # stable sort: equal magnitudes are pruned in index order, so the result is deterministic
    order = torch.sort(scores[idx], stable=True).indices
    new[idx[order[:n_remove]]] = False
    return new


def prune_global(
    weights: Mapping[str, torch.Tensor], mask: Mapping[str, torch.Tensor], fraction: float
) -> Mask:
    """Prune ``fraction`` of the remaining weights across all masked tensors by |w|."""
    _check(weights, mask, fraction)
    names = list(mask)
    if not names:
        return {}
    scores = torch.cat([weights[n].detach().abs().float().reshape(-1).cpu() for n in names])
    kept = torch.cat([mask[n].reshape(-1).cpu() for n in names])
    new = _prune_flat(scores, kept, fraction)
    out: Mask = {}
    start = 0
    for n in names:
        k = mask[n].numel()
        out[n] = new[start : start + k].reshape(mask[n].shape).to(mask[n].device)
        start += k
    return out


def prune_layerwise(
    weights: Mapping[str, torch.Tensor], mask: Mapping[str, torch.Tensor], fraction: float
) -> Mask:
    """Prune ``fraction`` of the remaining weights of each tensor separately by |w|."""
    _check(weights, mask, fraction)
    out: Mask = {}
    for n, m in mask.items():
        scores = weights[n].detach().abs().float().reshape(-1).cpu()
        out[n] = _prune_flat(scores, m.reshape(-1).cpu(), fraction).reshape(m.shape).to(m.device)
    return out


STRATEGIES = {"global": prune_global, "layerwise": prune_layerwise}


def prune(
    weights: Mapping[str, torch.Tensor],
    mask: Mapping[str, torch.Tensor],
    fraction: float,
    strategy: str = "global",
) -> Mask:
    """Dispatch to a named strategy ('global' or 'layerwise')."""
    try:
        fn = STRATEGIES[strategy]
    except KeyError:
        raise ValueError(f"unknown pruning strategy '{strategy}'; valid: {sorted(STRATEGIES)}") from None
    return fn(weights, mask, fraction)


def prune_to_sparsity(
    weights: Mapping[str, torch.Tensor], mask: Mapping[str, torch.Tensor], sparsity: float, strategy: str
) -> Mask:
    """Shrink ``mask`` by magnitude until ``sparsity`` of its entries are pruned (never regrows).

    'layerwise' brings each tensor to the sparsity (TF-MOT's per-layer polynomial pruning); 'global'
    ranks all tensors together. A mask already at least that sparse is returned unchanged (copied).
    """
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity}")
    if strategy == "layerwise":
        out: Mask = {}
        for n, m in mask.items():
            kept, keep = int(m.sum()), round((1.0 - sparsity) * m.numel())
            fraction = (kept - keep) / kept if kept > keep else 0.0
            out[n] = prune_layerwise({n: weights[n]}, {n: m}, fraction)[n]
        return out
    if strategy == "global":
        kept = sum(int(m.sum()) for m in mask.values())
        keep = round((1.0 - sparsity) * sum(m.numel() for m in mask.values()))
        if kept <= keep:
            return {n: m.clone() for n, m in mask.items()}
        return prune_global(weights, mask, (kept - keep) / kept)
    raise ValueError(f"unknown pruning strategy '{strategy}'; valid: ['global', 'layerwise']")
