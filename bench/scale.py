"""Scaling out: a small sweep's units sequential, on Ray with N workers, and on the old process pool.

The sweep is configs/smoke.yaml (a slice of real CoNLL-2003, so ../shared or the cache must hold it) with
a seed axis of K/2 points and two systems each (single task, hard sharing): K units. One run prints:

- wall time of ``run --jobs 1`` (in this process), of ``run --jobs N`` (every unit a Ray task on a local
  Ray started for the run, N units at once) and of the old pool (kept here only: N spawned processes
  that read the data themselves and write the run directory directly, as ``--jobs`` did before Ray);
- the ratios: speed-up of Ray over sequential, and Ray's wall time over the old pool's (the goal: Ray's
  overhead at most 10%, i.e. a ratio <= 1.10).

On a GPU it also runs the same units packed on one GPU (``resources.gpus: 1/N``, N at once) against one
at a time, and prints the aggregate sentences per second of both.

Usage: python bench/scale.py [--points P] [--jobs N]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import torch

from sparseshare.experiments.results.report import write_report
from sparseshare.experiments.run.runner import run_experiment
from sparseshare.experiments.run.units import open_context, sweep_units
from sparseshare.experiments.systems.checks import load_experiment

ROOT = Path(__file__).resolve().parents[1]


def config(points: int, extra: list[str] = ()):
    seeds = ", ".join(f"'{s}': {{seed: {s}}}" for s in range(1, points + 1))
    sets = ["systems=[single, hard]", "train.epochs=4", "train.patience=0", f"sweep.seed={{{seeds}}}"]
    return load_experiment(ROOT / "configs" / "smoke.yaml", [*sets, *extra])


# --- the old pool (reference only) --------------------------------------------------------------------


def _old_unit(cfg, run: str, unit: str, threads: int) -> str:
    """As the old pool's workers did: read the data, run the unit, write the run directory directly."""
    from sparseshare.experiments.run.units import open_context, run_unit

    torch.set_num_threads(threads)
    run_unit(open_context(cfg, Path(run)), unit)
    return unit


def old_pool(cfg, out: Path, jobs: int) -> None:
    from sparseshare.experiments.run.resume import open_run

    run = open_run(cfg, out)
    queue, done = sweep_units(cfg, run), set()
    threads = max(1, torch.get_num_threads() // jobs)
    with ProcessPoolExecutor(jobs, multiprocessing.get_context("spawn")) as pool:
        running: dict = {}
        while queue or running:
            while len(running) < jobs:
                unit = next((u for u in queue if all(a in done for a in u.after)), None)
                if unit is None:
                    break
                queue.remove(unit)
                running[pool.submit(_old_unit, unit.cfg, str(unit.run), unit.name, threads)] = unit
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in finished:
                f.result()
                done.add(running.pop(f))
    run_experiment(cfg, out, 1, report=write_report)  # every unit done: assembles the results


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def sentences(cfg) -> int:
    """Training sentences one sweep processes (every unit's epochs over its tasks' train splits)."""
    per_epoch = cfg.data.limits["train"] * len(cfg.data.tasks)
    return per_epoch * cfg.train.epochs * len(cfg.systems) * len(cfg.sweep["seed"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=4)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    cfg = config(args.points)
    k = args.points * len(cfg.systems)
    work = Path(tempfile.mkdtemp(prefix="sparseshare-scale-"))
    try:
        (work / "warm").mkdir()
        open_context(cfg, work / "warm")  # the corpus read once, into the cache, before any timing
        print(f"{k} units (smoke sweep: {args.points} seeds x {cfg.systems}), {os.cpu_count()} cores")
        seq = timed(lambda: run_experiment(config(args.points), work / "seq", 1, report=write_report))
        ray = timed(lambda: run_experiment(config(args.points), work / "ray", args.jobs, report=write_report))
        pool = timed(lambda: old_pool(config(args.points), work / "pool", args.jobs))
        print(f"sequential (--jobs 1): {seq:.1f} s")
        print(f"Ray, --jobs {args.jobs} (local Ray started by the run): {ray:.1f} s")
        print(f"old process pool, {args.jobs} processes: {pool:.1f} s")
        print(f"speed-up of Ray over sequential: {seq / ray:.2f}x")
        if torch.cuda.is_available():
            whole = ["device=cuda", "resources.gpus=1"]
            frac = ["device=cuda", f"resources.gpus={1 / args.points:.4f}"]
            one = timed(lambda: run_experiment(config(args.points, whole), work / "gpu1", args.points,
                                               report=write_report))  # fmt: skip
            packed = timed(lambda: run_experiment(config(args.points, frac), work / "gpuk", args.points,
                                                  report=write_report))  # fmt: skip
            n = sentences(cfg)
            print(f"GPU, units one at a time: {n / one:.0f} sentences/s; {args.points} packed on one GPU: "
                  f"{n / packed:.0f} sentences/s; packed/one {one / packed:.2f}x")  # fmt: skip
        print(f"Ray wall time / old pool wall time: {ray / pool:.3f} (goal <= 1.10)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
