"""The sparse-sharing pipeline as public functions over any multi-task model (Sun et al. 2020, Algorithm 1).

    state = warmup(model, tasks, settings, epochs=5)               # multi-task warmup -> rewind point θ^(w)
    found = search_masks(model, tasks, state, search=SearchSettings(...))  # IMP per task, every level
    masks = select_subnets(found)                                  # best dev, ties -> sparsest
    mech = SparseSharing(model, masks); model.load_state_dict(state)
    train_jointly(mech, tasks, settings)                           # all subnets, task sampling
    evaluate(mech, tasks, "test")

Each function is a unit: (inputs) -> (outputs), in memory; given a ``directory`` it keeps its progress
there and a call repeated after a kill resumes (warmup epochs, finished IMP levels, training epochs);
a call with other inputs is refused (training/fingerprint.py). Each shows its progress (a bar on a
terminal, a line per epoch and per level off one; ``progress=False``: none; training/progress.py). The
CLI's experiments call exactly these functions.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch

from sparseshare import paths
from sparseshare.data.task import Task, as_tasks, stage
from sparseshare.errors import ConfigError
from sparseshare.masks.mask import Mask
from sparseshare.pruning.prunable import prunable_names
from sparseshare.sharing.hard import HardSharing, as_mechanism
from sparseshare.sharing.sparse import SparseSharing
from sparseshare.training import fingerprint
from sparseshare.training.checkpoint import load_tensors, save_tensors
from sparseshare.training.evaluation import evaluate_task
from sparseshare.training.progress import shown
from sparseshare.training.search import SearchResult, SearchSettings, search_task
from sparseshare.training.task_parameters import find_task_parameters
from sparseshare.training.trainer import (
    TrainResult,
    TrainSettings,
    check_heads,
    load_state,
    resolve_device,
    train,
)

logger = logging.getLogger("sparseshare")


def _state_copy(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def warmup(
    model: torch.nn.Module,
    tasks: Mapping[str, Task] | Sequence[Task],
    settings: TrainSettings | None = None,
    *,
    epochs: int | None = None,
    seed: int = 0,
    device=None,
    directory: str | Path | None = None,
    log: Callable[[dict], None] | None = None,
    progress: bool = True,
) -> dict[str, torch.Tensor]:
    """Multi-Task Warmup: train a copy of the dense ``model`` on all tasks for ``epochs`` (default
    ``settings.epochs``), no early stopping; return its state, the rewind point θ^(w) (CPU tensors).

    ``epochs=0`` returns the model's own state (θ^(0)). ``model`` itself is not changed. With a
    ``directory``, the finished state is kept in ``warmup.safetensors`` and read back on the next call
    that asks for the same warmup (training/fingerprint.py: other settings, tasks or parameters are
    refused in one line, never answered with the first call's state).
    """
    with shown(progress):
        return _warmup(model, as_tasks(tasks), settings or TrainSettings(), epochs, seed, device, directory,
                       log, progress)  # fmt: skip


def _warmup(
    model, tasks, settings, epochs, seed, device, directory, log, progress
) -> dict[str, torch.Tensor]:
    """:func:`warmup`'s work, its progress shown (or not) around it."""
    epochs = settings.epochs if epochs is None else epochs
    find_task_parameters(model, tasks)
    s = settings.replace(epochs=epochs, patience=0, joint=False, loss_weights=None, weighting="equal")
    done = Path(directory) / paths.WARMUP_STATE if directory is not None else None
    if done is not None:
        mine = fingerprint.of_training(s, tasks, model, seed, epochs=epochs)
        fingerprint.check(
            paths.fingerprint(directory, "warmup"), mine, "warmup", done, fingerprint.defaults(settings=s)
        )
        if done.exists():
            return load_tensors(done)[0]
    work = copy.deepcopy(model)
    if epochs > 0:
        ckpt = Path(directory) / "_warmup" if directory is not None else None
        train(HardSharing(work), tasks, s, seed=seed, device=resolve_device(device, model), directory=ckpt,
              desc="warmup", log=log, progress=progress)  # fmt: skip
    state = _state_copy(work)
    if done is not None:
        done.parent.mkdir(parents=True, exist_ok=True)
        save_tensors(state, done)
    return state


def search_masks(
    model: torch.nn.Module,
    tasks: Mapping[str, Task] | Sequence[Task],
    rewind_state: Mapping[str, torch.Tensor] | None = None,
    *,
    search: SearchSettings | None = None,
    settings: TrainSettings | None = None,
    seed: int = 0,
    device=None,
    directory: str | Path | None = None,
    log: Callable[[dict], None] | None = None,
    progress: bool = True,
) -> dict[str, SearchResult]:
    """Iterative Magnitude Pruning per task (Algorithm 1): every level's mask and dev score.

    Each level starts from ``rewind_state`` (the warmup's θ^(w); default: the model's current weights),
    trains ``search.epochs_per_level`` epochs with ``settings`` under the level's mask, and prunes
    ``search.alpha`` of what remains, down to ``search.min_density``. Prunable parameters are chosen by
    ``search.include`` / ``search.exclude`` name globs. In memory by default; resumable in ``directory``.
    """
    search = search or SearchSettings()
    settings = settings or TrainSettings()
    tasks = as_tasks(tasks)
    find_task_parameters(model, tasks)
    names = prunable_names(model, search.include, search.exclude)
    if not names:
        raise ConfigError(
            f"'search.include' {search.include} (minus 'search.exclude') matches no weight matrix"
        )
    state = rewind_state if rewind_state is not None else _state_copy(model)
    out = {}
    with shown(progress):
        for t, task in tasks.items():
            out[t] = search_task(
                model,
                state,
                task,
                names,
                settings,
                search,
                seed=seed,
                device=resolve_device(device, model),
                directory=directory,
                log=log,
                progress=progress,
            )
    return out


def select_subnets(
    results: Mapping[str, SearchResult], force_density: Mapping[str, float] | None = None
) -> dict[str, Mask]:
    """Each task's subnet: the level with the best dev score, ties -> the sparsest (the paper's rule), or
    the level nearest ``force_density[task]``."""
    force_density = force_density or {}
    unknown = sorted(set(force_density) - set(results))
    if unknown:
        raise ConfigError(f"'search.force_density': unknown task(s) {unknown}; tasks are {sorted(results)}")
    picked = {t: r.select(force_density.get(t)) for t, r in results.items()}
    for t, r in results.items():
        devs = {lv.dev for lv in r.levels}
        if (
            len(r.levels) > 1
            and len(devs) == 1
            and t not in force_density
            and not math.isnan(r.levels[0].dev)
        ):
            lv = r.levels[picked[t]]
            logger.warning(
                "IMP %s: the dev score was %.4f at every one of its %d levels: it did not change (a task "
                "stuck on the majority class looks so: check the learning rate, the optimizer, the labels); "
                "the tie rule picked the sparsest level, %d (density %.3f)",
                t, lv.dev, len(r.levels), lv.level, lv.density,
            )  # fmt: skip
    return {t: r.masks[picked[t]] for t, r in results.items()}


def train_jointly(
    mechanism,
    tasks: Mapping[str, Task] | Sequence[Task],
    settings: TrainSettings | None = None,
    *,
    seed: int = 0,
    device=None,
    directory: str | Path | None = None,
    log: Callable[[dict], None] | None = None,
    callbacks: list | None = None,
    joint_data=None,
    restore_best: bool = True,
    desc: str = "train",
    progress: bool = True,
    weighting=None,
) -> TrainResult:
    """Train every task together: a task sampled per step ('proportional' to its size by default,
    'uniform', 'round_robin'), or all tasks every step (``settings.joint``), with early stopping on the
    mean dev score. A model (not a mechanism) is trained with hard sharing. The best-dev state is put back
    into ``mechanism`` (``restore_best``). Resumable in ``directory``. ``weighting``: a loss-weighting
    object (``ss.UncertaintyWeighting(tasks)``, ``ss.PCGrad(tasks)``, one of the user's) in place of
    ``settings.weighting``'s name."""
    mechanism = as_mechanism(mechanism)
    tasks = as_tasks(tasks)
    if isinstance(mechanism, (HardSharing, SparseSharing)):  # a model's own: found if it does not say
        find_task_parameters(mechanism.model, tasks)
    with shown(progress):
        res = train(
            mechanism,
            tasks,
            settings or TrainSettings(),
            seed=seed,
            device=resolve_device(device, mechanism),
            directory=Path(directory) if directory is not None else None,
            desc=desc,
            log=log,
            joint_data=joint_data,
            callbacks=callbacks,
            progress=progress,
            weighting=weighting,
        )
    if restore_best and res.best_state is not None:
        source = paths.best_state(directory) if directory is not None else "the best state"
        load_state(mechanism, res.best_state, source)
    return res


def evaluate(
    mechanism,
    tasks: Mapping[str, Task] | Sequence[Task] | Task,
    split: str = "dev",
    *,
    batch_size: int = 100,
    device=None,
) -> dict[str, dict[str, float]]:
    """Every task's metric values on ``split``: ``{task: {metric: value}}``."""
    mechanism = as_mechanism(mechanism)
    tasks = as_tasks(tasks)
    check_heads(mechanism, tasks)
    dev = resolve_device(device, mechanism)
    mechanism.to(dev)
    for task in tasks.values():
        stage(task.data, dev)
    return {t: evaluate_task(mechanism, task, split, batch_size, dev) for t, task in tasks.items()}
