"""Run a whole experiment into a run directory and assemble results.json (written last = finished)."""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

from sparseshare import paths, run_lock
from sparseshare.errors import ConfigError, RunError
from sparseshare.experiments.config.experiment import ExperimentConfig, preset_departures
from sparseshare.experiments.run.cluster import run_units
from sparseshare.experiments.run.repair import inspect_run, repair
from sparseshare.experiments.run.resume import open_run
from sparseshare.experiments.run.sweep import point_dir, run_sweep, sweep_points
from sparseshare.experiments.run.units import (
    experiment_units,
    open_context,
    run_system,
    sweep_units,
    training_summary,
)
from sparseshare.masks.io import load_masks
from sparseshare.masks.mask import density, overlap_report
from sparseshare.run_dir import MetricsLog, read_json, write_json_atomic
from sparseshare.training.progress import duration, staged
from sparseshare.training.trainer import resolve_device

Report = Callable[[Path, dict], None]  # writes a run's report from its results

logger = logging.getLogger("sparseshare")


def check_damage(run: Path, repair_it: bool = False, damages: list | None = None) -> None:
    """Before any work: every damaged artifact of ``run`` (or those of ``damages``, already inspected) is
    reported (one line each), or repaired."""
    damages = inspect_run(run) if damages is None else damages
    if damages and not repair_it:
        raise RunError("\n".join(d.line() for d in damages))
    if damages:
        repair(damages)
        MetricsLog(run)({"phase": "repair", "damaged": [str(d.path) for d in damages]})
        for d in damages:
            logger.warning("repaired %s", d.line().replace("; --repair ", ": "))


def run_experiment(
    cfg: ExperimentConfig,
    out: Path,
    jobs: int = 1,
    repair_it: bool = False,
    address: str | None = None,
    top: Path | None = None,
    *,
    report: Report,
) -> dict:
    """Run (or resume) every configured system and write results.json, and the report (results.md and
    figures) just before it: ``report(run, results)``, experiments/results/report.py's ``write_report``
    (this room runs; the one above reads results back).

    ``jobs`` > 1 runs the experiment's units as Ray tasks (experiments/run/cluster.py; on the cluster at
    ``address``, else a local Ray); the files they leave are those of a sequential run, which then only
    assembles them. ``repair_it``: damaged artifacts are deleted with what depended on them
    (experiments/run/repair.py) instead of refused. ``out`` is locked while the run writes it (run_lock.py):
    a second writer is refused, naming this one.
    """
    if not cfg.systems:  # the registry's checks fill in the default systems (systems/checks.py)
        raise ConfigError(
            f"{cfg.name}: no systems to run; load the config with load_experiment() or experiment(), "
            f"which check it against the registries and fill in the dataset's default systems"
        )
    if top is None:  # one writer per run directory (a sweep's points: their root's)
        with run_lock.locked(out):
            if cfg.sweep:
                return _run_sweep(cfg, out, jobs, repair_it, address, report)
            return _run_one(cfg, out, jobs, repair_it, address, top, report)
    return _run_one(cfg, out, jobs, repair_it, address, top, report)


def _run_one(
    cfg: ExperimentConfig,
    out: Path,
    jobs: int,
    repair_it: bool,
    address: str | None,
    top: Path | None,
    report: Report,
) -> dict:
    """One experiment (not a sweep) into ``out``, whose lock is held (or its sweep's)."""
    if out.exists():
        check_damage(out, repair_it)
    run = open_run(cfg, out)
    start = time.time()
    departures = preset_departures(cfg)
    for key, d in departures.items():
        logger.warning("%s: %s is %r, not the '%s' preset's %r", cfg.name, key, d["value"], cfg.search.preset,
                       d["preset"])  # fmt: skip
    if jobs > 1 and top is None:  # a sweep's points ran their units already
        run_units(experiment_units(cfg, run), jobs, run, address)
    ctx = None
    systems = {}
    for i, name in enumerate(cfg.systems):
        done = paths.system_result(run, name)
        if done.exists():
            systems[name] = read_json(done, "system result")
            if "training" not in systems[name]:  # a result from before training summaries
                systems[name]["training"] = training_summary(run, name, cfg.train.epochs,
                                                             cfg.search.warmup_epochs)  # fmt: skip
            continue
        ctx = ctx or open_context(cfg, run)
        with staged(_position(cfg.systems, i, systems, time.time() - start)):
            systems[name] = run_system(ctx, name)
    results = {"experiment": cfg.name, "systems": systems}
    if cfg.paper.values or _paper_options_set(cfg):
        results["paper"] = {
            "source": cfg.paper.source,
            "metrics": cfg.paper.metrics,
            "values": cfg.paper.values,
            **paper_options(cfg),
        }
    if cfg.search.preset:
        results["preset"] = {"name": cfg.search.preset, "departures": departures}
    if paths.masks(run).exists():
        masks = load_masks(paths.masks(run))
        results["masks"] = {t: {"density": density(m)} for t, m in masks.items()}
        results["overlap"] = overlap_report(masks)
    results["meta"] = _meta(cfg, str(resolve_device(cfg.device)), start, jobs)
    report(run, results)
    write_json_atomic(results, paths.results_json(run))  # last: marks the run finished
    return results


def _position(names: list[str], i: int, done: dict[str, dict], elapsed: float) -> str:
    """Where a run of several systems stands, logged and put before its bars and lines: the system's
    place, the time so far, and the time left at the mean of the systems finished before it."""
    text = f"[system {i + 1}/{len(names)}: {names[i]}"
    if len(names) > 1:
        took = [r["seconds"] for n, r in done.items() if n in names[:i] and "seconds" in r]
        text += f", {duration(elapsed)} so far"
        if took:
            text += f", about {duration(sum(took) / len(took) * (len(names) - i))} left"
    logger.info("%s]", text)
    return text + "]"


def paper_options(cfg: ExperimentConfig) -> dict:
    """How the report compares with the paper and pairs seeds (``paper.reference``, ``scale``,
    ``scale_note``), recorded so that a results.json alone reproduces its results.md."""
    return {"reference": cfg.paper.reference, "scale": cfg.paper.scale, "scale_note": cfg.paper.scale_note}


def _paper_options_set(cfg: ExperimentConfig) -> bool:
    """The config says something of how to compare: metrics, or options away from their defaults."""
    return bool(cfg.paper.metrics) or paper_options(cfg) != paper_options(ExperimentConfig(cfg.name))


def _meta(cfg: ExperimentConfig, device: str, start: float, jobs: int = 1) -> dict:
    if jobs == 1:
        machine = f"{platform.machine()}, 1 job of {torch.get_num_threads()} torch thread(s)"
    else:
        machine = f"{platform.machine()} driver, up to {jobs} Ray units at once"
    return {
        "seed": cfg.seed,
        "device": device,
        "torch": torch.__version__,
        "machine": machine,
        "wall_seconds_this_invocation": round(time.time() - start, 1),
    }


def _run_sweep(
    cfg: ExperimentConfig, out: Path, jobs: int, repair_it: bool, address: str | None, report: Report
) -> dict:
    """A grid of runs (experiments/run/sweep.py); the points are validated before anything runs."""
    for p in sweep_points(cfg):
        if point_dir(out, p).exists():
            check_damage(point_dir(out, p), repair_it)
    run = open_run(cfg, out)
    start = time.time()
    if jobs > 1:  # every point's units at once; the points then only assemble their results
        run_units(sweep_units(cfg, run), jobs, run, address)
    results = {
        "experiment": cfg.name,
        "sweep": run_sweep(cfg, run, lambda c, d: run_experiment(c, d, jobs, top=run, report=report)),
    }
    if cfg.paper.source or _paper_options_set(cfg):
        results["paper"] = {"source": cfg.paper.source, "metrics": cfg.paper.metrics, **paper_options(cfg)}
    results["meta"] = _meta(cfg, str(resolve_device(cfg.device)), start, jobs)
    report(run, results)
    write_json_atomic(results, paths.results_json(run))
    return results


def fill_training(run: Path, results: dict) -> dict:
    """``results`` with the training summaries (units.training_summary) of systems finished before they
    were recorded, read from their checkpoints (``report`` only: results.json is not rewritten)."""
    from sparseshare.experiments.config.experiment import load_config

    if "sweep" in results:
        parts = [(paths.point_dir(run, pt["point"]), pt["systems"]) for pt in results["sweep"]["points"]]
    else:
        parts = [(run, results["systems"])]
    for folder, systems in parts:
        missing = [s for s, r in systems.items() if "training" not in r]
        if missing and paths.config(folder).exists():
            try:
                cfg = load_config(paths.config(folder))
            except ConfigError:  # e.g. a data folder named relative to where the run was started
                continue
            for s in missing:
                systems[s]["training"] = training_summary(
                    folder, s, cfg.train.epochs, cfg.search.warmup_epochs
                )
    return results
