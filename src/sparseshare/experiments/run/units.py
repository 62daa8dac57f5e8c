"""An experiment's units of work: the multi-task warmup, one IMP search per task, and each system.

A unit runs on an experiment's context (its data) and leaves its files in the run directory: a system's
``result.json`` marks it done, the warmup weights and every task's levels are in ``search/``. The
searches wait for the warmup; ``single_subnet`` and ``sparse`` wait for every search
(``SYSTEMS[name].needs_search``), ``single_warm`` for the warmup; nothing else waits.
experiments/run/cluster.py runs them on Ray.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sparseshare import paths
from sparseshare.experiments.config.experiment import ExperimentConfig
from sparseshare.experiments.run.resume import open_run
from sparseshare.experiments.run.sweep import point_dir, reuse_search, search_key, sweep_points
from sparseshare.experiments.systems.context import Context, PreparedData, prepare_data
from sparseshare.experiments.systems.registry import SEARCH, SYSTEMS, WARMUP, runner
from sparseshare.experiments.systems.sparse_sharing import rewind_state, search_one
from sparseshare.run_dir import MetricsLog, write_json_atomic
from sparseshare.training.checkpoint import load_training_state
from sparseshare.training.trainer import resolve_device


@dataclass(eq=False)
class Unit:
    run: Path
    cfg: ExperimentConfig  # the run's config (sent to the worker as it is)
    name: str  # a system, WARMUP or "search:<task>"
    after: list[Unit] = field(default_factory=list)  # the units it waits for
    prepare: Callable[[], None] | None = None  # done by the driver, just before it is submitted

    @property
    def group(self) -> str:
        """What the config's ``resources.units`` names it by: warmup, search or the system."""
        return SEARCH if self.name.startswith(SEARCH + ":") else self.name

    @property
    def in_search(self) -> bool:
        """The warmup or a task's IMP search."""
        return self.name == WARMUP or self.group == SEARCH

    @property
    def label(self) -> str:
        """The unit as errors name it (a sweep point's units with the point's label)."""
        return f"{self.run.name}:{self.name}" if self.run.parent.name == "points" else self.name

    def folders(self) -> list[Path]:
        """The folders of the run it reads or resumes (a system's own, the search's)."""
        out = []
        if self.in_search or SYSTEMS[self.name].uses_warmup:
            out.append(paths.search_dir(self.run))
        if self.name in SYSTEMS:
            out.append(paths.system_dir(self.run, self.name))
            if SYSTEMS[self.name].continues:
                out.append(paths.system_dir(self.run, SYSTEMS[self.name].continues))
        return out

    def __repr__(self) -> str:
        return f"Unit({self.run.name}:{self.name})"


def open_context(
    cfg: ExperimentConfig, run: Path, prepared: PreparedData | None = None, log: MetricsLog | None = None
) -> Context:
    """The context ``cfg``'s systems run in, in ``run``: its data (``prepared``, or read now from the data
    section, the model section and the seed) and the sections a runner reads; the rest of the config
    (its systems, the paper's numbers, resources, sweeps) stays here, in the run layer."""
    if prepared is None:
        prepared = prepare_data(cfg.data, cfg.model, cfg.seed, run)
    return Context(
        run, prepared, resolve_device(cfg.device), log or MetricsLog(run), seed=cfg.seed, train=cfg.train,
        search=cfg.search, model=cfg.model, tabular=cfg.tabular, pbfs=cfg.pbfs,
    )  # fmt: skip


def run_system(ctx: Context, name: str) -> dict:
    """Train and evaluate one system; its result file marks it finished."""
    t0 = time.time()
    res = runner(name, ctx.kind)(ctx)
    res["seconds"] = round(time.time() - t0, 1)
    res["training"] = training_summary(ctx.run, name, ctx.train.epochs, ctx.search.warmup_epochs)
    write_json_atomic(res, paths.system_result(ctx.run, name))
    return res


def training_summary(run: Path, name: str, epochs: int, warmup_epochs: int) -> dict:
    """How a system trained, read from its checkpoints: per trained network (the system, or each task's
    model) the epochs run, the best-dev epoch (1-based), the cap, the mean dev score per epoch and the
    random stream it drew from (``seed``: a task trained alone has its own, ``streams.task_seed``);
    ``start_epochs``: epochs its weights had seen before (the warmup, for systems that start from θ^(w)),
    so that systems compare at equal total epochs. ``epochs``: the configured cap ('train.epochs', for
    checkpoints that do not record theirs); ``warmup_epochs``: 'search.warmup_epochs'."""
    base = paths.system_dir(run, name)
    runs = {}
    for last in sorted(base.rglob(paths.LAST_STATE)):
        trainer = load_training_state(last)[2]
        key = last.parent.relative_to(base).as_posix()
        curve = [h["dev_mean"] for h in trainer["history"]]
        runs[name if key == "." else key] = {
            "epochs": len(curve),
            "best_epoch": trainer["best_epoch"] + 1,
            "cap": trainer.get("cap", epochs),
            "dev_mean": curve,
            "seed": trainer.get("seed"),  # its random stream (None: trained before streams were recorded)
        }
    start = warmup_epochs if SYSTEMS[name].from_warmup else 0
    return {"start_epochs": start, "runs": runs}


def experiment_units(cfg: ExperimentConfig, run: Path, share: list[Unit] | None = None) -> list[Unit]:
    """The unfinished systems of ``run`` in config order, preceded by the search's units if one needs
    it: the warmup, then one IMP search per task (each waits for the warmup only).

    ``share``: an earlier run's search units with the same search; this run's warmup then waits for them
    and starts from a copy of their folder (its units only read the levels back)."""
    todo = [Unit(run, cfg, s) for s in cfg.systems if not paths.system_result(run, s).exists()]
    by_name = {u.name: u for u in todo}
    for u in todo:  # a matched budget goes on from its base system's checkpoints
        base = by_name.get(SYSTEMS[u.name].continues or "")
        u.after += [base] if base else []
    if not any(SYSTEMS[u.name].uses_warmup for u in todo):
        return todo
    warmup = Unit(run, cfg, WARMUP)
    if share:
        warmup.after = list(share)
        source = share[0].run
        warmup.prepare = lambda: reuse_search(paths.search_dir(source), run)
    searched = any(SYSTEMS[u.name].needs_search for u in todo)
    searches = [Unit(run, cfg, f"{SEARCH}:{t}", after=[warmup]) for t in cfg.data.tasks] if searched else []
    for u in todo:
        if SYSTEMS[u.name].needs_search:
            u.after += searches
        elif SYSTEMS[u.name].uses_warmup:
            u.after.append(warmup)
    return [warmup, *searches, *todo]


def run_unit(ctx: Context, unit: str) -> None:
    """Run one unit in ``ctx.run`` (its files left there)."""
    if unit == WARMUP:
        rewind_state(ctx)
    elif unit.startswith(SEARCH + ":"):
        search_one(ctx, unit.split(":", 1)[1])
    else:
        run_system(ctx, unit)


def sweep_units(cfg: ExperimentConfig, run: Path) -> list[Unit]:
    """The units of every unfinished point, each point's run opened. A point shares the search of the
    first point with its search key, as a sequential sweep does (experiments/run/sweep.py)."""
    units, searched = [], {}  # search key -> a finished point's search folder, or search units
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
        searches = [u for u in point_units if u.in_search]
        if searches:
            searched.setdefault(key, searches)
        elif paths.search_dir(d).exists():  # its systems that needed the search are done: complete
            searched.setdefault(key, paths.search_dir(d))
        units += point_units
    return units
