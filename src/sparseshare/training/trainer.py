"""Joint training over tasks: sample a task, take a step on its (sub)network, evaluate dev every epoch.

The loop follows "Training Subnets in Parallel" (sparse-sharing paper): select a task with a sampler,
draw a mini-batch of it, update only what that task uses (``mechanism.step``). Dev is evaluated after
every epoch; the best-dev state is kept; test is *not* touched here (the runner evaluates it once).
Every epoch draws its randomness from ``(seed, epoch)``, so a run resumed from ``last.pt`` continues
exactly as the uninterrupted one would.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from sparseshare.errors import ConfigError
from sparseshare.metrics import score_sequences
from sparseshare.training.samplers import get_sampler


@dataclass
class TaskSpec:
    """One task: its data (``batches(split, ...)``, ``num_sentences(split)``), primary metric, tag scheme.

    ``evaluator(mechanism, spec, split, batch_size, device) -> metrics`` scores non-sequence tasks
    (tabular, recommendation); sequence-labelling tasks leave it None and are scored by tag strings.
    ``higher_is_better`` is False for error metrics such as MSE (selection then minimises).
    """

    name: str
    data: object
    metric: str  # primary metric: 'accuracy' or 'f1' for sequences; e.g. 'auc', 'mse' for tables
    scheme: str | None = None
    evaluator: Callable | None = None
    higher_is_better: bool = True


@dataclass
class TrainSettings:
    epochs: int = 10
    patience: int = 3
    batch_size: int = 10
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.0
    weight_decay: float = 0.0
    lr_decay: float = 0.0  # lr_e = lr / (1 + lr_decay * e), Ma and Hovy (2016)
    clip: float | None = 5.0
    sampler: str = "proportional"
    # joint=True: every step is one batch carrying all tasks' labels and the loss is Σ_t w_t L_t
    # (PBFS Eq. 10; MMoE, PLE); joint=False: sample a task per step (sparse-sharing paper).
    joint: bool = False
    loss_weights: dict[str, float] | None = None
    eval_batch_size: int = 100


@dataclass
class TrainResult:
    best_epoch: int
    best_dev: dict[str, dict[str, float]]
    epochs_run: int
    history: list[dict] = field(default_factory=list)
    best_state: dict | None = None


def make_optimizer(params, name: str, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise ConfigError(f"unknown optimizer '{name}'; valid: ['adam', 'sgd']")


def _tag_names(data) -> list[str]:
    return list(data.tag_vocab.itos)


@torch.no_grad()
def predict(mechanism, task: TaskSpec, split: str, batch_size: int, device) -> list[list[str]]:
    """Predicted tag strings for every sentence of ``split``, in file order."""
    mechanism.eval()
    names = _tag_names(task.data)
    out: dict[int, list[str]] = {}
    for batch in task.data.batches(split, batch_size, shuffle=False):
        batch = batch.to(device)
        for i, seq in zip(batch.index.tolist(), mechanism.decode(batch, task.name)):
            out[i] = [names[k] for k in seq]
    return [out[i] for i in range(len(out))]


def evaluate(mechanism, task: TaskSpec, split: str, batch_size: int, device) -> dict[str, float]:
    """All metrics of ``task`` on ``split``."""
    if task.evaluator is not None:
        return task.evaluator(mechanism, task, split, batch_size, device)
    pred = predict(mechanism, task, split, batch_size, device)
    gold = [tags for _, tags in task.data.splits[split]]
    return score_sequences(gold, pred, task.metric, task.scheme)


def mean_primary(scores: Mapping[str, Mapping[str, float]], tasks: Mapping[str, TaskSpec]) -> float:
    """Average of each task's primary metric (negated for lower-is-better metrics): the dev criterion."""
    signed = [scores[t][tasks[t].metric] * (1 if tasks[t].higher_is_better else -1) for t in tasks]
    return sum(signed) / len(signed)


def _sampled(tasks, sizes, steps, sampler, batch_size, gen):
    """(task, batch) pairs: a task drawn by the sampler, then that task's next shuffled batch."""
    order = sampler(sizes, steps, gen)
    iters = {t: tasks[t].data.batches("train", batch_size, shuffle=True, generator=gen) for t in tasks}
    for task in order:
        batch = next(iters[task], None)
        if batch is None:  # this task's epoch is used up: start another pass over it
            iters[task] = tasks[task].data.batches("train", batch_size, shuffle=True, generator=gen)
            batch = next(iters[task])
        yield task, batch


def _save_atomic(obj, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def train(
    mechanism,
    tasks: Mapping[str, TaskSpec],
    settings: TrainSettings,
    *,
    seed: int,
    device,
    ckpt_dir: Path | None = None,
    desc: str = "train",
    log: Callable[[dict], None] | None = None,
    joint_data=None,
    callbacks: list | None = None,
) -> TrainResult:
    """Train ``mechanism`` on ``tasks`` with early stopping on mean dev score; resumable via ``ckpt_dir``.

    With ``settings.joint``, batches come from ``joint_data`` (all tasks' labels in each batch).
    ``callbacks`` may define ``on_step(global_step)`` (after each optimizer step) and
    ``on_eval(dev: {task: metrics})`` (after each dev evaluation), e.g. the PBFS pruning schedule.
    """
    callbacks = callbacks or []
    if settings.joint and joint_data is None:
        raise ValueError("joint training needs joint_data (a dataset with every task's labels)")
    mechanism.to(device)
    params = [p for p in mechanism.parameters() if p.requires_grad]
    opt = make_optimizer(params, settings.optimizer, settings.lr, settings.momentum, settings.weight_decay)
    sampler = get_sampler(settings.sampler)
    sizes = {t: spec.data.num_sentences("train") for t, spec in tasks.items()}
    steps = sum(math.ceil(n / settings.batch_size) for n in sizes.values())
    if settings.joint:
        steps = math.ceil(joint_data.num_sentences("train") / settings.batch_size)
    weights = settings.loss_weights or {t: 1.0 for t in tasks}
    start, best, best_epoch, bad, history, best_state = 0, -math.inf, -1, 0, [], None
    if ckpt_dir:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
    last = ckpt_dir / "last.pt" if ckpt_dir else None
    if last is not None and last.exists():
        ck = torch.load(last, map_location=device, weights_only=False)
        mechanism.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optim"])
        start, best, best_epoch, bad, history = (
            ck["epoch"],
            ck["best"],
            ck["best_epoch"],
            ck["bad"],
            ck["history"],
        )
        best_state = torch.load(ckpt_dir / "best.pt", map_location=device, weights_only=False)
        if ck.get("finished"):
            return TrainResult(best_epoch, history[best_epoch]["dev"], start, history, best_state)
    stopped = False
    bar = tqdm(range(start, settings.epochs), desc=desc, leave=False, disable=None)
    for epoch in bar:
        torch.manual_seed(seed * 100_003 + epoch)
        gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
        for group in opt.param_groups:
            group["lr"] = settings.lr / (1.0 + settings.lr_decay * epoch)
        mechanism.train()
        total, n = 0.0, 0
        if settings.joint:
            stream = ((None, b) for b in joint_data.batches("train", settings.batch_size, True, gen))
        else:
            stream = _sampled(tasks, sizes, steps, sampler, settings.batch_size, gen)
        for i, (task, batch) in enumerate(stream):
            opt.zero_grad(set_to_none=True)
            batch = batch.to(device)
            loss = mechanism.joint_loss(batch, weights) if task is None else mechanism.loss(batch, task)
            loss.backward()
            if settings.clip:
                torch.nn.utils.clip_grad_norm_(params, settings.clip)
            mechanism.step(opt, task)
            total, n = total + loss.item(), n + 1
            for cb in callbacks:
                if hasattr(cb, "on_step"):
                    cb.on_step(epoch * steps + i + 1)
        dev = {t: evaluate(mechanism, tasks[t], "dev", settings.eval_batch_size, device) for t in tasks}
        for cb in callbacks:
            if hasattr(cb, "on_eval"):
                cb.on_eval(dev)
        score = mean_primary(dev, tasks)
        rec = {"epoch": epoch, "loss": total / max(n, 1), "dev": dev, "dev_mean": score}
        history.append(rec)
        if log:
            log({"phase": desc, **rec})
        bar.set_postfix(loss=f"{rec['loss']:.3f}", dev=f"{score:.4f}")
        if score > best:
            best, best_epoch, bad = score, epoch, 0
            best_state = copy.deepcopy(mechanism.state_dict())
            if ckpt_dir:
                _save_atomic(best_state, ckpt_dir / "best.pt")
        else:
            bad += 1
        stopped = settings.patience > 0 and bad >= settings.patience
        if last is not None:
            finished = stopped or epoch + 1 == settings.epochs
            state = {
                "model": mechanism.state_dict(),
                "optim": opt.state_dict(),
                "epoch": epoch + 1,
                "best": best,
                "best_epoch": best_epoch,
                "bad": bad,
                "history": history,
                "finished": finished,
            }
            _save_atomic(state, last)
        if stopped:
            break
    bar.close()
    return TrainResult(best_epoch, history[best_epoch]["dev"], len(history), history, best_state)
