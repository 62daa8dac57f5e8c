"""The registry of systems an experiment can run: one entry per system, its runner per kind of data.

A system is a trained-and-evaluated configuration of a paper's table row: ``single`` (a model per task),
``hard`` sharing, ``sparse`` sharing, ... A runner takes the experiment's :class:`Context` and returns
``{"params": ..., "tasks": {task: {"metric", "dev", "test", "all"}}, ...}``. ``needs_search``: the
system uses the IMP search's masks (a unit of its own under ``run --jobs``). The order here is the order
of a config's default systems and of the report's rows. Adding a system: a runner and one entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sparseshare.errors import ConfigError
from sparseshare.experiments import sequence, tabular
from sparseshare.experiments.common import run_single_subnet, run_sparse, run_sparse_random, run_sparse_reinit
from sparseshare.experiments.context import Context

KINDS = ("sequence", "tabular")


@dataclass(frozen=True)
class System:
    name: str
    label: str  # its row in the tables
    runners: Mapping[str, Callable[[Context], dict]]  # data kind -> runner
    needs_search: bool = False
    default: bool = True  # run when a config lists no systems (controls are asked for by name)


SYSTEMS: dict[str, System] = {
    s.name: s
    for s in (
        System("single", "Single task", {"sequence": sequence.run_single, "tabular": tabular.run_single}),
        System("single_subnet", "Single task (subnet)", {"sequence": run_single_subnet}, needs_search=True),
        System("hard", "Hard sharing", {"sequence": sequence.run_hard}),
        System("shared_bottom", "Shared-bottom", {"tabular": tabular.run_baseline("shared_bottom")}),
        System(
            "cross_stitch",
            "Soft sharing (cross-stitch)",
            {"sequence": sequence.run_cross_stitch, "tabular": tabular.run_baseline("cross_stitch")},
        ),
        System("hierarchical", "Hierarchical sharing", {"sequence": sequence.run_hierarchical}),
        System("mmoe", "MMoE", {"tabular": tabular.run_baseline("mmoe")}),
        System("cgc", "CGC", {"tabular": tabular.run_baseline("cgc")}),
        System("ple", "PLE", {"tabular": tabular.run_baseline("ple")}),
        System("pbfs", "PBFS", {"tabular": tabular.run_pbfs}),
        System(
            "sparse", "Sparse sharing", {"sequence": run_sparse, "tabular": run_sparse}, needs_search=True
        ),
        System(
            "sparse_random",
            "Sparse sharing, random masks (control)",
            {"sequence": run_sparse_random, "tabular": run_sparse_random},
            needs_search=True,
            default=False,
        ),
        System(
            "sparse_reinit",
            "Sparse sharing, IMP masks, re-initialised (control)",
            {"sequence": run_sparse_reinit, "tabular": run_sparse_reinit},
            needs_search=True,
            default=False,
        ),
    )
}


def systems_for(kind: str, default: bool = False) -> list[str]:
    """The systems that run on ``kind`` data, in registry order (``default``: those a config without a
    ``systems`` list runs)."""
    return [n for n, s in SYSTEMS.items() if kind in s.runners and (s.default or not default)]


def label(name: str) -> str:
    return SYSTEMS[name].label if name in SYSTEMS else name


def runner(name: str, kind: str) -> Callable[[Context], dict]:
    try:
        return SYSTEMS[name].runners[kind]
    except KeyError:
        raise ConfigError(f"unknown system '{name}' for {kind} data; valid: {systems_for(kind)}") from None
