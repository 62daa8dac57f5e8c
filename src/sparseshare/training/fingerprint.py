"""What determines a resumable unit's result, kept beside its progress, so that a call repeated with other
inputs is refused instead of handed the first call's results.

``warmup``, ``search_masks`` and ``train_jointly`` (and the trainer under them) resume from their
``directory``: a second call returns, or continues, what the first left there. That is right only when
the second call asks for the same thing. Each writes a fingerprint before its first piece of progress:
the settings it trains with, the tasks (names and split sizes), the parameters (names and shapes), the
masks (a digest of every boolean buffer: sparse sharing's and PBFS's masks) and the seed. A later call
computes its own and compares: on a mismatch it raises one line naming the first differing value, how
to start afresh and how to continue on purpose (delete the fingerprint file: the next call records its
own).

Not in it, by design: ``epochs`` of a training run (a cap raised later continues the same run, as a
matched budget does; a cap lowered below what was trained is refused by the trainer) and
``eval_batch_size`` (it does not change a score); the starting weights' values (a script killed and
started again without a seed builds other initial weights, and continuing the checkpoint is what it
wants). Progress written before fingerprints (no file) is continued, with a warning that it could not be
checked.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from sparseshare import atomic, nesting
from sparseshare.errors import RunError
from sparseshare.run_dir import read_bytes

logger = logging.getLogger("sparseshare")

NOT_DETERMINING = ("epochs", "eval_batch_size")


def digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """A short SHA-256 of tensors' names, shapes, dtypes and values (order-independent)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.dtype == torch.bool else t.numpy().tobytes())
    return h.hexdigest()[:16]


def of_training(
    settings, tasks: Mapping[str, Any], module: torch.nn.Module, seed: int, callbacks=(), **extra
) -> dict:
    """The fingerprint of a training run: ``settings`` (less what does not determine the result),
    the tasks' split sizes, ``module``'s parameter shapes and masks, the seed, the callbacks (their
    ``fingerprint()``, else their class) and ``extra`` values."""
    chosen = {k: v for k, v in dataclasses.asdict(settings).items() if k not in NOT_DETERMINING}
    sizes = {t: {s: task.data.num_examples(s) for s in ("train", "dev", "test")} for t, task in tasks.items()}
    masks = {n: b for n, b in module.state_dict().items() if b.dtype == torch.bool}
    return {
        "seed": seed,
        "settings": chosen,
        "tasks": sizes,
        "parameters": {n: list(p.shape) for n, p in module.named_parameters()},
        "masks": digest(masks) if masks else None,
        "callbacks": [
            cb.fingerprint() if hasattr(cb, "fingerprint") else type(cb).__name__ for cb in callbacks
        ],
        **extra,
    }


def _flat(x: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(x, dict):
        out: dict[str, Any] = {}
        for k, v in x.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out or {prefix.rstrip("."): {}}
    return {prefix.rstrip("."): x}


def defaults(**sections) -> dict[str, Any]:
    """Dotted key -> default of every field of the settings dataclasses given (``settings=s`` gives
    ``settings.lr`` and so on), as a fingerprint holds them (JSON values)."""
    out: dict[str, Any] = {}
    for name, obj in sections.items():
        values = {}
        for f in dataclasses.fields(obj):
            if f.default is not dataclasses.MISSING:
                values[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                values[f.name] = f.default_factory()
        out.update(_flat(json.loads(json.dumps({name: values})), ""))
    return out


def first_difference(
    old: dict, new: dict, defaults: Mapping[str, Any] | None = None
) -> tuple[str, Any, Any] | None:
    """The first key (in ``new``'s order, dotted) whose value differs, with both values. A key ``old``
    lacks whose new value is its default in ``defaults`` is no difference: a setting added to sparseshare
    since the fingerprint was written, left at its default, changes nothing."""
    a, b = _flat(old), _flat(new)
    for k in [*b, *(k for k in a if k not in b)]:
        if k not in a and defaults is not None and k in defaults and b[k] == defaults[k]:
            continue
        if a.get(k, "(absent)") != b.get(k, "(absent)"):
            return k, a.get(k, "(absent)"), b.get(k, "(absent)")
    return None


def check(
    path: Path, current: dict, what: str, progress: Path, defaults: Mapping[str, Any] | None = None
) -> None:
    """Record ``current`` at ``path`` on the first call; on a later one, refuse a different fingerprint
    in one line (``what``: the unit, as the message names it; ``progress``: the file whose presence
    means the unit has progress to resume; ``defaults``: :func:`defaults` of the settings, so that a
    setting added since is no difference at its default)."""
    path = Path(path)
    current = json.loads(json.dumps(current))  # as it reads back (tuples as lists)
    if not path.exists():
        if Path(progress).exists():
            logger.warning(
                "%s: continued without a fingerprint (written before sparseshare recorded one): that "
                "its settings, tasks and parameters are this call's could not be checked",
                progress,
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(path, json.dumps(current, indent=1) + "\n")
        return
    try:
        stored = nesting.loads(read_bytes(path, "fingerprint").decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise RunError(f"{path}: damaged fingerprint ({type(e).__name__}); delete it to continue") from None
    diff = first_difference(stored, current, defaults)
    if diff is None:
        return
    key, old, new = diff
    raise RunError(
        f"{path.parent}: holds a {what} made with {key} = {_short(old)}, not this call's {_short(new)}; "
        f"to start afresh use another directory (or delete it), to continue it on purpose delete {path}"
    )


def _short(v: Any) -> str:
    text = json.dumps(v)
    return text if len(text) <= 60 else text[:57] + "..."
