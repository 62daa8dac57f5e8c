"""Training checkpoints stored as safetensors plus JSON: loading one can never execute code.

A run directory may come from someone else, so checkpoints use no code-executing serialisation format.
Tensors go into a safetensors file; everything else (optimizer hyper-parameters, non-tensor optimizer
state, trainer progress) is JSON held in one safetensors metadata entry, ``"sparseshare"``.

Safetensors quirks handled here:

* it refuses tensors that share storage, so such tensors are cloned before saving;
* its metadata map is a hash map whose order varies from one save to the next, so all metadata lives in
  one entry (``json.dumps(..., sort_keys=True)``), which keeps files byte-identical for identical inputs;
* versions before 0.5 write an unreadable header for an empty tensor dict with metadata, so that file is
  written here directly (the same bytes the fixed versions write);
* a tensor named ``__metadata__`` gives an unreadable file, so that name is refused;
* loaded tensors are memory-mapped from the file, so they are copied before being returned;
* the whole header (tensor index plus metadata) is limited to 100 MB.
"""

from __future__ import annotations

import contextlib
import json
import numbers
import struct
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from sparseshare import atomic
from sparseshare.errors import RunError

METADATA_KEY = "sparseshare"
TRAINING_STATE_FORMAT = "sparseshare/training-state"
TRAINING_STATE_VERSION = 1

_COMMIT_HOOKS: list[Callable[[], None]] = []


@contextlib.contextmanager
def on_commit(hook: Callable[[], None]):
    """Within the block, ``hook()`` runs at every :func:`committed` point (a Ray worker sends the files
    written since the last one back to the driver there; experiments/run/cluster.py)."""
    _COMMIT_HOOKS.append(hook)
    try:
        yield
    finally:
        _COMMIT_HOOKS.remove(hook)


def committed() -> None:
    """A consistent point of a resumable computation: the files written so far resume it (an epoch's
    checkpoint pair, an IMP level's record and next mask)."""
    for hook in list(_COMMIT_HOOKS):
        hook()


# JSON tags for values that plain JSON cannot represent; a dict with exactly one of these keys is a tag.
_TUPLE, _TENSOR, _DICT = "__tuple__", "__tensor__", "__dict__"
_TAGS = frozenset({_TUPLE, _TENSOR, _DICT})


# ---------------------------------------------------------------------------------------------------------
# Plain tensor files


def _prepare(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU copies safetensors accepts; tensors sharing storage are cloned."""
    out: dict[str, torch.Tensor] = {}
    seen_storages: set[int] = set()
    for name in sorted(tensors):
        tensor = tensors[name]
        if not isinstance(name, str):
            raise TypeError(f"tensor names must be strings, got {name!r}")
        if name == "__metadata__":
            raise ValueError("'__metadata__' is reserved by safetensors and cannot name a tensor")
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(tensor).__name__}")
        t = tensor.detach().cpu().contiguous()
        storage = t.untyped_storage()
        if storage.nbytes() > 0:
            if storage.data_ptr() in seen_storages:
                t = t.clone()
            else:
                seen_storages.add(storage.data_ptr())
        out[name] = t
    return out


def _empty_file_bytes(metadata: dict[str, str] | None) -> bytes:
    """A safetensors file without tensors: 8-byte little-endian header size, JSON header padded to 8."""
    header: dict[str, object] = {"__metadata__": metadata} if metadata is not None else {}
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


def save_tensors(
    tensors: Mapping[str, torch.Tensor], path: str | Path, metadata: Mapping[str, object] | None = None
) -> None:
    """Write ``tensors`` and JSON ``metadata`` to a safetensors file, atomically and deterministically.

    The file is written beside ``path`` and renamed over it (``sparseshare.atomic``), so a crash never
    leaves a half-written checkpoint under the real name. Identical inputs give byte-identical files.
    ``metadata`` must be JSON-serialisable (Infinity and NaN are allowed); its dict keys come back as
    strings.
    """
    path = Path(path)
    meta = None if metadata is None else {METADATA_KEY: json.dumps(metadata, sort_keys=True)}
    prepared = _prepare(tensors)
    with atomic.replacing(path) as tmp:
        if prepared:
            save_file(prepared, str(tmp), metadata=meta)
        else:
            tmp.write_bytes(_empty_file_bytes(meta))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _damaged(path: Path, fault: str) -> RunError:
    return RunError(f"{path}: damaged checkpoint ({fault}): delete it to restart this unit")


def load_tensors(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a file written by `save_tensors`: its tensors (on ``device``) and metadata ({} when none).

    Any fault in the file (missing, unreadable, truncated, not safetensors, bad metadata JSON) raises
    `RunError` with a one-line message naming the file.
    """
    path = Path(path)
    device = torch.device(device)  # a bad device is the caller's bug, not a damaged file
    if not path.exists():
        raise RunError(f"{path}: checkpoint not found")
    if path.is_dir():
        raise RunError(f"{path}: is a directory, not a checkpoint")
    if not path.is_file():  # a device or a pipe (a link to /dev/zero): read, it would never end
        raise RunError(f"{path}: not a regular file (a device or a pipe), so not a checkpoint")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = f.metadata() or {}
            mapped = {name: f.get_tensor(name) for name in sorted(f.keys())}
    except Exception as exc:  # the file is untrusted input: any failure to parse it is damage
        raise _damaged(path, _one_line(exc)) from exc
    # Copy: the loaded tensors are memory-mapped from the file, which may be replaced or truncated later.
    tensors = {name: t.to(device=device, copy=True) for name, t in mapped.items()}
    text = header.get(METADATA_KEY)
    if text is None:
        return tensors, {}
    try:
        metadata = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _damaged(path, f"metadata is not valid JSON: {_one_line(exc)}") from exc
    if not isinstance(metadata, dict):
        raise _damaged(path, f"metadata is a JSON {type(metadata).__name__}, not an object")
    return tensors, metadata


# ---------------------------------------------------------------------------------------------------------
# Tagged JSON: tuples, non-string dict keys and tensors nested in JSON-like data


def _encode(value: object, where: tuple, add_tensor: Callable[[tuple, torch.Tensor], str]) -> object:
    """JSON-ready form of ``value``; tensors are handed to ``add_tensor`` and replaced by a reference."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, torch.Tensor):
        return {_TENSOR: add_tensor(where, value)}
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, tuple):
        return {_TUPLE: [_encode(v, (*where, i), add_tensor) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, (*where, i), add_tensor) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        keys = list(value)
        if all(isinstance(k, str) for k in keys) and not (len(keys) == 1 and keys[0] in _TAGS):
            return {k: _encode(value[k], (*where, k), add_tensor) for k in keys}
        with contextlib.suppress(TypeError):  # sorted when possible: equal dicts give equal bytes
            keys = sorted(keys)
        pairs = [[_encode(k, where, add_tensor), _encode(value[k], (*where, k), add_tensor)] for k in keys]
        return {_DICT: pairs}
    where_text = "/".join(map(str, where)) or "<root>"
    raise TypeError(f"{where_text}: cannot store a {type(value).__name__} in a checkpoint")


def _decode(value: object, tensors: Mapping[str, torch.Tensor], path: Path) -> object:
    """Inverse of `_encode`; a reference to a tensor missing from the file is damage."""
    if isinstance(value, list):
        return [_decode(v, tensors, path) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((tag, inner),) = value.items()
        if tag == _TUPLE and isinstance(inner, list):
            return tuple(_decode(v, tensors, path) for v in inner)
        if tag == _TENSOR and isinstance(inner, str):
            if inner not in tensors:
                raise _damaged(path, f"tensor {inner!r} is referenced but missing")
            return tensors[inner]
        if tag == _DICT and isinstance(inner, list):
            out = {}
            for pair in inner:
                if not (isinstance(pair, list) and len(pair) == 2):
                    raise _damaged(path, "malformed dict entry in metadata")
                key, item = _decode(pair[0], tensors, path), _decode(pair[1], tensors, path)
                try:
                    out[key] = item
                except TypeError as exc:  # an unhashable key
                    raise _damaged(path, f"bad dict key in metadata: {_one_line(exc)}") from exc
            return out
        if tag in _TAGS:
            raise _damaged(path, f"malformed {tag} entry in metadata")
    return {k: _decode(v, tensors, path) for k, v in value.items()}


# ---------------------------------------------------------------------------------------------------------
# Training state: model + optimizer + trainer progress in one file


def _optimizer_tensor_name(where: tuple) -> str:
    """File key of a tensor inside the optimizer state: ``optim/<param index>/<state key>`` for state."""
    head, rest = where[0], where[1:]
    prefix = {"state": "optim", "param_groups": "optim_groups"}.get(head, f"optim_other/{head}")
    return "/".join([prefix, *map(str, rest)])


def save_training_state(
    path: str | Path,
    model_state: Mapping[str, torch.Tensor],
    optimizer_state: dict,
    trainer: Mapping[str, object],
) -> None:
    """Save everything needed to resume training in one safetensors file, written atomically.

    Model tensors are stored as ``model/<name>``, optimizer per-parameter state tensors as
    ``optim/<param index>/<state key>``. The optimizer's param groups, its non-tensor state values and the
    ``trainer`` mapping (epoch, best score, history, ...) are JSON metadata; tuples and non-string dict keys
    are tagged so that they come back with their types.
    """
    tensors: dict[str, torch.Tensor] = {}

    def adder(naming: Callable[[tuple], str]) -> Callable[[tuple, torch.Tensor], str]:
        def add(where: tuple, tensor: torch.Tensor) -> str:
            name = naming(where)
            if name in tensors:
                raise ValueError(f"two checkpoint tensors would both be named {name!r}")
            tensors[name] = tensor
            return name

        return add

    model_keys = list(model_state)
    add_model = adder(lambda where: f"model/{where[0]}")
    for key in model_keys:
        if not isinstance(key, str) or not isinstance(model_state[key], torch.Tensor):
            raise TypeError(f"model state entry {key!r} is not a named tensor")
        add_model((key,), model_state[key])
    optimizer_json = _encode(dict(optimizer_state), (), adder(_optimizer_tensor_name))
    metadata = {
        "format": TRAINING_STATE_FORMAT,
        "version": TRAINING_STATE_VERSION,
        "model_keys": model_keys,
        "optimizer": optimizer_json,
        "trainer": _encode(dict(trainer), (), adder(lambda where: "/".join(["trainer", *map(str, where)]))),
    }
    save_tensors(tensors, path, metadata)


def load_training_state(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], dict, dict]:
    """Read a file written by `save_training_state`: (model_state, optimizer_state, trainer).

    The optimizer state loads with ``optimizer.load_state_dict``; tensors are on ``device`` (the optimizer
    moves its state next to its parameters anyway). Faults raise `RunError` naming the file.
    """
    path = Path(path)
    tensors, metadata = load_tensors(path, device)
    if metadata.get("format") != TRAINING_STATE_FORMAT:
        raise _damaged(path, "not a training-state checkpoint")
    if metadata.get("version") != TRAINING_STATE_VERSION:
        raise _damaged(path, f"unsupported training-state version {metadata.get('version')!r}")
    model_keys, optimizer_json, trainer_json = (
        metadata.get("model_keys"),
        metadata.get("optimizer"),
        metadata.get("trainer"),
    )
    if not (
        isinstance(model_keys, list)
        and all(isinstance(k, str) for k in model_keys)
        and isinstance(optimizer_json, dict)
        and isinstance(trainer_json, dict)
    ):
        raise _damaged(path, "training-state metadata is incomplete")
    model_state = {}
    for key in model_keys:
        name = f"model/{key}"
        if name not in tensors:
            raise _damaged(path, f"model tensor {key!r} is missing")
        model_state[key] = tensors[name]
    try:
        optimizer_state = _decode(optimizer_json, tensors, path)
        trainer = _decode(trainer_json, tensors, path)
    except RecursionError as exc:
        raise _damaged(path, "metadata is nested too deeply") from exc
    if not (isinstance(optimizer_state, dict) and isinstance(trainer, dict)):
        raise _damaged(path, "training-state metadata is malformed")
    return model_state, optimizer_state, trainer
