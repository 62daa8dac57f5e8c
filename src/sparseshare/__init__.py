"""sparseshare: multi-task learning where each task owns a pruned subnetwork of shared weights."""

__version__ = "0.1.0"
