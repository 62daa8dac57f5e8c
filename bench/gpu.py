"""The paper's tagger on one GPU: step time, how busy the GPU is, what a step launches and copies, the
masked step against the unmasked one, and throughput against batch size and against packed units.

The model and training are bench/throughput.py's: the tagger (char-CNN + BiLSTM 200, word vectors of
100) with three tasks on synthetic sentences under sparse sharing (50% masks, SGD momentum 0.9), trained
by the trainer itself (``training.trainer.train``), so every figure is the loop a run takes: batches
drawn from the staged data, the mask applied in place, the clip, the masked step. Times are taken from
the trainer's per-step callback, the device synchronised only at the ends of a window of steps (a sync
every step would take away the overlap of host and GPU that is being measured); the first steps of each
epoch (allocator and cuDNN warm-up) are left out, and the dev evaluation too.

- step time: the median over epochs of the mean batch-10 step in the window. Goal on one H200: <= 2.5 ms.
- GPU busy (cuda only): torch.profiler over a window of steps (its schedule driven from the same
  callback): the kernels' and copies' device time per step, over the unprofiled step time. Goal >= 50%.
- kernels and copies per step (cuda only): kernel launches (``cudaLaunchKernel`` and kin) and memory
  copies (host to device, device to host, device to device) per training step, and aten operator calls.
- masked/unmasked: sparse sharing against hard sharing (the same model, batches and optimizer), epochs
  alternating, the ratio of the median step times. Goal <= 1.05 (bench/masked_step.py's, CPU and GPU).
- throughput against batch size: sentences per second of training at batch 10, 32, 64, 128.
- throughput against packed units: N independent training processes (spawned), each training its own
  tagger for a fixed number of steps on the same device at the same time, their start agreed on a
  shared clock; the sentences per second of all N together, counted over the window in which all N are
  training, against one alone. Goal on one H200: 8 units >= 5x one unit.

The goals are for one H200; on the CPU the GPU-only figures read "n/a (cpu)". With ``--device cuda``
the figures are also written to docs/results/gpu.md (the date, the machine, torch and CUDA, each figure
and whether its goal is met); elsewhere with ``--out PATH`` only. ``--quick``: tiny sizes (seconds on a
CPU; the test suite's mode).

Usage: python bench/gpu.py [--device cuda|cpu] [--quick] [--out PATH]
"""

from __future__ import annotations

import argparse
import copy
import datetime
import multiprocessing
import os
import platform
import queue
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import synthetic_sentences as sentences  # noqa: E402

from sparseshare.data.sequence import SequenceData, Vocab  # noqa: E402
from sparseshare.data.task import Task, num_batches  # noqa: E402
from sparseshare.models.tagger import build_tagger  # noqa: E402
from sparseshare.pruning import prunable_names  # noqa: E402
from sparseshare.sharing import HardSharing, SparseSharing  # noqa: E402
from sparseshare.training.trainer import TrainSettings, train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results" / "gpu.md"
TASKS = ("pos", "chunk", "ner")
NA = "n/a (cpu)"
GOAL_STEP_MS, GOAL_BUSY, GOAL_MASKED, GOAL_PACKED = 2.5, 0.50, 1.05, 5.0


@dataclass
class Sizes:
    """How much each part runs: steps per timed epoch, the first steps left out of each, repeats."""

    steps: int
    skip: int
    repeats: int
    batches: list[int]
    units: list[int]
    unit_steps: int
    profile_steps: int

    @classmethod
    def of(cls, quick: bool, device: torch.device) -> Sizes:
        if quick:
            return cls(
                steps=6, skip=1, repeats=1, batches=[10, 20], units=[1, 2], unit_steps=6, profile_steps=3
            )
        units = [1, 2, 4, 8] if device.type == "cuda" else [1, 2]
        return cls(120, 10, 3, [10, 32, 64, 128], units, 450, 30)


def tagger_tasks(per_task: int, seed: int = 0) -> list[Task]:
    """Three tasks of ``per_task`` synthetic training sentences (and 10 dev sentences) over one shared
    vocabulary, as bench/throughput.py draws them."""
    g = torch.Generator().manual_seed(seed)
    raw = {t: {"train": sentences(per_task, g), "dev": sentences(10, g), "test": []} for t in TASKS}
    words = Vocab.build(w.lower() for t in TASKS for ws, _ in raw[t]["train"] for w in ws)
    chars = Vocab.build(c for t in TASKS for ws, _ in raw[t]["train"] for w in ws for c in w)
    return [Task(t, SequenceData(t, raw[t], words, chars), "accuracy") for t in TASKS]


def mechanisms(tasks: list[Task]) -> tuple[SparseSharing, HardSharing]:
    """Sparse sharing with random 50% masks, and hard sharing, on one seeded tagger."""
    data = tasks[0].data
    torch.manual_seed(0)
    base = build_tagger(
        len(data.word_vocab),
        len(data.char_vocab),
        {t.name: len(t.data.tag_vocab) for t in tasks},
        word_dim=100,
    )
    params = dict(base.named_parameters())
    g = torch.Generator().manual_seed(1)
    masks = {
        t.name: {n: torch.rand(params[n].shape, generator=g) < 0.5 for n in prunable_names(base)}
        for t in tasks
    }
    return SparseSharing(copy.deepcopy(base), masks), HardSharing(copy.deepcopy(base))


def settings(batch_size: int) -> TrainSettings:
    return TrainSettings(epochs=1, patience=0, batch_size=batch_size, lr=0.1, momentum=0.9, lr_decay=0.0)


def per_task(steps: int, batch_size: int) -> int:
    """Training sentences per task for an epoch of ``steps`` steps (three tasks, sampled in proportion)."""
    return max(1, steps // len(TASKS)) * batch_size


def epoch_steps(tasks: list[Task], batch_size: int) -> int:
    """The steps of a training epoch, as the trainer counts them (every task's batches)."""
    return sum(num_batches(t.data, "train", batch_size) for t in tasks)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Window:
    """Trainer callback: the time at the ``skip``-th and the last step of each epoch, the device
    synchronised there only; ``seconds_per_step`` is the mean step between them."""

    def __init__(self, steps: int, skip: int, device: torch.device):
        self.steps, self.skip, self.device, self.marks = steps, skip, device, {}

    def on_step(self, step: int) -> None:
        i = (step - 1) % self.steps + 1
        if i in (self.skip, self.steps):
            sync(self.device)
            self.marks[i] = time.perf_counter()

    def seconds_per_step(self) -> float:
        return (self.marks[self.steps] - self.marks[self.skip]) / (self.steps - self.skip)


def step_seconds(mech, tasks: list[Task], batch_size: int, sizes: Sizes, device, seed: int) -> float:
    """The mean step of one epoch's window, trained by the trainer."""
    steps = epoch_steps(tasks, batch_size)
    window = Window(steps, min(sizes.skip, steps - 1), device)
    train(mech, tasks, settings(batch_size), seed=seed, device=device, desc="bench", callbacks=[window],
          progress=False)  # fmt: skip
    return window.seconds_per_step()


# --- the parts ---------------------------------------------------------------------------------------


@dataclass
class Figures:
    """What one run measured (None: not measured on this device), and the goals it is held to."""

    device: torch.device
    step_ms: float = 0.0
    unmasked_ms: float = 0.0
    busy_ms: float | None = None
    kernels: float | None = None
    operators: float | None = None
    copies: dict[str, float] | None = None
    by_batch: dict[int, float] = field(default_factory=dict)
    by_units: dict[int, float] = field(default_factory=dict)
    profile_error: str = ""

    @property
    def gpu(self) -> bool:
        return self.device.type == "cuda"

    def busy(self) -> float | None:
        return None if self.busy_ms is None else self.busy_ms / self.step_ms

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(figure, value, goal, met) per figure; the GPU-only goals read n/a on the CPU."""

        def met(ok: bool, gpu_goal: bool = True) -> str:
            return NA if gpu_goal and not self.gpu else ("met" if ok else "not met")

        def gpu_only(value: str | None) -> str:
            if not self.gpu:
                return NA
            return self.profile_error if value is None else value

        masked = self.step_ms / self.unmasked_ms
        busy = self.busy()
        copies = self.copies and ", ".join(f"{k} {v:.1f}" for k, v in self.copies.items())
        rows = [
            ("step time, batch 10 (sparse sharing)", f"{self.step_ms:.2f} ms", f"<= {GOAL_STEP_MS} ms",
             met(self.step_ms <= GOAL_STEP_MS)),
            ("GPU busy", gpu_only(None if busy is None else f"{100 * busy:.0f}% ({self.busy_ms:.2f} ms)"),
             f">= {100 * GOAL_BUSY:.0f}%", met(busy is not None and busy >= GOAL_BUSY)),
            ("kernel launches per step", gpu_only(None if busy is None else f"{self.kernels:.0f}"), "", ""),
            ("copies per step", gpu_only(copies), "", ""),
            ("aten operator calls per step (nested included)",
             gpu_only(None if busy is None else f"{self.operators:.0f}"), "", ""),
            ("masked/unmasked step", f"{masked:.3f} ({self.step_ms:.2f} / {self.unmasked_ms:.2f} ms)",
             f"<= {GOAL_MASKED}", met(masked <= GOAL_MASKED, gpu_goal=False)),
        ]  # fmt: skip
        one = self.by_units[1]
        most = max(self.by_units)
        ratio = self.by_units[most] / one
        rows.append((f"{most} packed units / 1 unit", f"{ratio:.2f}x", f">= {GOAL_PACKED:.0f}x (8 units)",
                     met(most >= 8 and ratio >= GOAL_PACKED)))  # fmt: skip
        return rows


def step_part(fig: Figures, sizes: Sizes) -> tuple[SparseSharing, list[Task]]:
    """Step time and masked/unmasked: sparse and hard sharing, epochs alternating (their order rotating),
    medians of the epochs' mean step."""
    tasks = tagger_tasks(per_task(sizes.steps, 10))
    sparse, hard = mechanisms(tasks)
    times: dict[str, list[float]] = {"sparse": [], "hard": []}
    for r in range(sizes.repeats + 1):  # the first round warms both up, untimed
        pair = [("sparse", sparse), ("hard", hard)]
        for name, mech in pair[r % 2 :] + pair[: r % 2]:
            s = step_seconds(mech, tasks, 10, sizes, fig.device, seed=r)
            if r:
                times[name].append(s)
    fig.step_ms = 1000 * statistics.median(times["sparse"])
    fig.unmasked_ms = 1000 * statistics.median(times["hard"])
    print(f"step time, batch 10 (sparse sharing, 50% masks, SGD momentum 0.9, the trainer's loop): "
          f"{fig.step_ms:.2f} ms (median of {sizes.repeats} epochs' mean step; goal on one H200 <= "
          f"{GOAL_STEP_MS} ms)")  # fmt: skip
    print(f"masked/unmasked step: sparse sharing {fig.step_ms:.2f} ms, hard sharing "
          f"{fig.unmasked_ms:.2f} ms, ratio {fig.step_ms / fig.unmasked_ms:.3f} "
          f"(goal <= {GOAL_MASKED})")  # fmt: skip
    return sparse, tasks


def profile_part(fig: Figures, sparse: SparseSharing, tasks: list[Task], sizes: Sizes) -> None:
    """GPU only: torch.profiler over ``profile_steps`` training steps of the warmed-up sparse tagger
    (after ``skip`` steps; its schedule stepped by the trainer's callback), per step: the device time of
    kernels and copies, kernel launches, copies by direction, aten operator calls."""
    if not fig.gpu:
        for what in ("GPU busy", "kernel launches per step", "copies per step"):
            print(f"{what}: {NA}")
        return
    from torch.profiler import ProfilerActivity, profile, schedule

    steps = epoch_steps(tasks, 10)
    active = min(sizes.profile_steps, steps - sizes.skip - 1)

    class Stepper:
        def on_step(self, step: int) -> None:
            prof.step()

    try:
        plan = schedule(wait=max(sizes.skip - 1, 0), warmup=1, active=active, repeat=1)
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], schedule=plan) as prof:
            train(sparse, tasks, settings(10), seed=0, device=fig.device, desc="profile",
                  callbacks=[Stepper()], progress=False)  # fmt: skip
        events = prof.key_averages()
    except RuntimeError as e:  # no CUPTI, say: the other figures stand
        fig.profile_error = f"n/a (profiler: {str(e).splitlines()[0][:80]})"
        print(f"GPU busy, kernels, copies: {fig.profile_error}")
        return
    active = sum(e.count for e in events if e.key.startswith("ProfilerStep")) or active  # as recorded
    on_gpu = [e for e in events if e.device_type.name == "CUDA"]
    fig.busy_ms = sum(e.device_time_total for e in on_gpu) / 1000 / active
    fig.kernels = sum(e.count for e in events if "LaunchKernel" in e.key) / active
    fig.operators = sum(e.count for e in events if e.key.startswith("aten::")) / active
    fig.copies = {
        "all": sum(e.count for e in on_gpu if e.key.startswith("Memcpy")) / active,
        **{
            k: sum(e.count for e in on_gpu if e.key.startswith(f"Memcpy {k}")) / active
            for k in ("HtoD", "DtoH", "DtoD")
        },
    }
    busy = fig.busy()
    print(f"GPU busy {100 * busy:.0f}% ({fig.busy_ms:.2f} ms of kernels and copies in a "
          f"{fig.step_ms:.2f} ms step; goal >= {100 * GOAL_BUSY:.0f}%)")  # fmt: skip
    print(f"per step ({active} profiled): {fig.kernels:.0f} kernel launches, {fig.operators:.0f} aten "
          f"operator calls (nested included), copies "
          + ", ".join(f"{k} {v:.1f}" for k, v in fig.copies.items()))  # fmt: skip


def batch_part(fig: Figures, sizes: Sizes) -> None:
    """Sentences per second of sparse-sharing training at each batch size (the same steps per epoch),
    the median over epochs after an untimed first."""
    for b in sizes.batches:
        tasks = tagger_tasks(per_task(sizes.steps, b))
        sparse, _ = mechanisms(tasks)
        rates = [
            b / step_seconds(sparse, tasks, b, sizes, fig.device, seed=r) for r in range(sizes.repeats + 1)
        ]
        fig.by_batch[b] = statistics.median(rates[1:])  # the first epoch warms up the new shapes
    first = sizes.batches[0]
    print("throughput against batch size (sentences/s): " + ", ".join(
        f"{b}: {r:,.0f} ({r / fig.by_batch[first]:.2f}x)" for b, r in fig.by_batch.items()))  # fmt: skip


def _unit(rank: int, device: str, steps: int, skip: int, orders, results) -> None:
    """A packed unit (a spawned process): its own tagger and data, warmed up by one epoch, then per order
    (an agreed start time on the machine's monotonic clock) one epoch of ``steps`` steps, the time of
    every step sent back (the device synchronised at the last)."""
    torch.set_num_threads(1)
    dev = torch.device(device)
    tasks = tagger_tasks(per_task(steps, 10))
    sparse, _ = mechanisms(tasks)
    n = epoch_steps(tasks, 10)

    class Stamps:
        def __init__(self):
            self.times = []

        def on_step(self, step: int) -> None:
            if step == n:
                sync(dev)
            self.times.append(time.monotonic())

    train(sparse, tasks, settings(10), seed=0, device=dev, desc="unit", progress=False)
    results.put((rank, "ready", None))
    for seed, start_at in iter(orders.get, None):
        time.sleep(max(0.0, start_at - time.monotonic()))
        stamps = Stamps()
        train(
            sparse,
            tasks,
            settings(10),
            seed=seed,
            device=dev,
            desc="unit",
            callbacks=[stamps],
            progress=False,
        )
        results.put((rank, "done", stamps.times[skip - 1 :]))


def packed_rate(stamps: list[list[float]]) -> float:
    """Steps per second of all units together, over the window in which every one of them is training
    (from the latest first stamp to the earliest last one); where the windows do not overlap (units run
    one after another), over the whole span."""
    lo, hi = max(s[0] for s in stamps), min(s[-1] for s in stamps)
    if hi <= lo:
        lo, hi = min(s[0] for s in stamps), max(s[-1] for s in stamps)
        return sum(len(s) - 1 for s in stamps) / (hi - lo)
    return sum(sum(lo < t <= hi for t in s) for s in stamps) / (hi - lo)


def units_part(fig: Figures, sizes: Sizes) -> None:
    """Throughput of 1, 2, ... packed units on the device, the processes spawned once and reused."""
    ctx = multiprocessing.get_context("spawn")
    most = max(sizes.units)
    orders = [ctx.Queue() for _ in range(most)]
    results = ctx.Queue()
    skip = min(sizes.skip, sizes.unit_steps - 2)
    procs = [
        ctx.Process(
            target=_unit, args=(r, str(fig.device), sizes.unit_steps, skip, orders[r], results), daemon=True
        )
        for r in range(most)
    ]
    for p in procs:
        p.start()
    try:
        _collect(results, procs, most, "ready")
        for i, n in enumerate(sizes.units):
            start_at = time.monotonic() + 0.5
            for r in range(n):
                orders[r].put((i + 1, start_at))
            stamps = [s for _, s in sorted(_collect(results, procs, n, "done"))]
            fig.by_units[n] = 10 * packed_rate(stamps)
    finally:
        for q in orders:
            q.put(None)
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    one = fig.by_units[1]
    print(f"throughput against packed units ({sizes.unit_steps} steps each, batch 10; sentences/s of all "
          f"together): " + ", ".join(f"{n}: {r:,.0f} ({r / one:.2f}x)" for n, r in fig.by_units.items())
          + f" (goal on one H200: 8 units >= {GOAL_PACKED:.0f}x 1)")  # fmt: skip


def _collect(results, procs, n: int, what: str, seconds: float = 300) -> list[tuple[int, list]]:
    """``n`` replies ``what`` from the units; a unit that died is one line, not a hang."""
    got, deadline = [], time.monotonic() + seconds
    while len(got) < n:
        try:
            rank, kind, payload = results.get(timeout=1.0)
        except queue.Empty:
            dead = [p.pid for p in procs if not p.is_alive()]
            if dead:
                sys.exit(f"bench/gpu.py: packed unit(s) died (pid {', '.join(map(str, dead))})")
            if time.monotonic() > deadline:
                sys.exit(f"bench/gpu.py: the packed units did not answer within {seconds:.0f} s")
            continue
        assert kind == what, (kind, what)
        got.append((rank, payload))
    return got


# --- the report --------------------------------------------------------------------------------------


def machine(device: torch.device) -> str:
    """The GPU (on cuda), the CPU's model and the cores this process may use."""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(x.split(":", 1)[1].strip() for x in f if x.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine()
    host = f"{cpu}, {len(os.sched_getaffinity(0))} cores"
    return f"{torch.cuda.get_device_name(device)} ({host})" if device.type == "cuda" else host


def write_results(fig: Figures, path: Path, argv: list[str]) -> None:
    """docs/results/gpu.md: when and where, then each figure against its goal, then the two curves."""
    cuda = torch.version.cuda or "none"
    lines = [
        "# The tagger on one GPU (bench/gpu.py)",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {machine(fig.device)}",
        f"- device: {fig.device}; torch {torch.__version__}, CUDA {cuda}; 1 torch thread",
        f"- command: `{' '.join(['python bench/gpu.py', *argv])}`",
        "",
        "The paper's tagger (char-CNN + BiLSTM 200, word vectors of 100), three tasks on synthetic "
        "sentences, sparse sharing with 50% masks, SGD momentum 0.9, trained by the trainer "
        "(bench/gpu.py's docstring says how each figure is taken). The goals are for one H200.",
        "",
        "| figure | value | goal | met |",
        "|---|---|---|---|",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in fig.rows()),
        "",
        "Throughput against batch size (sparse sharing):",
        "",
        "| batch size | sentences/s | vs batch " + f"{min(fig.by_batch)} |",
        "|---|---|---|",
        *(
            f"| {b} | {r:,.0f} | {r / fig.by_batch[min(fig.by_batch)]:.2f}x |"
            for b, r in fig.by_batch.items()
        ),
        "",
        "Throughput against packed units (independent processes on the one device, batch 10):",
        "",
        "| units | sentences/s, all together | vs 1 unit |",
        "|---|---|---|",
        *(f"| {n} | {r:,.0f} | {r / fig.by_units[1]:.2f}x |" for n, r in fig.by_units.items()),
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--device", choices=("cuda", "cpu"), default="cuda" if torch.cuda.is_available() else "cpu"
    )
    ap.add_argument(
        "--quick", action="store_true", help="tiny sizes: seconds on a CPU (the test suite's mode)"
    )
    ap.add_argument(
        "--out", type=Path, help=f"write the figures here (default with --device cuda: {RESULTS})"
    )
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("bench/gpu.py: --device cuda, but torch sees no CUDA device (use --device cpu)")
    torch.set_num_threads(1)
    device = torch.device(args.device)
    sizes = Sizes.of(args.quick, device)
    fig = Figures(device)
    print(f"device {device} ({machine(device)}), torch {torch.__version__}, CUDA "
          f"{torch.version.cuda or 'none'}, 1 torch thread"
          f"{', quick sizes' if args.quick else ''}")  # fmt: skip
    sparse, tasks = step_part(fig, sizes)
    profile_part(fig, sparse, tasks, sizes)
    batch_part(fig, sizes)
    units_part(fig, sizes)
    out = args.out or (RESULTS if device.type == "cuda" else None)
    if out is not None:
        write_results(fig, out, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
