"""Experts of your own in MMoE and PLE, and MMoE, PLE and PBFS per token over a shared embedding for
sequence labelling.

(a) MMoE (Ma et al., KDD 2018) and PLE (Tang et al., RecSys 2020) with your own expert module passed as
    ``expert=``, a factory ``expert(in_dim, out_dim) -> nn.Module`` (here a residual block with
    LayerNorm), on two related tabular tasks (a binary ``click``, a regression ``spend``; made up here);
(b) ``TokenMMoE``, ``TokenPLE`` (with the residual expert) and ``token_pbfs`` (PBFS, each task pruning
    the shared experts to 60% sparsity on Algorithm 2's schedule): experts and per-task gates per token
    over one word embedding shared by three tagging tasks of the toy column files in
    ``examples/byo_sequence`` (two POS tag sets and place-name spans), trained with proportional task
    sampling and scored with the library's metrics.

Run: ``python examples/own_encoder_experts.py [--quick] [--seed 0]`` (``--quick``: a few epochs, well
under a minute on 2 CPU cores; set ``OMP_NUM_THREADS=1`` on a busy machine).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import sparseshare as ss
from sparseshare.data.columns import columns_tasks, task_kind
from sparseshare.data.sequence import SequenceData, build_shared_vocabs
from sparseshare.models.token_experts import TokenMMoE

HERE = Path(__file__).resolve().parent
KINDS = {"click": "binary", "spend": "regression"}
METRICS = {"binary": "auc", "regression": "mse"}
SEQ_TASKS = {"coarse_pos": 1, "fine_pos": 2, "places": 3}  # task -> tag column of the files
SPANS = {"places": "bioes"}


class ResidualExpert(nn.Module):
    """Your own expert: ``x [N, in_dim] -> [N, out_dim]``, a projection and a LayerNorm'd residual MLP."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim)
        self.block = nn.Sequential(nn.LayerNorm(out_dim), nn.Linear(out_dim, out_dim), nn.GELU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(x)
        return h + self.block(h)


def tabular_tasks(rows: int, seed: int) -> dict[str, ss.Task]:
    """Two targets sharing a latent factor, each with its own part; spend unlabelled on a third of rows."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 12))
    shared = x[:, :4] @ np.array([1.0, -0.8, 0.6, 0.5])
    click_logit = 1.5 * shared + 1.2 * x[:, 4] * x[:, 5] - 0.5
    click = (rng.random(rows) < 1.0 / (1.0 + np.exp(-click_logit))).astype(np.float32)
    spend = shared + np.sin(2.0 * x[:, 6]) + 0.5 * x[:, 7] ** 2 + 0.3 * rng.normal(size=rows)
    spend[rng.random(rows) < 1 / 3] = np.nan
    parts = np.split(np.arange(rows), np.cumsum([int(0.6 * rows), int(0.2 * rows)]))
    y = {"click": click, "spend": spend}
    splits = {s: (x[p], {t: v[p] for t, v in y.items()}) for s, p in zip(("train", "dev", "test"), parts)}
    data = ss.TabularData.from_arrays(splits, kinds=KINDS)
    return {t: ss.Task(t, data.for_tasks([t]), METRICS[k]) for t, k in KINDS.items()}


def sequence_tasks() -> dict[str, ss.Task]:
    """The byo_sequence files as three tasks over shared word and char vocabularies."""
    files = {s: HERE / "byo_sequence" / f"{s}.txt" for s in ("train", "dev", "test")}
    raw = columns_tasks(files, SEQ_TASKS, spans=SPANS)
    words, chars = build_shared_vocabs([raw[t]["train"] for t in SEQ_TASKS])
    tasks = {}
    for t in SEQ_TASKS:
        metric, scheme = task_kind(t, SPANS)
        tasks[t] = ss.Task(t, SequenceData(t, raw[t], words, chars), metric, scheme=scheme)
    return tasks


def show(name: str, model, tasks, seconds: float) -> None:
    dev, test = ss.evaluate(model, tasks, "dev"), ss.evaluate(model, tasks, "test")
    scores = ", ".join(
        f"{t} {k} dev {dev[t][k]:.3f} test {test[t][k]:.3f}" for t in tasks for k in list(test[t])[:1]
    )
    print(f"{name:<11} {scores}  ({seconds:.1f} s)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few epochs, fewer rows (a smoke run)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    tab_epochs, seq_epochs, rows = (3, 4, 1500) if args.quick else (12, 15, 4000)

    # (a) your own experts in MMoE and PLE
    tasks = tabular_tasks(rows, args.seed)
    settings = ss.TrainSettings(
        epochs=tab_epochs, patience=0, batch_size=64, optimizer="adam", lr=3e-3, lr_decay=0.0
    )
    for name, build in (
        ("mmoe", lambda: ss.MMoE(12, KINDS, num_experts=4, expert=ResidualExpert, expert_dim=16)),
        (
            "ple",
            lambda: ss.PLE(12, KINDS, num_specific=1, num_shared=2, expert=ResidualExpert, expert_dim=16),
        ),
    ):
        began = time.time()
        torch.manual_seed(args.seed)
        model = build()
        ss.train_jointly(model, tasks, settings, seed=args.seed, progress=False)
        show(name, model, tasks, time.time() - began)

    # (b) MMoE, PLE and PBFS per token over one shared embedding (your own expert module in PLE's),
    # three tagging tasks, proportional task sampling
    seq = sequence_tasks()
    n_tags = {t: len(task.data.tag_vocab) for t, task in seq.items()}
    vocab = len(next(iter(seq.values())).data.word_vocab)
    settings = ss.TrainSettings(
        epochs=seq_epochs, patience=0, batch_size=16, optimizer="adam", lr=1e-2, lr_decay=0.0,
        sampler="proportional",
    )  # fmt: skip
    shared = {"embedding_dim": 32, "dropout": 0.1}
    for name, build in (
        ("token_mmoe", lambda: TokenMMoE(n_tags, vocab, num_experts=4, expert_hidden=(32,), **shared)),
        (
            "token_ple",
            lambda: ss.TokenPLE(n_tags, vocab, num_shared=2, expert=ResidualExpert, expert_dim=32, **shared),
        ),  # fmt: skip
        ("token_pbfs", lambda: ss.token_pbfs(n_tags, vocab, expert_hidden=(32,), **shared)),
    ):
        began = time.time()
        torch.manual_seed(args.seed)
        model = build()
        callbacks = []
        if isinstance(model, ss.PBFS):  # Algorithm 2: every task to 60% sparsity over 3/4 of training
            steps = seq_epochs * sum(-(-task.data.num_examples("train") // 16) for task in seq.values())
            pruner = ss.PBFSPruner(model, dict.fromkeys(n_tags, 0.6), 0.1, 0, steps * 3 // 4, 5)
            callbacks = [ss.PBFSSchedule(pruner, seq)]
        ss.train_jointly(model, seq, settings, seed=args.seed, progress=False, callbacks=callbacks)
        show(name, model, seq, time.time() - began)
        if callbacks:
            print("  kept per task:", {t: f"{1 - model.sparsity(t):.2f}" for t in n_tags})


if __name__ == "__main__":
    main()
