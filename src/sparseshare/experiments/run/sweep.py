"""Sweeps: one config, a grid of its variants (PBFS Figure 4, Tables 7-9, Figures 5-8).

A config's ``sweep`` maps each axis to its points, each point to the config keys it sets::

    sweep:
      units: {"32": {tabular.pbfs_expert: [32, 32]}, "64": {tabular.pbfs_expert: [64, 64]}}
      sparsity: {"0.1": {pbfs.initial_sparsity: 0.0, pbfs.target_sparsity: 0.1}, ...}

The product of the axes is run, each point as an ordinary run in ``points/<axis=label,...>/`` (resumable
and never overwritten, like any run); the sweep's results.json collects every point's systems and the
paper's numbers for it (``paper.points``, else the config's ``paper.values``), and its report plots each
task's metric along the last axis. An axis named ``seed`` is a repeat: the report adds the mean and
standard deviation over it, e.g. ``sparseshare run configs/pbfs_census.yaml --set 'sweep={seed: {"1":
{seed: 1}, "2": {seed: 2}, "3": {seed: 3}}}'``.

Points that differ only in ``search.force_density`` (the sparsity sweep, the paper's Figure 4) have the
same IMP search: a point starts from a copy of the first finished such point's ``search/`` folder
(warmup weights, every level's mask and dev score), which it reads back instead of searching again.
The search is deterministic, so the result equals an independent run of the point.
"""

from __future__ import annotations

import copy
import itertools
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from sparseshare import atomic, paths
from sparseshare.errors import ConfigError
from sparseshare.experiments.config.experiment import ExperimentConfig, presets_first
from sparseshare.experiments.config.schema import set_key, to_dict
from sparseshare.experiments.systems.checks import experiment
from sparseshare.run_dir import MetricsLog, read_json


@dataclass
class Point:
    name: str  # "axis=label,axis=label"
    labels: dict[str, str]
    overrides: dict[str, object]
    cfg: ExperimentConfig


def point_name(labels: dict[str, str]) -> str:
    return ",".join(f"{a}={lab}" for a, lab in labels.items())


def sweep_points(cfg: ExperimentConfig) -> list[Point]:
    """Every point of the grid as a validated config; a bad key or value fails naming it."""
    base = to_dict(cfg)
    base["sweep"] = {}
    base["paper"] = {**base["paper"], "values": {}, "points": {}}  # the point's own numbers go in below
    points = []
    for combo in itertools.product(*[[(a, lab) for lab in pts] for a, pts in cfg.sweep.items()]):
        labels = {a: str(lab) for a, lab in combo}
        name = point_name(labels)
        raw = copy.deepcopy(base)
        overrides, where = {}, {}
        for axis, label in combo:
            for key, value in cfg.sweep[axis][label].items():
                where[key] = f"sweep.{axis}.{label}.{key}"
                if key.split(".")[0] in ("sweep", "paper", "name"):
                    raise ConfigError(f"'{where[key]}': a sweep cannot set '{key.split('.')[0]}'")
                overrides[key] = value
        for key, value in presets_first(raw, list(overrides.items())):
            try:
                set_key(raw, key, value)
            except ConfigError as e:
                raise ConfigError(f"'{where[key]}': {e}") from None
        raw["name"] = f"{cfg.name}[{name}]"
        # the paper's numbers for this point, else the config's own (a sweep over seeds, say)
        raw["paper"]["values"] = _paper_point(cfg.paper.points, labels) or cfg.paper.values
        try:
            sub = experiment(raw)
        except ConfigError as e:
            raise ConfigError(f"{_culprit(cfg, base, combo)}: {e}") from None
        points.append(Point(name, labels, overrides, sub))
    unknown = sorted(k for k in cfg.paper.points if not any(_names_part_of(k, p.labels) for p in points))
    if unknown:
        raise ConfigError(
            f"'paper.points': unknown point(s) {unknown}; points are named like '{points[0].name}'"
        )
    return points


def _names_part_of(key: str, labels: dict[str, str]) -> bool:
    """``key`` ("axis=label,...") names some of ``labels``' axes at their labels."""
    pairs = [p.split("=", 1) for p in key.split(",")]
    return all(len(p) == 2 and labels.get(p[0]) == p[1] for p in pairs)


def _paper_point(points: dict, labels: dict[str, str]) -> dict:
    """The paper's numbers for a point: its exact entry, else the entry naming the most of its axes (a
    key may leave axes out, e.g. 'subject=por' for every seed of that subject)."""
    fits = [k for k in points if _names_part_of(k, labels)]
    return points[max(fits, key=lambda k: k.count(","))] if fits else {}


def _culprit(cfg: ExperimentConfig, base: dict, combo) -> str:
    """Name the first sweep key that is invalid on its own, else the point (an invalid combination)."""
    for axis, label in combo:
        for key, value in cfg.sweep[axis][label].items():
            alone = copy.deepcopy(base)
            set_key(alone, key, value)
            try:
                experiment(alone)
            except ConfigError:
                return f"'sweep.{axis}.{label}.{key}'"
    return f"'sweep' point {point_name({a: str(lab) for a, lab in combo})}"


def point_dir(run: Path, point: Point) -> Path:
    return paths.point_dir(run, point.name)


def search_key(cfg: ExperimentConfig) -> str:
    """What a run's IMP search depends on: its config less the name, the paper's numbers, the systems
    and the forced densities (which only choose among the levels the search found)."""
    raw = to_dict(cfg)
    for key in ("name", "paper", "sweep", "systems"):
        raw.pop(key)
    raw["search"].pop("force_density")
    return json.dumps(raw, sort_keys=True)


def reuse_search(src: Path, point: Path) -> None:
    """Start a point without a search folder from a copy of a finished point's (atomic: copy, rename)."""
    dst = paths.search_dir(point)
    if dst.exists():
        return  # the point's own (resumed) search
    point.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(dst, folder=True) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
    MetricsLog(point)({"phase": "search_reused", "from": str(src)})


def run_sweep(cfg: ExperimentConfig, run: Path, run_one) -> dict:
    """Run every point (``run_one(sub_cfg, dir)``) and collect a compact summary of each."""
    summary = []
    searched: dict[str, Path] = {}  # search key -> a finished point's search folder
    for p in sweep_points(cfg):
        d = point_dir(run, p)
        done = paths.results_json(d)
        search = search_key(p.cfg)
        if not done.exists() and search in searched:
            reuse_search(searched[search], d)
        res = read_json(done, "results file") if done.exists() else run_one(p.cfg, d)
        if paths.search_dir(d).exists():
            searched.setdefault(search, paths.search_dir(d))
        entry = {
            "point": p.name,
            "labels": p.labels,
            "overrides": p.overrides,
            "systems": {
                s: {
                    "params": r["params"],
                    "tasks": r["tasks"],
                    **({"training": r["training"]} if "training" in r else {}),
                }
                for s, r in res["systems"].items()
            },
        }
        for key in ("masks", "overlap", "preset"):
            if key in res:
                entry[key] = res[key]
        for s, r in res["systems"].items():  # PBFS: the sparsity each task was tested at, and its best
            if "pbfs" in r:
                entry["systems"][s].update(pbfs_sparsities(r["pbfs"]))
        if p.cfg.paper.values:
            entry["paper"] = p.cfg.paper.values
        summary.append(entry)
    return {"axes": {a: list(pts) for a, pts in cfg.sweep.items()}, "points": summary}


def pbfs_sparsities(pbfs: dict) -> dict:
    """``sparsity``: each task's sparsity on the subnet it was tested on; ``best_sparsity``: where its
    dev score was best. A result from before the two were recorded has the sparsity the task ended
    training with, which may differ from both (the reason they are recorded now)."""
    if "tested" not in pbfs:
        return {
            "sparsity": pbfs["sparsity"],
            "best_sparsity": {t: b["sparsity"] for t, b in pbfs["best"].items()},
        }
    return {
        "sparsity": {t: v["sparsity"] for t, v in pbfs["tested"].items()},
        "best_sparsity": {t: b["sparsity"] for t, b in pbfs["best"].items()},
    }
