"""Systems shared by every experiment kind: final evaluation and sparse sharing (warmup, IMP, joint).

A context (sequence or tabular) provides ``cfg``, ``run``, ``tasks`` (TaskSpecs), ``device``, ``log``,
``build_model(tasks=None)``, ``settings()`` and ``count_params(model, names=None)``.
"""

from __future__ import annotations

import time

import torch

from sparseshare import paths
from sparseshare.masks.io import save_masks
from sparseshare.masks.mask import density, union_count
from sparseshare.pruning.prunable import prunable_names
from sparseshare.sharing.hard import HardSharing
from sparseshare.sharing.sparse import SparseSharing
from sparseshare.training.search import SearchSettings, search_task, select_level
from sparseshare.training.trainer import evaluate, train


def final_eval(ctx, mech, tasks: list[str], specs=None) -> dict:
    """Evaluate the best-dev state on dev and — once — on test."""
    specs = specs or ctx.tasks
    bs = ctx.settings().eval_batch_size
    out = {}
    for t in tasks:
        spec = specs[t]
        dev = evaluate(mech, spec, "dev", bs, ctx.device)
        test = evaluate(mech, spec, "test", bs, ctx.device)
        out[t] = {
            "metric": spec.metric,
            "dev": dev[spec.metric],
            "test": test[spec.metric],
            "all": {"dev": dev, "test": test},
        }
    return out


def warmup_state(ctx) -> dict:
    """Multi-task warmup: the dense network trained on all tasks for w epochs (the rewind point θ^(w))."""
    path = paths.warmup(ctx.run)
    if path.exists():
        return torch.load(path, map_location="cpu", weights_only=True)
    model = ctx.build_model()
    if ctx.cfg.search.warmup_epochs > 0:
        s = ctx.settings()
        s.epochs, s.patience, s.joint = ctx.cfg.search.warmup_epochs, 0, False
        train(
            HardSharing(model),
            ctx.tasks,
            s,
            seed=ctx.cfg.seed + 1,
            device=ctx.device,
            desc="warmup",
            log=ctx.log,
        )
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    return state


def search_masks(ctx) -> tuple[dict, dict]:
    """Warmup, then IMP per task (Algorithm 1); returns the selected masks and every task's levels."""
    s = ctx.cfg.search
    settings = SearchSettings(
        s.warmup_epochs, s.epochs_per_level, s.patience, s.alpha, s.min_density, s.strategy, s.force_density
    )
    start = time.time()
    state = warmup_state(ctx)
    names = prunable_names(dict(ctx.build_model().named_parameters()), s.include, s.exclude)
    if not names:
        from sparseshare.errors import ConfigError

        raise ConfigError(f"'search.include' {s.include} (minus 'search.exclude') matches no weight matrix")
    train_settings = ctx.settings()
    train_settings.joint = False
    selected, levels = {}, {}
    for t, spec in ctx.tasks.items():
        lv, masks = search_task(
            ctx.build_model,
            state,
            spec,
            names,
            train_settings,
            settings,
            seed=ctx.cfg.seed,
            device=ctx.device,
            out_dir=paths.search_dir(ctx.run),
            log=ctx.log,
        )
        pick = select_level(lv, s.force_density.get(t), spec.higher_is_better)
        selected[t] = masks[pick]
        levels[t] = {
            "levels": [x.__dict__ for x in lv],
            "selected": pick,
            "epochs": sum(x.epochs for x in lv),
        }
    ctx.log(
        {
            "phase": "search_done",
            "seconds": time.time() - start,
            "epochs": {t: v["epochs"] for t, v in levels.items()},
        }
    )
    return selected, levels


def run_single_subnet(ctx) -> dict:
    """Single task on its own subnet (Sun et al. 2020, Table 3 "Single task (subnet)"): each task is
    trained alone, under the mask the IMP search selected for it, to tell the benefit of pruning from
    that of sharing ("Where does the benefit come from?").

    The same search as sparse sharing (``search_masks``: read back from disk when already done). As in
    the lottery-ticket protocol the search follows, each subnet starts from the rewind point of its
    mask: the multi-task warmup weights θ^(w) (θ^(0), the random initialisation, when
    'search.warmup_epochs' is 0). `# Params` sums each task's kept weights and unpruned encoder
    parameters (biases, ...): one subnet per task, nothing shared.
    """
    masks, levels = search_masks(ctx)
    state = warmup_state(ctx)
    settings = ctx.settings()
    settings.joint = False
    result, params = {}, 0
    for t, spec in ctx.tasks.items():
        model = ctx.build_model()
        model.load_state_dict(state)  # the other tasks' heads ride along untrained: only t is run
        mech = SparseSharing(model, {u: masks[t] for u in model.tasks})
        res = train(
            mech,
            {t: spec},
            settings,
            seed=ctx.cfg.seed,
            device=ctx.device,
            ckpt_dir=paths.system_dir(ctx.run, "single_subnet", t),
            desc=f"single_subnet {t}",
            log=ctx.log,
        )
        mech.load_state_dict(res.best_state)
        result.update(final_eval(ctx, mech, [t]))
        others = [n for n, _ in model.named_parameters() if n not in masks[t]]
        params += union_count([masks[t]]) + ctx.count_params(model, others)
    densities = {t: {"selected": v["selected"], "density": density(masks[t])} for t, v in levels.items()}
    return {"params": params, "tasks": result, "subnets": densities}


def run_sparse(ctx) -> dict:
    """Sparse sharing: masks from IMP, all subnets trained jointly (task sampling) from θ^(w)."""
    masks, levels = search_masks(ctx)
    save_masks(masks, paths.masks(ctx.run))
    model = ctx.build_model()
    model.load_state_dict(warmup_state(ctx))
    mech = SparseSharing(model, masks)
    settings = ctx.settings()
    settings.joint = False
    res = train(
        mech,
        ctx.tasks,
        settings,
        seed=ctx.cfg.seed,
        device=ctx.device,
        ckpt_dir=paths.system_dir(ctx.run, "sparse"),
        desc="sparse",
        log=ctx.log,
    )
    mech.load_state_dict(res.best_state)
    pruned = list(next(iter(masks.values())))
    others = [n for n, _ in model.named_parameters() if n not in pruned]
    params = union_count(list(masks.values())) + ctx.count_params(model, others)
    return {
        "params": params,
        "tasks": final_eval(ctx, mech, list(ctx.tasks)),
        "search": {t: {**v, "density": density(masks[t])} for t, v in levels.items()},
    }
