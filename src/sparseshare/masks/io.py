"""Bit-packed mask files: 1 bit per parameter per task, stored with safetensors (no pickle).

Layout: one uint8 tensor ``"<task>/<param>"`` per (task, parameter) holding ``np.packbits`` of the
flattened mask; shapes and the task order live in the safetensors metadata, one JSON entry.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from sparseshare import atomic
from sparseshare.errors import RunError
from sparseshare.masks.mask import TaskMasks

_SEP = "/"
_META = "sparseshare"


def pack_bits(mask: torch.Tensor) -> np.ndarray:
    """A bool tensor as ``np.packbits`` of its flattened entries (1 bit each)."""
    return np.packbits(mask.detach().cpu().numpy().astype(bool).ravel())


def unpack_bits(bits: np.ndarray, shape) -> torch.Tensor:
    """The bool tensor of ``shape`` that :func:`pack_bits` packed."""
    n = int(np.prod(shape)) if len(shape) else 1
    return torch.from_numpy(np.unpackbits(np.asarray(bits, dtype=np.uint8))[:n].astype(bool).reshape(shape))


def save_masks(task_masks: TaskMasks, path: str | Path) -> None:
    """Write ``task -> name -> bool tensor`` bit-packed to ``path`` (atomically). Identical masks give
    byte-identical files: one metadata entry, its JSON with sorted keys (task order kept in a list)."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    shapes: dict[str, list[int]] = {}
    order: list[list] = []
    for task, mask in task_masks.items():
        if _SEP in task:
            raise ValueError(f"task name '{task}' may not contain '{_SEP}'")
        order.append([task, list(mask)])
        for name, m in mask.items():
            key = f"{task}{_SEP}{name}"
            arrays[key] = pack_bits(m)
            shapes[key] = list(m.shape)
    meta = json.dumps({"shapes": shapes, "order": order}, sort_keys=True)
    with atomic.replacing(path) as tmp:
        save_file(arrays, str(tmp), metadata={_META: meta})


def load_masks(path: str | Path) -> TaskMasks:
    """Read a file written by :func:`save_masks`; a missing or damaged file is a one-line RunError."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: mask file not found")
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = json.loads((f.metadata() or {})[_META])
        arrays = load_file(str(path))
        out: TaskMasks = {}
        for task, names in meta["order"]:
            out[task] = {}
            for name in names:
                key = f"{task}{_SEP}{name}"
                out[task][name] = unpack_bits(arrays[key], meta["shapes"][key])
    except Exception as e:  # the file is untrusted input: any fault is damage, said in one line
        fault = " ".join(f"{type(e).__name__}: {e}".split())[:200]
        raise RunError(f"{path}: damaged mask file ({fault})") from None
    return out
