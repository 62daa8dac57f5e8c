"""Run-directory life cycle: create or resume, never overwrite a finished run."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from sparseshare import paths
from sparseshare.errors import RunError
from sparseshare.experiments.schema import to_dict

if TYPE_CHECKING:
    from sparseshare.experiments.config import ExperimentConfig


def _config_text(cfg: ExperimentConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def finished_results(cfg: ExperimentConfig, out: Path) -> dict | None:
    """The results of ``out`` if it is a finished run of ``cfg``; None if unfinished or absent.

    A finished run of a different config is an error: its results are not this config's."""
    if not paths.results_json(out).exists():
        return None
    if not paths.config(out).exists() or paths.config(out).read_text() != _config_text(cfg):
        raise RunError(f"{out}: holds a finished run of a different config; choose another --out")
    return json.loads(paths.results_json(out).read_text())


def open_run(cfg: ExperimentConfig, out: Path) -> Path:
    """Create ``out`` for ``cfg`` or resume it; a finished run or a different config is refused."""
    if paths.results_json(out).exists():
        raise RunError(f"{out}: this run is finished (results.json exists); choose another --out")
    text = _config_text(cfg)
    if paths.config(out).exists():
        if paths.config(out).read_text() != text:
            raise RunError(
                f"{out}: holds an unfinished run of a different config; resume it with that "
                f"config or choose another --out"
            )
    else:
        out.mkdir(parents=True, exist_ok=True)
        paths.config(out).write_text(text)
    return out


def write_json_atomic(obj, path: Path) -> None:
    """Write, then rename: readers see the old file or the new one; concurrent writers (run --jobs
    workers writing the same preprocess.json) each rename their own temporary file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f"{path.suffix}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    tmp.replace(path)


class MetricsLog:
    """Appends one JSON line per event to ``metrics.jsonl``."""

    def __init__(self, run: Path):
        self.path = paths.metrics_log(run)

    def __call__(self, record: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
