"""The config section ``data``: which dataset and tasks, and your own files (``columns``, ``table``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sparseshare.data.corpora import CORPUS_TASKS
from sparseshare.data.sources import SOURCES
from sparseshare.errors import ConfigError
from sparseshare.experiments.config.checks import TAG_SCHEMES, bad_names, out_of_range, unknown_tasks
from sparseshare.experiments.config.datasets import DATASETS


@dataclass
class TableConfig:
    """A user's own CSV/Parquet table; ``targets``: label column -> 'binary'/'regression'. A column whose
    name is not a valid task name (e.g. holding '/' or '.') is the task of that name with every other
    character run replaced by '_' (``sparseshare.data.tabular_readers.safe_task_name``)."""

    train: str  # the training table's path (CSV; Parquet by suffix .parquet/.pq), not under data.data_dir
    targets: dict[str, str]
    # null: carved at random from train with the experiment seed (train:dev:test in proportion 8:1:1)
    dev: str | None = None
    test: str | None = None  # null: carved from train, as dev
    # feature columns declared numeric (standardized on train); an undeclared column's kind is read from
    # its values (all numbers: numeric; no numbers: categorical; a mix fails)
    numeric: list[str] = field(default_factory=list)
    # feature columns declared categorical (one-hot; values seen < 2 times in train share an unknown slot)
    categorical: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)  # columns left out of the features (ids, leaks)
    sep: str = ","  # the CSV field delimiter, one character (a Parquet file ignores it)

    def problems(self, where: str) -> list[str]:
        out = [] if self.targets else [f"'{where}.targets': name at least one target column"]
        for col, kind in self.targets.items():
            if kind not in ("binary", "regression"):
                out.append(f"'{where}.targets.{col}': unknown kind '{kind}'; valid: ['binary', 'regression']")
        both = sorted(set(self.numeric) & set(self.categorical))
        if both:
            out.append(f"'{where}': column(s) {both} are declared both numeric and categorical")
        clash = sorted(set(self.targets) & set(self.numeric + self.categorical + self.exclude))
        if clash:
            out.append(f"'{where}': target column(s) {clash} are also declared as features or excluded")
        if len(self.sep) != 1:
            out.append(f"'{where}.sep' must be one character, got {self.sep!r}")
        return out

    def task_names(self) -> dict[str, str]:
        """task name -> its target column."""
        from sparseshare.data.tabular_readers import safe_task_name

        return {safe_task_name(c): c for c in self.targets}


@dataclass
class ColumnsConfig:
    """Your own CoNLL-style column files (the 'columns' corpus): one token per line, a blank line after
    each sentence, the word in column ``word`` and each task's tag in its column ``tags[task]`` (0-based);
    file names relative to ``data.data_dir`` (or ``data.paths.columns``) or absolute.

    Tasks may have any name (letters, digits, '_', '-'): a task is token tagging (token accuracy, e.g. POS)
    unless ``spans`` gives the scheme it is trained and scored in (``bio2`` or ``bioes``; strict span F1),
    converted from its files' own scheme (``schemes``, default detected). Defaults keep the paper's tasks:
    ``chunk`` is spans in BIO2, ``ner`` in BIOES. ``files`` gives a task its own files (``{train, test,
    dev}``), e.g. two POS tasks from two corpora; without a dev file, ``data.dev_size`` training sentences
    become dev.
    """

    tags: dict[str, int]  # task -> the 0-based column of its tags
    train: str | None = None  # the training file; required unless every task has files.<task>.train
    test: str | None = None  # the test file; required unless every task has files.<task>.test
    dev: str | None = None  # null (and no files.<task>.dev): data.dev_size training sentences become dev
    word: int = 0  # the 0-based column of the words
    sep: str | None = None  # null: runs of spaces or tabs; e.g. "\t" where words hold spaces
    schemes: dict[str, str] = field(default_factory=dict)  # task -> its scheme in the files (auto)
    spans: dict[str, str] = field(default_factory=dict)  # task -> the span scheme it is trained in
    files: dict[str, dict[str, str]] = field(default_factory=dict)  # task -> its own {train, test, dev}

    def _kind(self, task: str) -> tuple[str, str | None]:
        from sparseshare.data.columns import task_kind

        try:
            return task_kind(
                task, {t: v for t, v in self.spans.items() if str(v).lower() in ("bio2", "bioes")}
            )
        except ConfigError:
            return "accuracy", None

    def problems(self, where: str) -> list[str]:
        out = [] if self.tags else [f"'{where}.tags': name at least one task and its tag column"]
        out += bad_names(f"{where}.tags", self.tags)
        out += unknown_tasks(f"{where}.schemes", self.schemes, self.tags)
        out += unknown_tasks(f"{where}.spans", self.spans, self.tags)
        out += unknown_tasks(f"{where}.files", self.files, self.tags)
        if "position" in self.tags:
            out.append(f"'{where}.tags': 'position' is the synthetic position task; name your task otherwise")
        for t, scheme in self.schemes.items():
            if str(scheme).lower() not in TAG_SCHEMES:
                out.append(f"'{where}.schemes.{t}': unknown scheme '{scheme}'; valid: {list(TAG_SCHEMES)}")
            elif t in self.tags and self._kind(t)[1] is None:
                out.append(
                    f"'{where}.schemes.{t}': '{t}' is token tagging; give it 'spans.{t}' to convert spans"
                )
        for t, scheme in self.spans.items():
            if str(scheme).lower() not in ("bio2", "bioes"):
                out.append(f"'{where}.spans.{t}': unknown span scheme '{scheme}'; valid: ['bio2', 'bioes']")
        if self.word < 0 or any(c < 0 for c in self.tags.values()):
            out.append(f"'{where}': column indexes must be >= 0")
        if self.sep == "":
            out.append(f"'{where}.sep' must not be empty (null: spaces or tabs)")
        for t in self.tags:
            own = self.files.get(t, {})
            bad = sorted(set(own) - {"train", "dev", "test"})
            if bad:
                out.append(f"'{where}.files.{t}': unknown split(s) {bad}; valid: ['dev', 'test', 'train']")
            for split in ("train", "test"):
                if split not in own and getattr(self, split) is None:
                    out.append(
                        f"'{where}.{split}' is required (or '{where}.files.{t}.{split}' for task '{t}')"
                    )
        return list(dict.fromkeys(out))


@dataclass
class DataConfig:
    # conll2003, conll2000, ptb, ontonotes, columns (your own column files), mixed (each task from its own
    # corpus, data.sources), census, movielens, student, synthetic, or table (your own table, data.table)
    dataset: str = "conll2003"
    tasks: list[str] | None = None  # None: every task the dataset offers (but the synthetic 'position')
    # the dataset's folder: student, ptb, conll2000, ontonotes need it (or data.paths); conll2003, census,
    # movielens: null = the download cache; columns: the base of relative file names; mixed: use data.paths
    data_dir: str | None = None
    # subsample: keep the first N sentences (tables: rows) of each split named (train/dev/test); {} = all
    limits: dict[str, int] = field(default_factory=dict)
    embeddings: str | None = "glove6b50d"  # a source name, a GloVe file/dir path, or null (random init)
    lower_words: bool = True  # lower-case words for the word vocabulary and vectors (chars keep their case)
    subjects: list[str] = field(default_factory=lambda: ["por", "mat"])  # student
    correlation: float = 0.5  # synthetic: the cosine p of the two tasks' weight vectors
    sizes: list[int] = field(default_factory=lambda: [100_000, 10_000, 10_000])  # synthetic train/dev/test
    table: TableConfig | None = None
    # census, movielens, student: raw feature columns left out of the features (each its whole block)
    exclude_features: list[str] = field(default_factory=list)
    # sequence corpora; Exp3 of the sparse-sharing paper: dataset mixed, sources {pos: ptb, chunk: conll2000,
    # ner: conll2003}, paths {ptb: ..., conll2000: ...}
    sources: dict[str, str] = field(default_factory=dict)  # dataset 'mixed': task -> corpus
    paths: dict[str, str] = field(default_factory=dict)  # corpus -> its folder (else data_dir, or the cache)
    columns: ColumnsConfig | None = None  # the 'columns' corpus
    # corpora without a dev set (conll2000; columns without a dev file): this many training sentences,
    # drawn at random, become dev
    dev_size: int = 1000
    # the seed drawing data.dev_size's dev sentences, apart from the experiment seed (every run's dev is the
    # same)
    dev_seed: int = 0
    ptb_split: str = "auto"  # PTB file ranges: wsj (sections 0-18/19-21/22-24), sample, auto
    # sequence corpora, fixed shapes for a GPU or train.compile: every batch's sentence length and word
    # width rounded up to a multiple of this (e.g. 8) or to a power of two ('pow2'); 0, the default: none.
    # The predictions are the same; the loss moves in its last digits
    pad_to: int | str = 0

    @property
    def kind(self) -> str:
        """'sequence' or 'tabular' (the dataset registry says)."""
        return DATASETS[self.dataset].kind

    @property
    def sequence(self) -> bool:
        return self.kind == "sequence"

    def task_sources(self) -> dict[str, str]:
        """Sequence datasets: task -> the corpus it is read from."""
        return dict(self.sources) if self.dataset == "mixed" else {t: self.dataset for t in self.tasks}

    def corpus_offers(self, corpus: str) -> tuple[str, ...]:
        if corpus == "columns":
            return (*(self.columns.tags if self.columns else ()), "position")
        return CORPUS_TASKS[corpus]

    def _sequence_problems(self, where: str) -> list[str]:
        out = []
        if self.dataset == "mixed":
            missing = [t for t in self.tasks if t not in self.sources]
            extra = [t for t in self.sources if t not in self.tasks]
            if missing or extra:
                why = [f"no corpus for task(s) {missing}"] * bool(missing)
                why += [f"task(s) {extra} not in '{where}.tasks'"] * bool(extra)
                out.append(f"'{where}.sources': {'; '.join(why)}")
            if self.data_dir is not None:
                out.append(f"'{where}.data_dir' is ambiguous for dataset 'mixed'; use '{where}.paths'")
        elif self.sources:
            out.append(f"'{where}.sources' is only for dataset 'mixed', not '{self.dataset}'")
        if "columns" in self.task_sources().values() and self.columns is None:
            out.append(f"'{where}.columns' is required for the 'columns' corpus")
        for task, corpus in (self.task_sources() if self.dataset == "mixed" else {}).items():
            if corpus not in CORPUS_TASKS:
                out.append(
                    f"'{where}.sources.{task}': unknown corpus '{corpus}'; valid: {list(CORPUS_TASKS)}"
                )
            elif task not in self.corpus_offers(corpus) and not (
                corpus == "columns" and self.columns is None
            ):
                key = f"{where}.columns.tags" if corpus == "columns" else f"{where}.sources.{task}"
                offers = list(self.corpus_offers(corpus))
                out.append(f"'{key}': corpus '{corpus}' has no task '{task}'; its tasks: {offers}")
        used = set(self.task_sources().values())
        bad = [c for c in self.paths if c not in used]
        if bad:
            out.append(f"'{where}.paths': corpus(es) {bad} not used; used: {sorted(used)}")
        if self.data_dir is not None and self.dataset in self.paths:
            out.append(f"'{where}.data_dir' and '{where}.paths.{self.dataset}' both name a folder")
        for corpus in sorted(used & set(CORPUS_TASKS) - set(SOURCES) - {"columns"}):
            if corpus not in self.paths and (self.dataset == "mixed" or self.data_dir is None):
                key = f"paths.{corpus}" if self.dataset == "mixed" else "data_dir"
                out.append(f"'{where}.{key}' is required: corpus '{corpus}' has no download source")
        if self.ptb_split not in ("auto", "wsj", "sample"):
            out.append(
                f"'{where}.ptb_split': unknown rule '{self.ptb_split}'; valid: ['auto', 'wsj', 'sample']"
            )
        return out

    def valid_tasks(self) -> tuple[str, ...] | None:
        """The task names this dataset offers (None: unknown dataset)."""
        if self.dataset not in DATASETS:
            return None
        if self.dataset == "table":
            return tuple(self.table.task_names()) if self.table else ()
        if self.dataset == "columns":
            return self.corpus_offers("columns")
        return DATASETS[self.dataset].tasks

    def problems(self, where: str) -> list[str]:
        if self.dataset not in DATASETS:
            return [f"'{where}.dataset': unknown dataset '{self.dataset}'; valid: {list(DATASETS)}"]
        out = []
        if self.dataset == "table" and self.table is None:
            out.append(f"'{where}.table' is required for dataset 'table'")
        valid = self.valid_tasks()
        if self.tasks is None:
            offered = [t for t in valid if t != "position"]
            self.tasks = offered if self.dataset != "mixed" else list(self.sources)
        out += bad_names(f"{where}.tasks", self.tasks)
        if len(set(self.tasks)) != len(self.tasks):
            out.append(f"'{where}.tasks': a task is named twice in {self.tasks}")
        bad = [t for t in self.tasks if t not in valid] if self.dataset != "mixed" else []
        if self.dataset == "columns" and self.columns is None:
            pass  # 'data.columns' is required: said below
        elif self.dataset == "columns" and bad:
            tagged = list(self.columns.tags)
            out.append(f"'{where}.columns.tags': no column for task(s) {bad}; tagged: {tagged}")
        elif self.dataset == "table" and self.table is None:
            pass  # its tasks are its targets: said above, or as 'data.table.targets' where table is broken
        elif bad or not self.tasks:
            out.append(f"'{where}.tasks': unknown task(s) {bad} for '{self.dataset}'; valid: {list(valid)}")
        bad = [k for k in self.limits if k not in ("train", "dev", "test")]
        if bad:
            out.append(f"'{where}.limits': unknown split(s) {bad}; valid: ['dev', 'test', 'train']")
        for split, n in self.limits.items():
            out += out_of_range(f"{where}.limits.{split}", n, 1)
        out += out_of_range(f"{where}.dev_size", self.dev_size, 1)
        out += out_of_range(f"{where}.correlation", self.correlation, -1, 1)
        if len(self.sizes) != 3 or any(n < 1 for n in self.sizes):
            out.append(f"'{where}.sizes' must be three sizes >= 1 (train, dev, test), got {self.sizes}")
        bad = [s for s in self.subjects if s not in ("por", "mat")]
        if bad or not self.subjects:
            out.append(f"'{where}.subjects': unknown subject(s) {bad}; valid: ['mat', 'por']")
        if self.exclude_features:
            out += self._exclude_problems(where)
        if self.sequence:
            out += self._sequence_problems(where)
        if self.pad_to != 0 and not self.sequence:
            out.append(f"'{where}.pad_to': only for sequence corpora, not dataset '{self.dataset}'")
        elif self.pad_to != "pow2" and not (isinstance(self.pad_to, int) and 0 <= self.pad_to <= 1024):
            out.append(f"'{where}.pad_to': want 0, a multiple from 1 to 1024 or 'pow2', got {self.pad_to!r}")
        return out

    def _exclude_problems(self, where: str) -> list[str]:
        key, columns = f"'{where}.exclude_features'", DATASETS[self.dataset].features
        if columns is None:
            able = [n for n, d in DATASETS.items() if d.features]
            own = f" (use '{where}.table.exclude')" if self.dataset == "table" else ""
            return [f"{key}: not an option of dataset '{self.dataset}'{own}; datasets with it: {able}"]
        valid = columns(self)
        bad = [c for c in self.exclude_features if c not in valid]
        if bad:
            return [f"{key}: unknown feature column(s) {bad} of '{self.dataset}'; its columns: {list(valid)}"]
        if set(valid) <= set(self.exclude_features):
            return [f"{key}: leaves '{self.dataset}' without any feature"]
        return []
