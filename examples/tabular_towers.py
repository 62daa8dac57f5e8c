"""Your own arrays, experts and towers through PBFS and sparse sharing, beside a hard-sharing baseline.

What it shows, on numpy arrays you bring (here made up: X of shape (N, F), a binary target ``click`` and
a regression target ``spend`` that share a latent factor, ``spend`` missing on a third of the rows):

(a) PBFS (Entropy 2022) over experts and towers of your own: ``ss.PBFSNet(..., make_expert=...,
    make_tower=...)`` wrapped as ``ss.PBFS``, its shared experts pruned during joint training by
    ``ss.PBFSPruner`` (Algorithm 2: polynomial schedule to each task's target sparsity, best subnet kept),
    driven from the trainer by the ``ss.PBFSSchedule`` callback;
(b) sparse sharing (Sun et al., AAAI 2020) over your own shared-bottom multi-task MLP:
    warmup -> IMP per task -> best-dev subnets -> joint training;
(c) hard sharing of the same MLP from the same initial weights (the usual baseline);
and exporting one task's PBFS subnet to a file and loading it back with your own network factory.

How to adapt it: replace :func:`make_arrays` by your own arrays (``kinds`` says which targets are
``binary`` and which ``regression``; NaN in a target = no label for that row), and :class:`Expert`,
:class:`Tower` and :class:`SharedBottomMLP` by your modules. A PBFS expert maps ``x [B, F]`` to
``[B, expert_dim]``; a tower maps ``[B, expert_dim]`` to ``[B]`` (a logit for binary tasks, a value for
regression). Batches are ``ss.TabularBatch``: ``batch.x`` features, ``batch.y[task]`` labels.

Run: ``python examples/tabular_towers.py [--epochs 12] [--seed 0]`` (about 10 s on one CPU core; on a
busy machine set ``OMP_NUM_THREADS=1``: these models are too small to gain from more threads, and
threads spin-waiting for a shared core can make a run ten times slower).
"""

from __future__ import annotations

import argparse
import copy
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import sparseshare as ss

KINDS = {"click": "binary", "spend": "regression"}
METRICS = {"binary": "auc", "regression": "mse"}
NUM_FEATURES = 12
EXPERT_DIM = 16
WARMUP_EPOCHS = 2  # sparse sharing's multi-task warmup (its rewind point)


def make_arrays(n: int, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Features and two related targets: both depend on a shared latent factor, each has its own part."""
    x = rng.normal(size=(n, NUM_FEATURES))
    w = np.array([1.0, -0.8, 0.6, 0.5])
    shared = x[:, :4] @ w
    click_logit = 1.5 * shared + 1.2 * x[:, 4] * x[:, 5] - 0.5
    click = (rng.random(n) < 1.0 / (1.0 + np.exp(-click_logit))).astype(np.float32)
    spend = shared + np.sin(2.0 * x[:, 6]) + 0.5 * x[:, 7] ** 2 + 0.3 * rng.normal(size=n)
    spend[rng.random(n) < 1 / 3] = np.nan  # no label for these rows
    return x, {"click": click, "spend": spend}


class Expert(nn.Module):
    """A PBFS expert of your own: ``x [B, F] -> [B, out_dim]``."""

    def __init__(self, in_dim: int, hidden: int = 32, out_dim: int = EXPERT_DIM):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim), nn.GELU())
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Tower(nn.Module):
    """A task's tower: ``[B, dim] -> [B]`` (a logit or a value)."""

    def __init__(self, dim: int, hidden: int = 8):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h).squeeze(-1)


def make_pbfs_net(in_dim: int = NUM_FEATURES) -> ss.PBFSNet:
    """The PBFS network: one specific expert per task, two shared experts in one pool of both tasks."""
    return ss.PBFSNet(
        in_dim,
        KINDS,
        pools=[list(KINDS)],
        num_specific=1,
        num_shared=2,
        make_expert=lambda: Expert(in_dim),
        expert_dim=EXPERT_DIM,
        make_tower=lambda task, dim: Tower(dim),
    )


def kind_loss(kind: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """BCE-with-logits or MSE over the rows that have a label (NaN = none)."""
    has = torch.isfinite(y)
    y = torch.where(has, y, 0.0)
    if kind == "binary":
        per_row = F.binary_cross_entropy_with_logits(out, y, reduction="none")
    else:
        per_row = (out - y) ** 2
    return (per_row * has).sum() / has.sum().clamp(min=1)


class SharedBottomMLP(nn.Module):
    """A shared-bottom multi-task MLP of your own (Caruana 1997): one bottom, a tower per task."""

    def __init__(self, in_dim: int, kinds: dict[str, str], hidden: tuple[int, int] = (128, 64)):
        super().__init__()
        self.tasks, self.kinds = list(kinds), dict(kinds)
        self.bottom = nn.Sequential(
            nn.Linear(in_dim, hidden[0]), nn.ReLU(), nn.Linear(hidden[0], hidden[1]), nn.ReLU()
        )
        self.towers = nn.ModuleDict({t: Tower(hidden[1]) for t in kinds})

    def forward(self, batch: ss.TabularBatch, task: str) -> torch.Tensor:
        return self.towers[task](self.bottom(batch.x))

    def task_loss(self, out: torch.Tensor, batch: ss.TabularBatch, task: str) -> torch.Tensor:
        return kind_loss(self.kinds[task], out, batch.y[task])

    def task_predict(self, out: torch.Tensor, batch: ss.TabularBatch, task: str) -> torch.Tensor:
        return torch.sigmoid(out) if self.kinds[task] == "binary" else out

    def task_parameter_names(self, task: str) -> list[str]:
        return [n for n, _ in self.named_parameters() if n.startswith(("bottom.", f"towers.{task}."))]


def primary(scores: dict[str, dict[str, float]]) -> dict[str, float]:
    """Each task's primary test metric (AUC for binary tasks, MSE for regression)."""
    return {t: scores[t][METRICS[k]] for t, k in KINDS.items()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12, help="joint-training epochs")
    parser.add_argument("--rows", type=int, default=4000, help="rows in all (60/20/20 train/dev/test)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    began = time.time()

    rng = np.random.default_rng(args.seed)
    x, y = make_arrays(args.rows, rng)
    cut = np.cumsum([int(0.6 * args.rows), int(0.2 * args.rows)])
    parts = np.split(np.arange(args.rows), cut)
    splits = {s: (x[p], {t: v[p] for t, v in y.items()}) for s, p in zip(("train", "dev", "test"), parts)}
    data = ss.TabularData.from_arrays(splits, kinds=KINDS)
    tasks = {t: ss.Task(t, data.for_tasks([t]), METRICS[k]) for t, k in KINDS.items()}
    spend_test = splits["test"][1]["spend"]
    baseline_mse = float(np.nanvar(spend_test))  # predicting the test mean
    labelled = np.isfinite(y["spend"]).mean()
    print(f"{args.rows} rows, {NUM_FEATURES} features; spend labelled on {labelled:.0%} of them")

    settings = ss.TrainSettings(
        epochs=args.epochs, patience=0, batch_size=64, optimizer="adam", lr=3e-3, lr_decay=0.0, clip=5.0
    )
    steps_per_epoch = math.ceil(data.num_examples("train") / settings.batch_size)
    results: dict = {"baseline_mse": baseline_mse}

    # (a) PBFS over your own experts and towers, pruned during joint training
    torch.manual_seed(args.seed)
    pbfs = ss.PBFS(make_pbfs_net())
    target = {"click": 0.5, "spend": 0.7}
    end_step = max(1, (args.epochs * steps_per_epoch) // 2)
    pruner = ss.PBFSPruner(
        pbfs,
        target,
        initial_sparsity=0.2,
        begin_step=0,
        end_step=end_step,
        frequency=max(1, steps_per_epoch // 2),
    )
    # prunes to the initial sparsity now (step 2), on schedule after every update, keeps each task's best
    # subnet by its dev metric (MSE: lower is better) and restores it once the schedule has ended
    schedule = ss.PBFSSchedule(pruner, tasks)
    ss.train_jointly(
        pbfs, tasks, settings.replace(joint=True), joint_data=data, callbacks=[schedule], seed=args.seed
    )
    pbfs_test = primary(ss.evaluate(pbfs, tasks, "test"))
    sparsity = {t: pbfs.sparsity(t) for t in KINDS}
    results["pbfs"], results["pbfs_sparsity"], results["pbfs_target"] = pbfs_test, sparsity, target

    # export one task's subnet and load it back with your own network factory
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "click.safetensors"
        sizes = ss.export_subnet(pbfs, "click", path)
        subnet = ss.load_subnet(path, build=make_pbfs_net)
    same = all(
        torch.equal(subnet.predict(batch), pbfs.predict(batch, "click"))
        for batch in tasks["click"].data.batches("test", 256)
    )
    results["export"] = {**sizes, "predictions_equal": same}

    # (b) sparse sharing over your own shared-bottom MLP
    torch.manual_seed(args.seed)
    model = SharedBottomMLP(NUM_FEATURES, KINDS)
    initial = copy.deepcopy(model)
    state = ss.warmup(model, tasks, settings, epochs=WARMUP_EPOCHS, seed=args.seed)
    search = ss.SearchSettings(epochs_per_level=6, patience=0, alpha=0.5, min_density=0.1)
    found = ss.search_masks(model, tasks, state, search=search, settings=settings, seed=args.seed)
    masks = ss.select_subnets(found)
    model.load_state_dict(state)
    sparse = ss.SparseSharing(model, masks)
    ss.train_jointly(sparse, tasks, settings, seed=args.seed)
    results["sparse"] = primary(ss.evaluate(sparse, tasks, "test"))
    results["sparse_density"] = {t: ss.density(m) for t, m in masks.items()}
    results["sparse_overlap"] = ss.overlap_ratio(list(masks.values()))
    results["pruned"] = sorted(masks["click"])

    # (c) hard sharing of the same MLP from the same initial weights, trained as sparse sharing is (a task
    # sampled per step) for as many epochs as sparse sharing's warmup and joint training together
    hard = ss.HardSharing(initial)
    ss.train_jointly(hard, tasks, settings.replace(epochs=WARMUP_EPOCHS + args.epochs), seed=args.seed)
    results["hard"] = primary(ss.evaluate(hard, tasks, "test"))

    print(f"\n{'system':16s} {'click AUC':>9s} {'spend MSE':>9s}  shared weights kept")
    print(f"{'predict the mean':16s} {0.5:9.3f} {baseline_mse:9.3f}")
    for name, kept in (
        ("hard sharing", "all"),
        ("sparse sharing", ", ".join(f"{t} {d:.2f}" for t, d in results["sparse_density"].items())),
        ("PBFS", ", ".join(f"{t} {1 - s:.2f}" for t, s in sparsity.items())),
    ):
        r = results[name.split()[0].lower()]
        print(f"{name:16s} {r['click']:9.3f} {r['spend']:9.3f}  {kept}")
    print(f"sparse sharing pruned {results['pruned']}; Overlap Ratio {results['sparse_overlap']:.3f}")
    reached = {t: round(s, 3) for t, s in sparsity.items()}
    print(f"PBFS target sparsity {target}, reached {reached}")
    print(
        f"exported 'click' subnet: {sizes['bytes']:,} bytes (dense {sizes['dense_bytes']:,} bytes, "
        f"masked density {sizes['density']:.2f}); reloaded predictions equal: {same}"
    )
    print(f"done in {time.time() - began:.1f} s")
    return results


if __name__ == "__main__":
    main()
