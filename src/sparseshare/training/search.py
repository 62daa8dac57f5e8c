"""Mask search: Iterative Magnitude Pruning with multi-task warmup (sparse-sharing paper, Algorithm 1).

Per task, level z: load the rewind point θ^(w) (the multi-task warmup's weights), train under M_t^z
(early stopping on dev within the level), record the dev score, prune alpha of the remaining prunable
weights of the level's best-dev weights (Algorithm 1, step 5), repeat until the density is <= S (step 6).

``search_task`` is a function of (model, rewind state, task, settings) -> every level's mask and dev
score, kept in memory. Given a ``directory`` it is restartable: level z writes M^(z+1) first and then
appends its record to ``<task>.jsonl`` atomically; a killed search re-runs only the unfinished level,
with the same seed, and so ends with masks identical to an uninterrupted search.

``search.method`` names the mask finder: ``imp`` (the above), or ``oneshot`` / ``snip`` / ``random``
(pruning/finders.py), which score every prunable weight once at θ^(w) (|w|; |g ⊙ w|, Lee et al. 2019;
a seeded random score) and rank those fixed scores down the same density ladder: level z keeps the top
``(1 - alpha)^z`` of the scores (straight to that density, not through trained levels), and each level
is still trained from θ^(w) and scored on dev, so the selection on dev and the reports work unchanged.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from sparseshare import atomic, nesting, paths
from sparseshare.data.task import Task, move_batch
from sparseshare.errors import ConfigError, RunError
from sparseshare.masks.io import load_masks, save_masks
from sparseshare.masks.mask import Mask, density
from sparseshare.pruning.finders import FINDERS, magnitude_scores, random_scores, snip_scores
from sparseshare.pruning.magnitude import prune
from sparseshare.pruning.schedules import imp_densities
from sparseshare.pruning.selection import beats
from sparseshare.run_dir import read_bytes
from sparseshare.sharing.sparse import SparseSharing
from sparseshare.training import fingerprint
from sparseshare.training.checkpoint import committed
from sparseshare.training.progress import bar_disabled, label
from sparseshare.training.settings import SearchSettings, TrainSettings
from sparseshare.training.streams import level_seed, stream_seed
from sparseshare.training.trainer import load_state, train

logger = logging.getLogger("sparseshare")
# the search settings that do not change a task's levels: which level is selected, the warmup (its state
# is the rewind point given), the preset's name (its values are the settings themselves)
NOT_SEARCH = ("force_density", "warmup_epochs", "preset")
SNIP_BATCHES = 1  # training batches whose summed loss gradient SNIP scores by (Lee et al. 2019: one)


@dataclass
class Level:
    level: int
    density: float
    dev: float
    epochs: int
    all: dict[str, float] = field(default_factory=dict)
    seed: int | None = None  # the level's random stream (None: a record from before streams were named)


@dataclass
class SearchResult:
    """Every IMP level of one task: its record and its mask (level 0 is the dense network)."""

    task: str
    levels: list[Level]
    masks: list[Mask]
    higher_is_better: bool = True

    def __repr__(self) -> str:
        """A summary: the levels' densities and the selected level (not the masks)."""
        if not self.levels:
            return f"SearchResult(task={self.task!r}, no level)"
        sel = self.levels[self.select()]
        return (
            f"SearchResult(task={self.task!r}, {len(self.levels)} levels, density "
            f"{self.levels[0].density:.3f} -> {self.levels[-1].density:.3f}, selected level {sel.level}: "
            f"density {sel.density:.3f}, dev {sel.dev:.4f})"
        )

    @property
    def epochs(self) -> int:
        """Epochs spent over all levels."""
        return sum(lv.epochs for lv in self.levels)

    def select(self, force_density: float | None = None) -> int:
        """The selected level: best dev, ties -> sparsest (the paper's rule), or the level nearest
        ``force_density``."""
        return select_level(self.levels, force_density, self.higher_is_better)


def _read_levels(path: Path) -> list[Level]:
    """The finished levels' records; a damaged line is a one-line RunError naming the file and line."""
    if not path.exists():
        return []
    levels = []
    text = read_bytes(path, "level log").decode("utf-8", "replace")
    for i, line in enumerate(text.splitlines(), start=1):
        try:
            levels.append(Level(**nesting.loads(line)))
        except (ValueError, TypeError) as e:
            raise RunError(
                f"{path}:{i}: damaged level record ({type(e).__name__}); run again with --repair"
            ) from None
        if levels[-1].level != i - 1:
            raise RunError(f"{path}:{i}: damaged: level {levels[-1].level} where level {i - 1} belongs")
    return levels


def _check_streams(path: Path, levels: list[Level], seed: int, task: str) -> None:
    """Finished levels continue a search only if they drew from the streams this one draws from."""
    for lv in levels:
        if lv.seed != level_seed(seed, task, lv.level):
            how = "no recorded stream (an older sparseshare)" if lv.seed is None else f"stream {lv.seed}"
            raise RunError(
                f"{path}: level {lv.level} was trained with {how}, not this search's "
                f"{level_seed(seed, task, lv.level)}: continuing would mix two streams; choose another --out"
            )


def _write_levels(path: Path, levels: list[Level]) -> None:
    atomic.write_text(path, "".join(json.dumps(lv.__dict__) + "\n" for lv in levels))


def mask_file(directory: Path, task: str, level: int) -> Path:
    return Path(directory) / task / f"level_{level:03d}.safetensors"


def search_task(
    model: torch.nn.Module,
    rewind_state: Mapping[str, torch.Tensor],
    task: Task,
    prunable: list[str],
    train_settings: TrainSettings,
    settings: SearchSettings,
    *,
    seed: int,
    device,
    directory: Path | None = None,
    log: Callable[[dict], None] | None = None,
    progress: bool = True,
) -> SearchResult:
    """IMP for one task (Algorithm 1): every level's record and mask; in memory, or resumable in
    ``directory``. ``model`` is copied for every level and rewound to ``rewind_state``. Level z trains on
    the stream ``level_seed(seed, task, z)``: named by the task, so tasks over the same sentences do not
    share batch orders or dropout masks, and a task's search is the same whatever tasks are beside it."""
    name = task.name
    if settings.method not in FINDERS:
        raise ConfigError(f"'search.method': unknown '{settings.method}'; valid: {list(FINDERS)}")
    lvl_settings = level_settings(train_settings, settings)
    scores: dict[str, torch.Tensor] | None = None  # a fixed-score finder's scores, made when first needed
    record = None
    levels: list[Level] = []
    masks: list[Mask] = []
    if directory is not None:
        directory = Path(directory)
        record, levels, masks = _resume_levels(directory, model, task, prunable, lvl_settings, settings, seed)
    total = len(imp_densities(settings.alpha, settings.min_density))
    shows = bar_disabled(progress)
    finder = "IMP" if settings.method == "imp" else settings.method.upper()  # the line names its finder
    bar = tqdm(total=total, initial=len(levels), desc=label(f"{finder} {name}"), unit="level", disable=shows)
    pending: Mask | None = None  # M^(z) for the next level when kept in memory
    while True:
        z = len(levels)
        if z > 0 and density(masks[-1]) <= settings.min_density:
            break
        if z == 0:
            mask = {n: torch.ones(rewind_state[n].shape, dtype=torch.bool) for n in prunable}
            if directory is not None:
                save_masks({name: mask}, mask_file(directory, name, 0))
        elif directory is not None:
            mask = load_masks(mask_file(directory, name, z))[name]
        else:
            mask = pending
        level, weights = _train_level(
            model, rewind_state, mask, task, lvl_settings, seed, z, device, progress
        )
        if level.density > settings.min_density:
            if settings.method != "imp" and scores is None:
                scores = finder_scores(
                    settings.method, model, rewind_state, task, prunable, lvl_settings, seed, device
                )
            nxt = prune(
                weights if scores is None else scores,
                {n: m.to(weights[n].device) for n, m in mask.items()},
                settings.alpha,
                settings.strategy,
            )
            pending = {n: m.cpu() for n, m in nxt.items()}
            if directory is not None:
                save_masks({name: pending}, mask_file(directory, name, z + 1))
        levels.append(level)
        masks.append(mask)
        if record is not None:
            _write_levels(record, levels)
            committed()
        bar.update(1)
        bar.set_postfix(density=f"{level.density:.3f}", dev=f"{level.dev:.4f}")
        logger.info(
            "%s: level %d/%d  density %.3f  dev %.4f  (%d epochs)",
            label(f"{finder} {name}"), z, total - 1, level.density, level.dev, level.epochs,
        )  # fmt: skip
        if log:
            log({"phase": "search", "task": name, **level.__dict__})
    bar.close()
    return SearchResult(name, levels, masks, task.higher_is_better)


def _resume_levels(
    directory: Path, model, task: Task, prunable: list[str], lvl_settings: TrainSettings,
    settings: SearchSettings, seed: int,
) -> tuple[Path, list[Level], list[Mask]]:  # fmt: skip
    """The task's record file and its finished levels and masks in ``directory``, after checking that
    they belong to this search (its fingerprint, and each level's random stream)."""
    name = task.name
    (directory / name).mkdir(parents=True, exist_ok=True)
    record = directory / f"{name}.jsonl"
    search = {k: v for k, v in dataclasses.asdict(settings).items() if k not in NOT_SEARCH}
    if search.get("method") == "imp":  # the default finder: the fingerprints of searches before it
        del search["method"]
    mine = fingerprint.of_training(lvl_settings, {name: task}, model, seed, search=search, prunable=prunable)
    known = fingerprint.defaults(settings=lvl_settings, search=settings)
    fingerprint.check(paths.fingerprint(directory, name), mine, "IMP search", record, known)
    levels = _read_levels(record)
    _check_streams(record, levels, seed, name)
    return record, levels, [load_masks(mask_file(directory, name, z))[name] for z in range(len(levels))]


def level_settings(train_settings: TrainSettings, settings: SearchSettings) -> TrainSettings:
    """How one IMP level trains: the systems' training settings with the search's epochs, patience
    and learning-rate decay, one task at a time."""
    out = train_settings.replace(
        epochs=settings.epochs_per_level,
        patience=settings.patience,
        joint=False,
        loss_weights=None,
        weighting="equal",
    )
    return out if settings.lr_decay is None else out.replace(lr_decay=settings.lr_decay)


def _train_level(
    model: torch.nn.Module, rewind_state, mask: Mask, task: Task, settings: TrainSettings, seed: int, z: int,
    device, progress: bool = True,
) -> tuple[Level, dict[str, torch.Tensor]]:  # fmt: skip
    """Level z of Algorithm 1: the model rewound to θ^(w) (line 7, with the warmup's weights), trained
    under ``mask`` on the task's own stream, not shared with the other tasks (line 4); the level's
    record and its best-dev weights, which line 5 prunes."""
    name = task.name
    level_model = copy.deepcopy(model)
    load_state(level_model, rewind_state, "the rewind state")  # rewind to θ^(w)
    mech = SparseSharing(level_model, {t: mask for t in level_model.tasks})
    stream = level_seed(seed, name, z)
    result = train(mech, {name: task}, settings, seed=stream, device=device, desc=f"{name} level {z}",
                   progress=progress)  # fmt: skip
    mech.load_state_dict(result.best_state)
    weights = {n: p.detach() for n, p in level_model.named_parameters() if n in mask}
    dev = result.best_dev[name]
    return Level(z, density(mask), dev[task.key], result.epochs_run, dev, stream), weights


def finder_scores(
    method: str, model: torch.nn.Module, rewind_state, task: Task, prunable: list[str],
    settings: TrainSettings, seed: int, device,
) -> dict[str, torch.Tensor]:  # fmt: skip
    """The fixed scores of a finder beside IMP (pruning/finders.py), of each prunable weight at θ^(w):
    ``oneshot`` |w|; ``snip`` |g ⊙ w| with g the task loss's gradient summed over ``SNIP_BATCHES``
    shuffled training batches of ``train.batch_size`` (stream ``("snip", task)``; the model in eval mode,
    so no dropout: the same scores on a resumed search); ``random`` a uniform score from the stream
    ``("random", task)``."""
    weights = {n: rewind_state[n] for n in prunable}
    if method == "oneshot":
        return magnitude_scores(weights)
    if method == "random":
        return random_scores({n: w.shape for n, w in weights.items()}, stream_seed(seed, "random", task.name))
    dense = copy.deepcopy(model)
    load_state(dense, rewind_state, "the rewind state")
    dense.to(device)
    dense.eval()
    mech = SparseSharing(dense, {t: {n: torch.ones(weights[n].shape, dtype=torch.bool) for n in prunable}
                                 for t in dense.tasks})  # fmt: skip
    mech.to(device)
    params = dict(dense.named_parameters())
    gen = torch.Generator().manual_seed(stream_seed(seed, "snip", task.name))
    batches = task.data.batches("train", settings.batch_size, shuffle=True, generator=gen)
    seen = 0
    for batch in batches:
        mech.loss(move_batch(batch, device), task.name).backward()
        seen += 1
        if seen == SNIP_BATCHES:
            break
    if seen == 0:
        raise ConfigError(f"search.method 'snip': task '{task.name}' has no training batches")
    grads = {n: torch.zeros_like(params[n]) if params[n].grad is None else params[n].grad for n in prunable}
    return snip_scores({n: params[n] for n in prunable}, grads)


def select_level(
    levels: list[Level], forced_density: float | None = None, higher_is_better: bool = True
) -> int:
    """Best dev score, ties -> lowest density (the paper's rule); or the level nearest a forced density.
    Levels whose dev score is undefined (NaN) are never selected, unless all are (then level 0, dense)."""
    if forced_density is not None:
        return min(
            range(len(levels)), key=lambda i: (abs(levels[i].density - forced_density), levels[i].density)
        )
    if all(math.isnan(lv.dev) for lv in levels):  # no evidence for any subnet: keep the dense network
        logger.warning("IMP: the dev score is undefined (NaN) at every level; the dense level 0 is selected")
        return 0
    best = 0
    for i, lv in enumerate(levels[1:], start=1):
        if beats(lv.dev, lv.density, levels[best].dev, levels[best].density, higher_is_better):
            best = i
    return best
