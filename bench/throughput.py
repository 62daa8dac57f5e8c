"""Training throughput of sparseshare's trainer against a plain PyTorch loop, side by side in one run.

Sequence: the paper's tagger (``build_tagger``: char-CNN 30x3 + word vectors of 100 + BiLSTM 200, linear
decoders, batch 10, SGD lr 0.1 momentum 0.9, clip 5) on the first ``--sentences`` training sentences of
real CoNLL-2003 (POS, chunking, NER over the same sentences, as configs/quickstart.yaml reads them;
``--synthetic``: 5-40-token synthetic sentences instead). Three loops (five with ``--unpacked``)
train copies of one model:

* plain: what a user writes without sparseshare. The sentences encoded once to per-sentence tensors, one
  shuffled ``DataLoader`` per task whose collate pads a batch (``pad_sequence``, lengths for packing),
  a task drawn per step in proportion to its training size (as the trainer's default sampler), then
  ``model.loss(batch, task)``, backward, ``clip_grad_norm_``, ``optimizer.step()``;
* hard: ``sparseshare.training.trainer.train`` on the same model (hard sharing: every task on the shared
  encoder), the same settings;
* sparse: the trainer under sparse sharing, each task's mask keeping a random 50% of every prunable
  weight matrix;
* with ``--unpacked``, also hard and sparse on the tagger with ``packing=False`` (the BiLSTM run on the
  padded batch with dense kernels: opt-in, as its numbers differ from the packed run's in the last bits).

The loops take turns epoch by epoch (the order rotating), so machine noise hits each alike; a rate counts
training steps only, from the end of an epoch's first step to the end of its last (dev evaluation and
the trainer's setup left out), and the medians over epochs are compared: the ratios hard/plain and
sparse/plain against the goals (hard >= 1.1, sparse >= 1.0). On a CPU the clock is by default the
process's CPU time (one torch thread): on a machine shared with other jobs, wall time swings several-fold
from epoch to epoch with their load, CPU time far less; ``--clock wall`` for wall time. Tabular: MMoE
on the MMoE synthetic data (batch 256, joint loss, Adam), the trainer against a plain loop over the same
batches; rows per second.
On a GPU the trainer's sparse loop is also profiled (torch.profiler): the fraction of the step the GPU
is busy, and operators, kernel launches and host<->device copies per step.

Usage: python bench/throughput.py [--epochs N] [--sentences N] [--synthetic] [--unpacked]
[--parts sequence,tabular] [--clock auto|wall|cpu] [--device cpu|cuda] [--threads N]
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import time

import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset

from sparseshare.data.readers import conll2003_tasks
from sparseshare.data.sequence import Batch, SequenceData, build_shared_vocabs
from sparseshare.data.sources import get_source, resolve
from sparseshare.data.synthetic import synthetic_data
from sparseshare.data.task import Task
from sparseshare.models.tagger import build_tagger
from sparseshare.pruning import prunable_names
from sparseshare.sharing import SparseSharing, build_mechanism
from sparseshare.training.trainer import TrainSettings, train

TASKS = ("pos", "chunk", "ner")
BATCH = 10
HARD_GOAL, SPARSE_GOAL = 1.1, 1.0


def synthetic_sentences(n: int, g: torch.Generator, n_words=2000, n_tags=17):
    """Synthetic (words, tags) sentences of 5-40 tokens (CoNLL-2003 averages 14)."""
    out = []
    for _ in range(n):
        k = int(torch.randint(5, 41, (1,), generator=g))
        ws = [f"w{int(i)}" for i in torch.randint(0, n_words, (k,), generator=g)]
        out.append((ws, [f"T{hash(w) % n_tags}" for w in ws]))
    return out


def sequence_splits(args) -> tuple[dict, str]:
    """task -> split -> (words, tags) sentences, and what they are."""
    if args.synthetic:
        g = torch.Generator().manual_seed(0)
        sents = {"train": synthetic_sentences(args.sentences, g), "dev": synthetic_sentences(30, g)}
        return {t: {**sents, "test": []} for t in TASKS}, "synthetic 5-40-token sentences"
    root = resolve(get_source("conll2003"))
    data = conll2003_tasks(root, TASKS, {"train": args.sentences, "dev": 30, "test": 0})
    return data, f"the first {args.sentences} CoNLL-2003 training sentences"


class Clock:
    """The wall and process CPU times after every optimizer step (the device synchronised on a GPU); a
    trainer callback too. The CPU time is what the process itself spent: on a CPU shared with other jobs
    it leaves their load out (with one torch thread, it is the step's own work); on a GPU it is no
    measure of the step (the device's work is not in it)."""

    def __init__(self, device, clock: str = "wall"):
        self.device, self.times = device, []
        self.now = time.process_time if clock == "cpu" else time.perf_counter

    def on_step(self, step: int = 0) -> None:
        _sync(self.device)
        self.times.append(self.now())

    def rate(self, per_step: float) -> float:
        """Examples per second between the end of the first step and the end of the last."""
        return (len(self.times) - 1) * per_step / (self.times[-1] - self.times[0])


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


# --- the plain PyTorch loop ----------------------------------------------------------------------------


class Sentences(Dataset):
    """One task's training sentences as per-sentence id tensors (words, chars [words, longest], tags)."""

    def __init__(self, data: SequenceData):
        self.items = []
        for ws, ts in data.splits["train"]:
            cids = [data.char_vocab.encode(w[: data.max_word_len]) for w in ws]
            width = max(map(len, cids))
            self.items.append(
                (
                    torch.tensor(data.word_vocab.encode(w.lower() for w in ws)),
                    torch.tensor([c + [0] * (width - len(c)) for c in cids]),
                    torch.tensor(data.tag_vocab.encode(ts)),
                )
            )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


def pad_collate(items) -> Batch:
    """A padded batch: words and tags by ``pad_sequence``, chars into a zero block, the lengths on the CPU
    (what ``pack_padded_sequence`` takes)."""
    lengths = torch.tensor([len(w) for w, _, _ in items])
    words = pad_sequence([w for w, _, _ in items], batch_first=True)
    tags = pad_sequence([t for _, _, t in items], batch_first=True)
    chars = torch.zeros(len(items), words.shape[1], max(c.shape[1] for _, c, _ in items), dtype=torch.long)
    for i, (_, c, _) in enumerate(items):
        chars[i, : c.shape[0], : c.shape[1]] = c
    mask = torch.arange(words.shape[1]) < lengths.unsqueeze(1)
    return Batch(words, chars, mask, tags, torch.zeros(len(items), dtype=torch.long), lengths)


def plain_epoch(model, opt, loaders: dict, epoch: int, device, clock_kind: str) -> float:
    """One epoch of the plain loop (as many steps as the trainer's: every task's batches once, on
    average); sentences per second."""
    gen = torch.Generator().manual_seed(epoch)
    sizes = torch.tensor([float(len(loaders[t].dataset)) for t in TASKS])
    steps = sum(len(loaders[t]) for t in TASKS)
    order = torch.multinomial(sizes / sizes.sum(), steps, replacement=True, generator=gen).tolist()
    iters = {t: iter(loaders[t]) for t in TASKS}
    clock = Clock(device, clock_kind)
    model.train()
    for k in order:
        task = TASKS[k]
        batch = next(iters[task], None)
        if batch is None:
            iters[task] = iter(loaders[task])
            batch = next(iters[task])
        batch = batch.to(device)
        opt.zero_grad(set_to_none=True)
        loss = model.loss(batch, task)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        clock.on_step()
    return clock.rate(BATCH)


# --- the parts ---------------------------------------------------------------------------------------


def sequence_part(args, device) -> tuple[float, float]:
    splits, what = sequence_splits(args)
    words, chars = build_shared_vocabs([splits[t]["train"] for t in TASKS])
    datas = {t: SequenceData(t, splits[t], words, chars) for t in TASKS}
    torch.manual_seed(0)
    base = build_tagger(len(words), len(chars), {t: len(d.tag_vocab) for t, d in datas.items()}, word_dim=100)
    g = torch.Generator().manual_seed(1)
    params = dict(base.named_parameters())
    masks = {
        t: {n: torch.rand(params[n].shape, generator=g) < 0.5 for n in prunable_names(base)} for t in TASKS
    }
    settings = TrainSettings(epochs=1, patience=0, batch_size=BATCH, lr=0.1, momentum=0.9, lr_decay=0.0)
    tasks = [Task(t, d, "accuracy") for t, d in datas.items()]
    plain = copy.deepcopy(base).to(device)
    opt = torch.optim.SGD(plain.parameters(), lr=0.1, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    loaders = {
        t: DataLoader(Sentences(d), BATCH, shuffle=True, generator=gen, collate_fn=pad_collate)
        for t, d in datas.items()
    }
    mechs = {"hard": copy.deepcopy(base), "sparse": SparseSharing(copy.deepcopy(base), masks)}
    if args.unpacked:
        n_tags = {t: len(d.tag_vocab) for t, d in datas.items()}
        unpacked = build_tagger(len(words), len(chars), n_tags, word_dim=100, packing=False)
        unpacked.load_state_dict(base.state_dict())
        mechs["hard, unpacked"] = copy.deepcopy(unpacked)
        mechs["sparse, unpacked"] = SparseSharing(copy.deepcopy(unpacked), masks)
    rates: dict[str, list[float]] = {"plain": [], **{k: [] for k in mechs}}
    names = list(rates)
    for epoch in range(args.epochs):
        turn = epoch % len(names)
        for name in names[turn:] + names[:turn]:
            if name == "plain":
                rates[name].append(plain_epoch(plain, opt, loaders, epoch, device, args.clock))
                continue
            clock = Clock(device, args.clock)
            train(mechs[name], tasks, settings, seed=epoch, device=device, desc="bench", callbacks=[clock])
            rates[name].append(clock.rate(BATCH))
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(
        f"sequence ({what}, batch {BATCH}, SGD momentum 0.9), {args.clock} clock, "
        f"medians of {args.epochs} epochs:"
    )
    for k in names:
        print(f"  {k:16s} {med[k]:7.1f} sentences/s  (epochs: {', '.join(f'{r:.1f}' for r in rates[k])})")
    hard, sparse = med["hard"] / med["plain"], med["sparse"] / med["plain"]
    print(f"sequence ratio hard/plain: {hard:.3f} (goal >= {HARD_GOAL})")
    print(f"sequence ratio sparse/plain: {sparse:.3f} (goal >= {SPARSE_GOAL})")
    for k in names[3:]:  # opt-in: other numbers than the committed ones
        print(f"sequence ratio {k}/plain: {med[k] / med['plain']:.3f} (opt-in build_tagger(packing=False))")
    if device.type == "cuda":
        profile_steps(mechs["sparse"], tasks, device)
    return hard, sparse


def tabular_part(args, device) -> float:
    data = synthetic_data(0.5, sizes=(args.rows, 500, 500), seed=0)
    tasks = [Task(t, data.for_tasks([t]), "mse") for t in data.tasks]
    torch.manual_seed(0)
    base = build_mechanism("mmoe", data.in_dim, data.kinds)
    settings = TrainSettings(
        epochs=1, patience=0, batch_size=256, optimizer="adam", lr=1e-3, joint=True, lr_decay=0.0
    )
    plain, mech = copy.deepcopy(base).to(device), copy.deepcopy(base)
    opt = torch.optim.Adam(plain.parameters(), lr=1e-3)
    weights = dict.fromkeys(data.tasks, 1.0)
    rates_plain, rates_trainer = [], []
    cpu_data = synthetic_data(0.5, sizes=(args.rows, 500, 500), seed=0)  # never staged: copied per batch
    for epoch in range(args.epochs):
        gen, clock = torch.Generator().manual_seed(epoch), Clock(device, args.clock)
        for batch in cpu_data.batches("train", 256, True, gen):
            batch = batch.to(device)
            opt.zero_grad(set_to_none=True)
            loss = plain.joint_loss(batch, weights)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(plain.parameters(), 5.0)
            opt.step()
            clock.on_step()
        rates_plain.append(clock.rate(256))
        clock = Clock(device, args.clock)
        train(
            mech, tasks, settings, seed=epoch, device=device, joint_data=data, desc="bench", callbacks=[clock]
        )
        rates_trainer.append(clock.rate(256))
    mp, mt = statistics.median(rates_plain), statistics.median(rates_trainer)
    print(f"tabular, MMoE, Adam, batch 256: plain loop {mp:,.0f} rows/s, trainer {mt:,.0f} rows/s")
    print(f"tabular ratio trainer/plain rows/s: {mt / mp:.3f}")
    return mt / mp


def profile_steps(mech, tasks, device, steps: int = 20) -> None:
    """GPU only: how busy the GPU is during training steps, and what a step launches and copies."""
    from torch.profiler import ProfilerActivity, profile

    settings = TrainSettings(epochs=1, patience=0, batch_size=BATCH, lr=0.1, momentum=0.9, lr_decay=0.0)
    small = []
    for t in tasks:  # a few batches' worth of training sentences
        d = t.data
        part = {**d.splits, "train": d.splits["train"][: steps * BATCH // len(tasks)]}
        small.append(Task(t.name, SequenceData(t.name, part, d.word_vocab, d.char_vocab, d.tag_vocab)))
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        start = time.perf_counter()
        train(mech, small, settings, seed=0, device=device, desc="profile")
        torch.cuda.synchronize()
        wall = time.perf_counter() - start
    events = prof.key_averages()
    busy = sum(e.device_time_total for e in events if e.device_type.name == "CUDA") / 1e6
    launches = sum(e.count for e in events if "LaunchKernel" in e.key)
    copies = sum(e.count for e in events if e.key.startswith("Memcpy"))
    ops = sum(e.count for e in events if e.key.startswith("aten::"))
    n = sum(math.ceil(t.data.num_examples("train") / BATCH) for t in small)
    print(
        f"GPU busy {100 * busy / wall:.0f}% of the training time; per step: {ops / n:.0f} operators, "
        f"{launches / n:.0f} kernel launches, {copies / n:.1f} host<->device copies (dev evaluation included)"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=5, help="epochs of each loop (taking turns)")
    ap.add_argument("--sentences", type=int, default=300, help="training sentences per task")
    ap.add_argument("--synthetic", action="store_true", help="synthetic sentences, not CoNLL-2003")
    ap.add_argument("--rows", type=int, default=20000, help="training rows of the tabular part")
    ap.add_argument("--parts", default="sequence,tabular", help="comma-separated: sequence, tabular")
    ap.add_argument(
        "--unpacked", action="store_true", help="also the trainer on build_tagger(packing=False) (opt-in)"
    )
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    ap.add_argument(
        "--clock",
        choices=("auto", "wall", "cpu"),
        default="auto",
        help="rates by wall time or process CPU time (auto: CPU time on a CPU, wall time on a GPU)",
    )
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.clock == "auto":
        args.clock = "cpu" if device.type == "cpu" else "wall"
    parts = set(args.parts.split(","))
    print(f"device {device}, threads {torch.get_num_threads()}, {args.epochs} epochs of each loop, in turn")
    if "sequence" in parts:
        hard, sparse = sequence_part(args, device)
    if "tabular" in parts:
        tabular_part(args, device)
    if "sequence" in parts:
        ok = hard >= HARD_GOAL and sparse >= SPARSE_GOAL
        print(f"sequence goals (hard >= {HARD_GOAL}, sparse >= {SPARSE_GOAL}): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
