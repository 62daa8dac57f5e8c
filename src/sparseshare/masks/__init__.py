"""Masks are data: `name -> bool tensor` (True = kept), and `task -> mask`."""

from sparseshare.masks.io import load_masks, save_masks
from sparseshare.masks.mask import (
    Mask,
    TaskMasks,
    chance_overlap,
    density,
    max_overlap,
    normalised_overlap,
    ones_like,
    overlap_matrix,
    overlap_ratio,
    overlap_report,
    union_count,
    validate_mask,
)

__all__ = [
    "Mask",
    "TaskMasks",
    "chance_overlap",
    "density",
    "load_masks",
    "max_overlap",
    "normalised_overlap",
    "ones_like",
    "overlap_matrix",
    "overlap_ratio",
    "overlap_report",
    "save_masks",
    "union_count",
    "validate_mask",
]
