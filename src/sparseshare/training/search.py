"""Mask search: Iterative Magnitude Pruning with multi-task warmup (sparse-sharing paper, Algorithm 1).

Warmup ("Multi-Task Warmup"): train the dense network on all tasks for w epochs; its weights θ^(w)
are the rewind point. Per task, level z: load θ^(w), train k epochs under M_t^z (early stopping on
dev within the level), record the dev score, prune alpha of the remaining prunable weights of the
best-dev weights (Algorithm 1, step 5), rewind, repeat until the density is <= S (step 6).

``search_task`` is a function of (warmup weights, task data, settings) -> levels, so searches can be
farmed out per task. It is restartable: level z writes M^(z+1) first and then appends its record to
``<task>.jsonl`` atomically; a killed search re-runs only the unfinished level, with the same seed,
and so ends with masks identical to an uninterrupted search.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from sparseshare.masks.io import load_masks, save_masks
from sparseshare.masks.mask import Mask, density
from sparseshare.pruning.magnitude import prune
from sparseshare.pruning.schedules import imp_densities
from sparseshare.sharing.sparse import SparseSharing
from sparseshare.training.trainer import TaskSpec, TrainSettings, train


@dataclass
class SearchSettings:
    warmup_epochs: int = 20
    epochs_per_level: int = 3
    patience: int = 2
    alpha: float = 0.1
    min_density: float = 0.1
    strategy: str = "global"
    force_density: dict[str, float] = field(default_factory=dict)


@dataclass
class Level:
    level: int
    density: float
    dev: float
    epochs: int
    all: dict[str, float] = field(default_factory=dict)


def _read_levels(path: Path) -> list[Level]:
    if not path.exists():
        return []
    return [Level(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


def _write_levels(path: Path, levels: list[Level]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(lv.__dict__) + "\n" for lv in levels))
    tmp.replace(path)


def _mask_file(out_dir: Path, task: str, level: int) -> Path:
    return out_dir / task / f"level_{level:03d}.safetensors"


def search_task(
    build_model: Callable[[], nn.Module],
    warmup_state: dict,
    task: TaskSpec,
    prunable: list[str],
    train_settings: TrainSettings,
    settings: SearchSettings,
    *,
    seed: int,
    device,
    out_dir: Path,
    log: Callable[[dict], None] | None = None,
) -> tuple[list[Level], list[Mask]]:
    """IMP for one task; returns every level's record and mask (level 0 = dense)."""
    (out_dir / task.name).mkdir(parents=True, exist_ok=True)
    record = out_dir / f"{task.name}.jsonl"
    levels = _read_levels(record)
    lvl_settings = TrainSettings(
        **{**train_settings.__dict__, "epochs": settings.epochs_per_level, "patience": settings.patience}
    )
    masks: list[Mask] = [load_masks(_mask_file(out_dir, task.name, z))[task.name] for z in range(len(levels))]
    total = len(imp_densities(settings.alpha, settings.min_density))
    bar = tqdm(total=total, initial=len(levels), desc=f"IMP {task.name}", unit="level", disable=None)
    while True:
        z = len(levels)
        if z > 0 and density(masks[-1]) <= settings.min_density:
            break
        path = _mask_file(out_dir, task.name, z)
        if z == 0:
            dense = {n: torch.ones(warmup_state[n].shape, dtype=torch.bool) for n in prunable}
            save_masks({task.name: dense}, path)
        mask = load_masks(path)[task.name]
        model = build_model()
        model.load_state_dict(warmup_state)  # rewind to θ^(w)
        mech = SparseSharing(model, {t: mask for t in model.tasks})
        result = train(
            mech,
            {task.name: task},
            lvl_settings,
            seed=seed + 7919 * z,
            device=device,
            desc=f"{task.name} level {z}",
        )
        mech.load_state_dict(result.best_state)
        weights = {n: p.detach() for n, p in model.named_parameters() if n in mask}
        level = Level(
            z,
            density(mask),
            result.best_dev[task.name][task.metric],
            result.epochs_run,
            result.best_dev[task.name],
        )
        if density(mask) > settings.min_density:
            nxt = prune(
                weights,
                {n: m.to(weights[n].device) for n, m in mask.items()},
                settings.alpha,
                settings.strategy,
            )
            save_masks(
                {task.name: {n: m.cpu() for n, m in nxt.items()}}, _mask_file(out_dir, task.name, z + 1)
            )
        levels.append(level)
        masks.append(mask)
        _write_levels(record, levels)
        bar.update(1)
        bar.set_postfix(density=f"{level.density:.3f}", dev=f"{level.dev:.4f}")
        if log:
            log({"phase": "search", "task": task.name, **level.__dict__})
    bar.close()
    return levels, masks


def select_level(
    levels: list[Level], forced_density: float | None = None, higher_is_better: bool = True
) -> int:
    """Best dev score, ties -> lowest density (the paper's rule); or the level nearest a forced density."""
    if forced_density is not None:
        return min(
            range(len(levels)), key=lambda i: (abs(levels[i].density - forced_density), levels[i].density)
        )
    sign = 1 if higher_is_better else -1
    return max(range(len(levels)), key=lambda i: (sign * levels[i].dev, -levels[i].density))
