"""Masked joint-training step vs unmasked (hard-sharing) step on the paper's tagger, batch 10.

All mechanisms share one model shape and the same batches; steps are interleaved in a rotating order
so machine noise hits them alike. The masked step is timed as the trainer takes it (the mask applied to
the weights in place, ``SparseSharing.applied``), and beside it with the weights substituted through
``functional_call`` (what ``forward`` does outside a training step). One line per optimizer (the
paper's plain SGD, SGD with momentum 0.9, Adam) gives the median per-step time ratio masked / unmasked;
the last line is the worst of the three. On a CPU with one thread a step is timed by the process's CPU
time (``time.process_time``), which other processes on a shared machine do not inflate (they still share
its caches and memory bandwidth: run it on a quiet machine for the figures to quote); on a GPU by the
wall clock between synchronisations.
Goal: <= 1.05 on CPU and GPU.
Usage: python bench/masked_step.py [--steps N] [--device cpu|cuda] [--threads T]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import time

import torch

from sparseshare.models.tagger import build_tagger
from sparseshare.pruning import prunable_names
from sparseshare.sharing import HardSharing, SparseSharing


class Batch:
    def __init__(self, words, chars, mask, tags):
        self.words, self.chars, self.mask, self.tags = words, chars, mask, tags

    def to(self, device):
        return Batch(*(t.to(device) for t in (self.words, self.chars, self.mask, self.tags)))


def make_batch(g, b=10, t=25, n_words=20000, n_chars=80, n_tags=45, device="cpu"):
    lengths = torch.randint(5, t + 1, (b,), generator=g)
    lengths[0] = t
    mask = torch.arange(t)[None] < lengths[:, None]
    words = torch.randint(1, n_words, (b, t), generator=g) * mask
    chars = torch.randint(1, n_chars, (b, t, 12), generator=g) * mask[..., None]
    tags = torch.randint(0, n_tags, (b, t), generator=g) * mask
    return Batch(words, chars, mask, tags).to(device)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    tasks = {"pos": 45, "chunk": 23, "ner": 17}
    torch.manual_seed(0)
    base = build_tagger(20000, 80, tasks, word_dim=100, hidden=200, dropout=0.5)
    params = dict(base.named_parameters())
    names = prunable_names(params)
    g = torch.Generator().manual_seed(0)
    masks = {t: {n: torch.rand(params[n].shape, generator=g) < 0.5 for n in names} for t in tasks}
    batches = [make_batch(g, device=dev) for _ in range(16)]
    order = list(tasks)

    def measure(name: str, make) -> float:
        """Hard sharing, sparse sharing as the trainer steps it (mask applied in place) and sparse
        sharing with substituted weights (``functional_call``), steps interleaved in a rotating order."""
        mechs = {
            "hard": HardSharing(copy.deepcopy(base)).to(dev),
            "in place": SparseSharing(copy.deepcopy(base), masks).to(dev),
            "substituted": SparseSharing(copy.deepcopy(base), masks).to(dev),
        }
        opts = {k: make(m.parameters()) for k, m in mechs.items()}
        for i in range(args.warmup):
            for k in mechs:
                step(mechs[k], opts[k], i, in_place=k == "in place")
        times: dict = {k: [] for k in mechs}
        keys = list(mechs)
        for i in range(args.steps):
            for k in keys[i % 3 :] + keys[: i % 3]:
                times[k].append(step(mechs[k], opts[k], i, in_place=k == "in place"))
        med = {k: statistics.median(v) for k, v in times.items()}
        print(
            f"{name}: unmasked (hard) {1000 * med['hard']:.2f} ms, masked in place (the trainer's) "
            f"{1000 * med['in place']:.2f} ms, masked substituted {1000 * med['substituted']:.2f} ms per "
            f"step (median of {args.steps}); ratio masked/unmasked {med['in place'] / med['hard']:.3f} "
            f"(substituted {med['substituted'] / med['hard']:.3f})"
        )
        return med["in place"] / med["hard"]

    clock = time.process_time if dev.type == "cpu" and args.threads == 1 else time.perf_counter

    def step(mech, opt, i, in_place=False):
        task = order[i % 3]
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = clock()
        opt.zero_grad(set_to_none=True)
        batch = batches[i % len(batches)]
        batch.tags = batch.tags.clamp(max=tasks[task] - 1)
        with mech.applied(task) if in_place else contextlib.nullcontext():
            mech.loss(batch, task).backward()
            torch.nn.utils.clip_grad_norm_(mech.parameters(), 5.0)
            mech.step(opt, task)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return clock() - t0

    print(f"device {dev}, threads {torch.get_num_threads()}, clock {clock.__name__}, interleaved steps, "
          f"batch 10, 50% density masks")  # fmt: skip
    ratios = {
        "SGD (the paper's, lr 0.1)": measure("SGD", lambda p: torch.optim.SGD(p, lr=0.1)),
        "SGD momentum 0.9": measure("SGD momentum 0.9", lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)),
        "Adam": measure("Adam", lambda p: torch.optim.Adam(p, lr=1e-3)),
    }
    worst = max(ratios, key=ratios.get)
    print(f"worst median ratio masked/unmasked: {ratios[worst]:.3f} ({worst}; goal <= 1.05)")


if __name__ == "__main__":
    main()
