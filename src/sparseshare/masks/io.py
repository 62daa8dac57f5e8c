"""Bit-packed masks: 1 bit per parameter per task, in memory and in files (safetensors, no pickle).

File layout: one uint8 tensor ``"<task>/<param>"`` per (task, parameter) holding ``np.packbits`` of the
flattened mask; shapes and the task order live in the safetensors metadata, one JSON entry. In memory
(``SparseSharing`` keeps every task's mask this way) the same bytes are made and read by :func:`pack`
and :func:`unpack_bytes`: torch ops on the mask's own device, so a GPU packs and unpacks without a copy
to the host.
"""

from __future__ import annotations

import json
import math
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


# np.packbits' bit order: the first entry of each group of 8 in the top bit of its byte
_SHIFTS = (7, 6, 5, 4, 3, 2, 1, 0)
_TABLES: dict = {}


def pack(mask: torch.Tensor) -> torch.Tensor:
    """A bool tensor as uint8, 8 entries a byte (the last byte padded with zeros), on its device: the
    bytes ``np.packbits`` writes for its flattened entries."""
    flat = mask.detach().reshape(-1).to(torch.uint8)
    pad = -flat.numel() % 8
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    shifts = torch.tensor(_SHIFTS, dtype=torch.uint8, device=flat.device)
    return (flat.view(-1, 8) << shifts).sum(1, dtype=torch.uint8)


def _table(value: int, device: torch.device) -> torch.Tensor:
    """256 int64s, entry v holding in memory order the 8 bytes byte v unpacks to (``value`` where its bit
    is set, 0 elsewhere): unpacking is one gather of 8 bytes per byte."""
    key = (value, device)
    out = _TABLES.get(key)
    if out is None:
        bits = (torch.arange(256)[:, None] >> torch.tensor(_SHIFTS)) & 1
        out = _TABLES[key] = (bits * value).to(torch.uint8).view(torch.int64).view(256).to(device)
    return out


def unpack_bytes(bits: torch.Tensor, value: int = 1) -> torch.Tensor:
    """The uint8 tensor of ``8 * len(bits)`` entries that :func:`pack`'s bytes ``bits`` hold, on their
    device: ``value`` (1, or 255 for the all-ones bytes of a select) where a bit is set, 0 elsewhere."""
    return _table(value, bits.device).index_select(0, bits.to(torch.int32)).view(torch.uint8)


def unpack(bits: torch.Tensor, shape) -> torch.Tensor:
    """The bool tensor of ``shape`` that :func:`pack` packed into ``bits``, in a storage of its own."""
    n = math.prod(shape)
    flat = unpack_bytes(bits).view(torch.bool)
    return (flat[:n].clone() if flat.numel() != n else flat).view(shape)


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
