"""Atomic writes: a file (or folder) appears whole under its name, or not at all.

Every writer of a run directory goes through :func:`replacing`: it writes a temporary path beside the
target (``<name>.<pid>.tmp``: concurrent writers, e.g. ``run --jobs`` workers writing the same
preprocess.json, never share one), which is flushed to disk and renamed over the target on success and
removed on any error. A reader sees the old file or the new one; a crash leaves at most a ``*.tmp``.

The process remembers the order of its replacements (:func:`write_order`): a Ray worker sends a commit's
files to the driver in that order, and the driver renames them in it, so a driver killed half-way leaves a
state the worker itself passed through (the trainer's best state before the checkpoint naming it).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

SUFFIX = ".tmp"

_sequence = itertools.count()
_written: dict[str, int] = {}  # absolute path -> when this process last replaced it


def write_order(path: str | Path) -> int:
    """When this process last replaced ``path`` through :func:`replacing` (larger is later; -1: never)."""
    return _written.get(os.path.abspath(path), -1)


def temporary(path: Path) -> Path:
    """The temporary path this process writes ``path`` through."""
    return path.with_name(f"{path.name}.{os.getpid()}{SUFFIX}")


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield the temporary path to write (a file, or a folder to fill) in ``path``'s folder, made if need
    be; on success it replaces ``path`` (a file is fsync'd first), on an error it is removed and the
    error goes on."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary(path)
    try:
        yield tmp
        if tmp.is_file():
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
        _written[os.path.abspath(path)] = next(_sequence)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def write_bytes(path: str | Path, data: bytes) -> None:
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text)
