"""Train an experiment's systems side by side in worker processes: ``sparseshare run --jobs N``.

The systems of an experiment are independent trainings on the same data, each seeded from the config,
so they can run at the same time on different cores. The IMP search (multi-task warmup, then every
task's levels; experiments/systems.py ``search_masks``) is a unit of its own that the systems built on
its masks (``single_subnet``, ``sparse``) wait for. A sweep's units are those of all its points: a
point whose search equals an earlier point's (experiments/sweep.py ``search_key``) waits for that
search and starts from a copy of it, as in a sequential sweep.

Up to N units run at once, each in a worker process (``spawn``: a fresh interpreter, no forked OpenMP
state) that reads the data and runs the unit with ``worker_threads(N)`` torch threads, then logs a
``job`` record (unit, pid, start and end time) to the run's metrics.jsonl; on Linux a worker ends with
the run's process, so a killed run leaves no worker writing on. When a worker is free it
takes the first unit, in the config's order (the search first, a sweep's points in order), whose search
is done. A worker leaves exactly the files a sequential run leaves (the system's result.json and
checkpoints, the search levels), so the caller assembles results.json as before, a parallel run equals
a sequential one with the same number of threads, and a killed run resumes with or without ``--jobs``.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import torch

from sparseshare import paths
from sparseshare.experiments.config import ExperimentConfig
from sparseshare.experiments.schema import from_dict, to_dict

SEARCH = "search"  # the IMP search, a unit before the systems that use its masks
NEEDS_SEARCH = ("single_subnet", "sparse")


@dataclass(eq=False)
class Unit:
    run: Path
    raw: dict  # the run's config as a dict (pickled to the worker)
    name: str  # a system, or SEARCH
    after: Unit | None = None  # the search this unit waits for
    prepare: Callable[[], None] | None = None  # done here, in the parent, just before it starts


def worker_threads(jobs: int) -> int:
    """Torch threads per worker: this process's threads (the cores, or OMP_NUM_THREADS) shared out."""
    return max(1, torch.get_num_threads() // jobs)


def experiment_units(cfg: ExperimentConfig, run: Path, share: Unit | None = None) -> list[Unit]:
    """The unfinished systems of ``run`` in config order, preceded by the search if one needs it.

    ``share``: an earlier run's search unit with the same search; this run's search then waits for it
    and starts from a copy of its folder (and only reads the levels back)."""
    from sparseshare.experiments.sweep import reuse_search

    raw = to_dict(cfg)
    todo = [Unit(run, raw, s) for s in cfg.systems if not paths.system_result(run, s).exists()]
    if not any(u.name in NEEDS_SEARCH for u in todo):
        return todo
    search = Unit(run, raw, SEARCH)
    if share is not None:
        search.after = share
        search.prepare = lambda: reuse_search(paths.search_dir(share.run), run)
    for u in todo:
        if u.name in NEEDS_SEARCH:
            u.after = search
    return [search, *todo]


def die_with_parent(parent: int) -> None:
    """Worker initializer: on Linux, end this worker when the run's process dies (a killed run's workers
    must not go on writing into a run directory that a restarted run resumes)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)


def run_unit(raw: dict, run: str, unit: str, threads: int) -> str:
    """Worker: rebuild the config, read the data, run one unit (writing its files), name it back."""
    from sparseshare.experiments.runner import experiment_kind, run_system
    from sparseshare.experiments.systems import search_masks

    torch.set_num_threads(threads)
    cfg = from_dict(ExperimentConfig, raw)
    start = time.time()
    ctx = experiment_kind(cfg)[1](cfg, Path(run))
    if unit == SEARCH:
        search_masks(ctx)
    else:
        run_system(ctx, unit)
    ctx.log({"phase": "job", "unit": unit, "pid": os.getpid(), "start": start, "end": time.time()})
    return unit


def run_units(units: list[Unit], jobs: int) -> None:
    """Run ``units`` in up to ``jobs`` processes, each when its search is done; the first failure stops
    the dispatch (running units finish) and is raised here."""
    if not units:
        return
    queue, done = list(units), set()
    threads = worker_threads(jobs)
    context = multiprocessing.get_context("spawn")
    workers = min(jobs, len(units))
    with ProcessPoolExecutor(workers, context, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
        running: dict = {}
        while queue or running:
            while len(running) < jobs:
                unit = next((u for u in queue if u.after is None or u.after in done), None)
                if unit is None:
                    break
                queue.remove(unit)
                if unit.prepare is not None:
                    unit.prepare()
                running[pool.submit(run_unit, unit.raw, str(unit.run), unit.name, threads)] = unit
            if not running:
                raise RuntimeError(f"units wait for searches that are not among them: {queue}")
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in finished:
                unit = running.pop(f)
                if f.exception() is not None:
                    wait(running)
                    raise f.exception()
                done.add(unit)


def run_parallel(cfg: ExperimentConfig, run: Path, jobs: int) -> None:
    """Every unfinished system of the run ``run`` of ``cfg``, up to ``jobs`` at once."""
    run_units(experiment_units(cfg, run), jobs)
