"""Column corpora as tasks: task -> split -> (words, tags) examples, the shape ``SequenceData`` takes.

CoNLL-2003 (4 columns), CoNLL-2000 (3 columns), and what any column file is read with (:func:`column_file`,
tags converted by :func:`to_target`); a user's own column files are in ``columns.py``, Penn Treebank
word/TAG files in ``ptb.py``, OntoNotes 5.0 in ``ontonotes.py``, the registry in ``corpora.py``. Span
tags come out as the sparse-sharing paper uses them (Sun et al. 2020, "Datasets"): BIO2 for chunking,
BIOES for NER; POS tags are unchanged. A file's own scheme (IOB1, BIO2 or BIOES) is detected over the
whole file, or named. Every malformed input raises ``DataError`` naming the file and line.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from sparseshare.data.conll import read_rows
from sparseshare.data.tagging import SCHEMES, broken_span, convert_tags, detect_scheme, invalid_tag
from sparseshare.errors import ConfigError, DataError

Example = tuple[list[str], list[str]]  # (words, tags)
Splits = dict[str, list[Example]]  # split (train/dev/test) -> examples
Tasks = dict[str, Splits]  # task -> split -> examples
SPLITS = ("train", "dev", "test")
TASK_NAME = re.compile(r"[A-Za-z0-9_-]+")  # a task's name: it names files, folders and modules
TARGET_SCHEME = {"pos": None, "chunk": "bio2", "ner": "bioes"}  # the paper: BIO2 chunking, BIOES NER
_ALLOWED = {"bioes": "O, B-<type>, I-<type>, E-<type> or S-<type>"}


def check_tasks(corpus: str, tasks: Iterable[str], valid: Iterable[str]) -> tuple[str, ...]:
    """``tasks`` as a tuple; an empty list or a task ``corpus`` lacks is a ConfigError listing the valid."""
    tasks, valid = tuple(tasks), tuple(valid)
    bad = [t for t in tasks if t not in valid]
    if bad or not tasks:
        raise ConfigError(f"unknown {corpus} task(s) {bad or '[] (none asked)'}; valid: {list(valid)}")
    return tasks


def retag(path: str | Path, task: str, tags: list[list[str]], lines: list[list[int]], scheme: str = "auto"):
    """One file's tag sequences in ``task``'s target scheme (``TARGET_SCHEME``; unchanged for POS)."""
    return to_target(path, task, tags, lines, scheme, TARGET_SCHEME.get(task))


def to_target(
    path: str | Path,
    task: str,
    tags: list[list[str]],
    lines: list[list[int]],
    scheme: str,
    target: str | None,
) -> list[list[str]]:
    """One file's tag sequences converted from ``scheme`` into ``target`` (``None``: left as they are).

    ``scheme`` is the file's own (``iob1``, ``bio2``, ``bioes``) or ``auto`` (:func:`detect_scheme` over
    the whole file, so an IOB1 file whose first sentences hold no I-started span is still read as IOB1).
    ``lines`` gives each token's 1-based line, for errors.
    """
    if target is None:
        return tags
    if scheme != "auto" and scheme.lower() not in SCHEMES:
        raise ConfigError(f"unknown tag scheme '{scheme}'; valid: {['auto', *SCHEMES]}")
    src = detect_scheme(tags) if scheme == "auto" else scheme.lower()
    for ts, ls in zip(tags, lines):
        bad = invalid_tag(ts, src)
        if bad is not None:
            allowed = _ALLOWED.get(src, "O, B-<type> or I-<type>")
            raise DataError(path, ls[bad], f"{task} tag '{ts[bad]}' is not {allowed}")
        broken = broken_span(ts, src)
        if broken is not None:
            raise DataError(path, ls[broken[0]], f"{task} tags are not valid {src}: {broken[1]}")
    return [convert_tags(ts, src, target) for ts in tags]


def column_file(
    path: str | Path,
    word: int,
    tags: dict[str, int],
    schemes: dict[str, str] | None = None,
    sep: str | None = None,
    width: int | None = None,
    layout: str = "",
    targets: Mapping[str, str | None] | None = None,
) -> dict[str, list[Example]]:
    """One column file as task -> examples: ``word`` and each task's tag column are 0-based indexes.

    ``schemes`` gives a span task's source scheme (default ``auto``), ``targets`` the scheme it comes out
    in (``None``: tags unchanged; default ``TARGET_SCHEME``); ``width``, when given, is the exact column
    count the format has (``layout`` names its columns in the error).
    """
    path = Path(path)
    sents = read_rows(path, min_columns=max([word, *tags.values()]) + 1, sep=sep)
    first_line, first = sents[0][0]
    if width is not None and len(first) != width:
        raise DataError(path, first_line, f"expected {width} columns ({layout}), found {len(first)}")
    lines = [[ln for ln, _ in s] for s in sents]
    checked = [] if sep is None else [(word, "word"), *((c, f"{t} tag") for t, c in tags.items())]
    for col, what in checked:  # only an exact separator leaves empty cells
        for s in sents:
            empty = next((ln for ln, row in s if not row[col].strip()), None)
            if empty is not None:
                raise DataError(path, empty, f"empty {what} in column {col + 1}")
    words = [[row[word] for _, row in s] for s in sents]
    out = {}
    for task, col in tags.items():
        seqs = [[row[col] for _, row in s] for s in sents]
        target = targets[task] if targets is not None else TARGET_SCHEME.get(task)
        out[task] = list(
            zip(words, to_target(path, task, seqs, lines, (schemes or {}).get(task, "auto"), target))
        )
    return out


def check_limits(limits: dict[str, int] | None) -> dict[str, int]:
    """``limits`` (split -> max sentences) as a dict; unknown splits or negative counts are ConfigErrors."""
    limits = dict(limits or {})
    bad = [s for s in limits if s not in SPLITS]
    if bad:
        raise ConfigError(f"unknown split(s) {bad} in sentence limits; valid: {list(SPLITS)}")
    if any(n < 0 for n in limits.values()):
        raise ConfigError(f"sentence limits must be >= 0, got {limits}")
    return limits


def limit(tasks: Tasks, limits: dict[str, int] | None) -> Tasks:
    """Keep the first N sentences of the splits named in ``limits`` (deterministic small runs)."""
    limits = check_limits(limits)
    return {t: {s: ex[: limits.get(s)] for s, ex in splits.items()} for t, splits in tasks.items()}


def carve_dev(tasks: Tasks, size: int, seed: int) -> Tasks:
    """Move ``size`` training sentences, drawn with ``seed``, into a dev split (same ones for every task).

    For corpora released without a dev set (CoNLL-2000). Both parts keep the file order. The draw
    depends on ``seed`` only, not on the experiment's seed, so every run selects on the same sentences.
    """
    sizes = {len(s["train"]) for s in tasks.values()}
    if len(sizes) != 1:
        raise ValueError(f"tasks hold different training sentences ({sorted(sizes)}); carve per corpus")
    n = sizes.pop()
    if not 0 < size < n:
        raise ConfigError(f"dev size must be in [1, {n - 1}] for {n} training sentences, got {size}")
    dev = set(random.Random(seed).sample(range(n), size))
    return {
        t: {
            "train": [ex for i, ex in enumerate(s["train"]) if i not in dev],
            "dev": [ex for i, ex in enumerate(s["train"]) if i in dev],
            **{k: v for k, v in s.items() if k not in ("train", "dev")},
        }
        for t, s in tasks.items()
    }


def position_task(splits: Splits) -> Splits:
    """The synthetic Position Prediction task (Sun et al. 2020, "About Negative Transfer", Table 6).

    Each token's tag is its 0-based index in the sentence (``"0"``, ``"1"``, ...), on the sentences of
    ``splits`` (the paper takes CoNLL-2003's). Scored by token accuracy. Loosely related to NER, it shows
    negative transfer under hard sharing.
    """
    return {split: [(ws, [str(i) for i in range(len(ws))]) for ws, _ in ex] for split, ex in splits.items()}


CONLL03_COLUMNS = {"pos": 1, "chunk": 2, "ner": 3}
CONLL03_FILES = {"train": "train.txt", "dev": "valid.txt", "test": "test.txt"}


def conll2003_tasks(
    root: str | Path, tasks: Iterable[str] = ("pos", "chunk", "ner"), limits: dict[str, int] | None = None
) -> Tasks:
    """CoNLL-2003 English (``word POS chunk NER``; train/valid/test.txt) as tasks over the same sentences.

    The release is IOB1, some copies BIO2: the scheme is detected per file. ``limits`` keeps the first
    N sentences of a split, after the scheme is decided on the whole file.
    """
    tasks = check_tasks("conll2003", tasks, CONLL03_COLUMNS)
    check_limits(limits)
    cols = {t: CONLL03_COLUMNS[t] for t in tasks}
    per_split = {
        s: column_file(Path(root) / f, 0, cols, width=4, layout="word POS chunk NER")
        for s, f in CONLL03_FILES.items()
    }
    return limit({t: {s: per_split[s][t] for s in CONLL03_FILES} for t in tasks}, limits)


CONLL2000_COLUMNS = {"pos": 1, "chunk": 2}
CONLL2000_DEV_SIZE = 1000  # sentences carved from train.txt's 8,936 (CoNLL-2000 has no dev set)
DEV_SEED = 0


def conll2000_tasks(
    root: str | Path,
    tasks: Iterable[str] = ("pos", "chunk"),
    dev_size: int = CONLL2000_DEV_SIZE,
    dev_seed: int = DEV_SEED,
) -> Tasks:
    """CoNLL-2000 chunking (Tjong Kim Sang and Buchholz 2000; ``word POS chunk``, train.txt/test.txt).

    The release has no dev set (the paper's Table 1 lists none): ``dev_size`` random training sentences
    (seed ``dev_seed``) become dev, by default 1,000 of 8,936, leaving 7,936 to train on.
    """
    tasks = check_tasks("conll2000", tasks, CONLL2000_COLUMNS)
    cols = {t: CONLL2000_COLUMNS[t] for t in tasks}
    files = {"train": "train.txt", "test": "test.txt"}
    per_split = {
        s: column_file(Path(root) / f, 0, cols, width=3, layout="word POS chunk") for s, f in files.items()
    }
    return carve_dev({t: {s: per_split[s][t] for s in files} for t in tasks}, dev_size, dev_seed)
