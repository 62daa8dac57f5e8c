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
