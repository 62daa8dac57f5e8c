"""Sharing mechanisms: modules with ``loss(batch, task)``, ``predict``, ``step(optimizer, task)`` and
``task_parameter_names(task)``; the registry builds them by name."""

from sparseshare.sharing.cross_stitch import CrossStitch, CrossStitchSharing, cross_stitch
from sparseshare.sharing.hard import HardSharing, as_mechanism, shared_parameter_names
from sparseshare.sharing.hierarchical import HierarchicalSharing
from sparseshare.sharing.mmoe import MMoE, mmoe
from sparseshare.sharing.pbfs import PBFS, pbfs
from sparseshare.sharing.ple import PLE, cgc, ple
from sparseshare.sharing.registry import MECHANISMS, NETWORKS, build_mechanism, build_network, build_recipe
from sparseshare.sharing.shared_bottom import SharedBottom, shared_bottom
from sparseshare.sharing.sparse import SparseSharing

__all__ = [
    "MECHANISMS",
    "MMoE",
    "NETWORKS",
    "PBFS",
    "PLE",
    "CrossStitch",
    "CrossStitchSharing",
    "HardSharing",
    "HierarchicalSharing",
    "SharedBottom",
    "SparseSharing",
    "as_mechanism",
    "build_mechanism",
    "build_network",
    "build_recipe",
    "cgc",
    "cross_stitch",
    "mmoe",
    "pbfs",
    "ple",
    "shared_bottom",
    "shared_parameter_names",
]
