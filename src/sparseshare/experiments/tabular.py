"""Tabular and recommendation experiments (PBFS paper): every system of its Tables 2-9, plus sparse sharing.

Systems: single, shared-bottom, cross-stitch, MMoE, CGC, PLE, PBFS, sparse.

All systems share the data, trainer, metrics and reports. Joint-loss systems (Eq. 10) take one batch of
all tasks per step; sparse sharing samples a task per step over its IMP subnets of the shared-bottom
network. PBFS prunes each task's shared experts on the polynomial schedule of Algorithm 2, records each
task's dev score at every sparsity, and after the schedule ends gives each task back its best subnet
(steps 4-5); as for every system, the best-dev epoch is the one evaluated on test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sparseshare import paths
from sparseshare.experiments.config import ExperimentConfig
from sparseshare.experiments.run_dir import MetricsLog
from sparseshare.experiments.sequence import resolve_device
from sparseshare.experiments.systems import final_eval, run_sparse
from sparseshare.sharing.cross_stitch import cross_stitch
from sparseshare.sharing.mmoe import mmoe
from sparseshare.sharing.pbfs import PBFSPruner, pbfs
from sparseshare.sharing.ple import cgc, ple
from sparseshare.sharing.pools import correlation_matrix, shared_pools
from sparseshare.sharing.shared_bottom import shared_bottom
from sparseshare.tabular_metrics import LOWER_IS_BETTER, PRIMARY, evaluate_tabular
from sparseshare.training.trainer import TaskSpec, TrainSettings, train


def load_tabular(cfg: ExperimentConfig):
    """The configured dataset as a TabularData (preprocessing fitted on train only)."""
    from sparseshare.data import tabular_readers as readers
    from sparseshare.data.sources import get_source, resolve
    from sparseshare.data.synthetic import synthetic_data

    d = cfg.data
    if d.dataset == "census":
        data = readers.read_census(resolve(get_source("census_income"), d.data_dir), seed=cfg.seed)
    elif d.dataset == "movielens":
        data = readers.read_movielens(resolve(get_source("ml100k"), d.data_dir), seed=cfg.seed)
    elif d.dataset == "student":
        if d.data_dir is None:
            from sparseshare.errors import ConfigError

            raise ConfigError("'data.data_dir' must name the folder with student-por.csv / student-mat.csv")
        data = readers.read_student(Path(d.data_dir), subjects=d.subjects, seed=cfg.seed)
    elif d.dataset == "synthetic":
        data = synthetic_data(d.correlation, sizes=d.sizes, seed=cfg.seed)
    else:
        tb = d.table
        data = readers.read_table(
            tb.train,
            tb.targets,
            dev=tb.dev,
            test=tb.test,
            numeric=tb.numeric,
            categorical=tb.categorical,
            exclude=tb.exclude,
            sep=tb.sep,
            seed=cfg.seed,
        )
    data = data.for_tasks(d.tasks)
    if d.limits:
        data = data.limited(d.limits)
    return data


@dataclass
class TabularContext:
    cfg: ExperimentConfig
    run: Path
    data: object
    tasks: dict[str, TaskSpec]
    device: torch.device
    log: MetricsLog

    @property
    def kinds(self) -> dict[str, str]:
        return {t: self.data.kinds[t] for t in self.tasks}

    def build_model(self, tasks: list[str] | None = None):
        """The shared-bottom network (the base network of sparse sharing; one per task for single)."""
        torch.manual_seed(self.cfg.seed)
        m = self.cfg.tabular
        kinds = {t: self.data.kinds[t] for t in (tasks or self.tasks)}
        return shared_bottom(self.data.in_dim, kinds, m.bottom, m.tower, m.dropout)

    def settings(self) -> TrainSettings:
        return TrainSettings(**self.cfg.train.__dict__)

    def count_params(self, model, names: list[str] | None = None) -> int:
        return sum(p.numel() for n, p in model.named_parameters() if names is None or n in names)


def load_tabular_context(cfg: ExperimentConfig, run: Path) -> TabularContext:
    data = load_tabular(cfg)
    tasks = {}
    for t in cfg.data.tasks:
        metric = PRIMARY[data.kinds[t]]
        tasks[t] = TaskSpec(
            t,
            data.for_tasks([t]),
            metric,
            evaluator=evaluate_tabular,
            higher_is_better=metric not in LOWER_IS_BETTER,
        )
    log = MetricsLog(run)
    log(
        {
            "phase": "data",
            "dataset": cfg.data.dataset,
            "features": data.in_dim,
            "rows": {s: data.num_sentences(s) for s in ("train", "dev", "test")},
        }
    )
    return TabularContext(cfg, run, data, tasks, resolve_device(cfg.device), log)


def _joint(
    ctx: TabularContext, name: str, mech, data=None, specs=None, callbacks=None, patience=None
) -> dict:
    """Train ``mech`` on the joint loss (Eq. 10), restore the best-dev epoch, evaluate it."""
    specs = specs or ctx.tasks
    s = ctx.settings()
    s.joint = True
    s.loss_weights = {t: (ctx.cfg.train.loss_weights or {}).get(t, 1.0) for t in specs}
    if patience is not None:
        s.patience = patience
    ckpt = paths.system_dir(ctx.run, *name.split("/"))
    res = train(
        mech,
        specs,
        s,
        seed=ctx.cfg.seed,
        device=ctx.device,
        ckpt_dir=ckpt,
        desc=name,
        log=ctx.log,
        joint_data=data or ctx.data,
        callbacks=callbacks,
    )
    mech.load_state_dict(res.best_state)
    return final_eval(ctx, mech, list(specs), specs)


def run_single(ctx: TabularContext) -> dict:
    """Single-task baseline: an MLP per task (bottom + tower), trained on its own rows."""
    results, params = {}, 0
    for t, spec in ctx.tasks.items():
        model = ctx.build_model([t])
        results.update(_joint(ctx, f"single/{t}", model, data=spec.data, specs={t: spec}))
        params += ctx.count_params(model)
    return {"params": params, "tasks": results}


def _builder(ctx: TabularContext, name: str):
    m, kinds, f = ctx.cfg.tabular, ctx.kinds, ctx.data.in_dim
    torch.manual_seed(ctx.cfg.seed)
    if name == "shared_bottom":
        return shared_bottom(f, kinds, m.bottom, m.tower, m.dropout)
    if name == "cross_stitch":
        return cross_stitch(f, kinds, m.cross_stitch, m.cross_stitch_tower, m.dropout)
    if name == "mmoe":
        return mmoe(f, kinds, num_experts=m.num_experts, expert_hidden=m.mmoe_expert, tower=m.tower)
    if name == "cgc":
        return cgc(
            f,
            kinds,
            num_specific=m.num_specific,
            num_shared=m.num_shared,
            expert_hidden=m.ple_expert,
            tower=m.tower,
        )
    return ple(
        f,
        kinds,
        num_specific=m.num_specific,
        num_shared=m.num_shared,
        expert_hidden=m.ple_expert,
        tower=m.tower,
        levels=m.levels,
    )


def run_baseline(name: str):
    """Shared-bottom (Caruana 1997), cross-stitch (Misra et al. 2016), MMoE (Ma et al. 2018), CGC and PLE
    (Tang et al. 2020)."""

    def runner(ctx: TabularContext) -> dict:
        mech = _builder(ctx, name)
        return {"params": ctx.count_params(mech), "tasks": _joint(ctx, name, mech)}

    return runner


class _PrunerHook:
    """Trainer callback driving PBFS Algorithm 2: prune on schedule, record dev scores, restore the best."""

    def __init__(self, pruner: PBFSPruner, specs: dict[str, TaskSpec]):
        self.pruner, self.specs, self.step = pruner, specs, 0

    def on_step(self, step: int) -> None:
        self.step = step
        self.pruner.on_step(step)

    def on_eval(self, dev: dict) -> None:
        for t, spec in self.specs.items():
            self.pruner.on_eval(t, None, dev[t][spec.metric])
        if self.step >= self.pruner.end_step:  # steps 4-5: back to each task's best subnet
            self.pruner.restore_best()


def pools_for(ctx: TabularContext) -> list[list[str]]:
    """Explicit pools from the config, else Algorithm 1 on the Pearson correlation of train labels."""
    if ctx.cfg.pbfs.pools:
        return ctx.cfg.pbfs.pools
    labels = ctx.data.labels("train")
    tasks, coor = correlation_matrix({t: np.asarray(labels[t]) for t in ctx.tasks})
    return shared_pools(tasks, coor, ctx.cfg.pbfs.pool_alpha)


def run_pbfs(ctx: TabularContext) -> dict:
    """PBFS: task-specific experts, pruned shared experts in correlation-based pools, gates, towers."""
    m, p = ctx.cfg.tabular, ctx.cfg.pbfs
    pools = pools_for(ctx)
    torch.manual_seed(ctx.cfg.seed)
    mech = pbfs(
        ctx.data.in_dim,
        ctx.kinds,
        pools=pools,
        num_specific=m.num_specific,
        num_shared=m.num_shared,
        expert_hidden=m.pbfs_expert,
        tower=m.tower,
    )
    steps = ctx.cfg.train.epochs * math.ceil(ctx.data.num_sentences("train") / ctx.cfg.train.batch_size)
    targets = (
        p.target_sparsity
        if isinstance(p.target_sparsity, dict)
        else {t: p.target_sparsity for t in ctx.tasks}
    )
    pruner = PBFSPruner(
        mech,
        targets,
        p.initial_sparsity,
        begin_step=0,
        end_step=max(1, int(p.end_fraction * steps)),
        frequency=p.frequency,
        power=p.power,
        strategy=p.strategy,
        higher_is_better={t: s.higher_is_better for t, s in ctx.tasks.items()},
    )
    pruner.on_step(0)  # Algorithm 2, step 2: prune mu before training
    hook = _PrunerHook(pruner, ctx.tasks)
    results = _joint(ctx, "pbfs", mech, callbacks=[hook], patience=0)
    kept = sum(int(mech.mask(t)[n].sum()) for t in ctx.tasks for n in mech.mask(t))
    return {
        "params": ctx.count_params(mech),
        "tasks": results,
        "pbfs": {
            "pools": pools,
            "sparsity": {t: mech.sparsity(t) for t in ctx.tasks},
            "best": {t: {k: v for k, v in b.items() if k != "mask"} for t, b in pruner.best.items()},
            "history": pruner.history,
            "kept_shared_weights": kept,
        },
    }


SYSTEM_RUNNERS = {
    "single": run_single,
    "shared_bottom": run_baseline("shared_bottom"),
    "cross_stitch": run_baseline("cross_stitch"),
    "mmoe": run_baseline("mmoe"),
    "cgc": run_baseline("cgc"),
    "ple": run_baseline("ple"),
    "pbfs": run_pbfs,
    "sparse": run_sparse,
}
