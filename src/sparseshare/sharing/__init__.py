"""Sharing mechanisms: modules with ``loss(batch, task)``, ``step(optimizer, task)`` and shared names."""

from sparseshare.sharing.cross_stitch_tagger import CrossStitchSharing
from sparseshare.sharing.hard import HardSharing
from sparseshare.sharing.hierarchical import HierarchicalSharing
from sparseshare.sharing.registry import MECHANISMS, build_mechanism
from sparseshare.sharing.sparse import SparseSharing

__all__ = [
    "MECHANISMS",
    "CrossStitchSharing",
    "HardSharing",
    "HierarchicalSharing",
    "SparseSharing",
    "build_mechanism",
]
