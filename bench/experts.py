"""Model step of MMoE, CGC, PLE and PBFS against shared-bottom, experts one by one and batched.

Census-like shapes (configs/pbfs_census.yaml): 534 input columns (a few standardized numerics and one
one-hot per categorical), tasks income and marital, batch 512, the config's sizes (shared-bottom
[32, 16, 8]; MMoE 8 experts of 4 units; CGC/PLE experts of 16, PLE two levels; PBFS experts of 2 x 32
and PBFS masks at 50%), towers of 8. A step is the trainer's: one task (alternating), forward, backward,
the mechanism's step with the trainer's Adam (lr 0.001); PBFS inside ``SparseSharing.applied`` as the
trainer takes it. Each system runs as two copies, its experts batched (``experts.batched()``: wide
ones too, which by default run one by one on a CPU) and one by one (``experts.one_by_one()``, the
forward before batching), in one thread; steps are interleaved in a rotating order so machine noise
hits every copy alike, and timed in the thread's CPU time (steadier than wall time on a shared
machine); the medians are compared. The copies are checked to end bit-identical.
Goal: an MMoE step <= 1.6 x shared-bottom's.  Usage: python bench/experts.py [--steps N]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import time

import torch

from sparseshare.data.tabular import TabularBatch
from sparseshare.models import experts
from sparseshare.sharing import SparseSharing, build_mechanism
from sparseshare.training.trainer import make_optimizer

IN_DIM, BATCH, NUMERIC = 534, 512, 7
KINDS = {"income": "binary", "marital": "binary"}
GOAL = 1.6
SYSTEMS = {
    "shared_bottom": {"bottom": [32, 16, 8], "tower": [8]},
    "mmoe": {"num_experts": 8, "expert_hidden": [4], "tower": [8]},
    "cgc": {"expert_hidden": [16], "tower": [8]},
    "ple": {"expert_hidden": [16], "tower": [8], "levels": 2},
    "pbfs": {"expert_hidden": [32, 32], "tower": [8]},
}


def census_like(g: torch.Generator) -> TabularBatch:
    """Standardized numerics, then one-hot blocks of random widths up to 534 columns; binary labels."""
    x = torch.zeros(BATCH, IN_DIM)
    x[:, :NUMERIC] = torch.randn(BATCH, NUMERIC, generator=g)
    start = NUMERIC
    while start < IN_DIM:
        width = min(int(torch.randint(2, 40, (1,), generator=g)), IN_DIM - start)
        x[torch.arange(BATCH), start + torch.randint(0, width, (BATCH,), generator=g)] = 1.0
        start += width
    y = {t: (torch.rand(BATCH, generator=g) < 0.2).float() for t in KINDS}
    return TabularBatch(x, y, torch.arange(BATCH))


def build(name: str) -> torch.nn.Module:
    mech = build_mechanism(name, IN_DIM, KINDS, **SYSTEMS[name])
    if name == "pbfs":
        g = torch.Generator().manual_seed(1)
        for t in KINDS:
            mech.set_mask(t, {n: torch.rand(m.shape, generator=g) < 0.5 for n, m in mech.mask(t).items()})
    return mech


def step(mech, opt, batch, task: str, batched: bool) -> None:
    with experts.batched() if batched else experts.one_by_one():
        opt.zero_grad(set_to_none=True)
        applied = mech.applied(task) if isinstance(mech, SparseSharing) else contextlib.nullcontext()
        with applied:
            mech.loss(batch, task).backward()
            mech.step(opt, task)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300, help="timed steps per copy (after 20 warm-up)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    batches = [census_like(g) for _ in range(8)]
    runs = {}
    for name in SYSTEMS:
        torch.manual_seed(0)
        mech = build(name)
        for batched in (True, False) if name != "shared_bottom" else (True,):
            m = copy.deepcopy(mech)
            runs[name, batched] = (m, make_optimizer(m.parameters(), "adam", 1e-3))
    times: dict = {k: [] for k in runs}
    keys = list(runs)
    tasks = list(KINDS)
    for i in range(args.steps + 20):
        batch, task = batches[i % len(batches)], tasks[i % 2]
        for k in keys[i % len(keys) :] + keys[: i % len(keys)]:
            t0 = time.thread_time()
            step(*runs[k], batch, task, k[1])
            if i >= 20:
                times[k].append(time.thread_time() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["shared_bottom", True]
    print(f"median step, one thread, batch {BATCH}, {IN_DIM} inputs, Adam; shared_bottom {base * 1e3:.3f} ms")
    for name in SYSTEMS:
        if name == "shared_bottom":
            continue
        old, new = med[name, False], med[name, True]
        same = all(
            torch.equal(p, q)
            for p, q in zip(runs[name, True][0].parameters(), runs[name, False][0].parameters())
        )
        default = "batched" if SYSTEMS[name]["expert_hidden"][0] * 4 < experts.WIDE_BYTES else "one by one"
        print(
            f"{name:6s} / shared_bottom: one by one {old / base:.2f}, batched {new / base:.2f} "
            f"({old * 1e3:.3f} -> {new * 1e3:.3f} ms, x{old / new:.2f}); "
            f"bit-identical: {'yes' if same else 'NO'}; default here: {default}"
        )
    ratio = med["mmoe", True] / base
    verdict = "met" if ratio <= GOAL else "not met"
    print(f"goal: MMoE step <= {GOAL} x shared-bottom's: {ratio:.2f}, {verdict}")


if __name__ == "__main__":
    main()
