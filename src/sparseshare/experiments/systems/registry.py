"""The registry of systems an experiment can run: one entry per system, its runner per kind of data.

A system is a trained-and-evaluated configuration of a paper's table row: ``single`` (a model per task),
``hard`` sharing, ``sparse`` sharing, ... A runner takes the experiment's :class:`Context` and returns
``{"params": ..., "tasks": {task: {"metric", "dev", "test", "all"}}, ...}``. ``needs_search``: the
system uses the IMP search's masks (a unit of its own under ``run --jobs``); ``needs_warmup``: it uses
only the warmup's weights θ^(w). The order here is the order
of a config's default systems and of the report's rows. Adding a system: a runner and one entry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sparseshare import atomic, paths
from sparseshare.errors import ConfigError
from sparseshare.experiments.systems import tabular, tagging, token_experts
from sparseshare.experiments.systems.context import Context
from sparseshare.experiments.systems.sparse_sharing import (
    run_single_subnet,
    run_single_warm,
    run_sparse,
    run_sparse_permuted,
    run_sparse_random,
    run_sparse_reinit,
)

KINDS = ("sequence", "tabular")
# the units of a run that are not systems (experiments/run/units.py), as ``resources.units`` names them
WARMUP = "warmup"  # the multi-task warmup, the rewind point θ^(w) of every task's search
SEARCH = "search"  # a task's IMP search is the unit "search:<task>"; "search" is their group


@dataclass(frozen=True)
class System:
    name: str
    label: str  # its row in the tables
    runners: Mapping[str, Callable[[Context], dict]]  # data kind -> runner
    needs_search: bool = False
    default: bool = True  # run when a config lists no systems (controls are asked for by name)
    # the kinds of data on which it is a default system (None: every kind it runs on); the gated experts
    # came to sequence data later, so a sequence config without a systems list runs what it always did
    default_on: tuple[str, ...] | None = None
    continues: str | None = None  # the system whose checkpoints it goes on from (a matched budget)
    from_warmup: bool = False  # its training starts from θ^(w), after the warmup's epochs
    needs_warmup: bool = False  # reads the warmup's θ^(w) (implied by needs_search)
    # config keys (dotted: a section or a key) that only the systems naming them read: a resumed run
    # whose config changed one reruns only those systems (and their matched budgets); a key no system
    # names touches every system (experiments/run/resume.py)
    reads: tuple[str, ...] = ()
    # which system ``predict`` and ``export`` use when none is named: the lowest rank the run finished
    pick_rank: int | None = None
    # data kind -> the name the same system has there (hard sharing is shared_bottom on tables)
    elsewhere: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def uses_warmup(self) -> bool:
        return self.needs_warmup or self.needs_search


def _mask_control(name: str, label: str, run: Callable[[Context], dict], from_warmup: bool = True) -> System:
    """A control of sparse sharing's masks: the search's masks (or masks made from them) trained as sparse
    sharing is, on either kind of data; asked for by name, never a default system."""
    return System(name, label, {"sequence": run, "tabular": run}, needs_search=True, default=False,
                  from_warmup=from_warmup)  # fmt: skip


# experts of the user's own (a factory the config names), for every system with experts
_OWN_EXPERT_KEYS = ("tabular.expert", "tabular.expert_dim")
# the experts of CGC and PLE (PBFS's count theirs too)
_GATED_KEYS = ("tabular.ple_expert", "tabular.num_specific", "tabular.num_shared", *_OWN_EXPERT_KEYS)

SYSTEMS: dict[str, System] = {
    s.name: s
    for s in (
        System(
            "single",
            "Single task",
            {"sequence": tagging.run_single, "tabular": tabular.run_single},
            pick_rank=5,
        ),
        System(
            "single_subnet",
            "Single task (subnet)",
            {"sequence": run_single_subnet},
            needs_search=True,
            from_warmup=True,
            pick_rank=2,
        ),
        System(
            "single_warm",
            "Single task from θ^(w) (control)",
            {"sequence": run_single_warm},
            default=False,
            from_warmup=True,
            needs_warmup=True,
        ),
        System(
            "hard",
            "Hard sharing",
            {"sequence": tagging.run_hard},
            pick_rank=3,
            elsewhere={"tabular": "shared_bottom"},
        ),
        System(
            "shared_bottom",
            "Shared-bottom",
            {"tabular": tabular.run_baseline("shared_bottom")},
            pick_rank=4,
            elsewhere={"sequence": "hard"},
        ),  # fmt: skip
        System(
            "cross_stitch",
            "Soft sharing (cross-stitch)",
            {"sequence": tagging.run_cross_stitch, "tabular": tabular.run_baseline("cross_stitch")},
            reads=("tabular.cross_stitch", "tabular.cross_stitch_tower"),
        ),
        System(
            "hierarchical",
            "Hierarchical sharing",
            {"sequence": tagging.run_hierarchical},
            reads=("model.hierarchy",),
        ),
        System(
            "mmoe",
            "MMoE",
            {"tabular": tabular.run_baseline("mmoe"), "sequence": token_experts.run_gated("mmoe")},
            reads=("tabular.mmoe_expert", "tabular.num_experts", *_OWN_EXPERT_KEYS),
            default_on=("tabular",),
        ),
        System(
            "cgc",
            "CGC",
            {"tabular": tabular.run_baseline("cgc"), "sequence": token_experts.run_gated("cgc")},
            reads=_GATED_KEYS,
            default_on=("tabular",),
        ),
        System(
            "ple",
            "PLE",
            {"tabular": tabular.run_baseline("ple"), "sequence": token_experts.run_gated("ple")},
            reads=(*_GATED_KEYS, "tabular.levels"),
            default_on=("tabular",),
        ),
        System(
            "pbfs",
            "PBFS",
            {"tabular": tabular.run_pbfs, "sequence": token_experts.run_pbfs},
            reads=("pbfs", "tabular.pbfs_expert", *_GATED_KEYS[1:]),
            pick_rank=1,
            default_on=("tabular",),
        ),
        System(
            "sparse",
            "Sparse sharing",
            {"sequence": run_sparse, "tabular": run_sparse},
            needs_search=True,
            from_warmup=True,
            pick_rank=0,
        ),
        _mask_control("sparse_random", "Sparse sharing, random masks (control)", run_sparse_random),
        _mask_control("sparse_permuted", "Sparse sharing, permuted IMP masks (control)", run_sparse_permuted),
        _mask_control(
            "sparse_reinit",
            "Sparse sharing, IMP masks, re-initialised (control)",
            run_sparse_reinit,
            from_warmup=False,
        ),
    )
}


def _continue_checkpoints(run: Path, base: str, name: str) -> None:
    """Start ``name`` from ``base``'s finished checkpoints (the same epochs, bit for bit: every epoch is
    seeded by its number), so that only the extra epochs are trained; nothing when ``base`` has not run
    here (``name`` then trains them all itself, to the same numbers)."""
    src, dst = paths.system_dir(run, base), paths.system_dir(run, name)
    if not paths.system_result(run, base).exists() or dst.exists():
        return
    for f in sorted(src.rglob("*")):
        if f.name in (paths.FINGERPRINT, paths.LAST_STATE, paths.BEST_STATE):
            atomic.write_bytes(dst / f.relative_to(src), f.read_bytes(), root=run)


def matched(base: str) -> Callable[[Context], dict]:
    """``base`` at a matched budget: a from-scratch system gets the multi-task warmup's epochs too
    ('train.epochs' + 'search.warmup_epochs' at most), as many as sparse sharing's weights have seen
    when its own training starts from θ^(w). Early stopping (patience) is unchanged, so a system that
    stopped before its cap gives the same numbers; one that was still improving goes on."""

    def run(ctx: Context) -> dict:
        name, w = f"{base}_matched", ctx.search.warmup_epochs
        train = ctx.train.replace(epochs=ctx.train.epochs + w)
        _continue_checkpoints(ctx.run, base, name)
        res = SYSTEMS[base].runners[ctx.kind](dataclasses.replace(ctx, train=train, names={base: name}))
        return {**res, "budget": {"epochs": train.epochs, "extra_epochs": w}}

    run.__doc__ = f"{base}, trained for the warmup's epochs more (a matched budget)."
    return run


def _matched_system(base: System) -> System:
    runner = matched(base.name)
    elsewhere = {k: f"{n}_matched" for k, n in base.elsewhere.items()}
    return System(f"{base.name}_matched", f"{base.label}, matched budget",
                  dict.fromkeys(base.runners, runner), default=False, continues=base.name,
                  elsewhere=elsewhere)  # fmt: skip


MATCHED = ("single", "hard", "cross_stitch", "hierarchical", "shared_bottom")
SYSTEMS.update({f"{b}_matched": _matched_system(SYSTEMS[b]) for b in MATCHED})


def systems_for(kind: str, default: bool = False) -> list[str]:
    """The systems that run on ``kind`` data, in registry order (``default``: those a config without a
    ``systems`` list runs)."""
    return [n for n, s in SYSTEMS.items() if kind in s.runners and (not default or _default_on(s, kind))]


def _default_on(system: System, kind: str) -> bool:
    return system.default and (system.default_on is None or kind in system.default_on)


def misnamed(names: list[str], kind: str, dataset: str) -> list[str]:
    """One line per name that is no system for ``kind`` data (``dataset``'s): the name the same system
    has there, or the data it runs on, or the nearest names."""
    import difflib

    valid = systems_for(kind)
    out, unknown = [], []
    for name in names:
        if name in valid:
            continue
        entry = SYSTEMS.get(name)
        if entry is None:
            unknown.append(name)
        elif kind in entry.elsewhere:
            out.append(f"'systems': '{name}' is named '{entry.elsewhere[kind]}' on {kind} data such as "
                       f"'{dataset}' (the same system: {entry.label.lower()})")  # fmt: skip
        else:
            runs = " and ".join(sorted(entry.runners))
            out.append(f"'systems': '{name}' runs on {runs} data only, not on '{dataset}'; valid: {valid}")
    if unknown:
        near = {n: difflib.get_close_matches(n, valid, 1) for n in unknown}
        hint = "; ".join(f"'{n}': did you mean '{m[0]}'?" for n, m in near.items() if m)
        out.insert(0, f"'systems': unknown system(s) {unknown} for '{dataset}'; valid: {valid}"
                      + (f" ({hint})" if hint else ""))  # fmt: skip
    return out


def label(name: str) -> str:
    return SYSTEMS[name].label if name in SYSTEMS else name


def runner(name: str, kind: str) -> Callable[[Context], dict]:
    try:
        return SYSTEMS[name].runners[kind]
    except KeyError:
        raise ConfigError(f"unknown system '{name}' for {kind} data; valid: {systems_for(kind)}") from None
