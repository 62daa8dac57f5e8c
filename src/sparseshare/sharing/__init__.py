"""Sharing mechanisms: modules with ``loss(batch, task)``, ``step(optimizer, task)`` and shared names."""

from sparseshare.sharing.hard import HardSharing
from sparseshare.sharing.registry import MECHANISMS, build_mechanism
from sparseshare.sharing.sparse import SparseSharing

__all__ = ["MECHANISMS", "HardSharing", "SparseSharing", "build_mechanism"]
