"""The one registry of sharing mechanisms; an unknown name fails with the valid names."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from sparseshare.errors import ConfigError
from sparseshare.sharing.hard import HardSharing
from sparseshare.sharing.sparse import SparseSharing

MECHANISMS: dict[str, Callable[..., nn.Module]] = {
    "hard": HardSharing,
    "sparse": SparseSharing,
}


def build_mechanism(name: str, model: nn.Module, **kwargs) -> nn.Module:
    """Wrap ``model`` in the named mechanism."""
    try:
        cls = MECHANISMS[name]
    except KeyError:
        raise ConfigError(f"unknown sharing mechanism '{name}'; valid: {sorted(MECHANISMS)}") from None
    return cls(model, **kwargs)
