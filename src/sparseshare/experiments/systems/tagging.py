"""The sequence-labelling systems of the sparse-sharing paper (Exp1-3, Table 3) that are its own:
single task, hard, soft (cross-stitch) and hierarchical sharing (sparse sharing and single task on its
subnet are in ``sparse_sharing.py``).

Each system trains with the same trainer and data; selection (checkpoints, subnets) uses dev only and
each system's best-dev state is evaluated on test exactly once. Finished systems and IMP levels are
kept on disk, so a killed run started again with the same command resumes where it stopped.
"""

from __future__ import annotations

from sparseshare import paths
from sparseshare.experiments.systems.context import Context, encoder_param_count
from sparseshare.experiments.systems.sparse_sharing import final_eval, save_recipe
from sparseshare.sharing.hierarchical import DEFAULT_LEVELS
from sparseshare.training.pipeline import train_jointly
from sparseshare.training.streams import task_seed


def train_and_evaluate(
    ctx: Context, name: str, mech, tasks: list[str] | None = None, task: str | None = None,
    callbacks=None, patience: int | None = None, restore_best: bool = True, evaluate: bool = True,
) -> dict:  # fmt: skip
    """Train ``mech`` (task sampling, or all tasks per step with 'train.joint'), restore its best-dev
    state, evaluate it (``evaluate``). A system per ``task`` trains on that task's own stream
    (``task_seed``). ``callbacks``, ``patience`` and ``restore_best`` as ``train_jointly`` takes them."""
    tasks = tasks or list(ctx.tasks)
    name = ctx.system_name(name)
    settings = ctx.train.replace() if patience is None else ctx.train.replace(patience=patience)
    train_jointly(
        mech,
        {t: ctx.tasks[t] for t in tasks},
        settings,
        seed=task_seed(ctx.seed, task) if task else ctx.seed,  # a task alone: its own stream
        device=ctx.device,
        directory=paths.system_dir(ctx.run, name, task),
        log=ctx.log,
        desc=f"{name} {task}" if task else name,
        callbacks=callbacks,
        restore_best=restore_best,
    )
    return final_eval(ctx, mech, tasks) if evaluate else {}


def run_single(ctx: Context) -> dict:
    """Single-task baseline: one full model per task, trained alone."""
    result, params = {}, 0
    for t in ctx.tasks:
        recipe = ctx.recipe([t])
        model = ctx.build(recipe)
        save_recipe(ctx, "single", recipe, t)
        result.update(train_and_evaluate(ctx, "single", model, [t], task=t))
        params += encoder_param_count(model)
    return {"params": params, "tasks": result}


def run_hard(ctx: Context) -> dict:
    """Hard sharing: one encoder, all tasks, proportional task sampling."""
    recipe = ctx.recipe()
    model = ctx.build(recipe)
    save_recipe(ctx, "hard", recipe)
    return {"params": encoder_param_count(model), "tasks": train_and_evaluate(ctx, "hard", model)}


def run_cross_stitch(ctx: Context) -> dict:
    """Soft sharing (Misra et al. 2016): a BiLSTM column per task, cross-stitch units after each layer.

    `# Params` counts the columns, the char-CNN and the units (Table 3: 1596k with a 1-layer BiLSTM).
    """
    recipe = {**ctx.recipe(), "mechanism": "cross_stitch_tagger"}
    mech = ctx.build(recipe)
    save_recipe(ctx, "cross_stitch", recipe)
    return {"params": encoder_param_count(mech), "tasks": train_and_evaluate(ctx, "cross_stitch", mech)}


def run_hierarchical(ctx: Context) -> dict:
    """Hierarchical sharing (Søgaard and Goldberg 2016) on a 2-layer BiLSTM, whatever 'model.layers' says.

    The paper: "2-layer BiLSTM for hierarchical sharing and 1-layer BiLSTM for other settings" (Exp1).
    POS is supervised at layer 1, chunking and NER at layer 2, or as 'model.hierarchy' says (a mapping
    naming a layer above 2 deepens the BiLSTM to it).
    """
    levels = {**DEFAULT_LEVELS, **ctx.model.hierarchy}
    depth = max([2, *(levels[t] for t in ctx.tasks if t in levels)])
    recipe = {
        **ctx.recipe(layers=depth),
        "mechanism": "hierarchical",
        "options": {"levels": ctx.model.hierarchy},
    }
    mech = ctx.build(recipe)
    save_recipe(ctx, "hierarchical", recipe)
    return {"params": encoder_param_count(mech), "tasks": train_and_evaluate(ctx, "hierarchical", mech)}
