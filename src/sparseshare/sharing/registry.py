"""The one registry of sharing mechanisms; an unknown name fails with the valid names."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from sparseshare.errors import ConfigError
from sparseshare.sharing.cross_stitch_tagger import CrossStitchSharing
from sparseshare.sharing.hard import HardSharing
from sparseshare.sharing.hierarchical import HierarchicalSharing
from sparseshare.sharing.sparse import SparseSharing

# Each takes the base network (a MultiTaskTagger for the sequence-only ones) plus keyword options.
MECHANISMS: dict[str, Callable[..., nn.Module]] = {
    "hard": HardSharing,
    "sparse": SparseSharing,
    "cross_stitch": CrossStitchSharing,
    "hierarchical": HierarchicalSharing,
}


def build_mechanism(name: str, model: nn.Module, **kwargs) -> nn.Module:
    """Wrap ``model`` in the named mechanism."""
    try:
        cls = MECHANISMS[name]
    except KeyError:
        raise ConfigError(f"unknown sharing mechanism '{name}'; valid: {sorted(MECHANISMS)}") from None
    return cls(model, **kwargs)
