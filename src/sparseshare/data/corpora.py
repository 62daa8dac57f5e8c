"""Sequence-labelling corpora by name: the tasks each offers, and one call that reads any of them.

``position`` (the synthetic Position Prediction task of Sun et al. 2020, Table 6) is offered by every
corpus: it is built on the sentences of the corpus's other tasks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from sparseshare.data.ontonotes import ontonotes_tasks
from sparseshare.data.ptb import ptb_tasks
from sparseshare.data.readers import (
    Tasks,
    check_limits,
    check_tasks,
    columns_tasks,
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
    "columns": ("pos", "chunk", "ner", "position"),  # those the user maps to a column
}


def _columns(root: Path | None, tasks: list[str], files: dict, tags: dict, **options) -> Tasks:
    missing = [t for t in tasks if t not in tags]
    if missing:
        raise ConfigError(f"column files: no tag column for task(s) {missing}; columns given: {dict(tags)}")
    files = {s: Path(p) if root is None else Path(root) / p for s, p in files.items()}
    return columns_tasks(files, {t: tags[t] for t in tasks}, **options)


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
    (task -> column), word, schemes, sep, dev_size, dev_seed. ``limits`` keeps the first N sentences
    of a split.
    """
    if corpus not in CORPUS_TASKS:
        raise ConfigError(f"unknown sequence corpus '{corpus}'; valid: {list(CORPUS_TASKS)}")
    tasks = check_tasks(corpus, tasks, CORPUS_TASKS[corpus])
    check_limits(limits)
    real = [t for t in tasks if t != "position"]
    if not real:  # position alone: read one real task for its sentences
        real = [next(iter(options["tags"]))] if corpus == "columns" and options.get("tags") else ["pos"]
    data = _READERS[corpus](root, real, **options)
    if "position" in tasks:
        data["position"] = position_task(data[real[0]])
    return limit({t: data[t] for t in tasks}, limits)
