"""sparseshare side by side with its peers: torch-rechub and DeepCTR-Torch (tabular multi-task), pytorch-crf.

Tabular: shared-bottom, MMoE and PLE on census-income KDD (tasks income and marital, as
``configs/pbfs_census.yaml``), each framework with its own model class and its own training loop: for
sparseshare ``sparseshare.training.trainer.train`` on its ``TabularData`` (joint loss, PBFS Eq. 10); for
torch-rechub ``MTLTrainer.fit`` on its ``DataGenerator`` loaders; for DeepCTR-Torch ``model.fit``. What
is the same for all: the rows (sparseshare's census reader, data seed 1: train 199,523 rows, the official
test file split 1:1 into dev and test), the input (every peer gets sparseshare's encoded feature matrix,
534 dense columns: 7 standardized numerics and the one-hot categoricals, as one dense feature block;
sparseshare builds the same rows from its encoded splits batch by batch, as its loop does), the sizes
(the config's ``tabular`` section: shared-bottom [32, 16, 8], MMoE 8 experts of [4], PLE 2 levels of one
specific and one shared expert of [16], towers [8], linear softmax gates), Adam with lr 0.001 and no
weight decay, batch 512, no gradient clipping, the budget (``--epochs`` passes over the train rows), and
the init (PyTorch's ``nn.Linear`` default: DeepCTR-Torch's own N(0, 1e-4) weights are reset, see
:meth:`DeepCTRTorch.build`). What is each framework's own: the layers its classes add (torch-rechub puts a
BatchNorm after every linear layer, its gates too), its loss scaling (sparseshare Σ_t of the mean BCE,
torch-rechub the mean over tasks, DeepCTR-Torch the sum over rows; Adam is close to invariant to it),
its data pipeline (the peers build every batch row by row in a torch DataLoader), and its per-step
bookkeeping. The peers run in their lightest setting: DeepCTR-Torch with ``verbose=0`` and no training
metrics; torch-rechub has no such switch (its tqdm bar and per-task ``.item()`` run every step).

Measured per run: the time after every optimizer step, by one global post-step hook on
``torch.optim.Optimizer`` for every framework alike; time is the process's CPU time (``CLOCK``: one torch
thread, no DataLoader worker, so it is the working thread's time, steady on a machine shared with other
work), with wall-clock rows/s beside it. Rows/s = rows of the timed steps over their time;
a timed step runs from one optimizer step's end to the next one's (so it holds the whole loop: batch,
forward, loss, backward, update, bookkeeping), and steps that cross an epoch boundary (the dev
evaluation) are left out. "Model step" is the bare step of the same model: forward, the loss, backward
and Adam on batches made beforehand, in a plain loop (a copy of the model, timed just before its run
and just after); what a loop adds is its median step less that. Test AUC per task: sklearn's
``roc_auc_score`` on the same test rows, from each model's outputs after its last step (no early
stopping anywhere). Runs interleave by seed (each seed runs every model in every framework, the
framework order rotating), so machine noise hits all alike; the table gives medians over the seeds, and
sparseshare's rows/s over a peer's as the median of the per-seed ratios.

CRF: pytorch-crf's ``CRF`` against ``sparseshare.models.crf.LinearChainCRF`` on the same random
emissions, tags and masks (lengths 5-40, every sentence's first token on), with pytorch-crf's start, end
and transition scores copied from sparseshare's (the same convention: ``transitions[i, j]`` scores tag i
followed by tag j; start and end scores added at the first and the last unmasked token), 9 and 45 tags,
32 sentences a batch. Agreement over 10 random batches: the largest difference of the per-sentence
log-likelihood and of the mean NLL's gradient in the emissions, and the sentences whose Viterbi paths
are equal; time per call of the mean-NLL forward + backward and of decoding on one batch, medians of
calls interleaved between the two (CPU time), and the ratio pytorch-crf / sparseshare.

The budget by default: one epoch (390 steps of 512 rows) per run, 27 runs (3 models x 3 frameworks x 3
seeds): about 3 minutes of CPU on one torch thread, 7 minutes of wall clock when the 2 cores are shared
with other work. CPU only.

Usage: python bench/peers.py [--epochs 1] [--seeds 1 2 3] [--rows N] [--out docs/results/peers.md]
(``make bench-peers`` installs the peers into ``.venv-peers`` with torch pinned and runs it). A peer that
is not installed is left out with a line saying so.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import importlib.metadata
import io
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from sklearn.metrics import roc_auc_score
from torch.optim.optimizer import register_optimizer_step_post_hook

import sparseshare
from sparseshare.data.encoder import dense_features
from sparseshare.data.tabular import TabularBatch, TabularData
from sparseshare.data.task import Task
from sparseshare.models.crf import LinearChainCRF
from sparseshare.sharing import build_mechanism
from sparseshare.training.trainer import TrainSettings, train

TASKS = ("income", "marital")
MODELS = ("shared_bottom", "mmoe", "ple")
CONFIG = Path(sparseshare.__file__).parent / "configs" / "pbfs_census.yaml"
# sizes and training of configs/pbfs_census.yaml (PBFS Section 4.3): its tabular and train sections
SIZES, TRAIN = (yaml.safe_load(CONFIG.read_text())[k] for k in ("tabular", "train"))
PEER_PACKAGES = {"torch-rechub": "torch_rechub", "DeepCTR-Torch": "deepctr_torch", "pytorch-crf": "torchcrf"}
BARE_STEPS = 100  # bare model steps timed in each of a run's two rounds (after 5 untimed)
BARE_BATCHES = 35  # the batches they cycle over
# what steps are timed with: this process's CPU time, which with one torch thread (and no DataLoader
# worker) is the time of the one thread doing the work, and steady on a machine shared with other work,
# where the wall clock counts the time others took; wall-clock rows/s are reported beside it
CLOCK = time.process_time


@dataclass
class Budget:
    """What every framework trains with: Adam at ``lr``, ``batch_size`` rows a step, ``epochs`` passes
    (by default the config's lr and batch size, one epoch)."""

    epochs: int = 1
    batch_size: int = TRAIN["batch_size"]
    lr: float = TRAIN["lr"]
    eval_batch: int = TRAIN["eval_batch_size"]


@dataclass
class Arrays:
    """One split as the peers take it: the dense feature matrix and the labels, one column per task."""

    x: np.ndarray  # [N, F] float32
    y: np.ndarray  # [N, T] float32

    @classmethod
    def of(cls, data: TabularData, split: str) -> Arrays:
        s = data.splits[split]
        x = dense_features(s.num, s.cat, data.in_dim).numpy()
        return cls(x, np.stack([s.y[t].numpy() for t in TASKS], axis=1).astype(np.float32))


@dataclass
class Run:
    """One framework's run of one model and seed."""

    rows_per_s: float  # per second of CPU time (CLOCK)
    wall_rows_per_s: float  # per second of wall-clock time
    step_ms: float  # median timed step of its loop (CPU time)
    bare_ms: float  # median bare model step (CPU time)
    auc: dict[str, float]


class StepClock:
    """The CPU and the wall-clock time after every optimizer step of any optimizer (a global post-step
    hook), while entered."""

    def __init__(self) -> None:
        self.times: list[float] = []  # CLOCK
        self.walls: list[float] = []  # time.perf_counter

    def _tick(self, *_) -> None:
        self.times.append(CLOCK())
        self.walls.append(time.perf_counter())

    def __enter__(self) -> StepClock:
        self._handle = register_optimizer_step_post_hook(self._tick)
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()

    def summary(self, n_rows: int, batch_size: int, epochs: int) -> tuple[float, float, float]:
        """(rows/s of CPU time, rows/s of wall-clock time, median step ms of CPU time) over the timed
        steps: each from one step's end to the next's, those crossing an epoch boundary left out (the
        first step of every epoch is not timed)."""
        per_epoch = -(-n_rows // batch_size)
        if len(self.times) != per_epoch * epochs:
            raise RuntimeError(f"expected {per_epoch * epochs} optimizer steps, saw {len(self.times)}")
        timed = [i for i in range(1, len(self.times)) if i % per_epoch]
        rows = sum(min(batch_size, n_rows - (i % per_epoch) * batch_size) for i in timed)
        dts, walls = ([ts[i] - ts[i - 1] for i in timed] for ts in (self.times, self.walls))
        return rows / sum(dts), rows / sum(walls), 1000 * statistics.median(dts)


class BareSteps:
    """The bare model step: ``step(i)`` (forward, loss, backward, Adam on batch i, made beforehand) in a
    plain loop, timed in two rounds, just before a framework's run and just after it (so noise that hits
    the run hits these too); ``ms`` is the median of both rounds, each after 5 untimed steps."""

    def __init__(self, step: Callable[[int], None]):
        self.step, self.dts, self.i = step, [], 0

    def time(self, n: int = BARE_STEPS) -> None:
        for k in range(5 + n):
            t = CLOCK()
            self.step(self.i % BARE_BATCHES)
            self.i += 1
            if k >= 5:
                self.dts.append(CLOCK() - t)

    @property
    def ms(self) -> float:
        return 1000 * statistics.median(self.dts)


def aucs(scores: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Test AUC per task (sklearn) from ``scores [N, T]`` (logits or probabilities: the same ranking)."""
    return {t: float(roc_auc_score(y[:, k], scores[:, k])) for k, t in enumerate(TASKS)}


@torch.no_grad()
def outputs(forward: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray, batch: int) -> np.ndarray:
    """``forward`` over the rows of ``x`` in chunks (eval mode is the caller's), as ``[N, T]``."""
    return torch.cat([forward(torch.from_numpy(x[i : i + batch])) for i in range(0, len(x), batch)]).numpy()


def _batches(arrays: Arrays, budget: Budget, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n`` training batches made beforehand for the bare model steps (cycling over the first rows)."""
    bs = budget.batch_size
    k = max(1, min(n, len(arrays.x) // bs))
    x, y = torch.from_numpy(arrays.x[: k * bs]), torch.from_numpy(arrays.y[: k * bs])
    return [(x[(i % k) * bs : (i % k + 1) * bs], y[(i % k) * bs : (i % k + 1) * bs]) for i in range(n)]


# --- the frameworks ----------------------------------------------------------------------------------


class Sparseshare:
    """sparseshare's mechanisms (``build_mechanism`` with the config's sizes) and its trainer."""

    name = "sparseshare"

    def __init__(self, data: TabularData, test: Arrays):
        self.data, self.test = data, test
        self.train_arrays = Arrays.of(data.limited({"train": 4096}), "train")

    def build(self, model: str) -> torch.nn.Module:
        s, kinds = SIZES, dict.fromkeys(TASKS, "binary")
        sizes = {
            "shared_bottom": {"bottom": s["bottom"], "tower": s["tower"]},
            "mmoe": {"num_experts": s["num_experts"], "expert_hidden": s["mmoe_expert"], "tower": s["tower"]},
            "ple": {
                "num_specific": s["num_specific"],
                "num_shared": s["num_shared"],
                "expert_hidden": s["ple_expert"],
                "tower": s["tower"],
                "levels": s["levels"],
            },
        }[model]
        return build_mechanism(model, self.data.in_dim, kinds, **sizes)

    def run(self, model: str, seed: int, budget: Budget) -> Run:
        torch.manual_seed(seed)
        mech = self.build(model)
        weights = dict.fromkeys(TASKS, 1.0)
        twin = copy.deepcopy(mech)
        opt = torch.optim.Adam(twin.parameters(), lr=budget.lr)
        batches = _batches(self.train_arrays, budget, BARE_BATCHES)

        def step(i: int) -> None:
            x, y = batches[i]
            opt.zero_grad(set_to_none=True)
            batch = TabularBatch(x, {t: y[:, k] for k, t in enumerate(TASKS)}, torch.arange(len(x)))
            twin.joint_loss(batch, weights).backward()
            opt.step()

        bare = BareSteps(step)
        bare.time()
        settings = TrainSettings(
            epochs=budget.epochs,
            patience=0,
            batch_size=budget.batch_size,
            optimizer="adam",
            lr=budget.lr,
            lr_decay=0.0,
            clip=None,
            joint=True,
            eval_batch_size=budget.eval_batch,
        )
        tasks = [Task(t, self.data, "auc") for t in TASKS]
        with StepClock() as clock:
            train(mech, tasks, settings, seed=seed, device="cpu", joint_data=self.data, progress=False)
        rates = clock.summary(self.data.num_examples("train"), budget.batch_size, budget.epochs)
        mech.eval()

        def forward(x: torch.Tensor) -> torch.Tensor:
            batch = TabularBatch(x, {}, torch.arange(len(x)))
            return torch.stack([mech.predict(batch, t) for t in TASKS], dim=1)

        bare.time()
        return Run(*rates, bare.ms, aucs(outputs(forward, self.test.x, budget.eval_batch), self.test.y))


class TorchRechub:
    """torch-rechub's ``SharedBottom`` / ``MMOE`` / ``PLE`` over one ``DenseFeature`` of all columns, trained
    by its ``MTLTrainer.fit`` (dev as its validation loader)."""

    name = "torch-rechub"

    def __init__(self, train: Arrays, dev: Arrays, test: Arrays):
        self.train, self.dev, self.test = train, dev, test

    def build(self, model: str) -> torch.nn.Module:
        from torch_rechub.basic.features import DenseFeature
        from torch_rechub.models.multi_task import MMOE, PLE, SharedBottom

        s, features = SIZES, [DenseFeature("x", embed_dim=self.train.x.shape[1])]
        types, towers = ["classification"] * len(TASKS), [{"dims": s["tower"]} for _ in TASKS]
        if model == "shared_bottom":
            return SharedBottom(features, types, {"dims": s["bottom"]}, towers)
        if model == "mmoe":
            return MMOE(features, types, s["num_experts"], {"dims": s["mmoe_expert"]}, towers)
        return PLE(
            features,
            types,
            s["levels"],
            s["num_specific"],
            s["num_shared"],
            {"dims": s["ple_expert"]},
            towers,
        )

    def run(self, model: str, seed: int, budget: Budget) -> Run:
        from torch_rechub.trainers import MTLTrainer
        from torch_rechub.utils.data import DataGenerator

        torch.manual_seed(seed)
        net = self.build(model)
        twin = copy.deepcopy(net)
        opt = torch.optim.Adam(twin.parameters(), lr=budget.lr)
        batches = _batches(self.train, budget, BARE_BATCHES)

        def step(i: int) -> None:
            x, y = batches[i]
            opt.zero_grad(set_to_none=True)
            p = twin({"x": x})
            (sum(F.binary_cross_entropy(p[:, k], y[:, k]) for k in range(len(TASKS))) / len(TASKS)).backward()
            opt.step()

        bare = BareSteps(step)
        bare.time()
        gen = DataGenerator({"x": self.train.x}, self.train.y)
        train_dl, dev_dl, _ = gen.generate_dataloader(
            {"x": self.dev.x},
            self.dev.y,
            {"x": self.test.x[:1]},
            self.test.y[:1],
            batch_size=budget.batch_size,
        )
        with tempfile.TemporaryDirectory() as tmp, _quiet():
            trainer = MTLTrainer(
                net,
                ["classification"] * len(TASKS),
                optimizer_params={"lr": budget.lr, "weight_decay": 0.0},
                n_epoch=budget.epochs,
                earlystop_patience=budget.epochs + 1,
                device="cpu",
                model_path=tmp,
            )
            with StepClock() as clock:
                trainer.fit(train_dl, dev_dl)
        rates = clock.summary(len(self.train.x), budget.batch_size, budget.epochs)
        net.eval()
        scores = outputs(lambda x: net({"x": x}), self.test.x, budget.eval_batch)
        bare.time()
        return Run(*rates, bare.ms, aucs(scores, self.test.y))


class DeepCTRTorch:
    """DeepCTR-Torch's ``SharedBottom`` / ``MMOE`` / ``PLE`` over one ``DenseFeat`` of all columns, trained
    by its ``model.fit`` (``verbose=0``, no training metrics: its lightest loop)."""

    name = "DeepCTR-Torch"

    def __init__(self, train: Arrays, test: Arrays):
        self.train, self.test = train, test

    def build(self, model: str, seed: int) -> torch.nn.Module:
        """Its model, every ``nn.Linear`` then reset to PyTorch's default init (as the other two start):
        DeepCTR-Torch draws its DNN weights from N(0, 1e-4) (``init_std``), which in trial runs left the
        income task near AUC 0.5 after one epoch, a difference of init, not of loop."""
        from deepctr_torch.inputs import DenseFeat
        from deepctr_torch.models.multitask import MMOE, PLE, SharedBottom

        s, features = SIZES, [DenseFeat("x", self.train.x.shape[1])]
        common = {
            "task_types": ["binary"] * len(TASKS),
            "task_names": list(TASKS),
            "seed": seed,
            "tower_dnn_hidden_units": tuple(s["tower"]),
            "device": "cpu",
        }
        if model == "shared_bottom":
            net = SharedBottom(features, bottom_dnn_hidden_units=tuple(s["bottom"]), **common)
        elif model == "mmoe":
            net = MMOE(
                features,
                num_experts=s["num_experts"],
                expert_dnn_hidden_units=tuple(s["mmoe_expert"]),
                gate_dnn_hidden_units=(),
                **common,
            )
        else:
            net = PLE(
                features,
                shared_expert_num=s["num_shared"],
                specific_expert_num=s["num_specific"],
                num_levels=s["levels"],
                expert_dnn_hidden_units=tuple(s["ple_expert"]),
                gate_dnn_hidden_units=(),
                **common,
            )
        for m in net.modules():
            if isinstance(m, torch.nn.Linear):
                m.reset_parameters()
        return net

    def run(self, model: str, seed: int, budget: Budget) -> Run:
        torch.manual_seed(seed)
        net = self.build(model, seed)
        twin = copy.deepcopy(net)
        opt = torch.optim.Adam(twin.parameters(), lr=budget.lr)
        batches = _batches(self.train, budget, BARE_BATCHES)

        def step(i: int) -> None:
            x, y = batches[i]
            opt.zero_grad(set_to_none=True)
            p = twin(x)
            sum(
                F.binary_cross_entropy(p[:, k], y[:, k], reduction="sum") for k in range(len(TASKS))
            ).backward()
            opt.step()

        bare = BareSteps(step)
        bare.time()
        net.compile(
            torch.optim.Adam(net.parameters(), lr=budget.lr), loss=["binary_crossentropy"] * len(TASKS)
        )
        with _quiet(), StepClock() as clock:
            net.fit(
                {"x": self.train.x},
                self.train.y,
                batch_size=budget.batch_size,
                epochs=budget.epochs,
                verbose=0,
            )
        rates = clock.summary(len(self.train.x), budget.batch_size, budget.epochs)
        net.eval()
        scores = outputs(net, self.test.x, budget.eval_batch)
        bare.time()
        return Run(*rates, bare.ms, aucs(scores, self.test.y))


@contextlib.contextmanager
def _quiet():
    """A peer's prints and progress bars kept off the terminal (still written: their cost stays in)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def installed(peer: str) -> bool:
    try:
        importlib.metadata.version(peer)
        __import__(PEER_PACKAGES[peer])
    except (importlib.metadata.PackageNotFoundError, ImportError):
        return False
    return True


# --- the tabular part --------------------------------------------------------------------------------


@dataclass
class TabularResult:
    runs: dict[tuple[str, str], list[Run]] = field(default_factory=dict)  # (model, framework) -> per seed
    frameworks: list[str] = field(default_factory=list)

    def median(self, model: str, fw: str, key: Callable[[Run], float]) -> float:
        return statistics.median(key(r) for r in self.runs[(model, fw)])

    def ratio(self, model: str, peer: str, wall: bool = False) -> float:
        """sparseshare's rows/s over ``peer``'s (``wall``: of wall-clock time): the median over the seeds
        of each seed's ratio (the two runs of a seed ran close together, so they share that time's noise)."""
        pairs = zip(self.runs[(model, "sparseshare")], self.runs[(model, peer)])
        key = (lambda r: r.wall_rows_per_s) if wall else (lambda r: r.rows_per_s)  # noqa: E731
        return statistics.median(key(a) / key(b) for a, b in pairs)


def tabular_part(
    frameworks: Sequence, models: Sequence[str], seeds: Sequence[int], budget: Budget, say=print
) -> TabularResult:
    """Every model in every framework for every seed, interleaved by seed (framework order rotating)."""
    out = TabularResult(frameworks=[f.name for f in frameworks])
    for i, seed in enumerate(seeds):
        order = list(frameworks[i % len(frameworks) :]) + list(frameworks[: i % len(frameworks)])
        for model in models:
            for fw in order:
                r = fw.run(model, seed, budget)
                out.runs.setdefault((model, fw.name), []).append(r)
                say(
                    f"  seed {seed} {model:13s} {fw.name:13s} {r.rows_per_s:9,.0f} rows/s (wall clock "
                    f"{r.wall_rows_per_s:7,.0f})  step "
                    f"{r.step_ms:6.2f} ms (model {r.bare_ms:5.2f})  AUC "
                    + " ".join(f"{t} {v:.4f}" for t, v in r.auc.items())
                )
    return out


def tabular_table(res: TabularResult) -> list[str]:
    rate, step, bare = (lambda r: r.rows_per_s), (lambda r: r.step_ms), (lambda r: r.bare_ms)  # noqa: E731
    head = [
        "model",
        "framework",
        "rows/s (range)",
        "wall-clock rows/s",
        "step ms",
        "model step ms",
        "loop adds ms",
        *(f"AUC {t}" for t in TASKS),
        "sparseshare rows/s ÷ its (wall clock)",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    models = list(dict.fromkeys(m for m, _ in res.runs))
    for model in models:
        for fw in res.frameworks:
            m = lambda key: res.median(model, fw, key)  # noqa: E731, B023
            runs = res.runs[(model, fw)]
            auc = [m(lambda r, t=t: r.auc[t]) for t in TASKS]
            ratio = f"{res.ratio(model, fw):.2f}x ({res.ratio(model, fw, wall=True):.2f}x)"
            cells = [
                model,
                fw,
                f"{m(rate):,.0f} ({min(map(rate, runs)):,.0f}-{max(map(rate, runs)):,.0f})",
                f"{m(lambda r: r.wall_rows_per_s):,.0f}",
                f"{m(step):.2f}",
                f"{m(bare):.2f}",
                f"{m(lambda r: r.step_ms - r.bare_ms):.2f}",
                *(f"{a:.4f}" for a in auc),
                "" if fw == "sparseshare" else ratio,
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def summary_lines(res: TabularResult) -> list[str]:
    """The table in words, per framework over the models: what its loop adds to a step (per run, then the
    median), and for a peer sparseshare's rows/s over its and sparseshare's test AUC less its (medians
    over the seeds)."""
    models = list(dict.fromkeys(m for m, _ in res.runs))

    def span(values: list[float], fmt: str) -> str:
        lo, hi = min(values), max(values)
        return format(lo, fmt) if lo == hi else f"{format(lo, fmt)} to {format(hi, fmt)}"

    out = []
    for fw in res.frameworks:
        adds = [res.median(m, fw, lambda r: r.step_ms - r.bare_ms) for m in models]
        line = f"- {fw}: its loop adds {span(adds, '.2f')} ms a step to the bare model step"
        if fw != "sparseshare":
            ratios = [res.ratio(m, fw) for m in models]
            gaps = [
                res.median(m, "sparseshare", lambda r, t=t: r.auc[t])
                - res.median(m, fw, lambda r, t=t: r.auc[t])
                for m in models
                for t in TASKS
            ]
            line += (
                f"; sparseshare trains {span(ratios, '.2f')}x its rows/s, at a test AUC "
                f"{span(gaps, '+.4f')} from its (sparseshare's less its, per model and task)"
            )
        out.append(line)
    return out


def goal_line(res: TabularResult) -> str | None:
    """Goal 2's tabular part: sparseshare's rows/s at least 3x torch-rechub's on the same MMoE."""
    if ("mmoe", "torch-rechub") not in res.runs or ("mmoe", "sparseshare") not in res.runs:
        return None
    r, wall = res.ratio("mmoe", "torch-rechub"), res.ratio("mmoe", "torch-rechub", wall=True)
    verdict = "met" if r >= 3 else "not met"
    return (
        f"Goal 2 (tabular rows/s >= 3x torch-rechub's on the same MMoE): {r:.2f}x "
        f"(wall clock {wall:.2f}x), {verdict}"
    )


# --- the CRF part ------------------------------------------------------------------------------------


@dataclass
class CRFResult:
    n_tags: int
    batch: int
    ll_diff: float  # largest |log-likelihood difference| per sentence
    grad_diff: float  # largest |difference| of d mean-NLL / d emissions
    paths_equal: int  # sentences with the same Viterbi path ...
    sentences: int  # ... of these (the agreement's draws)
    ms: dict[str, dict[str, float]]  # framework -> {"loss": ms, "decode": ms}


def crf_inputs(batch: int, max_len: int, n_tags: int, seed: int):
    """Random emissions ``[B, T, K]``, tags and a mask of lengths 5..max_len (the longest is max_len)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(5, max_len + 1, (batch,), generator=g)
    lengths[0] = max_len
    mask = torch.arange(max_len).unsqueeze(0) < lengths.unsqueeze(1)
    emissions = torch.randn(batch, max_len, n_tags, generator=g)
    tags = torch.randint(0, n_tags, (batch, max_len), generator=g) * mask
    return emissions, tags, mask


def crf_agreement(ours: LinearChainCRF, theirs, draws: Sequence[tuple]) -> tuple[float, float, int]:
    """Over ``draws`` of (emissions, tags, mask): the largest |Δ| of the per-sentence log-likelihood and
    of the mean NLL's gradient in the emissions, and how many sentences' Viterbi paths are equal."""
    ll_diff = grad_diff = 0.0
    equal = 0
    for emissions, tags, mask in draws:
        with torch.no_grad():
            ll_ours = ours.score(emissions, tags, mask) - ours.log_partition(emissions, mask)
            ll_theirs = theirs(emissions, tags, mask, reduction="none")
        ll_diff = max(ll_diff, float((ll_ours - ll_theirs).abs().max()))
        e1, e2 = (emissions.clone().requires_grad_(True) for _ in range(2))
        ours.nll(e1, tags, mask).backward()
        (-theirs(e2, tags, mask, reduction="mean")).backward()
        grad_diff = max(grad_diff, float((e1.grad - e2.grad).abs().max()))
        equal += sum(a == b for a, b in zip(ours.viterbi(emissions, mask), theirs.decode(emissions, mask)))
    return ll_diff, grad_diff, equal


def crf_part(
    n_tags: int,
    batch: int = 32,
    max_len: int = 40,
    calls: int = 50,
    peer: bool = True,
    seed: int = 0,
    draws: int = 10,
) -> CRFResult:
    """sparseshare's CRF against pytorch-crf's (``peer``) with the same scores: agreement over ``draws``
    random batches, time on the first of them."""
    torch.manual_seed(seed)
    ours = LinearChainCRF(n_tags)
    with torch.no_grad():  # N(0, 0.5^2) scores (N(0, 1) emissions): no near-ties, no saturated marginals
        for p in (ours.start, ours.end, ours.transitions):
            p.copy_(0.5 * torch.randn(p.shape))
    inputs = [crf_inputs(batch, max_len, n_tags, seed + d) for d in range(draws)]
    emissions, tags, mask = inputs[0]
    fns = {"sparseshare": (lambda e: ours.nll(e, tags, mask), lambda e: ours.viterbi(e, mask))}
    ll_diff = grad_diff = float("nan")
    equal = 0
    if peer:
        from torchcrf import CRF

        theirs = CRF(n_tags, batch_first=True)
        with torch.no_grad():
            theirs.start_transitions.copy_(ours.start)
            theirs.end_transitions.copy_(ours.end)
            theirs.transitions.copy_(ours.transitions)
        fns["pytorch-crf"] = (
            lambda e: -theirs(e, tags, mask, reduction="mean"),
            lambda e: theirs.decode(e, mask),
        )
        ll_diff, grad_diff, equal = crf_agreement(ours, theirs, inputs)
    times: dict[str, dict[str, list[float]]] = {n: {"loss": [], "decode": []} for n in fns}
    for i in range(calls + 3):  # interleaved; the first 3 untimed
        for name, (loss, decode) in fns.items():
            e = emissions.clone().requires_grad_(True)
            t0 = CLOCK()
            loss(e).backward()
            t1 = CLOCK()
            with torch.no_grad():
                decode(emissions)
            t2 = CLOCK()
            if i >= 3:
                times[name]["loss"].append(t1 - t0)
                times[name]["decode"].append(t2 - t1)
    ms = {n: {k: 1000 * statistics.median(v) for k, v in d.items()} for n, d in times.items()}
    return CRFResult(n_tags, batch, ll_diff, grad_diff, equal, batch * draws if peer else 0, ms)


def crf_table(results: Sequence[CRFResult]) -> list[str]:
    head = [
        "tags",
        "batch",
        "framework",
        "NLL fwd+bwd ms",
        "Viterbi ms",
        "max abs Δ log-lik",
        "max abs Δ grad",
        "paths equal",
        "pytorch-crf ÷ sparseshare time (NLL, Viterbi)",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        for fw, ms in r.ms.items():
            peer = fw != "sparseshare"
            agree = (
                [f"{r.ll_diff:.2e}", f"{r.grad_diff:.2e}", f"{r.paths_equal}/{r.sentences}"]
                if peer
                else ["", "", ""]
            )
            ours = r.ms["sparseshare"]
            ratio = f"{ms['loss'] / ours['loss']:.2f}x, {ms['decode'] / ours['decode']:.2f}x" if peer else ""
            cells = [
                str(r.n_tags),
                str(r.batch),
                fw,
                f"{ms['loss']:.2f}",
                f"{ms['decode']:.2f}",
                *agree,
                "" if fw == "sparseshare" else ratio,
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


# --- the report --------------------------------------------------------------------------------------


def machine() -> str:
    """The CPU model (lscpu) and core count, or the platform's words where lscpu is missing."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"{model}, {torch.get_num_threads()} torch thread(s) of {os.cpu_count()} cores"


def versions() -> str:
    out = [f"torch {torch.__version__}"]
    for peer in PEER_PACKAGES:
        try:
            out.append(f"{peer} {importlib.metadata.version(peer)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(f"{peer} not installed")
    return ", ".join(out)


def report(
    command: str,
    budget: Budget,
    tab: TabularResult | None,
    crfs: Sequence[CRFResult],
    notes: Sequence[str],
    seeds: Sequence[int],
    rows: int,
    columns: int,
) -> str:
    """docs/results/peers.md: how it was run, on what, and the tables."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# sparseshare side by side with torch-rechub, DeepCTR-Torch and pytorch-crf",
        "",
        f"Written by `bench/peers.py` (what it measures and how: its docstring). Command: `{command}`.",
        "",
        f"- date: {now}",
        f"- machine: {machine()}",
        f"- versions: {versions()}, Python {platform.python_version()}",
        f"- budget: {budget.epochs} epoch(s) over {rows:,} census train rows, batch {budget.batch_size}, "
        f"Adam lr {budget.lr:g}, seeds {', '.join(map(str, seeds))} (medians over them)",
        *(f"- {n}" for n in notes),
        "",
    ]
    if tab is not None:
        lines += [
            "## Tabular: census-income, tasks income and marital",
            "",
            "Every framework its own model class and its own training loop (sparseshare `train`, "
            "torch-rechub `MTLTrainer.fit`, DeepCTR-Torch `model.fit`); the same for all:",
            "",
            f"- rows: sparseshare's census reader, data seed 1 ({rows:,} train rows; the official test "
            f"file split 1:1 into dev and test); input: its {columns} encoded columns (standardized "
            "numerics, one-hot categoricals), given to each peer as one dense feature block",
            f"- sizes (configs/pbfs_census.yaml): shared-bottom {SIZES['bottom']}; MMoE "
            f"{SIZES['num_experts']} experts of {SIZES['mmoe_expert']}; PLE {SIZES['levels']} levels of "
            f"{SIZES['num_specific']} specific + {SIZES['num_shared']} shared expert(s) of "
            f"{SIZES['ple_expert']}; towers {SIZES['tower']}; linear softmax gates",
            f"- Adam lr {budget.lr:g}, no weight decay, no clipping, batch {budget.batch_size}, "
            f"{budget.epochs} epoch(s), no early stopping: test AUC (sklearn `roc_auc_score`, the same "
            "test rows) of the model after its last step",
            "",
            "Each framework's own: its layers (torch-rechub adds a BatchNorm after every linear layer, "
            "gates too), its loss scaling (sum, mean over tasks, or sum over rows of the BCE), its data "
            "pipeline (the peers collate every batch row by row in a torch DataLoader; sparseshare "
            "expands its encoded rows per batch) and bookkeeping. Init: PyTorch's Linear default for all "
            "three (DeepCTR-Torch's own N(0, 1e-4) is reset: it left income near AUC 0.5 after one "
            "epoch). DeepCTR-Torch runs with `verbose=0` and no training metrics, its lightest loop.",
            "",
            "Times are CPU time of the process, which runs one torch thread and no DataLoader worker: on "
            "a core of its own that is the wall clock, and on a machine shared with other work it stays "
            "steady where the wall clock counts others' time too; wall-clock rows/s stand beside. "
            "Columns: rows/s of the loop (the median over the seeds, their range in brackets) and its "
            "median step (one optimizer step's end to the next's, dev evaluation left out); the bare step "
            "of the same model (forward, loss, backward, Adam on batches made beforehand, timed just "
            "before and just after the run); what the loop adds to it (per run, then the median); test "
            "AUC; sparseshare's rows/s over the framework's (the median of the per-seed ratios; of "
            "wall-clock rows/s in brackets). Every other figure is a median over the seeds.",
            "",
            *tabular_table(tab),
            "",
            f"Over {', '.join(dict.fromkeys(m for m, _ in tab.runs))}:",
            "",
            *summary_lines(tab),
            "",
        ]
        goal = goal_line(tab)
        if goal:
            lines += [goal, ""]
    if crfs:
        lines += [
            "## CRF: sparseshare.models.crf against pytorch-crf",
            "",
            "The same random emissions, tags and masks (lengths 5-40), pytorch-crf's scores copied from "
            "sparseshare's; agreement over 10 random batches; times (CPU time, one thread) are medians of "
            "calls interleaved between the two on one batch.",
            "",
            *crf_table(crfs),
            "",
        ]
    return "\n".join(lines)


def census(rows: int | None) -> TabularData:
    """census-income as pbfs_census reads it (data seed 1), the train split cut to ``rows`` if given."""
    from sparseshare.data.sources import get_source, resolve
    from sparseshare.data.tabular_readers import read_census

    data = read_census(resolve(get_source("census_income"), None), seed=1)
    return data.limited({"train": rows}) if rows else data


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=1, help="passes over the train rows (every framework)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--rows", type=int, default=None, help="train rows (default: all 199,523)")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--crf-calls", type=int, default=50, help="timed calls per CRF size and framework")
    ap.add_argument("--out", type=Path, default=Path("docs/results/peers.md"))
    args = ap.parse_args(argv)
    if TRAIN["optimizer"] != "adam":  # every framework below is given Adam
        raise SystemExit(f"{CONFIG}: train.optimizer is '{TRAIN['optimizer']}'; bench/peers.py runs Adam")
    torch.set_num_threads(1)
    budget = Budget(epochs=args.epochs)
    notes = [f"{p} is not installed: left out" for p in PEER_PACKAGES if not installed(p)]
    for n in notes:
        print(n)
    data = census(args.rows)
    train_arrays, dev, test = (Arrays.of(data, s) for s in ("train", "dev", "test"))
    frameworks: list = [Sparseshare(data, test)]
    if installed("torch-rechub"):
        frameworks.append(TorchRechub(train_arrays, dev, test))
    if installed("DeepCTR-Torch"):
        frameworks.append(DeepCTRTorch(train_arrays, test))
    rows = data.num_examples("train")
    print(f"tabular: {rows:,} train rows, {len(test.x):,} test rows, {data.in_dim} columns")
    tab = tabular_part(frameworks, args.models, args.seeds, budget)
    for line in tabular_table(tab) + summary_lines(tab):
        print(line)
    goal = goal_line(tab)
    if goal:
        print(goal)
    crfs = [crf_part(k, calls=args.crf_calls, peer=installed("pytorch-crf")) for k in (9, 45)]
    for line in crf_table(crfs):
        print(line)
    command = "python bench/peers.py" + "".join(f" {shlex.quote(a)}" for a in (argv or sys.argv[1:]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(command, budget, tab, crfs, notes, args.seeds, rows, data.in_dim))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
