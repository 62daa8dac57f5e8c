"""Sequence-labelling corpora by name: the tasks each offers, and one call that reads any of them.

``position`` (the synthetic Position Prediction task of Sun et al. 2020, Table 6) is offered by every
corpus: it is built on the sentences of the corpus's other tasks. The ``columns`` corpus (a user's own
files) offers the tasks its ``tags`` option names: check a name with :func:`corpus_accepts`, and get a
task's metric and scheme with ``columns.task_kind(task, spans)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from sparseshare.data.columns import columns_tasks
from sparseshare.data.ontonotes import ontonotes_tasks
from sparseshare.data.ptb import ptb_tasks
from sparseshare.data.readers import (
    Tasks,
    check_limits,
    check_tasks,
    conll2000_tasks,
    conll2003_tasks,
    limit,
    position_task,
)
from sparseshare.errors import ConfigError

CORPUS_TASKS: dict[str, tuple[str, ...]] = {
    "conll2003": ("pos", "chunk", "ner", "position"),
    "conll2000": ("pos", "chunk", "position"),
    "ptb": ("pos", "position"),
    "ontonotes": ("pos", "chunk", "ner", "position"),
    # the conventional names only: 'columns' offers whatever its tags option names (see offered_tasks)
    "columns": ("pos", "chunk", "ner", "position"),
}


def offered_tasks(corpus: str, options: Mapping | None = None) -> tuple[str, ...]:
    """The tasks ``corpus`` offers: fixed, or for ``columns`` those ``options["tags"]`` names and position."""
    if corpus == "columns":
        return (*((options or {}).get("tags") or {}), "position")
    return CORPUS_TASKS[corpus]


def corpus_accepts(corpus: str, task: str, options: Mapping | None = None) -> bool:
    """Whether :func:`corpus_tasks` reads ``task`` from ``corpus`` given these reader ``options``.

    A columns task's name is checked apart, by ``columns.check_task_name`` (a ConfigError saying why).
    """
    return corpus in CORPUS_TASKS and task in offered_tasks(corpus, options)


def _columns(
    root: Path | None,
    tasks: list[str],
    files: Mapping | None = None,
    tags: Mapping | None = None,
    schemes: Mapping | None = None,
    spans: Mapping | None = None,
    task_files: Mapping | None = None,
    **options,
) -> Tasks:
    def under_root(split_paths):
        if not isinstance(split_paths, Mapping):
            return split_paths  # columns_tasks says what is wrong
        return {s: Path(p) if root is None else Path(root) / p for s, p in split_paths.items()}

    def asked(given):
        return {t: v for t, v in (given or {}).items() if t in tasks}

    return columns_tasks(
        under_root(files or {}),
        {t: c for t, c in (tags or {}).items() if t in tasks},  # none for position alone: a ConfigError
        schemes=asked(schemes),
        spans=asked(spans),
        task_files={t: under_root(fs) for t, fs in asked(task_files).items()},
        **options,
    )


_READERS: dict[str, Callable[..., Tasks]] = {
    "conll2003": lambda root, tasks: conll2003_tasks(root, tasks),
    "conll2000": conll2000_tasks,
    "ptb": ptb_tasks,
    "ontonotes": ontonotes_tasks,
    "columns": _columns,
}


def corpus_tasks(
    corpus: str,
    root: str | Path | None,
    tasks: Iterable[str],
    limits: dict[str, int] | None = None,
    **options,
) -> Tasks:
    """task -> split (train/dev/test) -> (words, tags) examples of ``corpus`` read from folder ``root``.

    ``options`` go to the corpus's reader: ``conll2000``: dev_size, dev_seed; ``ptb``: split;
    ``ontonotes``: language; ``columns``: files (split -> path, relative to ``root`` when given), tags
    (task -> column; any names), word, schemes, spans, task_files (task -> split -> path, relative to
    ``root`` too), sep, dev_size, dev_seed (see ``columns.columns_tasks``). ``limits`` keeps the first N
    sentences of a split.
    """
    if corpus not in CORPUS_TASKS:
        raise ConfigError(f"unknown sequence corpus '{corpus}'; valid: {list(CORPUS_TASKS)}")
    tasks = check_tasks(corpus, tasks, offered_tasks(corpus, options))
    check_limits(limits)
    real = [t for t in tasks if t != "position"]
    if not real:  # position alone: read one real task for its sentences
        real = [next(iter(options["tags"]))] if corpus == "columns" and options.get("tags") else ["pos"]
    data = _READERS[corpus](root, real, **options)
    if "position" in tasks:
        data["position"] = position_task(data[real[0]])
    return limit({t: data[t] for t in tasks}, limits)
