"""Train an experiment's systems side by side in worker processes: ``sparseshare run --jobs N``.

The systems of an experiment are independent trainings on the same data, each seeded from the config,
so they can run at the same time on different cores. The IMP search (multi-task warmup, then every
task's levels; experiments/systems.py ``search_masks``) is a unit of its own that the systems built on
its masks (``single_subnet``, ``sparse``) wait for. Units start in the config's order, the search
first; a worker process (``spawn``: a fresh interpreter, no forked OpenMP state) reads the data and runs
one unit with ``worker_threads(jobs)`` torch threads, and logs a ``job`` record (unit, pid, start and
end time) to metrics.jsonl when it is done.

A worker leaves exactly the files a sequential run leaves (the system's result.json and checkpoints,
the search levels), so the parent assembles results.json as before, a parallel run equals a sequential
one run with the same number of threads, and a killed run resumes with or without ``--jobs``.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import torch

from sparseshare import paths
from sparseshare.experiments.config import ExperimentConfig
from sparseshare.experiments.schema import from_dict, to_dict

SEARCH = "search"  # the IMP search, a unit before the systems that use its masks
NEEDS_SEARCH = ("single_subnet", "sparse")


def worker_threads(jobs: int) -> int:
    """Torch threads per worker: this process's threads (the cores, or OMP_NUM_THREADS) shared out."""
    return max(1, torch.get_num_threads() // jobs)


def pending_units(cfg: ExperimentConfig, run: Path) -> list[str]:
    """The unfinished systems of ``run`` in config order, preceded by the search if one needs it."""
    todo = [s for s in cfg.systems if not paths.system_result(run, s).exists()]
    return ([SEARCH] if any(s in NEEDS_SEARCH for s in todo) else []) + todo


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


def run_parallel(cfg: ExperimentConfig, run: Path, jobs: int) -> None:
    """Run every pending unit of ``run`` in up to ``jobs`` processes; the first failure stops the rest
    (units still queued are cancelled, running ones finish) and is raised here."""
    units = pending_units(cfg, run)
    if not units:
        return
    raw, threads = to_dict(cfg), worker_threads(jobs)
    waiting = [u for u in units if u in NEEDS_SEARCH]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(units)), mp_context=context) as pool:

        def submit(unit: str):
            return pool.submit(run_unit, raw, str(run), unit, threads)

        running = {submit(u) for u in units if u not in waiting}
        while running:
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for f in finished:
                if f.exception() is not None:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise f.exception()
                if f.result() == SEARCH:
                    running |= {submit(u) for u in waiting}
