"""Every path inside a run directory, in one place; no name can lead outside it.

Task, system and sweep names reach paths only through here, and each must be one plain path part (the
config already restricts them to letters, digits and a few marks): a '/' or '\\', '..', or a leading '.'
is refused, so nothing is ever written outside the run directory.
"""

from __future__ import annotations

from pathlib import Path

from sparseshare.errors import RunError

# the names of the files a run directory holds, spelled here once
CONFIG = "config.yaml"
LAST_STATE = "last.safetensors"  # a trainer's resumable checkpoint (weights, optimizer, record)
BEST_STATE = "best.safetensors"  # its best-dev weights
WARMUP_STATE = "warmup.safetensors"  # the multi-task warmup's θ^(w)
RECIPE = "network.json"  # how to rebuild a trained module
FINGERPRINT = "fingerprint.json"  # what determined a resumable unit's result (training/fingerprint.py)
LOCK = ".lock"  # held (an OS lock) by the process writing the run: run_lock.py; not an artifact


def part(name: str) -> str:
    """``name`` if it is one plain path component, else a RunError."""
    if not name or "/" in name or "\\" in name or name.startswith(".") or "\0" in name:
        raise RunError(f"'{name}' cannot name a file or folder inside a run directory")
    return name


def config(run: Path) -> Path:
    return run / CONFIG


def lock(run: Path) -> Path:
    """The file whose OS lock the process writing ``run`` holds (its pid, host and command inside)."""
    return run / LOCK


def results_json(run: Path) -> Path:
    return run / "results.json"


def results_md(run: Path) -> Path:
    return run / "results.md"


def masks(run: Path) -> Path:
    return run / "masks.safetensors"


def metrics_log(run: Path) -> Path:
    return run / "metrics.jsonl"


def tracking_state(run: Path) -> Path:
    """What ``--log`` has sent of each metrics.jsonl (byte offsets, MLflow run ids)."""
    return run / "tracking.json"


def tensorboard_dir(run: Path) -> Path:
    return run / "tensorboard"


def mlruns(run: Path) -> Path:
    """The MLflow file store of ``--log mlflow`` when MLFLOW_TRACKING_URI is not set."""
    return run / "mlruns"


def figures(run: Path) -> Path:
    return run / "figures"


def search_dir(run: Path) -> Path:
    return run / "search"


def warmup(run: Path) -> Path:
    return search_dir(run) / WARMUP_STATE


def system_dir(run: Path, system: str, task: str | None = None) -> Path:
    d = run / "systems" / part(system)
    return d / part(task) if task else d


def system_result(run: Path, system: str) -> Path:
    return system_dir(run, system) / "result.json"


def system_recipe(run: Path, system: str, task: str | None = None) -> Path:
    """How to rebuild the system's trained module (JSON; the weights are ``best.safetensors`` beside it)."""
    return system_dir(run, system, task) / RECIPE


def best_weights(run: Path, system: str, task: str | None = None) -> Path:
    return best_state(system_dir(run, system, task))


def last_state(directory: Path) -> Path:
    """A training directory's resumable checkpoint (any directory the trainer was given)."""
    return Path(directory) / LAST_STATE


def best_state(directory: Path) -> Path:
    """A training directory's best-dev weights."""
    return Path(directory) / BEST_STATE


def fingerprint(directory: Path, unit: str | None = None) -> Path:
    """What determined the result of the unit resumed in ``directory``: a trainer's (``unit`` None), the
    warmup's (``"warmup"``), a task's IMP search (its name: beside its levels, in its folder)."""
    if unit is None:
        return Path(directory) / FINGERPRINT
    if unit == "warmup":
        return Path(directory) / f"warmup.{FINGERPRINT}"
    return Path(directory) / part(unit) / FINGERPRINT


def point_dir(run: Path, point: str) -> Path:
    """A sweep point's run directory (``point`` is "axis=label,axis=label")."""
    return run / "points" / part(point)


def preprocess(run: Path) -> Path:
    """Vocabularies or the tabular feature encoder: what ``predict`` and ``export`` need besides weights."""
    return run / "preprocess.json"
