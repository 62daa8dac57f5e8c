"""An experiment's units of work: the IMP search (warmup, then every task's levels) and each system.

A unit runs from the config alone (it reads the data itself) and leaves its files in the run directory:
a system's ``result.json`` marks it done, the search's levels and warmup weights are in ``search/``.
``single_subnet`` and ``sparse`` wait for the search (``SYSTEMS[name].needs_search``), nothing else waits.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from sparseshare import paths
from sparseshare.experiments.common import search
from sparseshare.experiments.config import ExperimentConfig
from sparseshare.experiments.context import Context, load_context
from sparseshare.experiments.run_dir import write_json_atomic
from sparseshare.experiments.schema import from_dict, to_dict
from sparseshare.experiments.sweep import reuse_search
from sparseshare.experiments.systems import SYSTEMS, runner

SEARCH = "search"  # the IMP search, a unit before the systems that use its masks


@dataclass(eq=False)
class Unit:
    run: Path
    raw: dict  # the run's config as a dict (pickled to the worker)
    name: str  # a system, or SEARCH
    after: Unit | None = None  # the search this unit waits for
    prepare: Callable[[], None] | None = None  # done in the parent, just before it starts


def run_system(ctx: Context, name: str) -> dict:
    """Train and evaluate one system; its result file marks it finished."""
    t0 = time.time()
    res = runner(name, ctx.kind)(ctx)
    res["seconds"] = round(time.time() - t0, 1)
    write_json_atomic(res, paths.system_result(ctx.run, name))
    return res


def experiment_units(cfg: ExperimentConfig, run: Path, share: Unit | None = None) -> list[Unit]:
    """The unfinished systems of ``run`` in config order, preceded by the search if one needs it.

    ``share``: an earlier run's search unit with the same search; this run's search then waits for it
    and starts from a copy of its folder (and only reads the levels back)."""
    raw = to_dict(cfg)
    todo = [Unit(run, raw, s) for s in cfg.systems if not paths.system_result(run, s).exists()]
    if not any(SYSTEMS[u.name].needs_search for u in todo):
        return todo
    unit = Unit(run, raw, SEARCH)
    if share is not None:
        unit.after = share
        unit.prepare = lambda: reuse_search(paths.search_dir(share.run), run)
    for u in todo:
        if SYSTEMS[u.name].needs_search:
            u.after = unit
    return [unit, *todo]


def run_unit(raw: dict, run: str, unit: str, threads: int) -> str:
    """Worker: rebuild the config, read the data, run one unit (writing its files), name it back."""
    torch.set_num_threads(threads)
    cfg = from_dict(ExperimentConfig, raw)
    start = time.time()
    ctx = load_context(cfg, Path(run))
    if unit == SEARCH:
        search(ctx)
    else:
        run_system(ctx, unit)
    ctx.log({"phase": "job", "unit": unit, "pid": os.getpid(), "start": start, "end": time.time()})
    return unit
