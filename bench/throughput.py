"""Training throughput of the current loop against the old one, side by side in one run.

Sequence: the paper's tagger (char-CNN + BiLSTM 200, word vectors of 100, batch 10) with three tasks under
sparse sharing (50% masks, SGD momentum 0.9), on synthetic sentences; sentences per second of training.
Tabular: MMoE on the MMoE synthetic data (batch 256, joint loss); rows per second.

The old loop is kept here only, as it was before the GPU-engine work: batches padded in Python from
per-sentence tensors and copied to the device one by one, a boolean-indexed token loss, packing lengths
read back from the device, ``loss.item()`` every step, and the masked restore through ``torch.where``.
Epochs of the two alternate, so machine noise hits both alike; rates count training steps only (from the
end of an epoch's first step to the end of its last; dev evaluation left out of both), and the last line
of each part is the ratio new/old of the medians. On a GPU the new loop is also profiled (torch.profiler):
the fraction of the step the GPU is busy, and operators, kernel launches and host<->device copies per step.

Usage: python bench/throughput.py [--epochs N] [--sentences N] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import time

import torch
import torch.nn.functional as F

from sparseshare.data.sequence import Batch, SequenceData, Vocab
from sparseshare.data.synthetic import synthetic_data
from sparseshare.data.task import Task
from sparseshare.models.decoders import LinearDecoder
from sparseshare.models.tagger import build_tagger
from sparseshare.pruning import prunable_names
from sparseshare.sharing import SparseSharing, build_mechanism
from sparseshare.sharing.masking import MaskedStep
from sparseshare.training.samplers import proportional
from sparseshare.training.trainer import TrainSettings, train


def sentences(n: int, g: torch.Generator, n_words=2000, n_tags=17):
    """Synthetic (words, tags) sentences of 5-40 tokens (CoNLL-2003 averages 14)."""
    out = []
    for _ in range(n):
        k = int(torch.randint(5, 41, (1,), generator=g))
        ws = [f"w{int(i)}" for i in torch.randint(0, n_words, (k,), generator=g)]
        out.append((ws, [f"T{hash(w) % n_tags}" for w in ws]))
    return out


# --- the old loop (reference only) ---------------------------------------------------------------------


def old_batches(data: SequenceData, split: str, batch_size: int, gen: torch.Generator):
    """Batches as before: per-sentence tensors padded in Python, on the CPU."""
    enc = []
    for ws, ts in data.splits[split]:
        wid = torch.tensor(data.word_vocab.encode(w.lower() for w in ws))
        cids = [data.char_vocab.encode(w[: data.max_word_len]) for w in ws]
        width = max(map(len, cids))
        chars = torch.tensor([c + [0] * (width - len(c)) for c in cids], dtype=torch.long)
        enc.append((wid, chars, torch.tensor(data.tag_vocab.encode(ts))))
    order = torch.randperm(len(enc), generator=gen)
    for start in range(0, len(enc), batch_size):
        idx = order[start : start + batch_size]
        items = [enc[i] for i in idx.tolist()]
        b, t = len(items), max(len(w) for w, _, _ in items)
        c = max(ch.shape[1] for _, ch, _ in items)
        words, tags = torch.zeros(b, t, dtype=torch.long), torch.zeros(b, t, dtype=torch.long)
        chars, mask = torch.zeros(b, t, c, dtype=torch.long), torch.zeros(b, t, dtype=torch.bool)
        for i, (w, ch, tg) in enumerate(items):
            n = len(w)
            words[i, :n], tags[i, :n], mask[i, :n] = w, tg, True
            chars[i, :n, : ch.shape[1]] = ch
        yield Batch(words, chars, mask, tags, idx)  # no lengths: packing reads mask.sum(1) back


def old_token_loss(self, logits, tags, mask):
    return F.cross_entropy(logits[mask], tags[mask], reduction="sum") / mask.shape[0]


class OldMaskedStep(MaskedStep):
    """The restore as it was: a full snapshot copy, then torch.where with the bool mask."""

    @torch.no_grad()
    def __call__(self, optimizer, params, mask):
        pairs = self.pairs(optimizer, params, mask)
        if pairs:
            torch._foreach_copy_([b for _, b, _ in pairs], [t for t, _, _ in pairs])
        optimizer.step()
        for t, b, m in pairs:
            torch.where(m, t, b, out=t)


class Clock:
    """Trainer callback: the time after every optimizer step (the device synchronised on a GPU)."""

    def __init__(self, device):
        self.device, self.times = device, []

    def on_step(self, step: int) -> None:
        _sync(self.device)
        self.times.append(time.perf_counter())

    def rate(self, per_step: float) -> float:
        """Examples per second between the end of the first step and the end of the last."""
        return (len(self.times) - 1) * per_step / (self.times[-1] - self.times[0])


def old_epoch(mech, opt, datas: dict, epoch: int, device) -> float:
    gen = torch.Generator().manual_seed(epoch)
    sizes = {t: d.num_examples("train") for t, d in datas.items()}
    steps = sum(math.ceil(n / 10) for n in sizes.values())
    iters = {t: old_batches(d, "train", 10, gen) for t, d in datas.items()}
    total, clock = 0.0, Clock(device)
    for task in proportional(sizes, steps, gen):
        batch = next(iters[task], None)
        if batch is None:
            iters[task] = old_batches(datas[task], "train", 10, gen)
            batch = next(iters[task])
        batch = batch.to(device)
        opt.zero_grad(set_to_none=True)
        loss = mech.loss(batch, task)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(mech.parameters(), 5.0)
        mech.step(opt, task)
        total += loss.item()  # a host sync every step
        clock.on_step(0)
    return clock.rate(10)


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


# --- the parts ---------------------------------------------------------------------------------------


def sequence_part(args, device) -> float:
    g = torch.Generator().manual_seed(0)
    names = ("pos", "chunk", "ner")
    raw = {t: {"train": sentences(args.sentences, g), "dev": sentences(30, g), "test": []} for t in names}
    words = Vocab.build(w.lower() for t in names for ws, _ in raw[t]["train"] for w in ws)
    chars = Vocab.build(c for t in names for ws, _ in raw[t]["train"] for w in ws for c in w)
    datas = {t: SequenceData(t, raw[t], words, chars) for t in names}
    torch.manual_seed(0)
    base = build_tagger(len(words), len(chars), {t: len(d.tag_vocab) for t, d in datas.items()}, word_dim=100)
    params = dict(base.named_parameters())
    masks = {
        t: {n: torch.rand(params[n].shape, generator=g) < 0.5 for n in prunable_names(base)} for t in names
    }
    settings = TrainSettings(epochs=1, patience=0, batch_size=10, lr=0.1, momentum=0.9, lr_decay=0.0)
    old = SparseSharing(copy.deepcopy(base), masks).to(device)
    old._step = OldMaskedStep()
    opt_old = torch.optim.SGD(old.parameters(), lr=0.1, momentum=0.9)
    new = SparseSharing(copy.deepcopy(base), masks)
    bucketed = SparseSharing(copy.deepcopy(base), masks)
    tasks = [Task(t, d, "accuracy") for t, d in datas.items()]
    rates_old, rates_new, rates_bucketed = [], [], []
    for epoch in range(args.epochs):
        patched, LinearDecoder.loss = LinearDecoder.loss, old_token_loss
        try:
            rates_old.append(old_epoch(old, opt_old, datas, epoch, device))
        finally:
            LinearDecoder.loss = patched
        for mech, rates, bucket in ((new, rates_new, 0), (bucketed, rates_bucketed, 8)):
            clock = Clock(device)
            run = settings.replace(bucket=bucket)
            train(mech, tasks, run, seed=epoch, device=device, desc="bench", callbacks=[clock])
            rates.append(clock.rate(10))
    mo, mn, mb = (statistics.median(r) for r in (rates_old, rates_new, rates_bucketed))
    print(
        f"sequence, sparse sharing, SGD momentum: old loop {mo:.1f} sentences/s, "
        f"new loop {mn:.1f} sentences/s (the same batches), new loop with length buckets "
        f"(train.bucket 8: other batches, less padding) {mb:.1f} sentences/s, {mb / mo:.3f}x the old loop"
    )
    if device.type == "cuda":
        profile_steps(new, tasks, device)
    print(f"sequence ratio new/old sentences/s: {mn / mo:.3f}")
    return mn / mo


def tabular_part(args, device) -> float:
    data = synthetic_data(0.5, sizes=(args.rows, 500, 500), seed=0)
    tasks = [Task(t, data.for_tasks([t]), "mse") for t in data.tasks]
    torch.manual_seed(0)
    base = build_mechanism("mmoe", data.in_dim, data.kinds)
    settings = TrainSettings(
        epochs=1, patience=0, batch_size=256, optimizer="adam", lr=1e-3, joint=True, lr_decay=0.0
    )
    old, new = copy.deepcopy(base).to(device), copy.deepcopy(base)
    opt = torch.optim.Adam(old.parameters(), lr=1e-3)
    weights = dict.fromkeys(data.tasks, 1.0)
    rates_old, rates_new = [], []
    cpu_data = synthetic_data(0.5, sizes=(args.rows, 500, 500), seed=0)  # never staged: copied per batch
    for epoch in range(args.epochs):
        gen, clock = torch.Generator().manual_seed(epoch), Clock(device)
        for batch in cpu_data.batches("train", 256, True, gen):
            batch = batch.to(device)
            opt.zero_grad(set_to_none=True)
            loss = old.joint_loss(batch, weights)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(old.parameters(), 5.0)
            opt.step()
            loss.item()
            clock.on_step(0)
        rates_old.append(clock.rate(256))
        clock = Clock(device)
        train(
            new, tasks, settings, seed=epoch, device=device, joint_data=data, desc="bench", callbacks=[clock]
        )
        rates_new.append(clock.rate(256))
    mo, mn = statistics.median(rates_old), statistics.median(rates_new)
    print(f"tabular, MMoE, Adam, batch 256: old loop {mo:,.0f} rows/s, new loop {mn:,.0f} rows/s")
    print(f"tabular ratio new/old rows/s: {mn / mo:.3f}")
    return mn / mo


def profile_steps(mech, tasks, device, steps: int = 20) -> None:
    """GPU only: how busy the GPU is during training steps, and what a step launches and copies."""
    from torch.profiler import ProfilerActivity, profile

    settings = TrainSettings(epochs=1, patience=0, batch_size=10, lr=0.1, momentum=0.9, lr_decay=0.0)
    small = [Task(t.name, t.data, "accuracy") for t in tasks]
    for t in small:  # a few batches' worth of training sentences
        t.data.splits["train"] = t.data.splits["train"][: steps * 10 // len(tasks)]
        t.data.encode()
        t.data._device = torch.device("cpu")
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
    n = sum(math.ceil(t.data.num_examples("train") / 10) for t in small)
    print(
        f"GPU busy {100 * busy / wall:.0f}% of the training time; per step: {ops / n:.0f} operators, "
        f"{launches / n:.0f} kernel launches, {copies / n:.1f} host<->device copies (dev evaluation included)"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=3, help="epochs of each loop (alternating)")
    ap.add_argument("--sentences", type=int, default=300, help="training sentences per task")
    ap.add_argument("--rows", type=int, default=20000, help="training rows of the tabular part")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    print(
        f"device {device}, threads {torch.get_num_threads()}, {args.epochs} epochs of each loop, alternating"
    )
    tab = tabular_part(args, device)
    seq = sequence_part(args, device)
    print(f"throughput ratio new/old: sequence {seq:.3f}, tabular {tab:.3f}")


if __name__ == "__main__":
    main()
