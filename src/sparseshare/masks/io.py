"""Bit-packed mask files: 1 bit per parameter per task, stored with safetensors (no pickle).

Layout: one uint8 tensor ``"<task>/<param>"`` per (task, parameter) holding ``np.packbits`` of the
flattened mask; shapes live in the safetensors metadata as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from sparseshare.masks.mask import TaskMasks

_SEP = "/"


def pack_bits(mask: torch.Tensor) -> np.ndarray:
    """A bool tensor as ``np.packbits`` of its flattened entries (1 bit each)."""
    return np.packbits(mask.detach().cpu().numpy().astype(bool).ravel())


def unpack_bits(bits: np.ndarray, shape) -> torch.Tensor:
    """The bool tensor of ``shape`` that :func:`pack_bits` packed."""
    n = int(np.prod(shape)) if len(shape) else 1
    return torch.from_numpy(np.unpackbits(np.asarray(bits, dtype=np.uint8))[:n].astype(bool).reshape(shape))


def save_masks(task_masks: TaskMasks, path: str | Path) -> None:
    """Write ``task -> name -> bool tensor`` bit-packed to ``path`` (atomically)."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    shapes: dict[str, list[int]] = {}
    order: dict[str, list[str]] = {}
    for task, mask in task_masks.items():
        if _SEP in task:
            raise ValueError(f"task name '{task}' may not contain '{_SEP}'")
        order[task] = list(mask)
        for name, m in mask.items():
            key = f"{task}{_SEP}{name}"
            arrays[key] = pack_bits(m)
            shapes[key] = list(m.shape)
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(arrays, str(tmp), metadata={"shapes": json.dumps(shapes), "order": json.dumps(order)})
    tmp.replace(path)


def load_masks(path: str | Path) -> TaskMasks:
    """Read a file written by :func:`save_masks`."""
    path = Path(path)
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata() or {}
    shapes = json.loads(meta["shapes"])
    order = json.loads(meta["order"])
    arrays = load_file(str(path))
    out: TaskMasks = {}
    for task, names in order.items():
        out[task] = {}
        for name in names:
            key = f"{task}{_SEP}{name}"
            out[task][name] = unpack_bits(arrays[key], shapes[key])
    return out
