"""Scores of mask finders beside IMP, as pure functions: a score per prunable weight, fixed at θ^(w).

Sparse sharing (Sun et al. AAAI 2020, Algorithm 1) finds a task's subnet by Iterative Magnitude Pruning:
each level prunes its *own trained* weights. The finders here instead score every weight once, at the
rewind point θ^(w), and a level keeps the top-scored weights of its density (``training/search.py`` runs
them down IMP's density ladder, each level trained and scored on dev as IMP's are):

- ``oneshot``: |w| at θ^(w), one-shot magnitude pruning (Han et al. 2015, without retraining between
  levels);
- ``snip``: connection sensitivity |g ⊙ w| at θ^(w) (Lee et al., ICLR 2019, Eq. 6 up to the
  normalisation, which does not change the ranking), g the task loss's gradient summed over a few
  training batches;
- ``random``: a seeded uniform random score, a random mask of each density (the usual sanity baseline).

Since the scores are fixed, ranking them down the ladder with :func:`~sparseshare.pruning.magnitude.prune`
(alpha of the remaining per level) keeps exactly the top-scored weights of each level's density (ties by
position): the same masks as pruning straight to that density in one step, and nested.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

FINDERS = ("imp", "oneshot", "snip", "random")


def magnitude_scores(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``oneshot``: |w| of each weight (float32, on the CPU)."""
    return {n: w.detach().abs().float().cpu() for n, w in weights.items()}


def snip_scores(
    weights: Mapping[str, torch.Tensor], grads: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """``snip``: the connection sensitivity |g ⊙ w| (Lee et al. 2019, Eq. 6, unnormalised) of each weight,
    from the loss gradient ``grads`` at the weights ``weights``."""
    missing = [n for n in weights if n not in grads]
    if missing:
        raise KeyError(f"SNIP: no gradient for {missing}")
    return {n: (grads[n].detach().float() * w.detach().float()).abs().cpu() for n, w in weights.items()}


def random_scores(shapes: Mapping[str, torch.Size], seed: int) -> dict[str, torch.Tensor]:
    """``random``: uniform scores from a generator seeded by ``seed``, drawn in the order of ``shapes``
    (the same seed and names give the same scores, whatever the global RNG)."""
    gen = torch.Generator().manual_seed(int(seed))
    return {n: torch.rand(tuple(s), generator=gen) for n, s in shapes.items()}
