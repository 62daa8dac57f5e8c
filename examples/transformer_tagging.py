"""Sparse sharing over your own base network: a small Transformer encoder with two token-level tasks.

What it shows: the whole sparse-sharing pipeline (Sun et al., AAAI 2020, Algorithm 1) on a model you
write yourself, with nothing from sparseshare but its public API::

    warmup -> search_masks (IMP per task) -> select_subnets -> SparseSharing -> train_jointly -> evaluate

and a hard-sharing baseline trained from the same initial weights for comparison. The data are made up
in memory: token sequences over a vocabulary of 1..V (0 is padding) and two related but different
tagging tasks, each with its own sentences (as when two corpora are annotated for different tasks):

- ``mod5``: the tag of a token is its id mod 5 (a property of the token alone: easy);
- ``step``: how the token compares with its left neighbour: 0 first token, 1 smaller, 2 equal, 3 larger
  (needs attention to the previous position).

How to adapt it: replace :func:`make_split` by your own Datasets (or DataLoaders) that give batches as
dicts with the model's inputs and the targets under ``"labels"`` (-100 on padding: the ``accuracy``
metric leaves negative targets out), and :class:`Tagger` by your network. A model fits sparseshare when
it has ``tasks`` (the task names), ``forward(batch, task)`` and ``task_loss(output, batch, task)``;
``task_predict`` and ``task_parameter_names`` are optional but recommended. By default IMP prunes the
weight matrices every task reaches (here the encoder's), never embeddings, biases or the heads in
``heads``; ``ss.SearchSettings(include=[...], exclude=[...])`` changes that by name globs.

Run: ``python examples/transformer_tagging.py [--epochs 6] [--seed 0]`` (about 10 s on one CPU core; on a
busy machine set ``OMP_NUM_THREADS=1``: the model is too small to gain from more threads, and threads
spin-waiting for a shared core can make a run ten times slower).
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

import sparseshare as ss

VOCAB = 20  # token ids 1..VOCAB; 0 is padding
MAX_LEN = 12
PAD, IGNORE = 0, -100
NUM_TAGS = {"mod5": 5, "step": 4}


def tag_mod5(tokens: np.ndarray) -> np.ndarray:
    return tokens % 5


def tag_step(tokens: np.ndarray) -> np.ndarray:
    prev = np.concatenate([[0], tokens[:-1]])
    tags = 1 + (tokens == prev) + 2 * (tokens > prev)
    tags[0] = 0
    return tags


TAGGERS = {"mod5": tag_mod5, "step": tag_step}


class Sentences(Dataset):
    """Token sequences (1-D int arrays) with one task's tags."""

    def __init__(self, sentences: list[np.ndarray], tags: list[np.ndarray]):
        self.sentences, self.tags = sentences, tags

    def __len__(self) -> int:
        return len(self.sentences)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.sentences[i], self.tags[i]


def collate(examples: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Pad a batch to its longest sentence: tokens with 0, tags with -100."""
    n = max(len(s) for s, _ in examples)
    tokens = torch.full((len(examples), n), PAD, dtype=torch.long)
    labels = torch.full((len(examples), n), IGNORE, dtype=torch.long)
    for i, (s, t) in enumerate(examples):
        tokens[i, : len(s)] = torch.from_numpy(s)
        labels[i, : len(t)] = torch.from_numpy(t)
    return {"tokens": tokens, "labels": labels}


def make_split(task: str, n: int, rng: np.random.Generator) -> Sentences:
    """``n`` random sentences of 6..MAX_LEN tokens (a fifth of the tokens repeat their left neighbour)."""
    sentences = []
    for _ in range(n):
        s = rng.integers(1, VOCAB + 1, size=int(rng.integers(6, MAX_LEN + 1)))
        repeat = rng.random(len(s)) < 0.2
        for j in range(1, len(s)):
            if repeat[j]:
                s[j] = s[j - 1]
        sentences.append(s)
    return Sentences(sentences, [TAGGERS[task](s) for s in sentences])


class Tagger(nn.Module):
    """Token and position embeddings, a TransformerEncoder shared by all tasks, a linear head per task."""

    def __init__(self, num_tags: dict[str, int], d_model: int = 32, heads: int = 2, layers: int = 2):
        super().__init__()
        self.tasks = list(num_tags)
        self.embed = nn.Embedding(VOCAB + 1, d_model, padding_idx=PAD)
        self.pos_embed = nn.Embedding(MAX_LEN, d_model)
        layer = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=64, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.heads = nn.ModuleDict({t: nn.Linear(d_model, n) for t, n in num_tags.items()})

    def forward(self, batch: dict[str, torch.Tensor], task: str) -> torch.Tensor:
        tokens = batch["tokens"]
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        h = self.embed(tokens) + self.pos_embed(positions)
        h = self.encoder(h, src_key_padding_mask=tokens == PAD)
        return self.heads[task](h)  # [B, L, tags]

    def task_loss(self, output: torch.Tensor, batch: dict[str, torch.Tensor], task: str) -> torch.Tensor:
        return F.cross_entropy(output.flatten(0, 1), batch["labels"].flatten(), ignore_index=IGNORE)

    def task_predict(self, output: torch.Tensor, batch: dict[str, torch.Tensor], task: str) -> torch.Tensor:
        return output.argmax(-1)

    def task_parameter_names(self, task: str) -> list[str]:
        """What ``task``'s loss reaches: everything but the other tasks' heads."""
        others = tuple(f"heads.{t}." for t in self.tasks if t != task)
        return [n for n, _ in self.named_parameters() if not n.startswith(others)]


def chance_overlap(d1: float, d2: float) -> float:
    """Expected Overlap Ratio of two independent random masks of densities d1 and d2."""
    return d1 * d2 / (d1 + d2 - d1 * d2)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6, help="joint-training epochs")
    parser.add_argument("--warmup-epochs", type=int, default=2)
    parser.add_argument("--epochs-per-level", type=int, default=2, help="IMP training epochs per level")
    parser.add_argument("--alpha", type=float, default=0.3, help="fraction pruned per IMP level")
    parser.add_argument("--min-density", type=float, default=0.25)
    parser.add_argument("--train", type=int, default=800, help="training sentences per task")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    began = time.time()

    rng = np.random.default_rng(args.seed)
    tasks, majority = [], {}
    for name in NUM_TAGS:
        sizes = {"train": args.train, "dev": 200, "test": 200}
        splits = {split: make_split(name, n, rng) for split, n in sizes.items()}
        tasks.append(ss.Task.from_loaders(name, **splits, collate_fn=collate, metric="accuracy"))
        counts = np.bincount(np.concatenate(splits["test"].tags), minlength=NUM_TAGS[name])
        majority[name] = counts.max() / counts.sum()  # accuracy of always guessing the commonest tag

    torch.manual_seed(args.seed)
    model = Tagger(NUM_TAGS)
    initial = copy.deepcopy(model)  # the hard-sharing baseline starts from the same weights
    settings = ss.TrainSettings(
        epochs=args.epochs, patience=0, batch_size=32, optimizer="adam", lr=3e-3, lr_decay=0.0, clip=1.0
    )

    # 1. multi-task warmup: the rewind point θ^(w) of every IMP level
    state = ss.warmup(model, tasks, settings, epochs=args.warmup_epochs, seed=args.seed)
    # 2. IMP per task, from θ^(w); 3. each task's best-dev level
    search = ss.SearchSettings(
        epochs_per_level=args.epochs_per_level, patience=0, alpha=args.alpha, min_density=args.min_density
    )
    found = ss.search_masks(model, tasks, state, search=search, settings=settings, seed=args.seed)
    masks = ss.select_subnets(found)
    pruned = sorted(masks["mod5"])
    params = dict(model.named_parameters())
    n_pruned = sum(params[n].numel() for n in pruned)
    n_total = sum(p.numel() for p in model.parameters())
    print(f"IMP masks {len(pruned)} weight matrices, {n_pruned:,} of the model's {n_total:,} parameters:")
    for n in pruned:
        print(f"  {n:45s} {tuple(params[n].shape)}")
    for name, res in found.items():
        levels = ", ".join(f"{lv.density:.2f}:{lv.dev:.3f}" for lv in res.levels)
        print(f"  {name}: levels (density:dev acc) {levels}; selected {res.levels[res.select()].density:.3f}")

    # 4. joint training of the subnets, from θ^(w)
    model.load_state_dict(state)
    sparse = ss.SparseSharing(model, masks)
    ss.train_jointly(sparse, tasks, settings, seed=args.seed)
    sparse_test = ss.evaluate(sparse, tasks, "test")

    # baseline: hard sharing from the same initial weights, for warmup + joint epochs
    hard = ss.HardSharing(initial)
    ss.train_jointly(hard, tasks, settings.replace(epochs=args.warmup_epochs + args.epochs), seed=args.seed)
    hard_test = ss.evaluate(hard, tasks, "test")

    dens = {t: ss.density(m) for t, m in masks.items()}
    overlap = ss.overlap_ratio([masks["mod5"], masks["step"]])
    chance = chance_overlap(dens["mod5"], dens["step"])
    print(f"\n{'task':6s} {'sparse acc':>10s} {'hard acc':>9s} {'majority':>9s} {'density':>8s}")
    for t in NUM_TAGS:
        acc_s, acc_h = sparse_test[t]["accuracy"], hard_test[t]["accuracy"]
        print(f"{t:6s} {acc_s:10.3f} {acc_h:9.3f} {majority[t]:9.3f} {dens[t]:8.3f}")
    print(f"Overlap Ratio of the two masks: {overlap:.3f}; independent random masks: {chance:.3f}")
    print(f"done in {time.time() - began:.1f} s")
    return {
        "sparse": {t: sparse_test[t]["accuracy"] for t in NUM_TAGS},
        "hard": {t: hard_test[t]["accuracy"] for t in NUM_TAGS},
        "majority": majority,
        "density": dens,
        "overlap": overlap,
        "chance_overlap": chance,
        "pruned": pruned,
    }


if __name__ == "__main__":
    main()
