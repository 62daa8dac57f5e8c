"""Pure pruning strategies and schedules.

Names are imported on first use (PEP 562), so that the torch-free parts (``defaults``: the prunable
globs the search's settings name) load without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_EXPORTS = {
    "DEFAULT_EXCLUDE": "sparseshare.pruning.defaults",
    "DEFAULT_INCLUDE": "sparseshare.pruning.defaults",
    "imp_densities": "sparseshare.pruning.schedules",
    "polynomial_sparsity": "sparseshare.pruning.schedules",
    "prunable_names": "sparseshare.pruning.prunable",
    "prune": "sparseshare.pruning.magnitude",
    "prune_global": "sparseshare.pruning.magnitude",
    "prune_layerwise": "sparseshare.pruning.magnitude",
    "prune_to_sparsity": "sparseshare.pruning.magnitude",
}

__all__ = [
    "DEFAULT_EXCLUDE",
    "DEFAULT_INCLUDE",
    "imp_densities",
    "polynomial_sparsity",
    "prunable_names",
    "prune",
    "prune_global",
    "prune_layerwise",
    "prune_to_sparsity",
]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'sparseshare.pruning' has no attribute '{name}'")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from sparseshare.pruning.defaults import DEFAULT_EXCLUDE, DEFAULT_INCLUDE
    from sparseshare.pruning.magnitude import prune, prune_global, prune_layerwise, prune_to_sparsity
    from sparseshare.pruning.prunable import prunable_names
    from sparseshare.pruning.schedules import imp_densities, polynomial_sparsity
