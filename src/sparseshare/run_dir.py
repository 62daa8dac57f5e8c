"""Run-directory files: read every one safely (a damaged one is one line naming it), write atomically,
log events. Opening and resuming runs is in resume.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sparseshare import atomic, paths
from sparseshare.errors import RunError


def read_json(path: Path, what: str = "file") -> Any:
    """A JSON file of a run; a damaged one (nesting deeper than ``nesting.MAX_DEPTH`` included: the
    file may come from someone else) is a one-line RunError naming it."""
    from sparseshare import nesting

    try:
        return nesting.loads(Path(path).read_text())
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
