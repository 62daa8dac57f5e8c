"""Sparse sharing over a small CNN: which parts of a convolutional network do the tasks' subnets keep?

Sun et al. (AAAI 2020) prune BiLSTM taggers; asked whether sparse sharing works for CNNs, they could not
say which parts to prune. This script runs the whole pipeline (multi-task warmup -> IMP per task -> the
best-dev subnet per task -> joint training of the subnets -> test, once) over a CNN of your own on
scikit-learn's digits (1797 8x8 images, shipped with scikit-learn), with three tasks over the same
images: ``digit`` (0-9), ``parity`` (odd/even) and ``loop`` (a closed loop: 0, 6, 8, 9). The prunable
weights are both conv kernels and the dense layer (not biases, not the task heads: the library's default
``exclude`` globs). The search runs twice from the same warmup, ``strategy="global"`` (one magnitude
ranking over all tensors, the paper's) and ``strategy="layerwise"`` (alpha of each tensor), and the table
gives each task's chosen density and test accuracy, and per layer each task's mask density and each
pair's intersection-over-union of kept weights (``ss.overlap_ratio`` on that one tensor; in brackets the
IoU independent random masks of those densities would have).

What it found (``--quick``, seed 0, alpha 0.4 down to density <= 0.2; numbers move with the seed): global
pruning does not spread evenly. It keeps most of the first conv layer (144 weights, fan-in 9, so its
initial weights are ~4x larger: 0.81-0.90 kept), prunes conv2 (4608) to 0.29-0.64 and the dense layer
(8192) hardest, 0.16-0.57: the pruning concentrates in the big dense layer, then conv2. Layer-wise pruning
gives every layer the same density by construction. Masks overlap well above chance in every layer under
both strategies, most in conv1; digit's and loop's masks are nearly the same (IoU 0.80-0.97). Every task
keeps 96-98% test accuracy at its chosen subnet (overall densities 0.22-0.60), so a CNN's conv kernels and
dense layer can be shared sparsely as the paper's BiLSTM weights are.

Run: ``python examples/cnn_digits.py [--quick] [--seed 0]`` (``--quick``: ~15-30 s on 2 CPU cores;
without it, more epochs and a finer IMP schedule).
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import sparseshare as ss

TASKS = {"digit": 10, "parity": 2, "loop": 2}  # task -> number of classes
LOOP_DIGITS = (0, 6, 8, 9)
SPLIT_SEED = 0  # the train/dev/test split is fixed whatever --seed


def labels(digit: np.ndarray) -> dict[str, np.ndarray]:
    """Every task's class ids from the digit."""
    return {"digit": digit, "parity": digit % 2, "loop": np.isin(digit, LOOP_DIGITS).astype(np.int64)}


class DigitsData:
    """The user's own task data (ss.TaskData): batches are ``{"x": [B, 1, 8, 8], task: [B] for each task}``
    (the library finds a task's targets under its name in a mapping)."""

    def __init__(self, splits: dict[str, tuple[np.ndarray, np.ndarray]]):
        self.splits = {
            s: (torch.tensor(x, dtype=torch.float32).view(-1, 1, 8, 8) / 16.0,
                {t: torch.tensor(v, dtype=torch.long) for t, v in labels(y).items()})
            for s, (x, y) in splits.items()
        }  # fmt: skip

    def num_examples(self, split: str) -> int:
        return len(self.splits[split][0])

    def batches(self, split: str, batch_size: int, shuffle: bool = False, generator=None):
        x, y = self.splits[split]
        order = torch.randperm(len(x), generator=generator) if shuffle else torch.arange(len(x))
        for idx in order.split(batch_size):
            yield {"x": x[idx], **{t: v[idx] for t, v in y.items()}}


def load_splits(fractions=(0.6, 0.2)) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's digits, split 60/20/20 train/dev/test by a fixed seeded permutation."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    cut = np.cumsum([int(f * len(x)) for f in fractions])
    return {s: (x[p], y[p]) for s, p in zip(("train", "dev", "test"), np.split(order, cut))}


class DigitsCNN(nn.Module):
    """A small CNN with a head per task (fits ss.MultiTaskModel): conv 1->16, pool, conv 16->32, pool,
    dense 128->64, heads 64->classes."""

    def __init__(self, tasks: dict[str, int] = TASKS, channels: tuple[int, int] = (16, 32), hidden: int = 64):
        super().__init__()
        self.tasks = list(tasks)
        self.conv1 = nn.Conv2d(1, channels[0], 3, padding=1)
        self.conv2 = nn.Conv2d(channels[0], channels[1], 3, padding=1)
        self.dense = nn.Linear(channels[1] * 2 * 2, hidden)
        self.heads = nn.ModuleDict({t: nn.Linear(hidden, k) for t, k in tasks.items()})

    def forward(self, batch: dict, task: str) -> torch.Tensor:
        h = F.max_pool2d(F.relu(self.conv1(batch["x"])), 2)  # [B, 16, 4, 4]
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)  # [B, 32, 2, 2]
        return self.heads[task](F.relu(self.dense(h.flatten(1))))

    def task_loss(self, out: torch.Tensor, batch: dict, task: str) -> torch.Tensor:
        return F.cross_entropy(out, batch[task])

    def task_parameter_names(self, task: str) -> list[str]:
        return [
            n
            for n, _ in self.named_parameters()
            if not n.startswith("heads.") or n.startswith(f"heads.{task}.")
        ]


def layer_report(masks: dict[str, dict[str, torch.Tensor]]) -> dict:
    """Per parameter tensor: each task's density and each pair's IoU of kept weights (``"a|b"``)."""
    names = list(next(iter(masks.values())))
    density = {n: {t: ss.density({n: m[n]}) for t, m in masks.items()} for n in names}
    iou = {
        n: {
            f"{a}|{b}": ss.overlap_ratio([{n: masks[a][n]}, {n: masks[b][n]}])
            for a, b in itertools.combinations(masks, 2)
        }
        for n in names
    }
    return {"density": density, "iou": iou}


def chance_iou(a: float, b: float) -> float:
    """The IoU that independent random masks of densities a and b have in expectation."""
    union = a + b - a * b
    return a * b / union if union > 0 else 1.0


def print_table(strategy: str, run: dict, sizes: dict[str, int]) -> None:
    tasks, pairs = list(run["density"]), list(run["overlap"])
    print(f"\n[{strategy}] chosen density / test accuracy: "
          + ", ".join(f"{t} {run['density'][t]:.2f} / {run['test'][t]:.3f}" for t in tasks))  # fmt: skip
    head = f"{'layer':14s} {'weights':>7s}  " + " ".join(f"{'d(' + t + ')':>9s}" for t in tasks)
    print(head + "  " + " ".join(f"{'IoU ' + p:>19s}" for p in pairs))
    rows = [*run["layers"]["density"], "all"]
    for n in rows:
        d = run["layers"]["density"][n] if n != "all" else run["density"]
        iou = run["layers"]["iou"][n] if n != "all" else run["overlap"]
        cells = " ".join(f"{d[t]:9.2f}" for t in tasks)
        ious = " ".join(f"{iou[p]:12.2f} ({chance_iou(*(d[t] for t in p.split('|'))):.2f})" for p in pairs)
        print(f"{n:14s} {sizes.get(n, sum(sizes.values())):7d}  {cells}  {ious}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small settings (the test's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strategies", nargs="+", default=["global", "layerwise"])
    args = parser.parse_args(argv)
    began = time.time()

    data = DigitsData(load_splits())
    tasks = {t: ss.Task(t, data, "accuracy") for t in TASKS}
    test_y = data.splits["test"][1]
    chance = {t: float(torch.bincount(y).max()) / len(y) for t, y in test_y.items()}  # the majority class
    print(f"digits: {', '.join(f'{s} {data.num_examples(s)}' for s in data.splits)} images; "
          f"tasks {list(TASKS)}; test majority {({t: round(c, 2) for t, c in chance.items()})}")  # fmt: skip

    if args.quick:
        warmup_epochs, train_epochs, search = (
            3,
            4,
            ss.SearchSettings(epochs_per_level=2, patience=0, alpha=0.4, min_density=0.2),
        )
    else:
        warmup_epochs, train_epochs, search = (
            10,
            20,
            ss.SearchSettings(epochs_per_level=8, patience=3, alpha=0.2, min_density=0.1),
        )
    settings = ss.TrainSettings(
        epochs=train_epochs, patience=0, batch_size=32, optimizer="adam", lr=3e-3, lr_decay=0.0, clip=5.0
    )

    torch.manual_seed(args.seed)
    model = DigitsCNN()
    state = ss.warmup(model, tasks, settings, epochs=warmup_epochs, seed=args.seed, progress=False)
    results: dict = {"chance": chance, "strategies": {}}
    for strategy in args.strategies:
        found = ss.search_masks(
            model, tasks, state, search=search.replace(strategy=strategy), settings=settings, seed=args.seed,
            progress=False,
        )  # fmt: skip
        masks = ss.select_subnets(found)
        model.load_state_dict(state)
        sparse = ss.SparseSharing(model, masks)
        ss.train_jointly(sparse, tasks, settings, seed=args.seed, progress=False)
        test = ss.evaluate(sparse, tasks, "test")  # the test set, once, at the end
        results["strategies"][strategy] = {
            "masks": masks,
            "mechanism": sparse,
            "density": {t: ss.density(m) for t, m in masks.items()},
            "overlap": ss.overlap_matrix(masks),
            "layers": layer_report(masks),
            "test": {t: s["accuracy"] for t, s in test.items()},
        }
        model = DigitsCNN()  # a fresh module for the next strategy (the last one is the mechanism's)
        model.load_state_dict(state)
    results["tasks"] = tasks

    sizes = {n: p.numel() for n, p in model.named_parameters()}
    for strategy, run in results["strategies"].items():
        print_table(strategy, run, {n: sizes[n] for n in run["layers"]["density"]})
    print(f"\nIoU: kept weights of both tasks / kept by either, per tensor (chance in brackets); "
          f"done in {time.time() - began:.1f} s")  # fmt: skip
    return results


if __name__ == "__main__":
    main()
