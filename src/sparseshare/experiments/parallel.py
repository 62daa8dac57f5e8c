"""Train an experiment's systems side by side in worker processes: ``sparseshare run --jobs N``.

The systems of an experiment are independent trainings on the same data, each seeded from the config,
so they can run at the same time on different cores. The IMP search (multi-task warmup, then every
task's levels; experiments/units.py) is a unit of its own that the systems built on
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
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import torch

from sparseshare import paths
from sparseshare.experiments.config import ExperimentConfig
from sparseshare.experiments.resume import open_run
from sparseshare.experiments.sweep import point_dir, reuse_search, search_key, sweep_points
from sparseshare.experiments.units import SEARCH, Unit, experiment_units, run_unit


def worker_threads(jobs: int) -> int:
    """Torch threads per worker: this process's threads (the cores, or OMP_NUM_THREADS) shared out."""
    return max(1, torch.get_num_threads() // jobs)


def die_with_parent(parent: int) -> None:
    """Worker initializer: on Linux, end this worker when the run's process dies (a killed run's workers
    must not go on writing into a run directory that a restarted run resumes)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)


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


def sweep_units(cfg: ExperimentConfig, run: Path) -> list[Unit]:
    """The units of every unfinished point, each point's run opened. A point shares the search of the
    first point with its search key, as a sequential sweep does (experiments/sweep.py)."""
    units, searched = [], {}  # search key -> a finished point's search folder, or a search unit
    for p in sweep_points(cfg):
        d, key = point_dir(run, p), search_key(p.cfg)
        if paths.results_json(d).exists():
            if paths.search_dir(d).exists():
                searched.setdefault(key, paths.search_dir(d))
            continue
        share = searched.get(key)
        if isinstance(share, Path):
            reuse_search(share, d)
            share = None
        open_run(p.cfg, d)
        point_units = experiment_units(p.cfg, d, share)
        searches = [u for u in point_units if u.name == SEARCH]
        if searches:
            searched.setdefault(key, searches[0])
        elif paths.search_dir(d).exists():  # its systems that needed the search are done: complete
            searched.setdefault(key, paths.search_dir(d))
        units += point_units
    return units
