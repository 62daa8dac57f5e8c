"""Pure pruning strategies and schedules."""

from sparseshare.pruning.magnitude import prune, prune_global, prune_layerwise, prune_to_sparsity
from sparseshare.pruning.prunable import DEFAULT_EXCLUDE, DEFAULT_INCLUDE, prunable_names
from sparseshare.pruning.schedules import imp_densities, polynomial_sparsity

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
