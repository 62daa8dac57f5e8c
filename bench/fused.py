"""Fused Adam (``train.fused: true``) against torch's default Adam, on the paper's tagger.

Two identical models, each with its own optimizer (default, and ``make_optimizer(..., fused=True)``),
take the same steps in alternation, so machine noise hits both alike; two timings per step: the
optimizer step alone, and the whole training step (forward, backward, clip, masked step of sparse
sharing, as the trainer takes it). The lines give the medians and the ratio fused / default (below 1:
fused is faster). Usage: python bench/fused.py [--steps N] [--device cpu|cuda] [--threads N]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from masked_step import make_batch  # noqa: E402  (the paper-shaped tagger batch of bench/masked_step.py)

from sparseshare.models.tagger import build_tagger  # noqa: E402
from sparseshare.pruning import prunable_names  # noqa: E402
from sparseshare.sharing import SparseSharing  # noqa: E402
from sparseshare.training.trainer import make_optimizer  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    tasks = {"pos": 45, "chunk": 23, "ner": 17}
    torch.manual_seed(0)
    base = build_tagger(20000, 80, tasks, word_dim=100, hidden=200, dropout=0.5)
    params = dict(base.named_parameters())
    g = torch.Generator().manual_seed(0)
    masks = {
        t: {n: torch.rand(params[n].shape, generator=g) < 0.5 for n in prunable_names(params)} for t in tasks
    }
    batches = [make_batch(g, n_tags=17, device=dev) for _ in range(8)]
    runs = {}
    for fused in (False, True):
        mech = SparseSharing(copy.deepcopy(base), masks).to(dev)
        trained = [p for p in mech.parameters() if p.requires_grad]
        opt = make_optimizer(trained, "adam", 1e-3, fused=fused)
        runs["fused" if fused else "default"] = (
            mech,
            trained,
            opt,
            {"optimizer step": [], "training step": []},
        )
    order = list(tasks)
    for i in range(args.warmup + args.steps):
        task, batch = order[i % len(order)], batches[i % len(batches)]
        for name in ["default", "fused"] if i % 2 == 0 else ["fused", "default"]:
            mech, trained, opt, times = runs[name]
            _sync(dev)
            began = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            with mech.applied(task):
                mech.loss(batch, task).backward()
                torch.nn.utils.clip_grad_norm_(trained, 5.0)
                _sync(dev)
                stepped = time.perf_counter()
                mech.step(opt, task)
                _sync(dev)
            ended = time.perf_counter()
            if i >= args.warmup:
                times["optimizer step"].append(ended - stepped)
                times["training step"].append(ended - began)
    n = sum(p.numel() for p in runs["default"][1])
    print(f"Adam on the paper's tagger ({n:_} trained weights, batch 10), {args.device}, "
          f"{args.threads} thread(s), {args.steps} steps each, interleaved; medians")  # fmt: skip
    for what in ("optimizer step", "training step"):
        d = statistics.median(runs["default"][3][what])
        f = statistics.median(runs["fused"][3][what])
        print(f"{what:>15}: default {d * 1e3:8.2f} ms  fused {f * 1e3:8.2f} ms  fused/default {f / d:.3f}")


if __name__ == "__main__":
    main()
