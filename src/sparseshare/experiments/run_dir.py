"""Run-directory life cycle: create or resume, never overwrite a finished run."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from sparseshare import paths
from sparseshare.errors import RunError
from sparseshare.experiments.config import ExperimentConfig
from sparseshare.experiments.schema import to_dict


def open_run(cfg: ExperimentConfig, out: Path) -> Path:
    """Create ``out`` for ``cfg`` or resume it; a finished run or a different config is refused."""
    if paths.results_json(out).exists():
        raise RunError(f"{out}: this run is finished (results.json exists); choose another --out")
    text = yaml.safe_dump(to_dict(cfg), sort_keys=False)
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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    tmp.replace(path)


class MetricsLog:
    """Appends one JSON line per event to ``metrics.jsonl``."""

    def __init__(self, run: Path):
        self.path = paths.metrics_log(run)

    def __call__(self, record: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
