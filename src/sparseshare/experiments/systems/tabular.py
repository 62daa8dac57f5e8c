"""Tabular and recommendation experiments (PBFS paper): every system of its Tables 2-9, plus sparse sharing.

Systems: single, shared-bottom, cross-stitch, MMoE, CGC, PLE, PBFS, sparse.

All systems share the data, trainer, metrics and reports. Joint-loss systems (Eq. 10) take one batch of
all tasks per step; sparse sharing samples a task per step over its IMP subnets of the shared-bottom
network. PBFS prunes each task's shared experts on the polynomial schedule of Algorithm 2, records each
task's dev score at every sparsity, and after the schedule ends gives each task back its best subnet
(steps 4-5); each task is tested on the state where its own dev score was best (Algorithm 2's P_m), the
other systems on their best mean-dev epoch.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from sparseshare import paths
from sparseshare.errors import ConfigError
from sparseshare.experiments.systems.context import Context
from sparseshare.experiments.systems.sparse_sharing import final_eval, save_recipe
from sparseshare.sharing.pools import constant_tasks, correlation_matrix, shared_pools
from sparseshare.sharing.registry import MECHANISMS, OWN_EXPERTS
from sparseshare.training.callbacks import PBFSPruner, PBFSSchedule
from sparseshare.training.checkpoint import save_tensors
from sparseshare.training.pipeline import train_jointly
from sparseshare.training.streams import task_seed
from sparseshare.training.trainer import load_state

logger = logging.getLogger("sparseshare")


def _joint(
    ctx: Context, name: str, mech, data=None, tasks=None, callbacks=None, patience=None, task=None
) -> dict:
    """Train ``mech`` on the joint loss (Eq. 10), restore the best-dev epoch, evaluate it."""
    tasks = tasks or ctx.tasks
    _train_joint(ctx, name, mech, data, tasks, callbacks, patience, task)
    return final_eval(ctx, mech, list(tasks), tasks)


def _train_joint(ctx: Context, name: str, mech, data, tasks, callbacks=None, patience=None, task=None,
                 restore_best: bool = True) -> None:  # fmt: skip
    """Train ``mech`` on the joint loss (Eq. 10); its best mean-dev state is put back (``restore_best``)."""
    name = ctx.system_name(name)
    weights = {t: (ctx.train.loss_weights or {}).get(t, 1.0) for t in tasks}
    s = ctx.train.replace().replace(joint=True, loss_weights=weights)
    if patience is not None:
        s = s.replace(patience=patience)
    train_jointly(
        mech,
        tasks,
        s,
        seed=task_seed(ctx.seed, task) if task else ctx.seed,  # a task alone: its own stream
        device=ctx.device,
        directory=paths.system_dir(ctx.run, name, task),
        log=ctx.log,
        joint_data=data if data is not None else ctx.data,
        callbacks=callbacks,
        restore_best=restore_best,
        desc=f"{name}/{task}" if task else name,
    )


def run_single(ctx: Context) -> dict:
    """Single-task baseline: an MLP per task (bottom + tower), trained on its own rows."""
    results, params = {}, 0
    for t, task in ctx.tasks.items():
        recipe = ctx.recipe([t])
        model = ctx.build(recipe)
        save_recipe(ctx, "single", recipe, t)
        results.update(_joint(ctx, "single", model, data=task.data, tasks={t: task}, task=t))
        params += ctx.count_params(model)
    return {"params": params, "tasks": results}


def baseline_recipe(ctx: Context, name: str) -> dict:
    """The network of a tabular baseline, sized by the config's 'tabular' section (PBFS Section 4.3)."""
    kwargs = {"in_dim": ctx.data.in_dim, "kinds": ctx.task_kinds, **mechanism_sizes(ctx, name)}
    return {"network": name, "kwargs": kwargs}


def mechanism_sizes(ctx: Context, name: str) -> dict:
    """The mechanism's build keywords from the config's 'tabular' section, as its registry entry names
    (and the config's own expert factory, where one is named and the mechanism has experts)."""
    sizes = {arg: getattr(ctx.tabular, key) for arg, key in MECHANISMS[name].sizes.items()}
    return {**sizes, **ctx.tabular.expert_kwargs()} if name in OWN_EXPERTS else sizes


def run_baseline(name: str):
    """Shared-bottom (Caruana 1997), cross-stitch (Misra et al. 2016), MMoE (Ma et al. 2018), CGC and PLE
    (Tang et al. 2020)."""

    def runner(ctx: Context) -> dict:
        recipe = baseline_recipe(ctx, name)
        mech = ctx.build(recipe)
        save_recipe(ctx, name, recipe)
        return {"params": ctx.count_params(mech), "tasks": _joint(ctx, name, mech)}

    runner.__doc__ = f"The {name} baseline (joint loss, Eq. 10)."
    return runner


def pools_for(ctx: Context) -> list[list[str]]:
    """Explicit pools from the config, else Algorithm 1 on the Pearson correlation of train labels.

    A task whose train labels are constant has correlation 0 with every task (sharing/pools.py says
    why), a warning naming it; tasks no two of which share labelled rows cannot be pooled: a one-line
    error asking for explicit ``pbfs.pools``."""
    if ctx.pbfs.pools:
        return ctx.pbfs.pools
    labels = ctx.data.labels("train")
    y = {t: np.asarray(labels[t]) for t in ctx.tasks}
    for task in constant_tasks(y):
        logger.warning(
            "pbfs: task '%s' has constant train labels: its label correlations are taken as 0 "
            "(uncorrelated) for the shared pools",
            task,
        )
    tasks, coor = correlation_matrix(y)
    try:
        return shared_pools(tasks, coor, ctx.pbfs.pool_alpha)
    except ValueError as e:
        why = f"'pbfs.pools': Algorithm 1 cannot pool these tasks ({e}): name the pools"
        raise ConfigError(why) from None


def run_pbfs(ctx: Context) -> dict:
    """PBFS: task-specific experts, pruned shared experts in correlation-based pools, gates, towers."""
    pools = pools_for(ctx)
    kwargs = {
        "in_dim": ctx.data.in_dim,
        "kinds": ctx.task_kinds,
        "pools": pools,
        **mechanism_sizes(ctx, "pbfs"),
    }
    recipe = {"network": "pbfs_net", "kwargs": kwargs, "mechanism": "pbfs"}
    mech = ctx.build(recipe)
    save_recipe(ctx, "pbfs", recipe)
    steps = ctx.train.epochs * math.ceil(ctx.data.num_examples("train") / ctx.train.batch_size)
    pruner = pbfs_pruner(ctx, mech, steps)
    schedule = PBFSSchedule(pruner, ctx.tasks)  # Algorithm 2, step 2: prunes mu before training
    # steps 3-5 over the whole training (no early stopping: the schedule always completes)
    _train_joint(ctx, "pbfs", mech, ctx.data, ctx.tasks, [schedule], patience=0, restore_best=False)
    return pbfs_result(ctx, mech, pruner, recipe, pools, steps // ctx.train.epochs)


def pbfs_pruner(ctx: Context, mech, steps: int) -> PBFSPruner:
    """Algorithm 2's pruner over ``steps`` training steps, as the config's 'pbfs' section says."""
    p = ctx.pbfs
    targets = (
        p.target_sparsity
        if isinstance(p.target_sparsity, dict)
        else {t: p.target_sparsity for t in ctx.tasks}
    )
    return PBFSPruner(
        mech,
        targets,
        p.initial_sparsity,
        begin_step=0,
        end_step=max(1, int(p.end_fraction * steps)),
        frequency=p.frequency,
        power=p.power,
        strategy=p.strategy,
    )


def pbfs_result(ctx: Context, mech, pruner: PBFSPruner, recipe: dict, pools, steps_per_epoch: int) -> dict:
    """Each task tested on the state where its own dev score was best (Algorithm 2's P_m), saved as the
    state predict and export use; the schedule's record beside the scores."""
    results, tested, kept = {}, {}, 0
    for t in ctx.tasks:  # "Return {P_1, ..., P_M}": each task on the state where its own dev was best
        state = pruner.best[t]["state"]
        load_state(mech, state, f"the best PBFS subnet of '{t}'")
        save_recipe(ctx, "pbfs", recipe, t)  # predict and export use the state the task was tested on
        save_tensors(state, paths.best_weights(ctx.run, "pbfs", t))
        results.update(final_eval(ctx, mech, [t]))
        tested[t] = {"sparsity": mech.sparsity(t), "step": pruner.best[t]["step"]}
        kept += sum(int(m.sum()) for m in mech.mask(t).values())
    return {
        "params": ctx.count_params(mech),
        "tasks": results,
        "pbfs": {
            "pools": pools,
            "tested": tested,  # the subnet each task was tested on (Algorithm 2's P_m)
            "best": {
                t: {k: v for k, v in b.items() if k not in ("mask", "state")} for t, b in pruner.best.items()
            },  # fmt: skip
            "history": pruner.history,
            "kept_shared_weights": kept,
            "steps_per_epoch": steps_per_epoch,
        },
    }
