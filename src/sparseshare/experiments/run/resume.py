"""Open a run directory: create it, or resume it with the config it was started with.

One exception to "the same config": an edit whose keys affect only systems that have not started yet (and
not a search that has) continues the run, and the new config replaces the old one (logged in
metrics.jsonl). Anything else is refused, naming the keys. A finished run is never overwritten.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from sparseshare import atomic, nesting, paths
from sparseshare.errors import RunError
from sparseshare.experiments.config.schema import flatten, to_dict
from sparseshare.experiments.systems.registry import SYSTEMS
from sparseshare.run_dir import MetricsLog, read_bytes, read_json

if TYPE_CHECKING:
    from sparseshare.experiments.config.experiment import ExperimentConfig

NEEDS_SEARCH = tuple(n for n, s in SYSTEMS.items() if s.needs_search)
USES_WARMUP = tuple(n for n, s in SYSTEMS.items() if s.uses_warmup)
EVERY = "*"  # a key that affects every system (data, model, training, seed, device)
# config key prefix -> the systems it affects, and whether it affects the IMP search; the first match wins
AFFECTS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("name", (), False),
    ("paper", (), False),
    ("resources", (), False),
    ("log", (), False),
    ("search.force_density", NEEDS_SEARCH, False),
    ("search.warmup_epochs", (*USES_WARMUP, *(n for n, s in SYSTEMS.items() if s.continues)), True),
    ("search", NEEDS_SEARCH, True),
    # the keys that only some systems read, as the registry's entries name them
    *(
        (key, tuple(n for n, s in SYSTEMS.items() if key in s.reads), False)
        for key in dict.fromkeys(k for s in SYSTEMS.values() for k in s.reads)
    ),
)


def _config_text(cfg: ExperimentConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def _damaged_config(out: Path, fault: str) -> RunError:
    return RunError(
        f"{paths.config(out)}: damaged ({fault}); restore it from the config you ran, or choose another --out"
    )


def _stored_text(out: Path) -> str:
    """The run's config.yaml as text; one that is not UTF-8 text (binary, say) is a one-line RunError."""
    try:
        return read_bytes(paths.config(out), "config file").decode("utf-8")
    except UnicodeDecodeError as e:
        raise _damaged_config(out, f"not UTF-8 text: byte {e.start} is {e.object[e.start]:#04x}") from None


def _stored(out: Path) -> dict:
    try:
        raw = nesting.yaml_load(_stored_text(out))
    except ValueError as e:  # nested too deep for a config
        raise _damaged_config(out, str(e)) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"not valid YAML at line {mark.line + 1}" if mark else "not valid YAML"
        raise _damaged_config(out, f"{where}: {getattr(e, 'problem', None) or type(e).__name__}") from None
    if not isinstance(raw, dict):
        raise _damaged_config(out, "not a mapping of keys")
    return raw


def _affects(key: str) -> tuple[tuple[str, ...] | str, bool]:
    for prefix, systems, search in AFFECTS:
        if key == prefix or key.startswith(prefix + "."):  # and the matched budgets of those systems
            return (*systems, *(n for n, s in SYSTEMS.items() if s.continues in systems)), search
    return EVERY, True


def _started(out: Path, system: str) -> bool:
    return paths.system_dir(out, system).exists()


def config_changes(out: Path, cfg: ExperimentConfig) -> tuple[dict[str, tuple], list[str]]:
    """(key -> (old, new) for every key that differs, the reasons the run cannot take the change)."""
    old, new = flatten(_stored(out)), flatten(to_dict(cfg))
    # a key the stored config lacks was added to sparseshare since; at its default it changes nothing
    default = flatten(to_dict(type(cfg)(name=cfg.name)))
    for k in set(new) - set(old):
        if k in default and new[k] == default[k]:
            old[k] = new[k]
    diff = {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)}
    started = [s for s in set(old.get("systems") or []) | set(cfg.systems) if _started(out, s)]
    searched = paths.search_dir(out).exists()
    points = (out / "points").exists()
    blocked = []
    for key in diff:
        if key == "systems":
            continue  # which systems to run: finished ones are kept, new ones run
        systems, search = _affects(key)
        hit = started if systems == EVERY else [s for s in systems if s in started]
        if systems and points:
            blocked.append(f"{key} (the sweep's points have started)")
        elif hit:
            blocked.append(f"{key} (used by {', '.join(sorted(hit))}, already started)")
        elif search and searched:
            blocked.append(f"{key} (used by the IMP search, already started)")
    return diff, blocked


def finished_results(cfg: ExperimentConfig, out: Path) -> dict | None:
    """The results of ``out`` if it is a finished run of ``cfg``; None if unfinished or absent.

    A finished run of a different config is an error: its results are not this config's."""
    if not paths.results_json(out).exists():
        return None
    if not paths.config(out).exists():
        raise RunError(f"{out}: holds a finished run without its config.yaml; choose another --out")
    if _stored_text(out) != _config_text(cfg):
        diff, _ = config_changes(out, cfg)
        real = [k for k in diff if _affects(k)[0] != ()]  # the name and the paper's numbers only label it
        if real:
            keys = ", ".join(real[:5]) + (", ..." if len(real) > 5 else "")
            raise RunError(
                f"{out}: holds a finished run of a different config ({keys}); choose another --out"
            )
    from sparseshare.results_file import check_shape

    return check_shape(read_json(paths.results_json(out), "results file"), paths.results_json(out))


def open_run(cfg: ExperimentConfig, out: Path) -> Path:
    """Create ``out`` for ``cfg`` or resume it; a finished run, or a config change the run cannot take
    (see the module docstring), is refused naming the keys."""
    if paths.results_json(out).exists():
        raise RunError(f"{out}: this run is finished (results.json exists); choose another --out")
    text = _config_text(cfg)
    if paths.config(out).exists():
        if _stored_text(out) != text:
            diff, blocked = config_changes(out, cfg)
            if blocked:
                shown = "; ".join(blocked[:4]) + ("; ..." if len(blocked) > 4 else "")
                raise RunError(
                    f"{out}: holds an unfinished run of a different config: {shown}; resume it with that "
                    f"config or choose another --out"
                )
            atomic.write_text(paths.config(out), text)
            MetricsLog(out)({"phase": "config_changed", "keys": {k: list(v) for k, v in diff.items()}})
    else:
        out.mkdir(parents=True, exist_ok=True)
        atomic.write_text(paths.config(out), text)
    return out
