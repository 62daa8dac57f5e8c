"""The experiment config: YAML validated into typed objects (see configs/ for examples)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sparseshare.data.corpora import CORPUS_TASKS
from sparseshare.data.sources import SOURCES
from sparseshare.data.task import TASK_NAME
from sparseshare.errors import ConfigError
from sparseshare.experiments.datasets import DATASETS
from sparseshare.experiments.schema import from_dict, set_key
from sparseshare.experiments.systems import systems_for
from sparseshare.training.search import SearchSettings
from sparseshare.training.trainer import TrainSettings

TAG_SCHEMES = ("auto", "iob1", "bio2", "iob2", "bioes")


NAME = TASK_NAME  # task names: they become file, folder and module names
RUN_NAME = re.compile(r"[A-Za-z0-9_.+=,\[\]-]+")  # experiment names (a point's: "name[a=1,b=2]")
LABEL = re.compile(r"[A-Za-z0-9_.+-]+")  # sweep axes and point labels (a point's folder is "a=1,b=2")
DEVICES = "auto, cpu, cuda, cuda:N, mps"


def _range(where: str, value, lo=None, hi=None, lo_open=False, hi_open=False) -> list[str]:
    """A problem line when ``value`` is outside [lo, hi] (open ends as asked), else none."""
    if value is None:
        return []
    bad = (lo is not None and (value <= lo if lo_open else value < lo)) or (
        hi is not None and (value >= hi if hi_open else value > hi)
    )
    if not bad:
        return []
    if hi is None:
        span = f"{'>' if lo_open else '>='} {lo}"
    else:
        span = f"in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    return [f"'{where}' must be {span}, got {value}"]


def _names(where: str, names, pattern: re.Pattern = NAME) -> list[str]:
    marks = {NAME: "_ -", RUN_NAME: "_ . + = , [ ] -", LABEL: "_ . + -"}[pattern]
    return [
        f"'{where}': '{n}' may hold only letters, digits and {marks}, and cannot start with '.'"
        for n in names
        if not isinstance(n, str) or not pattern.fullmatch(n) or n.startswith(".")
    ]


def _unknown(where: str, given, known) -> list[str]:
    bad = [t for t in given if t not in known]
    return [f"'{where}': unknown task(s) {bad}; tasks are {list(known)}"] if bad else []


@dataclass
class TableConfig:
    """A user's own CSV/Parquet table; ``targets``: label column -> 'binary'/'regression'. A column whose
    name is not a valid task name (e.g. holding '/' or '.') is the task of that name with every other
    character run replaced by '_' (``sparseshare.data.tabular_readers.safe_task_name``)."""

    train: str
    targets: dict[str, str]
    dev: str | None = None
    test: str | None = None
    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    sep: str = ","

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

    tags: dict[str, int]
    train: str | None = None
    test: str | None = None
    dev: str | None = None
    word: int = 0
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
        out += _names(f"{where}.tags", self.tags)
        out += _unknown(f"{where}.schemes", self.schemes, self.tags)
        out += _unknown(f"{where}.spans", self.spans, self.tags)
        out += _unknown(f"{where}.files", self.files, self.tags)
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
    dataset: str = "conll2003"
    tasks: list[str] | None = None  # None: every task the dataset offers (but the synthetic 'position')
    data_dir: str | None = None
    limits: dict[str, int] = field(default_factory=dict)  # max sentences per split: train/dev/test
    embeddings: str | None = "glove6b50d"  # a source name, a GloVe file/dir path, or null (random init)
    lower_words: bool = True
    subjects: list[str] = field(default_factory=lambda: ["por", "mat"])  # student
    correlation: float = 0.5  # synthetic: the cosine p of the two tasks' weight vectors
    sizes: list[int] = field(default_factory=lambda: [100_000, 10_000, 10_000])  # synthetic train/dev/test
    table: TableConfig | None = None
    # sequence corpora; Exp3 of the sparse-sharing paper: dataset mixed, sources {pos: ptb, chunk: conll2000,
    # ner: conll2003}, paths {ptb: ..., conll2000: ...}
    sources: dict[str, str] = field(default_factory=dict)  # dataset 'mixed': task -> corpus
    paths: dict[str, str] = field(default_factory=dict)  # corpus -> its folder (else data_dir, or the cache)
    columns: ColumnsConfig | None = None  # the 'columns' corpus
    dev_size: int = 1000  # corpora without a dev set (conll2000, columns without dev): sentences carved
    dev_seed: int = 0  # ... drawn with this seed, fixed apart from the experiment seed
    ptb_split: str = "auto"  # PTB file ranges: wsj (sections 0-18/19-21/22-24), sample, auto

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
        out += _names(f"{where}.tasks", self.tasks)
        if len(set(self.tasks)) != len(self.tasks):
            out.append(f"'{where}.tasks': a task is named twice in {self.tasks}")
        bad = [t for t in self.tasks if t not in valid] if self.dataset != "mixed" else []
        if self.dataset == "columns" and self.columns is None:
            pass  # 'data.columns' is required: said below
        elif self.dataset == "columns" and bad:
            tagged = list(self.columns.tags)
            out.append(f"'{where}.columns.tags': no column for task(s) {bad}; tagged: {tagged}")
        elif bad or not self.tasks:
            out.append(f"'{where}.tasks': unknown task(s) {bad} for '{self.dataset}'; valid: {list(valid)}")
        bad = [k for k in self.limits if k not in ("train", "dev", "test")]
        if bad:
            out.append(f"'{where}.limits': unknown split(s) {bad}; valid: ['dev', 'test', 'train']")
        for split, n in self.limits.items():
            out += _range(f"{where}.limits.{split}", n, 1)
        out += _range(f"{where}.dev_size", self.dev_size, 1)
        out += _range(f"{where}.correlation", self.correlation, -1, 1)
        if len(self.sizes) != 3 or any(n < 1 for n in self.sizes):
            out.append(f"'{where}.sizes' must be three sizes >= 1 (train, dev, test), got {self.sizes}")
        bad = [s for s in self.subjects if s not in ("por", "mat")]
        if bad or not self.subjects:
            out.append(f"'{where}.subjects': unknown subject(s) {bad}; valid: ['mat', 'por']")
        if self.sequence:
            out += self._sequence_problems(where)
        return out


@dataclass
class ModelConfig:
    """The sequence tagger; defaults are Table 2 of the sparse-sharing paper (word vectors of 100
    dimensions without pretrained embeddings; with them, their dimension)."""

    word_dim: int | None = None  # None: the embeddings' dimension (100, Table 2, without embeddings)
    char_dim: int = 30
    char_filters: int = 30
    char_width: int = 3
    hidden: int = 200
    layers: int = 1  # BiLSTM layers (the hierarchical system always has at least 2)
    dropout: float = 0.5  # after the embeddings and before the output layer
    decoder: str = "linear"  # 'linear' (Exp1/Exp2) or 'crf' (Exp3)
    word_dropout: float = 0.0  # probability of replacing a training word by <unk>
    # hierarchical system: task -> 1-based BiLSTM layer its decoder reads; empty = POS 1, the others 2
    hierarchy: dict[str, int] = field(default_factory=dict)

    def problems(self, where: str) -> list[str]:
        from sparseshare.models.decoders import DECODERS

        out = []
        if self.decoder not in DECODERS:
            out.append(f"'{where}.decoder': unknown decoder '{self.decoder}'; valid: {sorted(DECODERS)}")
        for key in ("dropout", "word_dropout"):
            out += _range(f"{where}.{key}", getattr(self, key), 0, 1, hi_open=True)
        for key in ("char_dim", "char_width", "hidden", "layers"):
            out += _range(f"{where}.{key}", getattr(self, key), 1)
        out += _range(f"{where}.char_filters", self.char_filters, 0)
        out += _range(f"{where}.word_dim", self.word_dim, 1)
        bad = {t: v for t, v in self.hierarchy.items() if v < 1}
        if bad:
            out.append(f"'{where}.hierarchy': layers are numbered from 1, got {bad}")
        return out


@dataclass
class TabularModelConfig:
    """Sizes of the tabular models (PBFS Section 4.3 defaults)."""

    bottom: list[int] = field(default_factory=lambda: [32, 16, 8])  # single task and shared-bottom MLP
    tower: list[int] = field(default_factory=lambda: [8])
    mmoe_expert: list[int] = field(default_factory=lambda: [4])  # MMoE: 8 experts of 4 units
    ple_expert: list[int] = field(default_factory=lambda: [16])  # CGC/PLE: one layer of 16 units
    pbfs_expert: list[int] = field(default_factory=lambda: [32, 32])  # PBFS: census 2 x 32
    # cross-stitch (Section 4.2-4.3): columns of two 32-unit layers (a unit after each: "two cross-sharing
    # units"), task layers of 32
    cross_stitch: list[int] = field(default_factory=lambda: [32, 32])
    cross_stitch_tower: list[int] = field(default_factory=lambda: [32])
    num_experts: int = 8  # MMoE
    num_specific: int = 1  # CGC/PLE/PBFS task-specific experts per task
    num_shared: int = 1  # CGC/PLE shared experts; PBFS shared experts per pool
    levels: int = 2  # PLE extraction levels
    dropout: float = 0.0

    def problems(self, where: str) -> list[str]:
        out = []
        for key in (
            "bottom",
            "tower",
            "mmoe_expert",
            "ple_expert",
            "pbfs_expert",
            "cross_stitch",
            "cross_stitch_tower",
        ):
            sizes = getattr(self, key)
            if any(n < 1 for n in sizes):
                out.append(f"'{where}.{key}': layer sizes must be >= 1, got {sizes}")
            if not sizes and key in ("mmoe_expert", "ple_expert", "pbfs_expert", "cross_stitch"):
                out.append(f"'{where}.{key}': needs at least one layer")
        out += _range(f"{where}.num_experts", self.num_experts, 1)
        out += _range(f"{where}.levels", self.levels, 1)
        out += _range(f"{where}.num_specific", self.num_specific, 0)
        out += _range(f"{where}.num_shared", self.num_shared, 0)
        if self.num_specific + self.num_shared < 1:
            out.append(f"'{where}': num_specific + num_shared must be >= 1 (every gate needs an expert)")
        out += _range(f"{where}.dropout", self.dropout, 0, 1, hi_open=True)
        return out


@dataclass
class PBFSConfig:
    """PBFS pools (Algorithm 1) and per-task pruning of shared experts (Algorithm 2).

    PBFS's "sparsity" is the fraction pruned (density = 1 - sparsity)."""

    pool_alpha: float = 0.1
    pools: list[list[str]] | None = None  # explicit pools instead of Algorithm 1
    initial_sparsity: float = 0.1  # mu, pruned at the start
    target_sparsity: float | dict[str, float] = 0.7  # lambda, per task or one value
    end_fraction: float = 0.5  # the schedule reaches lambda at this fraction of training steps
    frequency: int = 100  # steps between pruning updates
    power: float = 3.0  # polynomial decay exponent (cubic, as TF-MOT)
    strategy: str = "layerwise"

    def problems(self, where: str) -> list[str]:
        out = _range(f"{where}.end_fraction", self.end_fraction, 0, 1, lo_open=True)
        out += _range(f"{where}.pool_alpha", self.pool_alpha, 0, lo_open=True)
        out += _range(f"{where}.frequency", self.frequency, 1)
        out += _range(f"{where}.power", self.power, 0, lo_open=True)
        out += _range(f"{where}.initial_sparsity", self.initial_sparsity, 0, 1, hi_open=True)
        if self.strategy not in ("layerwise", "global"):
            out.append(f"'{where}.strategy': unknown '{self.strategy}'; valid: ['global', 'layerwise']")
        targets = (
            self.target_sparsity if isinstance(self.target_sparsity, dict) else {"": self.target_sparsity}
        )
        for t, v in targets.items():
            key = f"{where}.target_sparsity" + (f".{t}" if t else "")
            out += _range(key, v, 0, 1, hi_open=True)
            if v < self.initial_sparsity:
                out.append(f"'{key}' ({v}) must be >= '{where}.initial_sparsity' ({self.initial_sparsity})")
        if self.pools is not None and (not self.pools or any(len(p) < 1 for p in self.pools)):
            out.append(f"'{where}.pools': every pool needs at least one task")
        return out


@dataclass
class PaperConfig:
    """The paper's reported numbers, printed beside ours: ``values[system][task][metric]`` (fractions)."""

    source: str = ""
    metrics: dict[str, list[str]] = field(default_factory=dict)  # task -> metrics to report
    values: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    # sweeps: point name ("axis=label,...") -> system -> task -> metric
    points: dict[str, dict[str, dict[str, dict[str, float]]]] = field(default_factory=dict)


def device_problems(device: str) -> list[str]:
    """'auto', 'cpu', or an accelerator torch has here; anything else is a problem line."""
    import torch

    if device in ("auto", "cpu"):
        return []
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        return [f"'device': unknown device '{device}'; valid: {DEVICES}"]
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return [f"'device': '{device}' asked, but CUDA is not available here; use auto or cpu"]
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            return [
                f"'device': '{device}' asked, but this machine has {torch.cuda.device_count()} CUDA device(s)"
            ]
        return []
    if dev.type == "mps" and torch.backends.mps.is_available():
        return []
    return [f"'device': '{device}' is not available here; valid: {DEVICES}"]


@dataclass
class ExperimentConfig:
    name: str
    seed: int = 1
    device: str = "auto"
    systems: list[str] = field(default_factory=list)  # empty: every system for the dataset
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainSettings = field(default_factory=TrainSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    tabular: TabularModelConfig = field(default_factory=TabularModelConfig)
    pbfs: PBFSConfig = field(default_factory=PBFSConfig)
    paper: PaperConfig = field(default_factory=PaperConfig)
    # a grid of runs of this config: axis -> point label -> {dotted key: value}; the axes' product is run
    sweep: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def problems(self, where: str) -> list[str]:
        """Checks across sections: names, systems and what each needs, tasks named anywhere."""
        out = _names("name", [self.name], RUN_NAME)
        out += _range("seed", self.seed, 0)
        out += device_problems(self.device)
        for axis, points in self.sweep.items():
            out += _names("sweep", [axis], LABEL)
            if not points:
                out.append(f"'sweep.{axis}': an axis needs at least one point")
            out += _names(f"sweep.{axis}", [str(p) for p in points], LABEL)
        if self.data.dataset not in DATASETS:
            return out
        valid = systems_for(self.data.kind)
        if not self.systems:
            self.systems = list(valid)
        bad = [s for s in self.systems if s not in valid]
        if bad:
            out.append(f"'systems': unknown system(s) {bad} for '{self.data.dataset}'; valid: {list(valid)}")
        tasks = self.data.tasks or []
        if not self.data.sequence:
            self.model.word_dim = self.model.word_dim or 100  # unused by tabular models
        if isinstance(self.pbfs.target_sparsity, dict):
            missing = [t for t in tasks if t not in self.pbfs.target_sparsity]
            if missing:
                out.append(f"'pbfs.target_sparsity': no value for task(s) {missing}")
            out += _unknown("pbfs.target_sparsity", self.pbfs.target_sparsity, tasks)
        for i, pool in enumerate(self.pbfs.pools or []):
            out += _unknown(f"pbfs.pools[{i}]", pool, tasks)
        out += _unknown("search.force_density", self.search.force_density, tasks)
        out += _unknown("train.loss_weights", self.train.loss_weights or {}, tasks)
        out += _unknown("model.hierarchy", self.model.hierarchy, tasks)
        if self.data.sequence and not bad:
            out += self._embedding_problems()
        if not bad and any(s in ("sparse", "single_subnet") for s in self.systems):
            out += self._prunable_problems()
        return out

    def _embedding_problems(self) -> list[str]:
        """The vectors' dimension must be the model's word_dim: read before anything is loaded."""
        from sparseshare.data.embeddings import embedding_dim

        emb = self.data.embeddings
        if not emb:
            self.model.word_dim = self.model.word_dim or 100
            return []
        if Path(emb).exists():
            try:
                dim = embedding_dim(emb)
            except ConfigError as e:
                return [f"'data.embeddings': {e}"]
            except Exception as e:  # a DataError: the file itself is at fault
                return [str(e)]
        elif emb in SOURCES and SOURCES[emb].dim:
            dim = SOURCES[emb].dim
        else:
            known = [n for n, s in SOURCES.items() if s.dim]
            return [f"'data.embeddings': '{emb}' is neither a file nor a known source; sources: {known}"]
        self.model.word_dim = self.model.word_dim or dim
        if dim != self.model.word_dim:
            return [
                f"'model.word_dim' is {self.model.word_dim} but the embeddings '{emb}' have {dim} "
                f"dimensions; set 'model.word_dim: {dim}' (or 'data.embeddings: null' for random vectors)"
            ]
        return []

    def _prunable_problems(self) -> list[str]:
        """The IMP search's globs must match a weight matrix of the base network (checked on a skeleton:
        parameter names do not depend on the data)."""
        from sparseshare.pruning.prunable import prunable_names

        tasks = self.data.tasks or ["t"]
        try:
            if self.data.sequence:
                from sparseshare.models.tagger import build_tagger

                m = self.model
                net = build_tagger(2, 2, dict.fromkeys(tasks, 2), m.word_dim, m.char_dim, m.char_filters,
                                   m.char_width, 1, m.layers, 0.0, decoder=m.decoder)  # fmt: skip
            else:
                from sparseshare.sharing.shared_bottom import shared_bottom

                net = shared_bottom(
                    1, dict.fromkeys(tasks, "regression"), self.tabular.bottom, self.tabular.tower
                )
        except Exception:  # other problems (sizes, decoder) are reported on their own
            return []
        if prunable_names(net, self.search.include, self.search.exclude):
            return []
        weights = [n for n, p in net.named_parameters() if p.dim() >= 2]
        return [
            f"'search.include' {self.search.include} (minus 'search.exclude') matches no weight matrix of "
            f"the base network, which the sparse-sharing systems prune; its weight matrices: {weights}"
        ]


def parse_overrides(items: list[str]) -> list[tuple[str, object]]:
    out = []
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set '{item}': expected key=value")
        key, raw = item.split("=", 1)
        out.append((key.strip(), yaml.safe_load(raw)))
    return out


def load_config(path: str | Path, overrides: list[str] = ()) -> ExperimentConfig:
    """Read a YAML config, apply ``--set`` overrides, and validate it."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{line}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config must be a mapping of keys")
    raw.setdefault("name", path.stem)
    for key, value in parse_overrides(list(overrides)):
        set_key(raw, key, value)
    try:
        return from_dict(ExperimentConfig, raw)
    except ConfigError as e:
        raise ConfigError("\n".join(f"{path}: {line}" for line in str(e).splitlines())) from None
