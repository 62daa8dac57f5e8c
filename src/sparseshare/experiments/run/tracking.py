"""Experiment tracking for ``sparseshare run --log tensorboard|mlflow``.

The run's ``metrics.jsonl`` files (the run's own and each sweep point's) are followed, not the calls
that write them: Ray workers' records reach them through the driver, from other processes. A background
thread reads what was appended every few seconds, and the end of the run (finished, failed or
interrupted) reads the rest. Each backend remembers the byte offset it logged up to per file in
``tracking.json`` (written atomically after each pass), with the MLflow run ids, so a resumed run logs
only what it adds, into the same MLflow runs.

Epoch records (``epoch``) and IMP level records (``phase: search``, step ``level``) become scalars:
``<phase>/loss``, ``<phase>/dev_mean``, ``<phase>/dev/<task>/<metric>``; ``search/<task>/dev``,
``search/<task>/density``, ``search/<task>/all/<metric>``. Other records (data, repair, search_done...)
are TensorBoard text; MLflow gets the metrics.jsonl files themselves as artifacts at the end.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from sparseshare import paths
from sparseshare.errors import ConfigError
from sparseshare.experiments.config.schema import flatten, to_dict
from sparseshare.run_dir import read_json, write_json_atomic
from sparseshare.tracking import (
    BACKENDS,
    add_scalars,
    check,
    first_line,
    log_metrics,
    log_params,
    mlflow_uri,
    scalars,
)

__all__ = ["BACKENDS", "INTERVAL", "Tracker", "check", "scalars", "tracked"]

if TYPE_CHECKING:
    from sparseshare.experiments.config.experiment import ExperimentConfig

logger = logging.getLogger("sparseshare")

INTERVAL = 5.0  # seconds between two reads of the logs while the run goes on


class TensorBoard:
    """One SummaryWriter per run directory: ``<run>/tensorboard``, a sweep point's in
    ``<run>/tensorboard/<point>`` (TensorBoard shows each as a run of its own)."""

    name = "tensorboard"

    def __init__(self, run: Path):
        self.root, self.writers = paths.tensorboard_dir(run), {}

    def _writer(self, source: str):
        from torch.utils.tensorboard import SummaryWriter

        if source not in self.writers:
            folder = self.root / paths.part(source) if source else self.root
            self.writers[source] = SummaryWriter(log_dir=str(folder))
        return self.writers[source]

    def write(self, source: str, records: list[tuple[int, dict]]) -> None:
        writer = self._writer(source)
        for line, record in records:
            found = scalars(record)
            if found is None:
                writer.add_text(f"events/{record.get('phase', '')}", json.dumps(record), global_step=line)
                continue
            add_scalars(writer, *found)
        writer.flush()

    def close(self, status: str, files: dict[str, Path]) -> None:
        for writer in self.writers.values():
            writer.close()


class MLflow:
    """One MLflow run per run directory (a sweep point's is a child of the sweep's), in the experiment
    named by the config; params: the config's flattened keys. Its ids are kept in ``state`` for resumes."""

    name = "mlflow"

    def __init__(self, run: Path, state: dict, configs: dict[str, ExperimentConfig]):
        from mlflow.tracking import MlflowClient

        uri = mlflow_uri(paths.mlruns(run))
        if state.get("uri") != uri:  # another tracking store: everything goes to it afresh
            state.clear()
            state.update(uri=uri, runs={}, files={})
        self.client, self.state, self.configs, self.run = MlflowClient(tracking_uri=uri), state, configs, run
        try:
            self.experiment = self._experiment(configs[""].name)
            for source in configs:
                self._run_id(source)
        except Exception as e:
            raise ConfigError(f"--log mlflow: cannot start tracking at {uri}: {first_line(e)}") from None

    def _experiment(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        return found.experiment_id if found is not None else self.client.create_experiment(name)

    def _run_id(self, source: str) -> str:
        """The source's MLflow run, made (with the config as params) the first time, else running again."""
        runs = self.state["runs"]
        if source in runs:
            self.client.update_run(runs[source], status="RUNNING")
            return runs[source]
        tags = {"mlflow.parentRunId": self._run_id("")} if source else {}
        made = self.client.create_run(self.experiment, run_name=source or self.run.name, tags=tags)
        log_params(self.client, made.info.run_id, flatten(to_dict(self.configs[source])))
        runs[source] = made.info.run_id
        return made.info.run_id

    def write(self, source: str, records: list[tuple[int, dict]]) -> None:
        found = [f for _, record in records if (f := scalars(record)) is not None]
        log_metrics(self.client, self._run_id(source), found)

    def close(self, status: str, files: dict[str, Path]) -> None:
        for source, run_id in self.state["runs"].items():
            if source in files and files[source].is_file():
                self.client.log_artifact(run_id, str(files[source]))
            self.client.set_terminated(run_id, status)


def _new_lines(path: Path, offset: int) -> tuple[int, list[bytes]]:
    """The whole lines appended to ``path`` after ``offset``, and the offset after them (a line still
    being written waits for the next read)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return offset, []
    if not stat.S_ISREG(info.st_mode):
        return offset, []
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(info.st_size - offset)
    end = data.rfind(b"\n") + 1
    return offset + end, data[:end].splitlines()


def _records(lines: list[bytes], first: int) -> list[tuple[int, dict]]:
    """Each line's number in its file (``first``: the first's) and its record; an unreadable line (a
    writer killed mid-line, then appended to) is skipped."""
    out = []
    for i, line in enumerate(lines):
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict):
                out.append((first + i, record))
    return out


class Tracker:
    """Logs each new record of the run's metrics.jsonl files to the backends (see the module's text)."""

    def __init__(self, run: Path, configs: dict[str, ExperimentConfig], backends: list[str]):
        self.run = run
        self.path = paths.tracking_state(run)
        self.state = read_json(self.path, "tracking state") if self.path.exists() else {}
        self.files = {s: paths.metrics_log(run if not s else paths.point_dir(run, s)) for s in configs}
        self.backends = []
        for name in backends:
            own = self.state.setdefault(name, {})
            own.setdefault("files", {})
            self.backends.append(TensorBoard(run) if name == "tensorboard" else MLflow(run, own, configs))
        self.failed = False

    def drain(self) -> None:
        """Log what was appended since the last pass; a backend's failure is one warning, and its
        offsets stay where they were (the next pass, or a resume, tries again)."""
        for backend in self.backends:
            offsets = self.state[backend.name]["files"]
            for source, path in self.files.items():
                rel = path.relative_to(self.run).as_posix()
                done = offsets.get(rel, {"offset": 0, "lines": 0})
                if os.path.isfile(path) and os.path.getsize(path) < done["offset"]:  # a new file
                    done = {"offset": 0, "lines": 0}
                offset, lines = _new_lines(path, done["offset"])
                if not lines:
                    continue
                try:
                    backend.write(source, _records(lines, done["lines"]))
                except Exception as e:
                    self.warn(backend.name, e)
                    break
                offsets[rel] = {"offset": offset, "lines": done["lines"] + len(lines)}
                write_json_atomic(self.state, self.path)

    def warn(self, name: str, e: BaseException) -> None:
        if not self.failed:
            logger.warning(
                "--log %s: %s (the run goes on; a resume logs what was missed)", name, first_line(e)
            )
        self.failed = True

    def close(self, status: str) -> None:
        self.drain()
        for backend in self.backends:
            try:
                backend.close(status, self.files)
            except Exception as e:
                self.warn(backend.name, e)
        write_json_atomic(self.state, self.path)


def _configs(cfg: ExperimentConfig) -> dict[str, ExperimentConfig]:
    """The run directories of a run by source ("": the run's own; a sweep point's name) and their configs."""
    if not cfg.sweep:
        return {"": cfg}
    from sparseshare.experiments.run.sweep import sweep_points

    return {"": cfg, **{p.name: p.cfg for p in sweep_points(cfg)}}


@contextlib.contextmanager
def tracked(
    cfg: ExperimentConfig, run: Path, backends: list[str], interval: float = INTERVAL
) -> Iterator[None]:
    """Log the run's records to ``backends`` while the block runs, and the rest when it ends, however
    it ends (MLflow's run status says how: FINISHED, FAILED or KILLED). No backend: nothing is done."""
    if not backends:
        yield
        return
    tracker = Tracker(Path(run), _configs(cfg), list(dict.fromkeys(backends)))
    stop = threading.Event()

    def follow() -> None:
        while not stop.wait(interval):
            try:
                tracker.drain()
            except Exception as e:  # the state file unwritable, say: the run goes on
                tracker.warn("tracking", e)

    thread = threading.Thread(target=follow, name="sparseshare-tracking", daemon=True)
    thread.start()
    status = "FAILED"
    try:
        yield
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        stop.set()
        thread.join()
        try:
            tracker.close(status)
        except Exception as e:  # never hides how the run itself ended
            tracker.warn("tracking", e)
