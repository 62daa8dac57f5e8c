"""The registry of datasets a config can name: their kind, their tasks and how each is read.

Sequence corpora (one reader, ``data/corpora.py``; the tags per task are fixed by the corpus) and tabular
datasets (one loader each, returning ``TabularData`` with the preprocessing fitted on train only). Adding
a dataset: a reader in ``data/`` and one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparseshare.data.corpora import CORPUS_TASKS
from sparseshare.errors import ConfigError

# the config's data section, DataConfig (experiments/config/data.py); not imported, because DataConfig
# validates itself against this registry: the loaders read only its attributes
Section = Any


@dataclass(frozen=True)
class Dataset:
    name: str
    kind: str  # "sequence" or "tabular"
    tasks: tuple[str, ...] | None  # None: named by the config (a user's own table)
    load: Callable[[Any, int], Any] | None = None  # tabular: (data section, seed) -> TabularData
    # the raw feature columns ``data.exclude_features`` may name: (data config) -> columns; None: no option
    features: Callable[[Any], tuple[str, ...]] | None = None


def _split_options(d: Section) -> dict:
    """A corpus without a dev split of its own draws one from train ('data.dev_size', 'data.dev_seed')."""
    return {"dev_size": d.dev_size, "dev_seed": d.dev_seed}


def _columns_options(d: Section) -> dict:
    """Your own column files, read as the 'data.columns' section says."""
    c = d.columns
    files = {s: f for s, f in {"train": c.train, "test": c.test, "dev": c.dev}.items() if f}
    return {**_split_options(d), "files": files, "tags": c.tags, "word": c.word, "schemes": c.schemes,
            "sep": c.sep, "spans": c.spans, "task_files": c.files}  # fmt: skip


# the options a corpus's reader takes from the data section (data/corpora.py's readers; a corpus not
# here takes none): adding a corpus whose reader takes options is one entry here
CORPUS_OPTIONS: dict[str, Callable[[Section], dict]] = {
    "conll2000": _split_options,
    "ptb": lambda d: {"split": d.ptb_split},
    "columns": _columns_options,
}


def read_sequence_tasks(d: Section) -> dict[str, dict[str, list]]:
    """task -> split -> (words, tags), each task read from its corpus (``data.sources`` when mixed).

    A corpus's folder is ``data.paths[corpus]``, else ``data.data_dir`` (one-corpus datasets), else
    the local cache for corpora with a download source (CoNLL-2003).
    """
    from sparseshare.data.corpora import corpus_tasks
    from sparseshare.data.sources import SOURCES, get_source, resolve

    by_corpus: dict[str, list[str]] = {}
    for task, corpus in d.task_sources().items():
        by_corpus.setdefault(corpus, []).append(task)
    raw: dict[str, dict[str, list]] = {}
    for corpus, tasks in by_corpus.items():
        folder = d.paths.get(corpus, None if d.dataset == "mixed" else d.data_dir)
        root = resolve(get_source(corpus), folder) if corpus in SOURCES else folder
        options = CORPUS_OPTIONS[corpus](d) if corpus in CORPUS_OPTIONS else {}
        raw.update(corpus_tasks(corpus, root, tasks, d.limits or None, **options))
    return {t: raw[t] for t in d.tasks}


def _census(d: Section, seed: int):
    from sparseshare.data.sources import get_source, resolve
    from sparseshare.data.tabular_readers import read_census

    root = resolve(get_source("census_income"), d.data_dir)
    return read_census(root, seed=seed, exclude=d.exclude_features)


def _movielens(d: Section, seed: int):
    from sparseshare.data.sources import get_source, resolve
    from sparseshare.data.tabular_readers import read_movielens

    root = resolve(get_source("ml100k"), d.data_dir)
    return read_movielens(root, seed=seed, exclude=d.exclude_features)


def _student(d: Section, seed: int):
    from sparseshare.data.tabular_readers import read_student

    if d.data_dir is None:
        raise ConfigError("'data.data_dir' must name the folder with student-por.csv / student-mat.csv")
    return read_student(Path(d.data_dir), subjects=d.subjects, seed=seed, exclude=d.exclude_features)


def _features(dataset: str) -> Callable[[Section], tuple[str, ...]]:
    """The feature columns of a papers' dataset, read from its reader's constants (no file is read)."""

    def columns(d: Section) -> tuple[str, ...]:
        from sparseshare.data import tabular_readers as r

        if dataset == "student":
            return r.STUDENT_FEATURES + (("subject",) if len(d.subjects) > 1 else ())
        return {"census": r.CENSUS_FEATURES, "movielens": r.MOVIELENS_FEATURES}[dataset]

    return columns


def _synthetic(d: Section, seed: int):
    from sparseshare.data.synthetic import synthetic_data

    return synthetic_data(d.correlation, sizes=d.sizes, seed=seed)


def _table(d: Section, seed: int):
    from sparseshare.data.tabular_readers import read_table

    tb = d.table
    return read_table(
        tb.train,
        tb.targets,
        dev=tb.dev,
        test=tb.test,
        numeric=tb.numeric,
        categorical=tb.categorical,
        exclude=tb.exclude,
        sep=tb.sep,
        seed=seed,
    )


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        *(Dataset(name, "sequence", tasks) for name, tasks in CORPUS_TASKS.items()),
        Dataset("mixed", "sequence", ("pos", "chunk", "ner", "position")),  # each task from its own corpus
        Dataset("census", "tabular", ("income", "marital"), _census, _features("census")),
        Dataset("movielens", "tabular", ("rating", "age"), _movielens, _features("movielens")),
        Dataset(
            "student",
            "tabular",
            tuple(f"{s}_G{i}" for s in ("por", "mat") for i in (1, 2, 3)),
            _student,
            _features("student"),
        ),
        Dataset("synthetic", "tabular", ("t1", "t2"), _synthetic),
        Dataset("table", "tabular", None, _table),
    )
}


def get_dataset(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise ConfigError(f"unknown dataset '{name}'; valid: {list(DATASETS)}") from None


def load_tabular(d: Section, seed: int):
    """The tabular dataset of the data section ``d`` for its tasks (limits applied); ``seed`` draws the
    splits a dataset makes itself (census, MovieLens, Student, a table without dev/test files)."""
    data = get_dataset(d.dataset).load(d, seed).for_tasks(d.tasks)
    return data.limited(d.limits) if d.limits else data
