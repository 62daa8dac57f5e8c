"""Which parameters may be pruned, by name pattern (fnmatch globs)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from fnmatch import fnmatchcase

import torch

# Encoder weight matrices by default; never embeddings, biases, task heads or CRF transitions.
DEFAULT_INCLUDE: tuple[str, ...] = ("encoder.*weight*",)
DEFAULT_EXCLUDE: tuple[str, ...] = ("*embed*", "*bias*", "heads.*", "*crf*", "*transitions*")


def prunable_names(
    params: Mapping[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]],
    include: Sequence[str] = DEFAULT_INCLUDE,
    exclude: Sequence[str] = DEFAULT_EXCLUDE,
) -> list[str]:
    """Names matching any ``include`` glob and no ``exclude`` glob, with at least 2 dimensions."""
    items = params.items() if isinstance(params, Mapping) else params
    out = []
    for name, p in items:
        if p.dim() < 2:
            continue
        if any(fnmatchcase(name, g) for g in include) and not any(fnmatchcase(name, g) for g in exclude):
            out.append(name)
    return out
