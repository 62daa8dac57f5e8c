"""What every experiment kind shares: the IMP search, sparse sharing, single task on its subnet, and the
final evaluation; all through the public pipeline (``sparseshare.warmup``, ``search_masks``,
``select_subnets``, ``train_jointly``, ``evaluate``)."""

from __future__ import annotations

import time
from collections.abc import Mapping

import torch

from sparseshare import paths
from sparseshare.data.task import Task
from sparseshare.experiments.systems.context import Context
from sparseshare.masks.io import save_masks
from sparseshare.masks.mask import Mask, density, union_count
from sparseshare.run_dir import write_json_atomic
from sparseshare.sharing.sparse import SparseSharing
from sparseshare.training.pipeline import evaluate, search_masks, select_subnets, train_jointly, warmup
from sparseshare.training.streams import stream_seed, task_seed
from sparseshare.training.trainer import load_state


def final_eval(ctx: Context, mech, names: list[str], tasks: Mapping[str, Task] | None = None) -> dict:
    """Evaluate the best-dev state of the tasks ``names`` (from ``tasks``, default the run's) on dev and,
    once, on test."""
    tasks = {t: (tasks or ctx.tasks)[t] for t in names}
    bs = ctx.train.eval_batch_size
    dev = evaluate(mech, tasks, "dev", batch_size=bs, device=ctx.device)
    test = evaluate(mech, tasks, "test", batch_size=bs, device=ctx.device)
    return {
        t: {
            "metric": tasks[t].key,
            "dev": dev[t][tasks[t].key],
            "test": test[t][tasks[t].key],
            "all": {"dev": dev[t], "test": test[t]},
        }
        for t in names
    }


def save_recipe(ctx: Context, system: str, recipe: dict, task: str | None = None) -> None:
    """How to rebuild the system's module (for ``predict`` and ``export``), beside its weights."""
    system = ctx.system_name(system)
    write_json_atomic({**recipe, "system": system, "tasks": [task] if task else list(ctx.tasks)},
                      paths.system_recipe(ctx.run, system, task))  # fmt: skip


def rewind_state(ctx: Context) -> dict:
    """Multi-task warmup (Algorithm 1): the dense base network trained on all tasks for w epochs, the
    rewind point θ^(w); kept in the run's search folder."""
    return warmup(
        ctx.build_model(),
        ctx.tasks,
        ctx.train.replace(),
        epochs=ctx.search.warmup_epochs,
        seed=ctx.seed + 1,
        device=ctx.device,
        directory=paths.search_dir(ctx.run),
        log=ctx.log,
    )


def search_one(ctx: Context, task: str) -> None:
    """One task's IMP levels from the warmup's rewind point (a unit of its own on Ray; the warmup must
    be done, or it is run here first). The levels are left in the run's search folder."""
    state = rewind_state(ctx)
    search_masks(
        ctx.build_model(),
        {task: ctx.tasks[task]},
        state,
        search=ctx.search,
        settings=ctx.train.replace().replace(joint=False),
        seed=ctx.seed,
        device=ctx.device,
        directory=paths.search_dir(ctx.run),
        log=ctx.log,
    )


def search(ctx: Context) -> tuple[dict[str, Mask], dict]:
    """Warmup, then IMP per task (Algorithm 1); the selected masks and every task's levels."""
    s = ctx.search
    start = time.time()
    state = rewind_state(ctx)
    found = search_masks(
        ctx.build_model(),
        ctx.tasks,
        state,
        search=s,
        settings=ctx.train.replace().replace(joint=False),
        seed=ctx.seed,
        device=ctx.device,
        directory=paths.search_dir(ctx.run),
        log=ctx.log,
    )
    selected = select_subnets(found, s.force_density)
    levels = {
        t: {
            "levels": [x.__dict__ for x in r.levels],
            "selected": r.select(s.force_density.get(t)),
            "epochs": r.epochs,
            "budget": s.epochs_per_level,
        }
        for t, r in found.items()
    }
    ctx.log(
        {
            "phase": "search_done",
            "seconds": time.time() - start,
            "epochs": {t: r.epochs for t, r in found.items()},
        }
    )
    return selected, levels


def run_single_subnet(ctx: Context) -> dict:
    """Single task on its own subnet (Sun et al. 2020, Table 3 "Single task (subnet)"): each task is
    trained alone, under the mask the IMP search selected for it, to tell the benefit of pruning from
    that of sharing ("Where does the benefit come from?").

    The same search as sparse sharing (read back from the run when already done). As in the
    lottery-ticket protocol the search follows, each subnet starts from the rewind point of its mask: the
    multi-task warmup weights θ^(w) (θ^(0), the random initialisation, when 'search.warmup_epochs' is 0).
    `# Params` sums each task's kept weights and unpruned encoder parameters (biases, ...): one subnet per
    task, nothing shared.
    """
    masks, levels = search(ctx)
    state = rewind_state(ctx)
    result, params = {}, 0
    for t in ctx.tasks:
        model = ctx.build_model()
        load_state(
            model, state, paths.warmup(ctx.run)
        )  # the other tasks' heads ride along untrained: only t is run
        mech = SparseSharing(model, {u: masks[t] for u in model.tasks})
        save_recipe(
            ctx,
            "single_subnet",
            {**ctx.recipe(), "mechanism": "sparse", "options": {"names": list(masks[t])}},
            t,
        )
        train_jointly(
            mech,
            {t: ctx.tasks[t]},
            ctx.train.replace().replace(joint=False),
            seed=task_seed(ctx.seed, t),  # the task's own stream, as for single task
            device=ctx.device,
            directory=paths.system_dir(ctx.run, "single_subnet", t),
            log=ctx.log,
            desc=f"single_subnet {t}",
        )
        result.update(final_eval(ctx, mech, [t]))
        others = [n for n, _ in model.named_parameters() if n not in masks[t]]
        params += union_count([masks[t]]) + ctx.count_params(model, others)
    densities = {t: {"selected": v["selected"], "density": density(masks[t])} for t, v in levels.items()}
    return {"params": params, "tasks": result, "subnets": densities}


def run_sparse(ctx: Context) -> dict:
    """Sparse sharing: masks from IMP, all subnets trained jointly (task sampling) from θ^(w)."""
    masks, levels = search(ctx)
    save_masks(masks, paths.masks(ctx.run))
    model = ctx.build_model()
    load_state(model, rewind_state(ctx), paths.warmup(ctx.run))
    return {**_train_subnets(ctx, "sparse", model, masks), "search": _selected(masks, levels)}


def run_sparse_random(ctx: Context) -> dict:
    """Control: sparse sharing with random masks. Each task's mask keeps, in every masked matrix, as many
    weights as its IMP mask keeps there, drawn uniformly at random (seeded); trained as sparse sharing
    is, from θ^(w). Does the IMP mask matter, or only how many weights each task keeps?"""
    masks, levels = search(ctx)
    gen = torch.Generator().manual_seed(ctx.seed * 7919 + 17)
    drawn: dict[str, Mask] = {}
    for t, mask in masks.items():
        drawn[t] = {}
        for n, m in mask.items():
            keep = torch.zeros(m.numel(), dtype=torch.bool)
            keep[torch.randperm(m.numel(), generator=gen)[: int(m.sum())]] = True
            drawn[t][n] = keep.view(m.shape)
    model = ctx.build_model()
    load_state(model, rewind_state(ctx), paths.warmup(ctx.run))
    return {**_train_subnets(ctx, "sparse_random", model, drawn), "search": _selected(drawn, levels)}


def permuted_masks(masks: Mapping[str, Mask], seed: int) -> dict[str, Mask]:
    """Every task's mask with one random permutation per matrix, the same for all tasks: each matrix
    keeps the counts of every task and of every overlap (so the Overlap Ratio, Eq. 4, and the union are
    the IMP masks'), at other positions."""
    gen = torch.Generator().manual_seed(seed)
    names = list(next(iter(masks.values())))
    perms = {n: torch.randperm(masks[next(iter(masks))][n].numel(), generator=gen) for n in names}
    return {t: {n: m[n].flatten()[perms[n]].view(m[n].shape) for n in names} for t, m in masks.items()}


def run_sparse_permuted(ctx: Context) -> dict:
    """Control: sparse sharing with the IMP masks moved by one random permutation per matrix, applied
    to every task alike (``permuted_masks``), trained as sparse sharing is, from θ^(w). It keeps what
    ``sparse_random`` changes too (how much the tasks share, the union's size) and moves only the
    positions: do the IMP masks' positions matter, with the sharing held fixed?"""
    masks, levels = search(ctx)
    drawn = permuted_masks(masks, stream_seed(ctx.seed, "sparse_permuted"))
    model = ctx.build_model()
    load_state(model, rewind_state(ctx), paths.warmup(ctx.run))
    return {**_train_subnets(ctx, "sparse_permuted", model, drawn), "search": _selected(drawn, levels)}


def run_single_warm(ctx: Context) -> dict:
    """Control: single task, dense, from the multi-task warmup's weights θ^(w): each task trained alone
    on the whole network, as ``single_subnet`` is on its subnet. Against ``single_subnet`` it isolates
    pruning (same start, same stream, only the mask differs); against ``single`` the warmup. `# Params`
    as single task: one encoder per task."""
    state = rewind_state(ctx)
    result, params = {}, 0
    for t in ctx.tasks:
        model = ctx.build_model()
        load_state(model, state, paths.warmup(ctx.run))  # the other heads ride along untrained
        save_recipe(ctx, "single_warm", ctx.recipe(), t)
        train_jointly(
            model,
            {t: ctx.tasks[t]},
            ctx.train.replace().replace(joint=False),
            seed=task_seed(ctx.seed, t),  # the stream of single and single_subnet for this task
            device=ctx.device,
            directory=paths.system_dir(ctx.run, "single_warm", t),
            log=ctx.log,
            desc=f"single_warm {t}",
        )
        result.update(final_eval(ctx, model, [t]))
        params += ctx.count_params(model)
    return {"params": params, "tasks": result}


def run_sparse_reinit(ctx: Context) -> dict:
    """Control: sparse sharing with the IMP masks and the weights re-initialised (a fresh random draw,
    neither θ^(0) nor θ^(w); pretrained word vectors stay). The lottery-ticket control: do the masks
    work only with the weights they were found on?"""
    masks, levels = search(ctx)
    model = ctx.build(ctx.recipe(), seed=ctx.seed * 7919 + 29)
    return {**_train_subnets(ctx, "sparse_reinit", model, masks), "search": _selected(masks, levels)}


def _selected(masks: Mapping[str, Mask], levels: dict) -> dict:
    return {t: {**v, "density": density(masks[t])} for t, v in levels.items()}


def _train_subnets(ctx: Context, name: str, model, masks: Mapping[str, Mask]) -> dict:
    """Train ``model``'s subnets jointly with task sampling (as sparse sharing does), evaluate, count."""
    mech = SparseSharing(model, masks)
    pruned = list(next(iter(masks.values())))
    save_recipe(ctx, name, {**ctx.recipe(), "mechanism": "sparse", "options": {"names": pruned}})
    train_jointly(
        mech,
        ctx.tasks,
        ctx.train.replace().replace(joint=False),
        seed=ctx.seed,
        device=ctx.device,
        directory=paths.system_dir(ctx.run, name),
        log=ctx.log,
        desc=name,
    )
    others = [n for n, _ in model.named_parameters() if n not in pruned]
    params = union_count(list(masks.values())) + ctx.count_params(model, others)
    return {"params": params, "tasks": final_eval(ctx, mech, list(ctx.tasks))}
