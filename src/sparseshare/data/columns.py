"""A user's own column files as tasks: any task names, each a tag column, in shared or per-task files.

A task's name is checked by :func:`check_task_name`; its metric and the scheme it is trained and scored
in come from :func:`task_kind` (the user's ``spans``, else the paper's kind). :func:`columns_tasks` reads
each file once (``readers.column_file``) and carves dev from train for a task whose files have none, as
for CoNLL-2000. A bad option is a ``ConfigError`` naming it; a malformed file a ``DataError`` naming the
file and line.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from sparseshare.data.readers import (
    CONLL2000_DEV_SIZE,
    DEV_SEED,
    SPLITS,
    TARGET_SCHEME,
    TASK_NAME,
    Tasks,
    carve_dev,
    column_file,
)
from sparseshare.errors import ConfigError

SPAN_TARGETS = ("bio2", "bioes")  # the schemes a span task can be trained and scored in


def check_task_name(task: str) -> str:
    """``task`` if it is a name a user's column task may have; else a ConfigError naming it.

    Names hold letters, digits, ``_`` and ``-`` (they become run-directory and metric names);
    ``position`` is reserved for the synthetic task every corpus offers.
    """
    if not isinstance(task, str) or not TASK_NAME.fullmatch(task):
        raise ConfigError(
            f"task name {str(task)!r} may hold only letters, digits, '_' and '-' ([A-Za-z0-9_-]+)"
        )
    if task == "position":
        raise ConfigError("task name 'position' is reserved for the synthetic position-prediction task")
    return task


def task_kind(task: str, spans: Mapping[str, str | None] | None = None) -> tuple[str, str | None]:
    """``("accuracy", None)`` for a token tagging task, ``("f1", scheme)`` for a span task.

    ``spans`` maps a task to the scheme it is trained and scored in (``bio2`` or ``bioes``; ``None``:
    token tagging). A task it does not name keeps the paper's kind (``TARGET_SCHEME``): ``chunk`` is
    BIO2, ``ner`` BIOES, any other name (``pos``, ``position``, ``brown_pos``) token tagging.
    """
    spans = spans or {}
    scheme = spans[task] if task in spans and task != "position" else TARGET_SCHEME.get(task)
    if scheme is None:
        return "accuracy", None
    target = "bio2" if str(scheme).lower() == "iob2" else str(scheme).lower()
    if target not in SPAN_TARGETS:
        raise ConfigError(
            f"span task '{task}': unknown target scheme '{scheme}'; valid: {list(SPAN_TARGETS)} "
            "(null: token tagging)"
        )
    return "f1", target


def columns_tasks(
    files: Mapping[str, str | Path],
    tags: Mapping[str, int],
    word: int = 0,
    schemes: Mapping[str, str] | None = None,
    sep: str | None = None,
    dev_size: int = CONLL2000_DEV_SIZE,
    dev_seed: int = DEV_SEED,
    spans: Mapping[str, str | None] | None = None,
    task_files: Mapping[str, Mapping[str, str | Path]] | None = None,
) -> Tasks:
    """A user's own column files: ``files`` split -> path (train and test; dev optional), ``tags``
    task -> 0-based tag column (any :func:`check_task_name` names), ``word`` the word column, ``sep`` the
    column separator (default: runs of spaces or tabs), ``schemes`` a span task's source scheme (default
    ``auto``), ``spans`` a task's target scheme (:func:`task_kind`), ``task_files`` task -> split -> path
    replacing ``files`` for that task (e.g. two POS tag sets from two corpora).

    Each file is read once, however many tasks take columns from it. A task whose files hold no dev gets
    ``dev_size`` of its training sentences (seed ``dev_seed``) as dev, as for CoNLL-2000.
    """
    if not tags:
        raise ConfigError("column files: no task asked (tags is empty)")
    for task in tags:
        check_task_name(task)
    schemes, spans, task_files = dict(schemes or {}), dict(spans or {}), dict(task_files or {})
    for key, given in (("schemes", schemes), ("spans", spans), ("task_files", task_files)):
        extra = [t for t in given if t not in tags]
        if extra:
            raise ConfigError(
                f"column files: {key} names task(s) {extra} without a tag column; tags: {list(tags)}"
            )
    bad = [c for c in [word, *tags.values()] if not isinstance(c, int) or isinstance(c, bool) or c < 0]
    if bad:
        raise ConfigError(f"column files: column indexes must be integers >= 0, got {bad}")
    targets = {t: task_kind(t, spans)[1] for t in tags}
    tagging = [t for t in schemes if targets[t] is None]
    if tagging:
        raise ConfigError(
            f"column files: schemes names token tagging task(s) {tagging}; "
            "name their target scheme in spans to read them as spans"
        )
    shared = [t for t in tags if t not in task_files]
    own = {t: _split_files(task_files[t], f"of task '{t}'") for t in task_files}
    if shared:
        own.update(dict.fromkeys(shared, _split_files(files, f"of task(s) {shared}")))
    by_path: dict[Path, dict[str, int]] = {}
    for t in tags:
        for p in own[t].values():
            by_path.setdefault(p, {})[t] = tags[t]
    read = {p: column_file(p, word, cols, schemes, sep, targets=targets) for p, cols in by_path.items()}
    out = {t: {s: read[p][t] for s, p in own[t].items()} for t in tags}
    no_dev: dict[Path, list[str]] = {}  # train file -> the tasks carving their dev from it
    for t in tags:
        if "dev" not in own[t]:
            no_dev.setdefault(own[t]["train"], []).append(t)
    for train, group in no_dev.items():
        n = len(out[group[0]]["train"])
        if not 0 < dev_size < n:
            raise ConfigError(
                f"dev size must be in [1, {n - 1}] for the {n} training sentences of {train} "
                f"(task(s) {group}), got {dev_size}"
            )
        out.update(carve_dev({t: out[t] for t in group}, dev_size, dev_seed))
    return out


def _split_files(files: Mapping[str, str | Path], who: str) -> dict[str, Path]:
    """split -> path checked: train and test present, dev optional, nothing else."""
    if not isinstance(files, Mapping):
        raise ConfigError(f"column files {who} must map split (train/dev/test) -> path, got {files!r}")
    missing = [s for s in ("train", "test") if s not in files]
    bad = [s for s in files if s not in SPLITS]
    if missing or bad:
        raise ConfigError(
            f"column files {who} need train and test, dev optional; missing {missing}, unknown {bad}"
        )
    return {s: Path(p) for s, p in files.items()}
