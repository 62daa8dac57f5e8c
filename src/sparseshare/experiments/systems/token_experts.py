"""The PBFS paper's gated-expert systems on sequence data: MMoE, CGC, PLE and PBFS per token.

Every real token's word + char-CNN embedding (the tagger's input, sized by the config's 'model' section)
is a row for the experts; each task's decoder ('model.decoder': linear or CRF) reads its gated mixture
(``models/token_experts.py``, ``sharing/token_ple.py``). The experts are sized by the 'tabular' section,
as on tables (``num_experts``, ``mmoe_expert``; ``num_specific``, ``num_shared``, ``ple_expert``,
``levels``; ``pbfs_expert``); the decoder is the tower, so 'tabular.tower' is not read. The experts see
one token at a time: no BiLSTM, no context beyond the char-CNN's word.

They train as the other sequence systems do (a task sampled per step, or every task per step with
'train.joint'); PBFS prunes each task's shared experts on Algorithm 2's schedule over all of training and
tests each task on its own best-dev subnet, as on tables. Pools: 'pbfs.pools', else one pool of every
task (Algorithm 1 correlates labels of the same rows; tagging tasks have tag sets of their own, often on
other sentences, so there is nothing to correlate).
"""

from __future__ import annotations

import logging

from sparseshare.experiments.systems.context import Context
from sparseshare.experiments.systems.sparse_sharing import save_recipe
from sparseshare.experiments.systems.tabular import mechanism_sizes, pbfs_pruner, pbfs_result
from sparseshare.experiments.systems.tagging import train_and_evaluate
from sparseshare.training.callbacks import PBFSSchedule
from sparseshare.training.trainer import steps_per_epoch

logger = logging.getLogger("sparseshare")

# the tagger's sizes a token network reads (the rest of the base recipe is the BiLSTM's)
INPUT_KEYS = ("n_words", "n_chars", "word_dim", "char_dim", "char_filters", "char_width", "dropout",
              "word_dropout", "decoder")  # fmt: skip


def token_recipe(ctx: Context, network: str, **sizes) -> dict:
    """A token network over the run's vocabularies and every task's tags, sized by ``sizes``."""
    base = {k: ctx.prepared.base[k] for k in INPUT_KEYS}
    n_tags = {t: len(task.labels) for t, task in ctx.tasks.items()}
    return {"network": network, "kwargs": {**base, "n_tags": n_tags, **sizes}}


def expert_param_count(model) -> int:
    """`# Params` of a token network (or PBFS over one): experts and gates, no embeddings and no output
    layers, as the sequence tables count."""
    return sum(
        p.numel()
        for n, p in model.named_parameters()
        if not n.removeprefix("model.").startswith(("embedding.", "heads."))
    )


def _sizes(ctx: Context, system: str) -> dict:
    """The system's expert sizes as on tables (``tabular.mechanism_sizes``), less the tower (the decoder is
    the tower); CGC is PLE with one level."""
    sizes = {k: v for k, v in mechanism_sizes(ctx, system).items() if k != "tower"}
    return {**sizes, "levels": 1} if system == "cgc" else sizes


def run_gated(system: str):
    """MMoE (Ma et al. 2018), CGC or PLE (Tang et al. 2020) per token."""
    network = "token_mmoe" if system == "mmoe" else "token_ple"

    def runner(ctx: Context) -> dict:
        recipe = token_recipe(ctx, network, **_sizes(ctx, system))
        mech = ctx.build(recipe)
        save_recipe(ctx, system, recipe)
        return {"params": expert_param_count(mech), "tasks": train_and_evaluate(ctx, system, mech)}

    runner.__doc__ = f"{system} per token over the words + char-CNN."
    return runner


def run_pbfs(ctx: Context) -> dict:
    """PBFS per token: task-specific experts, pruned shared experts in pools, gates, a decoder per task."""
    pools = ctx.pbfs.pools or [list(ctx.tasks)]
    if not ctx.pbfs.pools:
        logger.info("pbfs: one shared pool of every task (sequence data: set 'pbfs.pools' for others)")
    recipe = {**token_recipe(ctx, "token_pbfs_net", pools=pools, **_sizes(ctx, "pbfs")), "mechanism": "pbfs"}
    mech = ctx.build(recipe)
    save_recipe(ctx, "pbfs", recipe)
    per_epoch = steps_per_epoch(ctx.tasks, ctx.train)
    pruner = pbfs_pruner(ctx, mech, ctx.train.epochs * per_epoch)
    schedule = PBFSSchedule(pruner, ctx.tasks)  # Algorithm 2, step 2: prunes mu before training
    # steps 3-5 over the whole training (no early stopping: the schedule always completes)
    train_and_evaluate(
        ctx, "pbfs", mech, callbacks=[schedule], patience=0, restore_best=False, evaluate=False
    )
    out = pbfs_result(ctx, mech, pruner, recipe, pools, per_epoch)
    return {**out, "params": expert_param_count(mech)}
