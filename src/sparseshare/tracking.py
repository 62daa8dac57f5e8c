"""Experiment tracking (TensorBoard, MLflow) for the Python API, and what ``sparseshare run --log`` shares
with it: the backends, the check that their package is there, and the scalars a record holds.

``ss.tracker("tensorboard", folder)`` (or ``"mlflow"``) is a ``log=`` callable for ``ss.warmup``,
``ss.search_masks`` and ``ss.train_jointly``: each epoch's and IMP level's record becomes scalars with
the tags a run's ``metrics.jsonl`` gets under ``--log`` (``<phase>/loss``, ``<phase>/dev_mean``,
``<phase>/dev/<task>/<metric>``; ``search/<task>/dev``, ``search/<task>/density``,
``search/<task>/all/<metric>``), sent as they come. Use it as a context manager (or call ``close``):
an MLflow run then ends FINISHED, FAILED or KILLED as the block did.
"""

from __future__ import annotations

import importlib
import os
import re
import time
from pathlib import Path

from sparseshare.errors import ConfigError

# backend -> the module (and package) it needs, the extra of pyproject.toml that installs it
BACKENDS = {"tensorboard": ("tensorboard", "tensorboard"), "mlflow": ("mlflow", "mlflow")}
SKIPPED = ("phase", "task", "seed", "epoch", "level")  # labels and steps, not measurements
_MLFLOW_KEY = re.compile(r"[^/\w.\- :]")  # the characters MLflow refuses in a metric name


def check(backends: list[str], flag: str = "--log") -> None:
    """A ConfigError naming the extra when a backend's package is missing (or the backend is unknown);
    ``flag``: what asked for it, as the line names it."""
    for name in backends:
        if name not in BACKENDS:
            raise ConfigError(f"{flag}: unknown tracking backend {name!r}; valid: {sorted(BACKENDS)}")
        module, extra = BACKENDS[name]
        try:
            importlib.import_module(module)
            if name == "tensorboard":
                importlib.import_module("torch.utils.tensorboard")
        except ImportError:
            raise ConfigError(
                f"{flag} {name} needs the {module} package: pip install 'sparseshare[{extra}]'"
            ) from None


def scalars(record: dict) -> tuple[int, dict[str, float]] | None:
    """A record's step and its numeric fields by tag; None for a record that has no step."""
    phase = str(record.get("phase", ""))
    if isinstance(record.get("epoch"), int):
        step, prefix = record["epoch"], phase
    elif phase == "search" and isinstance(record.get("level"), int):
        step, prefix = record["level"], f"search/{record.get('task', '')}"
    else:
        return None
    out: dict[str, float] = {}

    def walk(value, tag: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{tag}/{k}")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[tag] = float(value)

    for key, value in record.items():
        if key not in SKIPPED:
            walk(value, f"{prefix}/{key}")
    return step, out


def mlflow_key(tag: str) -> str:
    """``tag`` with the characters MLflow refuses in a metric name replaced by '_'."""
    return _MLFLOW_KEY.sub("_", tag)


def first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:300]


def mlflow_uri(folder: Path) -> str:
    """``$MLFLOW_TRACKING_URI``, else a file store in ``folder`` (MLflow 3 refuses one unless told, which
    is done here: offline, a file store is what there is)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return Path(folder).resolve().as_uri()


def add_scalars(writer, step: int, values: dict[str, float]) -> None:
    """A record's scalars on a TensorBoard ``SummaryWriter``."""
    for tag, value in values.items():
        writer.add_scalar(tag, value, global_step=step)


def log_params(client, run_id: str, params: dict) -> None:
    """``params`` on an MLflow run, as strings, in batches of MLflow's most (100)."""
    from mlflow.entities import Param

    items = [Param(str(k), str(v)[:6000]) for k, v in params.items()]
    for i in range(0, len(items), 100):
        client.log_batch(run_id, params=items[i : i + 100])


def log_metrics(client, run_id: str, found: list[tuple[int, dict[str, float]]]) -> None:
    """Records' scalars (``scalars``' (step, values)) on an MLflow run, in batches of its most (1000)."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric(mlflow_key(k), v, now, step) for step, values in found for k, v in values.items()]
    for i in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[i : i + 1000])


class Tracking:
    """``log=`` for the API's training calls: ``record -> the backend`` (see the module's text); a
    context manager that ends the backend's run as the block ended."""

    backend = ""
    run = None  # the MLflow run id

    def __init__(self) -> None:
        self.closed = False

    def __call__(self, record: dict) -> None:
        if self.closed:
            raise ConfigError(f"tracker('{self.backend}') is closed: make another for another run")
        found = scalars(record)
        if found is not None:
            self._write(*found)

    def _write(self, step: int, values: dict[str, float]) -> None:
        raise NotImplementedError

    def _end(self, status: str) -> None:
        raise NotImplementedError

    def close(self, status: str = "FINISHED") -> None:
        """Flush and end: TensorBoard's writer closed, the MLflow run terminated with ``status``."""
        if not self.closed:
            self.closed = True
            self._end(status)

    def __enter__(self) -> Tracking:
        return self

    def __exit__(self, kind, value, tb) -> None:
        status = "FINISHED" if kind is None else "KILLED" if issubclass(kind, KeyboardInterrupt) else "FAILED"
        self.close(status)


class TensorBoardTracking(Tracking):
    backend = "tensorboard"

    def __init__(self, folder: Path):
        from torch.utils.tensorboard import SummaryWriter

        super().__init__()
        self.writer = SummaryWriter(log_dir=str(folder))

    def _write(self, step: int, values: dict[str, float]) -> None:
        add_scalars(self.writer, step, values)
        self.writer.flush()

    def _end(self, status: str) -> None:
        self.writer.close()


class MLflowTracking(Tracking):
    backend = "mlflow"

    def __init__(self, folder: Path, experiment: str, run_name: str | None, params: dict):
        from mlflow.tracking import MlflowClient

        super().__init__()
        uri = mlflow_uri(folder)
        try:
            self.client = MlflowClient(tracking_uri=uri)
            found = self.client.get_experiment_by_name(experiment)
            exp = found.experiment_id if found is not None else self.client.create_experiment(experiment)
            self.run = self.client.create_run(exp, run_name=run_name).info.run_id
            log_params(self.client, self.run, params)
        except Exception as e:
            raise ConfigError(f"tracker('mlflow'): cannot start tracking at {uri}: {first_line(e)}") from None

    def _write(self, step: int, values: dict[str, float]) -> None:
        log_metrics(self.client, self.run, [(step, values)])

    def _end(self, status: str) -> None:
        self.client.set_terminated(self.run, status)


def tracker(
    backend: str,
    folder: str | Path = "tracking",
    *,
    experiment: str = "sparseshare",
    run_name: str | None = None,
    params: dict | None = None,
) -> Tracking:
    """A ``log=`` callable sending the records of ``ss.warmup``, ``ss.search_masks`` and
    ``ss.train_jointly`` to ``backend`` ('tensorboard': event files in ``folder``; 'mlflow':
    ``$MLFLOW_TRACKING_URI``, else a file store in ``folder``, one MLflow run in ``experiment`` with
    ``params`` logged). A missing package is one line naming the extra (``sparseshare[tensorboard]``,
    ``sparseshare[mlflow]``)."""
    check([backend], "tracker")
    if backend == "tensorboard":
        return TensorBoardTracking(Path(folder))
    return MLflowTracking(Path(folder), experiment, run_name, dict(params or {}))
