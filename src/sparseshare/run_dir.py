"""Run-directory files: read every one safely (a damaged one is one line naming it), write atomically,
log events. Opening and resuming runs is in resume.py."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from sparseshare import atomic, paths
from sparseshare.errors import RunError

MAX_BYTES = 2**30  # the largest JSON or YAML file of a run read (vocabularies, encoders: tens of MB)


def read_bytes(path: Path, what: str = "file", limit: int = MAX_BYTES) -> bytes:
    """A file of a run, read only when it is a regular file of at most ``limit`` bytes: a link in a
    run from someone else may point at /dev/zero, a pipe that never ends, or a file of any size."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise RunError(f"{path}: no such {what}") from None
    if not stat.S_ISREG(info.st_mode):
        raise RunError(f"{path}: not a regular file (a device, a pipe or a folder), so not a {what}")
    if info.st_size > limit:
        raise RunError(f"{path}: {info.st_size:,} bytes, more than the {limit:,} a {what} may hold")
    with open(path, "rb") as f:
        return f.read(limit + 1)


def read_json(path: Path, what: str = "file") -> Any:
    """A JSON file of a run; a damaged one (nesting deeper than ``nesting.MAX_DEPTH`` included: the
    file may come from someone else) is a one-line RunError naming it, as is one that is not a regular
    file or is larger than ``MAX_BYTES``."""
    from sparseshare import nesting

    try:
        return nesting.loads(read_bytes(Path(path), what).decode("utf-8"))
    except FileNotFoundError:
        raise RunError(f"{path}: no such {what}") from None
    except (ValueError, UnicodeDecodeError) as e:
        run = next((p for p in Path(path).parents if paths.config(p).exists()), Path(path).parent)
        raise RunError(
            f"{path}: damaged {what} ({type(e).__name__}: {e}); repair the run with "
            f"'sparseshare run {paths.config(run)} --out {run} --repair'"
        ) from None


def write_json_atomic(obj, path: Path) -> None:
    """``obj`` as indented JSON, written atomically and never through a link (``sparseshare.atomic``:
    concurrent writers, such as run --jobs workers writing the same preprocess.json, each rename their
    own temporary file)."""
    atomic.write_text(path, json.dumps(obj, indent=2) + "\n")


class MetricsLog:
    """Appends one JSON line per event to ``metrics.jsonl`` (never through a link: ``atomic.append``)."""

    def __init__(self, run: Path):
        self.run = Path(run)
        self.path = paths.metrics_log(self.run)

    def __call__(self, record: dict) -> None:
        atomic.append(self.path, json.dumps(record) + "\n", root=self.run)
