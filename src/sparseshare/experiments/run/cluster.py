"""An experiment's units as Ray tasks: ``sparseshare run --jobs N [--address auto|HOST:PORT]``.

The units (experiments/run/units.py: the multi-task warmup, one IMP search per task, each system, those of
every point of a sweep) are independent once the units they wait for are done. With ``--jobs N`` the
driver (this process) submits each unit as a Ray task as soon as what it waits for is done, at most N at
once: on an embedded local Ray started here (no setup) or on an existing cluster (``--address``, or
``RAY_ADDRESS``). What a unit asks of a node is the config's ``resources`` section; its torch threads
follow its CPUs, and a fractional GPU puts several units on one GPU.

No shared filesystem: the driver alone writes the run directory.

- A unit's inputs travel with it through Ray: the data, read once by the driver per data config, as an
  object every unit of that config shares, and the unit's folders (the search's, its system's) as bytes.
- The worker runs the unit in a private temporary run directory. At every commit point (an epoch's
  checkpoint, an IMP level; ``training.checkpoint.committed``) it sends the files changed since the last
  one to a mailbox actor, and its log records as they come; the driver drains the mailbox every half
  second into the run directory (writes are atomic).
- A worker that dies is retried by Ray (``max_retries``); the retry starts from the files the unit last
  committed (kept by the mailbox), so it goes on from its last finished epoch or IMP level. A driver that
  dies loses at most what it had not drained; the same command resumes from the run directory, finished
  units are not rerun. Ctrl-C cancels the submitted tasks, writes what they committed and leaves a
  resumable run.
- A unit that raises a sparseshare error (bad data, bad config) stops the run with that one-line error,
  naming the unit; the other units are cancelled (their progress kept).

Units are deterministic given their inputs, so any ``--jobs N``, local or on a cluster, leaves the numbers
of ``--jobs 1`` run with the same torch threads per unit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch

from sparseshare import atomic, paths
from sparseshare.errors import RunError, SparseshareError
from sparseshare.experiments.config.experiment import ExperimentConfig
from sparseshare.experiments.config.schema import to_dict
from sparseshare.experiments.run.units import Unit, open_context, run_unit
from sparseshare.experiments.systems.context import PreparedData, prepare_data
from sparseshare.run_dir import MetricsLog, write_json_atomic
from sparseshare.training.checkpoint import on_commit
from sparseshare.training.trainer import resolve_device

logger = logging.getLogger("sparseshare")
MAX_RETRIES = 3  # a unit whose worker dies is run again from its last commit, this many times
DRAIN_SECONDS = 0.5


def free_cores() -> int:
    """The cores this process may run on: its CPU affinity (``taskset``, a container's cpuset; not
    ``os.cpu_count()``, which counts the whole machine), fewer where a CPU quota caps the process's
    cgroup (a container's ``--cpus``). Not the load average: a unit's torch threads follow this count, and
    the numbers follow the threads, so it must not depend on what else ran in the last minute."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = _cgroup_quota()
    return max(1, min(cores, math.ceil(quota))) if quota else cores


def _cgroup_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPUs a cgroup quota allows this process (cgroup v2 ``cpu.max``: "QUOTA PERIOD" or "max
    PERIOD"; v1 ``cpu.cfs_quota_us`` over ``cpu.cfs_period_us``, -1 for none), as the cgroup a container
    sees at its root; None: no quota, or no cgroup file to read."""
    try:
        if (root / "cpu.max").is_file():
            quota, period = (root / "cpu.max").read_text().split()[:2]
        else:
            quota = (root / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (root / "cpu" / "cpu.cfs_period_us").read_text().strip()
    except (OSError, ValueError):
        return None
    if not (quota.isdigit() and period.isdigit() and int(period) > 0):
        return None  # "max", -1: no quota
    return int(quota) / int(period)


def local_cpus_per_unit(jobs: int) -> int:
    """A unit's CPUs when the config leaves them open: this machine's free cores shared out by ``jobs``."""
    return max(1, free_cores() // jobs)


def local_workers(units: list[Unit], jobs: int, address: str | None) -> int:
    """How many units a run of ``--jobs jobs`` runs at once: on a local Ray whose units train on the CPU
    with the CPUs the config leaves open (one torch thread each above the free cores), at most the free
    cores, with one line saying so. More single-threaded units than cores only share the cores out
    again, each as many times slower, beside as many more processes' memory.

    Not fewer than the free cores: the driver's share of a core while units run is small (it waits on
    Ray, drains the units' commits every half second and writes them). Measured on 2 cores (a 6-unit
    smoke sweep, the machine shared): 2 units at once finished their units in 17 s where one at a time
    took 27 s; what makes a short ``--jobs 2`` run slower than ``--jobs 1`` is Ray's start (ray.init and
    the workers' imports, 20 s there before the first unit), which fewer workers would not shorten.

    Unchanged: on a cluster (``address``), with units on a GPU (packed there on purpose), and where the
    config sets ``resources.cpus`` (the units sized by hand: the way to run ``jobs`` at once anyway). The
    threads per unit are those of ``jobs`` (``local_cpus_per_unit``), so are the numbers."""
    free = free_cores()
    if address or jobs <= free:
        return jobs
    sized = [u.cfg.resources.of(u.group) for u in units]
    if any(r.cpus is not None for r in sized):
        return jobs
    if any(r.gpus or resolve_device(u.cfg.device).type != "cpu" for u, r in zip(units, sized)):
        return jobs
    logger.warning(
        "--jobs %d on %d free core(s): %d Ray worker(s) at once, one a core (the same numbers; to run %d at "
        "once anyway, set the units' CPUs: --set resources.cpus=1)",
        jobs, free, free, jobs,
    )  # fmt: skip
    return free


def _quiet_ray() -> None:
    """Before Ray is imported: no usage statistics sent anywhere, no dashboard or log noise (the notice
    that a local Ray uses token authentication, its default, included)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)


def _check_reachable(address: str) -> None:
    """A cluster address that does not answer is one line, not a hang."""
    if address == "auto" or address.startswith(("ray://", "local")):
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise RunError(f"--address '{address}': expected HOST:PORT, 'auto' or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise RunError(
            f"--address {address}: no Ray cluster answers there ({e.strerror or type(e).__name__}); "
            f"start one with 'ray start --head' or run without --address"
        ) from None


@contextlib.contextmanager
def ray_session(jobs: int, address: str | None, cpus_per_unit: float) -> Iterator[None]:
    """Join the cluster at ``address`` (or ``RAY_ADDRESS``), else start an embedded local Ray sized for
    ``jobs`` units of ``cpus_per_unit`` CPUs; shut down on the way out."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address and "RAY_AUTH_MODE" not in os.environ and _has_token():
        os.environ["RAY_AUTH_MODE"] = "token"  # read when Ray is imported; 'ray start' checks tokens
    _quiet_ray()
    import ray

    kwargs = {"log_to_driver": False, "configure_logging": False}
    if address:
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise RunError(
                f"--address {address}: cannot join the Ray cluster ({_first_line(e)}); a cluster with "
                f"token authentication needs its token here (~/.ray/auth_token or RAY_AUTH_TOKEN)"
            ) from None
    else:
        cpus = max(free_cores(), int(jobs * cpus_per_unit + 0.999))
        # Ray starts its workers 15 nice levels below the driver: beside any other busy process on the
        # machine the units then starve (measured: 4% of a core each). Our units are the work itself.
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(num_cpus=cpus, include_dashboard=False, **kwargs)
    # Ray's C++ core installs a failure handler for SIGTERM (a stack trace, then exit 15 or abort): a
    # terminated run ends as Ctrl-C does instead, its units cancelled, one line, resumable
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminated) if main else None
    try:
        yield
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
        ray.shutdown()


def _terminated(signum, frame) -> None:
    """SIGTERM in the driver: as Ctrl-C (the dispatch cancels the units, the CLI says how to resume)."""
    raise KeyboardInterrupt


def _has_token() -> bool:
    """Ray's authentication token is here (the places Ray reads it from)."""
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return True
    return (Path.home() / ".ray" / "auth_token").is_file()


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


class Mailbox:
    """Actor between the workers and the driver: the files each unit committed (kept until the unit
    finishes, so a retried unit starts from them), the changes not yet written, and log records."""

    def __init__(self):
        self.latest: dict[str, dict[str, bytes | None]] = {}  # unit id -> path -> bytes (None: deleted)
        self.attempts: dict[str, int] = {}
        self.dirty: dict[str, bytes | None] = {}
        self.logs: list[tuple[str, dict]] = []

    def start(self, uid: str) -> tuple[int, dict[str, bytes | None]]:
        """A unit's attempt number and the files it committed in earlier attempts."""
        self.attempts[uid] = self.attempts.get(uid, 0) + 1
        return self.attempts[uid], dict(self.latest.get(uid, {}))

    def push(self, uid: str, files: dict[str, bytes | None]) -> None:
        """Files in the order the worker wrote them: one written again moves to the end."""
        for into in (self.latest.setdefault(uid, {}), self.dirty):
            for rel, data in files.items():
                into.pop(rel, None)
                into[rel] = data

    def log(self, run: str, record: dict) -> None:
        self.logs.append((run, record))

    def drain(self) -> tuple[dict[str, bytes | None], list[tuple[str, dict]]]:
        out = (self.dirty, self.logs)
        self.dirty, self.logs = {}, []
        return out

    def forget(self, uid: str) -> None:
        self.latest.pop(uid, None)


class _RemoteLog:
    """``ctx.log`` in a worker: records go to the driver through the mailbox, in order."""

    def __init__(self, mailbox, run: str):
        self.mailbox, self.run = mailbox, run

    def __call__(self, record: dict) -> None:
        self.mailbox.log.remote(self.run, json.loads(json.dumps(record, default=str)))


class _Sync:
    """At each commit point: send the files of the private run directory changed since the last one."""

    def __init__(self, root: Path, mailbox, uid: str):
        self.root, self.mailbox, self.uid = root, mailbox, uid
        self.seen = self._stat()

    def _stat(self) -> dict[str, tuple[int, int]]:
        out = {}
        for p in _files(self.root):
            st = p.stat()
            out[p.relative_to(self.root).as_posix()] = (st.st_size, st.st_mtime_ns)
        return out

    def changes(self) -> dict[str, bytes | None]:
        """The files changed since the last call: the deleted ones (None) first, then the written ones in
        the order this process wrote them (atomic.write_order), so any prefix of them, as a killed driver
        may leave, is a state the worker passed through."""
        now = self._stat()
        changed = [rel for rel, st in now.items() if self.seen.get(rel) != st]
        changed.sort(key=lambda rel: (atomic.write_order(self.root / rel), now[rel][1], rel))
        files: dict[str, bytes | None] = {rel: None for rel in sorted(self.seen.keys() - now.keys())}
        files.update({rel: (self.root / rel).read_bytes() for rel in changed})
        self.seen = now
        return files

    def __call__(self) -> None:
        import ray

        files = self.changes()
        if files:
            ray.get(self.mailbox.push.remote(self.uid, files))


def _files(folder: Path) -> Iterator[Path]:
    """The finished files under ``folder`` (not the temporaries of atomic writes, nor links)."""
    return (
        p
        for p in folder.rglob("*")
        if p.is_file() and not p.is_symlink() and not p.name.endswith(atomic.SUFFIX)
    )


def _put_files(root: Path, files: dict[str, bytes | None]) -> None:
    """Write ``files`` (run-relative path -> bytes; None: delete it) under ``root``, each atomically and
    in their order (the order the worker wrote them: _Sync.changes), never through a link (atomic)."""
    for rel, data in files.items():
        path = root / rel
        atomic.check_no_links(path, root, target=data is not None)
        if data is None:
            atomic.remove(path, root)
            continue
        atomic.write_bytes(path, data)


def _work(
    prepared: PreparedData, cfg: ExperimentConfig, rel: str, unit: str, uid: str, inputs: dict,
    threads: int, mailbox, scratch: str,
):  # fmt: skip
    """A Ray worker: run one unit in a private run directory (under ``scratch``, the driver's folder for
    the run's units) from its inputs and its earlier attempts' commits, sending what it commits to the
    driver. Returns the unit's name."""
    import ray

    torch.set_num_threads(threads)
    attempt, committed = ray.get(mailbox.start.remote(uid))
    os.makedirs(scratch, exist_ok=True)  # on another node of a cluster: made there, emptied by each unit
    with tempfile.TemporaryDirectory(prefix="sparseshare-unit-", dir=scratch) as tmp:
        root = Path(tmp)
        _put_files(root, {**inputs, **committed})
        run = root / rel
        run.mkdir(parents=True, exist_ok=True)
        log = _RemoteLog(mailbox, rel)
        ctx = open_context(cfg, run, prepared, log)
        sync = _Sync(root, mailbox, uid)
        start = time.time()
        log({"phase": "job_start", "unit": unit, "pid": os.getpid(), "attempt": attempt, "start": start,
             "input_files": len(inputs), "committed_files": len(committed)})  # fmt: skip
        with on_commit(sync):
            run_unit(ctx, unit)
        log({"phase": "job", "unit": unit, "pid": os.getpid(), "attempt": attempt, "start": start,
             "end": time.time(), "threads": threads})  # fmt: skip
        sync()
    return unit


def _warm() -> int:
    """A worker readies itself (the imports of a unit) before its first unit."""
    import sparseshare.experiments.run.units  # noqa: F401

    return os.getpid()


def _write(top: Path, files: dict[str, bytes | None], logs: list[tuple[str, dict]]) -> None:
    """The driver writes the workers' log records, then what they committed (atomically)."""
    for rel, record in logs:
        MetricsLog(top / rel)(record)
    _put_files(top, files)


def _inputs(top: Path, unit: Unit) -> dict[str, bytes]:
    """The files of the folders ``unit`` reads or resumes, as they are on the driver's disk."""
    return {p.relative_to(top).as_posix(): p.read_bytes() for f in unit.folders() for p in _files(f)}


def _data_key(cfg: ExperimentConfig) -> str:
    """Units whose configs read the same data share one copy of it. The seed draws tabular splits and
    the vectors of words without a pretrained one; sequence data without embeddings does not use it."""
    raw = to_dict(cfg)
    uses_seed = cfg.data.kind != "sequence" or bool(cfg.data.embeddings)
    keys = ("data", "model", "seed") if uses_seed else ("data", "model")
    return json.dumps({k: raw.get(k) for k in keys}, sort_keys=True, default=str)


def _unit_error(unit: Unit, e: BaseException) -> BaseException:
    """A unit's failure as the driver raises it: a sparseshare error keeps its type and one line per
    problem, naming the unit; a dead worker (after Ray's retries) is a RunError."""
    import ray

    cause = getattr(e, "cause", None)
    if isinstance(cause, SparseshareError):
        lines = str(cause).splitlines() or [type(cause).__name__]
        return type(cause)("\n".join(f"unit '{unit.label}': {line}" for line in lines))
    if isinstance(e, (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError)):
        return RunError(
            f"unit '{unit.label}': its worker died {MAX_RETRIES + 1} times; what it committed is kept, "
            f"run the same command again to resume"
        )
    return cause if isinstance(cause, BaseException) else e


def run_units(units: list[Unit], jobs: int, top: Path, address: str | None = None) -> None:
    """Run ``units`` on Ray, at most ``jobs`` at once, each when the units it waits for are done; the
    run directory ``top`` (a run, or a sweep holding the units' runs) is written by this process only."""
    if not units:
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        _check_reachable(address)  # before any data is read
    default_cpus = 1 if address else local_cpus_per_unit(jobs)
    jobs = local_workers(units, jobs, address)
    widest = max(u.cfg.resources.of(u.group).cpus or default_cpus for u in units)
    # the units' private run directories, one folder for the run: a unit cancelled or killed leaves its
    # folder behind, and the driver removes them all when the run ends, however it ends
    scratch = tempfile.mkdtemp(prefix="sparseshare-units-")
    try:
        with ray_session(jobs, address, widest):
            # Started once Ray is up: Ray starts its processes with a preexec_fn, and a fork while another
            # thread runs torch can deadlock the child.
            loader = ThreadPoolExecutor(
                1, "sparseshare-data", initializer=torch.set_num_threads, initargs=(1,)
            )
            try:
                _dispatch(units, jobs, top, _Data(units, loader), default_cpus, scratch)
            finally:
                loader.shutdown(wait=True, cancel_futures=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _load(cfg: ExperimentConfig, run: Path) -> PreparedData:
    """The driver reads a config's data with one thread of BLAS and torch: the cores are the workers'
    (a second team of spinning threads against them runs a hundred times slower)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return prepare_data(cfg.data, cfg.model, cfg.seed, run)


class _Data:
    """Each distinct data config read once by the driver, in a background thread a few configs ahead of
    the units (so no worker waits for the next point's data), put in Ray's object store while units of
    it remain, then dropped."""

    AHEAD = 2

    def __init__(self, units: list[Unit], loader: ThreadPoolExecutor):
        self.loader = loader
        self.key = {u: _data_key(u.cfg) for u in units}
        self.order = [(self.key[u], u) for u in units]
        self.left = Counter(self.key.values())
        self.loading: dict[str, Future] = {}
        self.shared: dict[str, tuple] = {}  # key -> (the prepared data in Ray's store, its preprocessing)
        self.prefetch()

    def prefetch(self) -> None:
        ahead = 0
        for key, unit in self.order:
            if self.left[key] == 0 or key in self.shared:
                continue
            if key not in self.loading:
                self.loading[key] = self.loader.submit(_load, unit.cfg, unit.run)
            ahead += 1
            if ahead >= self.AHEAD:
                return

    def ref(self, unit: Unit):
        """The unit's prepared data in Ray's object store (its run given the preprocessing file)."""
        import ray

        key = self.key[unit]
        if key not in self.shared:
            future = self.loading.pop(key, None) or self.loader.submit(_load, unit.cfg, unit.run)
            prepared = future.result()
            self.shared[key] = (ray.put(prepared), prepared.preprocess)
        elif not paths.preprocess(unit.run).exists():
            write_json_atomic(self.shared[key][1], paths.preprocess(unit.run))
        self.prefetch()
        return self.shared[key][0]

    def done(self, unit: Unit) -> None:
        key = self.key[unit]
        self.left[key] -= 1
        if self.left[key] == 0:
            self.shared.pop(key, None)  # the last reference: Ray frees it


def _dispatch(
    units: list[Unit], jobs: int, top: Path, data: _Data, default_cpus: float, scratch: str
) -> None:
    import ray

    mailbox = ray.remote(Mailbox).options(num_cpus=0).remote()
    work = ray.remote(_work)
    warm = ray.remote(_warm).options(num_cpus=default_cpus)
    for _ in range(jobs):  # workers import torch and sparseshare while the driver reads the data
        warm.remote()
    queue, running, done = list(units), {}, set()

    def drain() -> None:
        _write(top, *ray.get(mailbox.drain.remote()))

    def submit(unit: Unit):
        if unit.prepare is not None:
            unit.prepare()
        prepared = data.ref(unit)
        res = unit.cfg.resources.of(unit.group)
        cpus = res.cpus or default_cpus
        rel = unit.run.relative_to(top).as_posix()
        rel = "" if rel == "." else rel
        options = {
            "num_cpus": cpus,
            "num_gpus": res.gpus,
            "max_retries": MAX_RETRIES,
            "retry_exceptions": False,
            "name": f"sparseshare {unit.label}",
        }
        uid = f"{rel}:{unit.name}"
        return work.options(**options).remote(
            prepared, unit.cfg, rel, unit.name, uid, _inputs(top, unit), max(1, int(cpus)), mailbox, scratch
        ), uid

    try:
        while queue or running:
            while len(running) < jobs:
                unit = next((u for u in queue if all(a in done for a in u.after)), None)
                if unit is None:
                    break
                queue.remove(unit)
                ref, uid = submit(unit)
                running[ref] = (unit, uid)
            if not running:
                raise RuntimeError(f"units wait for units that are not among them: {queue}")
            ready, _ = ray.wait(list(running), num_returns=1, timeout=DRAIN_SECONDS)
            drain()
            for ref in ready:
                unit, uid = running.pop(ref)
                try:
                    ray.get(ref)
                except Exception as e:  # noqa: BLE001 - mapped to the unit's one-line error
                    for other in running:
                        ray.cancel(other, force=True)
                    drain()
                    raise _unit_error(unit, e) from None
                # its last commit was in the drain above: a unit pushes, and waits, before it returns
                ray.get(mailbox.forget.remote(uid))
                data.done(unit)
                done.add(unit)
    except KeyboardInterrupt:
        for ref in running:
            ray.cancel(ref, force=True)
        with contextlib.suppress(Exception):
            drain()
        raise
    except ray.exceptions.RayError as e:  # Ray itself went away under the run (a raylet killed, say)
        raise RunError(
            f"the Ray cluster failed under the run ({type(e).__name__}: {_first_line(e)}); what the "
            f"units committed is kept: run the same command again to resume"
        ) from None
