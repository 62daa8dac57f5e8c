"""Multi-task training: each step samples a task (or takes all), steps its (sub)network, dev every epoch.

The loop follows "Training Subnets in Parallel" (sparse-sharing paper): a sampler picks a task, a batch
of it is drawn and only what that task uses is updated (``mechanism.step``). With ``joint`` every step
takes all tasks and the loss is Σ_t w_t L_t (PBFS Eq. 10; MMoE, PLE): from one batch carrying every task's
labels when a ``joint_data`` is given (tabular tasks labelled on the same rows), else from one batch of
each task. Dev is evaluated after every epoch and the best-dev state kept; test is *not* touched here.
Every epoch draws its randomness from ``(seed, epoch)``, so a run resumed from its checkpoint continues
exactly as the uninterrupted one would. Checkpoints are safetensors + JSON (never pickles).

What a GPU user switches on (each off by default, so that committed results reproduce bit for bit):
``train.precision`` (the forward and loss under autocast to bf16 or fp16, fp16 with a gradient scaler:
:class:`_Precision`), ``train.fused`` (fused optimizer kernels: :func:`make_optimizer`), ``train.compile``
(the forward and loss through ``torch.compile`` with dynamic shapes: :func:`_step_loss`) and
``train.drop_last`` (each task's short batch of a pass left out, so every step has the same batch size).
Under each of them a masked step still goes through ``mechanism.step``: nothing outside M_t moves. A
step reads nothing back to the host (the epoch's loss sums on the device, read once per epoch), so the
host queues the next step while the device runs this one; tests/training/test_host_sync.py counts.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import inspect
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from sparseshare import paths
from sparseshare.data.task import Task, as_tasks, move_batch, num_batches, stage
from sparseshare.errors import ConfigError, ContractError, RunError, TrainingError
from sparseshare.sharing.hard import as_mechanism
from sparseshare.training import fingerprint
from sparseshare.training.checkpoint import (
    committed,
    load_tensors,
    load_training_state,
    save_tensors,
    save_training_state,
)
from sparseshare.training.evaluation import evaluate_task, mean_primary, undefined
from sparseshare.training.progress import bar_disabled, label
from sparseshare.training.samplers import get_sampler
from sparseshare.training.settings import OPTIMIZERS, TrainSettings, check_problems
from sparseshare.training.weighting import Weighting, make_weighting

logger = logging.getLogger("sparseshare")


@dataclass
class TrainResult:
    best_epoch: int
    best_dev: dict[str, dict[str, float]]
    epochs_run: int
    history: list[dict] = field(default_factory=list)
    best_state: dict | None = None

    def __repr__(self) -> str:
        """A summary: the epochs, the best one and its dev scores (not the state dict)."""
        dev = ", ".join(
            f"{t} {', '.join(f'{k} {v:.4f}' for k, v in m.items())}" for t, m in self.best_dev.items()
        )
        return f"TrainResult(epochs_run={self.epochs_run}, best_epoch={self.best_epoch + 1}, best dev: {dev})"


def check_heads(mechanism, tasks: Mapping[str, Task]) -> None:
    """Every task must be one of the model's tasks (it has a head for it)."""
    unknown = [t for t in tasks if t not in mechanism.tasks]
    if unknown:
        raise ContractError(
            f"task(s) {unknown} have no head in the model; its tasks are {list(mechanism.tasks)}"
        )


def _warn_undefined(
    desc: str, epoch: int, missing: list[str], tasks: Mapping[str, Task], warned: set
) -> None:
    """Once per task: its dev metric is undefined, so selection uses the other tasks' scores."""
    for t in missing:
        if t not in warned:
            warned.add(t)
            logger.warning(
                "%s: task '%s': dev %s is undefined (NaN) at epoch %d (a dev split with one class or no "
                "label?); selection uses the other tasks' scores while it is",
                desc, t, tasks[t].key, epoch + 1,
            )  # fmt: skip


def _first(e: Exception) -> str:
    return " ".join(str(e).strip().splitlines()[:1])[:160] or type(e).__name__


def load_state(module: torch.nn.Module, state: Mapping[str, torch.Tensor], source) -> None:
    """``module.load_state_dict(state)``; weights that do not fit (a config changed since ``source`` was
    written) are a one-line RunError naming the file."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError) as e:
        raise RunError(
            f"{source}: does not fit this model ({_first(e)}); the config changed since it was written: "
            f"run again with --repair, or choose another --out"
        ) from None


def make_optimizer(
    params, name: str, lr: float, momentum: float = 0.0, weight_decay: float = 0.0, fused: bool = False
):
    """The optimizer ``name`` (``train.optimizer``) over ``params``. ``fused`` (``train.fused``): torch's
    fused kernel, one kernel for every parameter's update, where the parameters' device has one (CUDA,
    and the CPU since torch 2.4), else the multi-tensor (foreach) implementation; the same update up to
    floating-point rounding."""
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer '{name}'; valid: {list(OPTIMIZERS)}")
    params = list(params)
    make = torch.optim.SGD if name == "sgd" else torch.optim.Adam
    hyper = {"lr": lr, "weight_decay": weight_decay, **({"momentum": momentum} if name == "sgd" else {})}
    if not fused:
        return make(params, **hyper)
    try:
        return make(params, fused=True, **hyper)
    except RuntimeError:  # no fused kernel for this device: the multi-tensor one
        return make(params, foreach=True, **hyper)


AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}  # train.precision -> the autocast dtype


class _ScaledStep:
    """The optimizer as ``mechanism.step`` sees it under fp16: ``step()`` is the gradient scaler's step
    (skipped when the scaled gradients overflowed), ``state`` and ``param_groups`` are the optimizer's.
    A masked step (sharing/masking.py's ``MaskedStep``) thus takes its snapshot and restore around the
    scaler's step as around any optimizer's: a skipped step changes nothing, a taken one nothing outside
    M_t."""

    def __init__(self, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler):
        self.optimizer, self.scaler = optimizer, scaler

    @property
    def state(self):
        return self.optimizer.state

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    def step(self) -> None:
        self.scaler.step(self.optimizer)


class _Precision:
    """``train.precision``: the autocast block of a step's forward and loss (``bf16``, ``fp16``; ``fp32``:
    none, the ops of a plain step), and for fp16 the gradient scaler (Micikevicius et al. 2018): the loss
    scaled before backward, the gradients unscaled before clipping, the step skipped when they hold an
    inf or NaN, the scale updated after it. Evaluation is not under autocast: dev and test are scored in
    fp32, whatever trained. (The scaler's step of an unfused optimizer reads whether the gradients
    overflowed to the host, once a step; a fused one takes the flag on the device: fp16 wants
    ``train.fused``.)"""

    def __init__(self, name: str, device: torch.device):
        self.dtype, self.device_type = AUTOCAST.get(name), device.type
        self.scaler = torch.amp.GradScaler(device.type) if name == "fp16" else None

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """The true gradients, before clipping them (the scaler's step then does not unscale again)."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def stepper(self, optimizer: torch.optim.Optimizer):
        """What ``mechanism.step`` steps: the optimizer, or under fp16 the scaler's step of it."""
        return optimizer if self.scaler is None else _ScaledStep(optimizer, self.scaler)

    def update(self) -> None:
        if self.scaler is not None:
            self.scaler.update()

    def state_dict(self) -> dict:
        """The scaler's scale and growth count (in the checkpoint, so a resumed run goes on with them)."""
        return {} if self.scaler is None else {"scaler": self.scaler.state_dict()}

    def load_state_dict(self, ck: Mapping) -> None:
        if self.scaler is not None and "scaler" in ck:
            self.scaler.load_state_dict(ck["scaler"])


# the backend of train.compile (tests swap in a cheaper one, or a counting one)
COMPILE_BACKEND = "inductor"


def _step_loss(mechanism, batch, task: str | None, weights: Mapping[str, float]) -> torch.Tensor:
    """A training step's forward and loss: the task's, or Σ_t w_t L_t for a joint step (task None)."""
    if task is None:
        return _joint_loss(mechanism, batch, weights)
    return mechanism.loss(batch, task)


def _step_losses(mechanism, batch, task: str | None, tasks: list[str]) -> dict[str, torch.Tensor]:
    """A training step's forward and each task's unweighted loss: the sampled task's, or every task's
    of a joint step (task None), for a loss weighting (training/weighting.py) to combine."""
    if task is not None:
        return {task: mechanism.loss(batch, task)}
    if isinstance(batch, _PerTask):
        return {t: mechanism.loss(batch[t], t) for t in tasks}
    own = getattr(mechanism, "joint_losses", None)
    if callable(own):
        return own(batch, tasks)
    return {t: mechanism.loss(batch, t) for t in tasks}


def _step_loss_of(settings: TrainSettings, weighted: bool = False):
    """:func:`_step_loss`, through ``torch.compile`` under ``train.compile``: with dynamic shapes, so
    that batches of other sizes and sentence lengths run the graph compiled for the first ones instead
    of compiling one per shape (what runs is what the step runs: under ``SparseSharing.applied`` the
    model's own forward, else the mechanism's substitution of M_t ⊙ θ)."""
    step = _step_losses if weighted else _step_loss
    if not settings.compile:
        return step
    return torch.compile(step, dynamic=True, backend=COMPILE_BACKEND)


def resolve_device(device: str | torch.device | None, module: torch.nn.Module | None = None) -> torch.device:
    """``'auto'``: CUDA when available, else CPU; None: where ``module``'s parameters are (else CPU)."""
    if device is None:
        p = next(module.parameters(), None) if module is not None else None
        return p.device if p is not None else torch.device("cpu")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _rows(batch) -> int | None:
    """A batch's number of examples: the leading size of its first tensor (a dataclass's fields, a
    mapping's values, a sequence's items or an object's attributes, in order); None if it holds none."""
    if torch.is_tensor(batch):
        return batch.shape[0] if batch.dim() else None
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        items = [getattr(batch, f.name) for f in dataclasses.fields(batch)]
    elif isinstance(batch, Mapping):
        items = list(batch.values())
    elif isinstance(batch, (list, tuple)):
        items = list(batch)
    else:
        items = list(vars(batch).values()) if hasattr(batch, "__dict__") else []
    for item in items:
        n = _rows(item)
        if n is not None:
            return n
    return None


def _short(batch, batch_size: int) -> bool:
    """Whether ``batch`` has fewer than ``batch_size`` examples (``train.drop_last`` leaves it out)."""
    n = _rows(batch)
    if n is None:
        raise ContractError(
            f"'train.drop_last': a training batch ({type(batch).__name__}) holds no tensor to count its "
            f"examples by; set train.drop_last to false"
        )
    return n < batch_size


def _cycle(
    data, batch_size: int, gen: torch.Generator, bucket: int = 0, drop_last: bool = False
) -> Iterator[Any]:
    """A task's shuffled training batches (``bucket``: from pools sorted by length; ``drop_last``: those
    of fewer than ``batch_size`` examples left out), pass after pass."""
    extra = {"bucket": bucket} if bucket else {}
    while True:
        empty = True
        for batch in data.batches("train", batch_size, shuffle=True, generator=gen, **extra):
            if drop_last and _short(batch, batch_size):
                continue
            empty = False
            yield batch
        if empty and drop_last:
            raise ConfigError(
                f"'train.drop_last': a task has no training batch of train.batch_size ({batch_size}) "
                f"examples (its loader makes smaller ones); set train.drop_last to false"
            )
        if empty:
            raise ConfigError("a task has no training batches (empty train split)")


def _check_bucket(bucket: int, datas: Mapping[str, Any]) -> None:
    """``train.bucket`` needs data whose ``batches`` takes ``bucket`` (the built-in sequence data)."""
    if not bucket:
        return
    for name, data in datas.items():
        if "bucket" not in inspect.signature(data.batches).parameters:
            raise ConfigError(
                f"'train.bucket': the data of '{name}' ({type(data).__name__}) has no length buckets; "
                f"set train.bucket to 0"
            )


def _sampled(tasks: Mapping[str, Task], sizes, steps, sampler, batch_size, gen, bucket=0, drop_last=False):
    """(task, batch) pairs: a task drawn by the sampler, then that task's next shuffled batch."""
    order = sampler(sizes, steps, gen)
    iters = {t: _cycle(tasks[t].data, batch_size, gen, bucket, drop_last) for t in tasks}
    for task in order:
        yield task, next(iters[task])


class _PerTask(dict):
    """One batch of every task (joint training over tasks with separate data)."""


def _all_tasks(tasks: Mapping[str, Task], steps, batch_size, gen, bucket=0, drop_last=False):
    """(None, {task: batch}) per step."""
    iters = {t: _cycle(tasks[t].data, batch_size, gen, bucket, drop_last) for t in tasks}
    for _ in range(steps):
        yield None, _PerTask((t, next(it)) for t, it in iters.items())


def _joint_loss(mechanism, batch, weights: Mapping[str, float]) -> torch.Tensor:
    """Σ_t w_t L_t (PBFS Eq. 10) over one batch per task, or over one batch labelled for every task."""
    if isinstance(batch, _PerTask):
        return torch.stack([float(w) * mechanism.loss(batch[t], t) for t, w in weights.items()]).sum()
    own = getattr(mechanism, "joint_loss", None)
    if callable(own):
        return own(batch, weights)
    return torch.stack([float(w) * mechanism.loss(batch, t) for t, w in weights.items()]).sum()


def _applied(mechanism, task: str | None):
    """The mechanism's in-place block for one task's step where it has one (sparse sharing), else none."""
    if task is None or not hasattr(mechanism, "applied"):
        return contextlib.nullcontext()
    return mechanism.applied(task)


def _weights(settings: TrainSettings, tasks: Mapping[str, Task]) -> dict[str, float]:
    given = settings.loss_weights or {}
    unknown = sorted(set(given) - set(tasks))
    if unknown:
        raise ConfigError(f"'train.loss_weights': unknown task(s) {unknown}; tasks are {list(tasks)}")
    return {t: float(given.get(t, 1.0)) for t in tasks}


@dataclass
class _Progress:
    """Where a training stands, as its checkpoint holds it: epochs done, the best score so far (its
    epoch and state), epochs since it improved, one record per epoch."""

    epochs: int = 0
    best: float = -math.inf
    best_epoch: int = -1
    bad: int = 0
    history: list[dict] = field(default_factory=list)
    best_state: dict | None = None

    def result(self, epochs_run: int | None = None) -> TrainResult:
        dev, run = (
            self.history[self.best_epoch]["dev"],
            len(self.history) if epochs_run is None else epochs_run,
        )
        return TrainResult(self.best_epoch, dev, run, self.history, self.best_state)


def train(
    mechanism,
    tasks: Mapping[str, Task] | list[Task],
    settings: TrainSettings,
    *,
    seed: int,
    device,
    directory: Path | None = None,
    desc: str = "train",
    log: Callable[[dict], None] | None = None,
    joint_data=None,
    callbacks: list | None = None,
    progress: bool = True,
    weighting: Weighting | None = None,
) -> TrainResult:
    """Train ``mechanism`` (a model is wrapped in hard sharing) on ``tasks`` with early stopping on the
    mean dev score; resumable from ``directory`` (``last.safetensors``, ``best.safetensors``).

    ``callbacks`` define any of training/callbacks.py's ``Callback`` methods: ``on_step(global_step)``
    (after each optimizer step), ``on_eval(dev: {task: metrics})`` (after each dev evaluation, once the
    epoch's state is kept as the best if it is: a callback that changes the model there, such as the PBFS
    schedule swapping masks, changes the next epoch, never the state its score belongs to), and
    ``state_dict()`` / ``load_state_dict(state)``, saved in and resumed from the checkpoint with the model.

    ``weighting``: a loss-weighting object (training/weighting.py: ``Weighting`` and its subclasses, or
    one of the user's with the same methods) instead of the one ``settings.weighting`` names.

    ``progress``: a bar on a terminal (False: none; the lines per epoch are the logger's, see
    training/progress.py).

    ``seed`` names the run's random stream (per epoch: ``seed * 100_003 + epoch``); a checkpoint of
    another stream is refused rather than continued.

    The steps: the data staged on the device, the optimizer made, the checkpoint resumed
    (:func:`_resume`); per epoch, one pass over the training stream (:func:`_train_epoch`), the dev
    evaluation and the best state (:func:`_evaluate`), the callbacks, and the checkpoint
    (:func:`_checkpoint`).
    """
    shows = bar_disabled(progress)
    tasks = as_tasks(tasks)
    mechanism = as_mechanism(mechanism)
    check_heads(mechanism, tasks)
    callbacks = callbacks or []
    device = _stage(mechanism, tasks, settings, device, joint_data)
    params = [p for p in mechanism.parameters() if p.requires_grad]
    epoch_of = _EpochStream(tasks, settings, joint_data)
    weighting = _weighting(settings, tasks, epoch_of, device, weighting)
    opt = make_optimizer(
        _groups(params, weighting), settings.optimizer, settings.lr, settings.momentum,
        settings.weight_decay, settings.fused,
    )  # fmt: skip
    amp = _Precision(settings.precision, device)
    last = best_file = None
    if directory is not None:
        last, best_file = _open_directory(
            Path(directory), mechanism, tasks, settings, seed, callbacks, joint_data, weighting
        )
    progress = _Progress()
    if last is not None and last.exists():
        progress, finished = _resume(
            last, best_file, mechanism, opt, amp, device, seed, callbacks, settings, weighting
        )
        if finished:
            return progress.result(progress.epochs)
    warned: set[str] = set()
    step_loss = _step_loss_of(settings, weighted=weighting is not None)
    bar = tqdm(range(progress.epochs, settings.epochs), desc=label(desc), leave=False, disable=shows)
    for epoch in bar:
        began = time.time()
        loss = _train_epoch(
            mechanism, opt, amp, step_loss, params, epoch_of, settings, epoch, seed, device, callbacks,
            weighting,
        )  # fmt: skip
        _check_finite(loss, desc, epoch, settings)
        rec, improved = _evaluate(mechanism, tasks, settings, epoch, loss, progress, best_file, device)
        # under a weighting: each task's mean loss; the weights (DWA's of the epoch, learned: at its end)
        if weighting is not None:
            rec["loss_by_task"] = weighting.epoch_losses
            if (weights := weighting.report()) is not None:
                rec["weights"] = weights
        _report_epoch(rec, improved, tasks, desc, settings.epochs, time.time() - began, log, warned)
        for cb in callbacks:  # after the best state is kept: it pairs with this epoch's score
            if hasattr(cb, "on_eval"):
                cb.on_eval(rec["dev"])
        bar.set_postfix(loss=f"{rec['loss']:.3f}", dev=f"{rec['dev_mean']:.4f}")
        stopped = settings.patience > 0 and progress.bad >= settings.patience
        if last is not None:
            _checkpoint(
                last, mechanism, opt, amp, progress, settings, epoch + 1, stopped, seed, callbacks, weighting
            )
        if stopped:
            break
    bar.close()
    if progress.best == -math.inf:
        logger.warning(
            "%s: the dev score was undefined (NaN) in every epoch; the last epoch's state is kept", desc
        )
    _warn_flat(desc, tasks, progress.history)
    return progress.result()


def _weighting(
    settings: TrainSettings, tasks: Mapping[str, Task], stream, device, given: Weighting | None = None
) -> Weighting | None:
    """``train.weighting`` over the tasks, or the object ``given`` (None for 'equal': the trainer's own
    Σ_t w_t L_t, unchanged), its learned parameters on ``device``. One that compares the tasks' gradients
    needs joint steps."""
    if given is None and settings.weighting == "equal":
        return None
    if given is not None:
        if settings.weighting not in ("equal", getattr(given, "name", None)):
            raise ConfigError(
                f"'train.weighting' is {settings.weighting!r} and a weighting object "
                f"({type(given).__name__}) is given too: set one of them"
            )
        missing = [t for t in tasks if t not in getattr(given, "tasks", ())]
        if missing or not callable(getattr(given, "combine", None)):
            raise ContractError(
                f"weighting {type(given).__name__}: must be a training/weighting.py Weighting over the "
                f"tasks {list(tasks)} (combine, and backward when it sets gradients); it lacks {missing}"
            )
    name = settings.weighting if given is None else given.name
    compares = getattr(given, "gradients", False) if given is not None else settings.gradient_weighting()
    if compares and not settings.joint:
        raise ConfigError(
            f"'train.weighting': {name} compares the tasks' gradients of one step: it needs "
            f"joint steps (train.joint true); a sampled step holds one task's (uw and dwa weight those)"
        )
    if given is not None:
        return given.to(device)
    check_problems(settings.weighting_problems())
    weights = stream.weights or None
    return make_weighting(settings.weighting, list(tasks), weights, settings.gradnorm_alpha).to(device)


def _groups(params: list, weighting: Weighting | None):
    """The optimizer's parameters: the model's, and a weighting's learned ones in a group of their own
    without weight decay (a decayed log-variance or task weight would be pulled to 0, not learned)."""
    if weighting is None or not weighting.parameters():
        return params
    return [{"params": params}, {"params": weighting.parameters(), "weight_decay": 0.0}]


def _check_finite(loss: float, desc: str, epoch: int, settings: TrainSettings) -> None:
    """A NaN or infinite mean training loss ends training before the epoch is kept: its weights are no
    number, and going on would select among them as if they were (a run resumes from the last epoch kept).
    The fp16 scaler's skipped steps do not end it: their gradients overflowed, their losses are finite."""
    if not math.isfinite(loss):
        raise TrainingError(
            f"{label(desc)}: epoch {epoch + 1}: the mean training loss is {loss}: training diverged; lower "
            f"train.lr (now {settings.lr:g}) or clip gradients (train.clip, now {settings.clip})"
        )


def _warn_flat(desc: str, tasks: Mapping[str, Task], history: list[dict]) -> None:
    """A task whose dev score never changed over two or more epochs did not learn (the majority class,
    say): one line naming it, and what selection then did."""
    if len(history) < 2:
        return
    for t, task in tasks.items():
        scores = {h["dev"][t][task.key] for h in history}
        if len(scores) == 1 and not math.isnan(next(iter(scores))):
            logger.warning(
                "%s: task '%s': dev %s was %.4f at every one of %d epochs: it did not change (a task stuck "
                "on the majority class looks so: check the learning rate, the optimizer, the labels); the "
                "epoch kept is chosen by the other tasks' scores, ties to the earliest",
                desc, t, task.key, next(iter(scores)), len(history),
            )  # fmt: skip


def _open_directory(
    directory: Path, mechanism, tasks, settings: TrainSettings, seed: int, callbacks: list, joint_data,
    weighting: Weighting | None = None,
) -> tuple[Path, Path]:  # fmt: skip
    """The training's checkpoint and best-state files in ``directory``, its fingerprint checked (a
    directory holding another training is refused: training/fingerprint.py)."""
    directory.mkdir(parents=True, exist_ok=True)
    last, best_file = paths.last_state(directory), paths.best_state(directory)
    joint = {"joint_rows": joint_data.num_examples("train")} if joint_data is not None else {}
    if weighting is not None and settings.weighting == "equal":  # an object given, not named in settings
        joint["weighting"] = weighting.name
    mine = fingerprint.of_training(settings, tasks, mechanism, seed, callbacks, **joint)
    fingerprint.check(
        paths.fingerprint(directory), mine, "training run", last, fingerprint.defaults(settings=settings)
    )
    return last, best_file


def _stage(mechanism, tasks: Mapping[str, Task], settings: TrainSettings, device, joint_data) -> torch.device:
    """The mechanism and every task's data (and the joint data) moved to the resolved device, once."""
    device = resolve_device(device, mechanism)
    mechanism.to(device)
    datas = {t: task.data for t, task in tasks.items()}
    if joint_data is not None:
        datas["joint data"] = joint_data
    _check_bucket(settings.bucket, datas)
    for data in datas.values():
        stage(data, device)
    return device


def _report_epoch(
    rec: dict, improved: bool, tasks, desc: str, epochs: int, seconds: float, log, warned: set[str]
) -> None:
    """An epoch's record logged (the tasks whose dev score was undefined named, warned once each) and
    its line printed."""
    missing = undefined(rec["dev"], tasks)
    if missing:
        rec["undefined"] = missing
        _warn_undefined(desc, rec["epoch"], missing, tasks, warned)
    if log:
        log({"phase": desc, **rec})
    logger.info(
        "%s: epoch %d/%d  loss %.4f  dev %.4f%s  (%.1f s)",
        label(desc), rec["epoch"] + 1, epochs, rec["loss"], rec["dev_mean"], "  best" if improved else "",
        seconds,
    )  # fmt: skip


def _resume(
    last: Path, best_file: Path, mechanism, opt, amp: _Precision, device, seed: int, callbacks: list,
    settings: TrainSettings, weighting: Weighting | None = None,
) -> tuple[_Progress, bool]:  # fmt: skip
    """The model, optimizer, fp16 scaler, callbacks and progress from the checkpoint ``last`` (and the
    best state from ``best_file``), and whether that training is finished: stopped early, or at its cap
    (a cap raised since then, a matched budget, continues). A checkpoint of another random stream is
    refused."""
    model_state, optim_state, ck = load_training_state(last, device)
    load_state(mechanism, model_state, last)
    try:
        opt.load_state_dict(optim_state)
    except (RuntimeError, ValueError, KeyError) as e:
        raise RunError(
            f"{last}: its optimizer state does not fit ({_first(e)}); run again with --repair"
        ) from None
    progress = _Progress(ck["epoch"], ck["best"], ck["best_epoch"], ck["bad"], ck["history"])
    progress.best_state = load_tensors(best_file, device)[0]
    if ck.get("seed") != seed:
        how = "no recorded stream (an older sparseshare)" if "seed" not in ck else f"stream {ck['seed']}"
        raise RunError(
            f"{last}: was trained with {how}, not this run's {seed}: continuing it would mix two "
            f"random streams; choose another --out"
        )
    if progress.epochs > settings.epochs:
        raise RunError(
            f"{last}: holds {progress.epochs} epochs of training, more than this call's cap of "
            f"{settings.epochs}; to start afresh use another directory, to go on raise the cap"
        )
    amp.load_state_dict(ck)
    if weighting is not None:
        weighting.load_state_dict(ck.get("weighting", {}))
    stateful = [cb for cb in callbacks if hasattr(cb, "load_state_dict")]
    for cb, state in zip(stateful, ck.get("callbacks", [])):
        cb.load_state_dict(state)
    capped = progress.epochs >= settings.epochs
    stopped = settings.patience > 0 and progress.bad >= settings.patience
    return progress, bool(ck.get("finished")) and (capped or stopped)


def steps_per_epoch(tasks: Mapping[str, Task], settings: TrainSettings, joint_data=None) -> int:
    """The optimizer steps of one training epoch, as the trainer counts them: the joint data's batches,
    or the most batches of any task (``train.joint`` over tasks with data of their own), or every task's
    batches together (a task sampled per step). What a step-scheduled callback (PBFS's pruner) spans."""
    return _EpochStream(tasks, settings, joint_data).steps


class _EpochStream:
    """An epoch's training stream: (task, batch) pairs, a task drawn by the sampler per step (the task
    None: a joint step over every task, ``train.joint``), as many steps as the epoch has."""

    def __init__(self, tasks: Mapping[str, Task], settings: TrainSettings, joint_data=None):
        self.tasks, self.settings, self.joint_data = tasks, settings, joint_data
        self.sizes = {t: task.data.num_examples("train") for t, task in tasks.items()}
        per_task = {t: _steps(task.data, settings, t) for t, task in tasks.items()}
        if settings.joint and joint_data is not None:
            self.steps = _steps(joint_data, settings, "the joint data")
        elif settings.joint:
            self.steps = max(per_task.values())
        else:
            self.steps = sum(per_task.values())
        self.sampler = get_sampler(settings.sampler)
        self.weights = _weights(settings, tasks) if settings.joint else {}

    def __call__(self, gen: torch.Generator) -> Iterator[tuple[str | None, Any]]:
        s, bs = self.settings, self.settings.batch_size
        if s.joint and self.joint_data is not None:
            extra = {"bucket": s.bucket} if s.bucket else {}
            batches = self.joint_data.batches("train", bs, True, gen, **extra)
            return ((None, b) for b in batches if not (s.drop_last and _short(b, bs)))
        if s.joint:
            return _all_tasks(self.tasks, self.steps, bs, gen, s.bucket, s.drop_last)
        return _sampled(self.tasks, self.sizes, self.steps, self.sampler, bs, gen, s.bucket, s.drop_last)


def _steps(data, settings: TrainSettings, name: str) -> int:
    """Training batches of ``data`` per pass: its own count, or with ``train.drop_last`` its full
    batches, ⌊examples / batch_size⌋ (fewer examples than one batch is refused: it would never train)."""
    bs = settings.batch_size
    if not settings.drop_last:
        return num_batches(data, "train", bs)
    n = data.num_examples("train")
    if n < bs:
        raise ConfigError(
            f"'train.drop_last': '{name}' has {n} training example(s), fewer than one batch "
            f"(train.batch_size {bs}): it would never train; lower train.batch_size or set drop_last false"
        )
    return n // bs


def _train_epoch(
    mechanism, opt, amp: _Precision, step_loss, params, stream: _EpochStream, settings: TrainSettings,
    epoch: int, seed: int, device, callbacks: list, weighting: Weighting | None = None,
) -> float:  # fmt: skip
    """One pass over the epoch's stream (dropout and the shuffle seeded from (seed, epoch); the learning
    rate lr / (1 + lr_decay * epoch)); the mean training loss.

    A step: the forward and loss (``step_loss``, under ``amp``'s autocast), backward (of the scaled
    loss, fp16), the gradients unscaled and clipped, ``mechanism.step`` of the optimizer (through the
    fp16 scaler), the scale updated. Nothing in it waits for the device: the losses sum on the device
    and are read once, at the epoch's end.

    Under a loss weighting (``weighting``; None: 'equal', the step above) the step takes each task's
    loss (``step_loss`` is :func:`_step_losses`): a combining weighting's loss is backpropagated as
    above, a gradient one sets the gradients itself (:func:`_weighted_epoch`); the epoch's mean loss per
    task goes to its ``end_epoch`` (DWA's ratios)."""
    if weighting is not None:
        return _weighted_epoch(
            mechanism, opt, amp, step_loss, params, stream, settings, epoch, seed, device, callbacks,
            weighting,
        )  # fmt: skip
    gen = _begin_epoch(mechanism, opt, settings, epoch, seed)
    total = torch.zeros((), dtype=torch.float64, device=device)
    n = 0
    stepper = amp.stepper(opt)
    for i, (task, batch) in enumerate(stream(gen)):
        opt.zero_grad(set_to_none=True)
        batch = move_batch(batch, device)
        with _applied(mechanism, task):
            with amp.autocast():
                loss = step_loss(mechanism, batch, task, stream.weights)
            amp.backward(loss)
            _clip_and_step(mechanism, opt, amp, stepper, params, settings, task)
        amp.update()
        total += loss.detach()
        n += 1
        _on_step(callbacks, epoch * stream.steps + i + 1)
    return float(total) / max(n, 1)


def _begin_epoch(mechanism, opt, settings: TrainSettings, epoch: int, seed: int) -> torch.Generator:
    """The epoch's random stream (dropout, and the returned generator for shuffles and sampling),
    its learning rate, train mode."""
    torch.manual_seed(seed * 100_003 + epoch)
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    for group in opt.param_groups:
        group["lr"] = settings.lr / (1.0 + settings.lr_decay * epoch)
    mechanism.train()
    return gen


def _clip_and_step(mechanism, opt, amp: _Precision, stepper, params, settings: TrainSettings, task) -> None:
    """The gradients unscaled and clipped (``train.clip``), then ``mechanism.step`` (exact masks)."""
    if settings.clip:
        amp.unscale(opt)
        torch.nn.utils.clip_grad_norm_(params, settings.clip)
    mechanism.step(stepper, task)


def _on_step(callbacks: list, step: int) -> None:
    for cb in callbacks:
        if hasattr(cb, "on_step"):
            cb.on_step(step)


def _weighted_epoch(
    mechanism, opt, amp: _Precision, step_losses, params, stream: _EpochStream, settings: TrainSettings,
    epoch: int, seed: int, device, callbacks: list, weighting: Weighting,
) -> float:  # fmt: skip
    """:func:`_train_epoch` under a loss weighting: the same stream (the same batches, dropout and
    shuffle as 'equal'), each step's per-task losses combined or their gradients aggregated; a gradient
    weighting's random order (PCGrad's) from a generator of its own, so the data order stays the same."""
    gen = _begin_epoch(mechanism, opt, settings, epoch, seed)
    own = torch.Generator().manual_seed(seed * 100_003 + epoch + 7_919)
    total = torch.zeros((), dtype=torch.float64, device=device)
    sums = {t: torch.zeros((), dtype=torch.float64, device=device) for t in weighting.tasks}
    counts = dict.fromkeys(weighting.tasks, 0)
    n = 0
    stepper = amp.stepper(opt)
    joint_tasks = list(stream.weights) or weighting.tasks
    for i, (task, batch) in enumerate(stream(gen)):
        opt.zero_grad(set_to_none=True)
        batch = move_batch(batch, device)
        with _applied(mechanism, task):
            with amp.autocast():
                losses = step_losses(mechanism, batch, task, joint_tasks)
            if weighting.gradients:
                weighting.backward(losses, params, own)
                loss = weighting.combine({t: v.detach() for t, v in losses.items()})
            else:
                loss = weighting.combine(losses)
                amp.backward(loss)
            _clip_and_step(mechanism, opt, amp, stepper, params, settings, task)
        amp.update()
        weighting.after_step()
        total += loss.detach()
        for t, v in losses.items():
            sums[t] += v.detach()
            counts[t] += 1
        n += 1
        _on_step(callbacks, epoch * stream.steps + i + 1)
    weighting.epoch_losses = {t: float(sums[t]) / counts[t] for t in sums if counts[t]}
    weighting.end_epoch(weighting.epoch_losses)
    return float(total) / max(n, 1)


def _evaluate(
    mechanism, tasks: Mapping[str, Task], settings: TrainSettings, epoch: int, loss: float,
    progress: _Progress, best_file: Path | None, device,
) -> tuple[dict, bool]:  # fmt: skip
    """The epoch's dev scores appended to the history; the best defined mean score wins (while no epoch
    has one, the latest epoch is kept), its state kept (and saved to ``best_file``). The epoch's record
    and whether it improved."""
    dev = {t: evaluate_task(mechanism, tasks[t], "dev", settings.eval_batch_size, device) for t in tasks}
    score = mean_primary(dev, tasks)
    rec = {"epoch": epoch, "loss": loss, "dev": dev, "dev_mean": score}
    progress.history.append(rec)
    improved = score > progress.best or (math.isnan(score) and progress.best == -math.inf)
    if improved:
        progress.best = progress.best if math.isnan(score) else score
        progress.best_epoch, progress.bad = epoch, 0
        progress.best_state = copy.deepcopy(mechanism.state_dict())
        if best_file is not None:
            save_tensors(progress.best_state, best_file)
    else:
        progress.bad += 1
    return rec, improved


def _checkpoint(
    last: Path, mechanism, opt, amp: _Precision, progress: _Progress, settings: TrainSettings, epochs: int,
    stopped: bool, seed: int, callbacks: list, weighting: Weighting | None = None,
) -> None:  # fmt: skip
    """The epoch's checkpoint (model, optimizer, fp16 scaler, progress, the callbacks' states), then a
    commit point: the best state was saved before it, so the pair on disk is always consistent."""
    trainer = {
        "epoch": epochs,
        "best": progress.best,
        "best_epoch": progress.best_epoch,
        "bad": progress.bad,
        "history": progress.history,
        "cap": settings.epochs,
        "finished": stopped or epochs == settings.epochs,
        "seed": seed,
        "callbacks": [cb.state_dict() for cb in callbacks if hasattr(cb, "state_dict")],
        **amp.state_dict(),
        **({"weighting": weighting.state_dict()} if weighting is not None else {}),
    }
    save_training_state(last, mechanism.state_dict(), opt.state_dict(), trainer)
    committed()
