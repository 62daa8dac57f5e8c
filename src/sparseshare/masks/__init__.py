"""Masks are data: `name -> bool tensor` (True = kept), and `task -> mask`."""

from sparseshare.masks.io import load_masks, save_masks
from sparseshare.masks.mask import (
    Mask,
    TaskMasks,
    density,
    ones_like,
    overlap_matrix,
    overlap_ratio,
    union_count,
    validate_mask,
)

__all__ = [
    "Mask",
    "TaskMasks",
    "density",
    "load_masks",
    "ones_like",
    "overlap_matrix",
    "overlap_ratio",
    "save_masks",
    "union_count",
    "validate_mask",
]
