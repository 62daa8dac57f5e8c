"""The experiment config: YAML validated into typed objects (see configs/ for examples)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sparseshare.data.corpora import CORPUS_TASKS
from sparseshare.data.sources import SOURCES
from sparseshare.errors import ConfigError
from sparseshare.experiments.datasets import DATASETS
from sparseshare.experiments.schema import from_dict, set_key
from sparseshare.experiments.systems import systems_for
from sparseshare.training.search import SearchSettings
from sparseshare.training.trainer import TrainSettings

SEQ_TASKS = ("pos", "chunk", "ner")
TAG_SCHEMES = ("auto", "iob1", "bio2", "iob2", "bioes")


@dataclass
class TableConfig:
    """A user's own CSV/Parquet table; ``targets``: label column (task name) -> 'binary'/'regression'."""

    train: str
    targets: dict[str, str]
    dev: str | None = None
    test: str | None = None
    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    sep: str = ","


@dataclass
class ColumnsConfig:
    """A user's own column files (the 'columns' corpus): file names relative to its folder
    (``data.data_dir`` or ``data.paths.columns``) or absolute; 0-based column indexes."""

    train: str
    test: str
    tags: dict[str, int]  # task (pos/chunk/ner) -> its tag column
    dev: str | None = None  # none: data.dev_size training sentences become dev
    word: int = 0
    sep: str | None = None  # null: runs of spaces or tabs; e.g. "\t" where words hold spaces
    schemes: dict[str, str] = field(default_factory=dict)  # span task -> its scheme in the files (auto)

    def check(self, where: str) -> None:
        bad = [t for t in self.tags if t not in ("pos", "chunk", "ner")]
        if bad or not self.tags:
            raise ConfigError(f"'{where}.tags': unknown task(s) {bad}; valid: ['pos', 'chunk', 'ner']")
        bad = [t for t in self.schemes if t not in self.tags]
        if bad:
            raise ConfigError(f"'{where}.schemes': task(s) {bad} have no column in '{where}.tags'")
        for t, scheme in self.schemes.items():
            if scheme.lower() not in TAG_SCHEMES:
                raise ConfigError(
                    f"'{where}.schemes.{t}': unknown scheme '{scheme}'; valid: {list(TAG_SCHEMES)}"
                )
        if self.word < 0 or any(c < 0 for c in self.tags.values()):
            raise ConfigError(f"'{where}': column indexes must be >= 0")
        if self.sep == "":
            raise ConfigError(f"'{where}.sep' must not be empty (null: spaces or tabs)")


@dataclass
class DataConfig:
    dataset: str = "conll2003"
    tasks: list[str] = field(default_factory=lambda: list(SEQ_TASKS))
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

    def _check_sequence(self, where: str) -> None:
        if self.dataset == "mixed":
            missing = [t for t in self.tasks if t not in self.sources]
            extra = [t for t in self.sources if t not in self.tasks]
            if missing or extra:
                why = [f"no corpus for task(s) {missing}"] * bool(missing)
                why += [f"task(s) {extra} not in '{where}.tasks'"] * bool(extra)
                raise ConfigError(f"'{where}.sources': {'; '.join(why)}")
            if self.data_dir is not None:
                raise ConfigError(f"'{where}.data_dir' is ambiguous for dataset 'mixed'; use '{where}.paths'")
        elif self.sources:
            raise ConfigError(f"'{where}.sources' is only for dataset 'mixed', not '{self.dataset}'")
        for task, corpus in self.task_sources().items():
            if corpus not in CORPUS_TASKS:
                raise ConfigError(
                    f"'{where}.sources.{task}': unknown corpus '{corpus}'; valid: {list(CORPUS_TASKS)}"
                )
            if task not in CORPUS_TASKS[corpus]:
                raise ConfigError(
                    f"'{where}.sources.{task}': corpus '{corpus}' has no task '{task}'; "
                    f"its tasks: {list(CORPUS_TASKS[corpus])}"
                )
        used = set(self.task_sources().values())
        bad = [c for c in self.paths if c not in used]
        if bad:
            raise ConfigError(f"'{where}.paths': corpus(es) {bad} not used; used: {sorted(used)}")
        if self.data_dir is not None and self.dataset in self.paths:
            raise ConfigError(f"'{where}.data_dir' and '{where}.paths.{self.dataset}' both name a folder")
        for corpus in sorted(used - set(SOURCES) - {"columns"}):
            if corpus not in self.paths and (self.dataset == "mixed" or self.data_dir is None):
                key = f"paths.{corpus}" if self.dataset == "mixed" else "data_dir"
                raise ConfigError(f"'{where}.{key}' is required: corpus '{corpus}' has no download source")
        if "columns" in used:
            if self.columns is None:
                raise ConfigError(f"'{where}.columns' is required for the 'columns' corpus")
            bad = [t for t, c in self.task_sources().items() if c == "columns" and t != "position"]
            bad = [t for t in bad if t not in self.columns.tags]
            if bad:
                raise ConfigError(f"'{where}.columns.tags': no column for task(s) {bad}")
        if self.dev_size < 1:
            raise ConfigError(f"'{where}.dev_size' must be >= 1, got {self.dev_size}")
        if self.ptb_split not in ("auto", "wsj", "sample"):
            raise ConfigError(
                f"'{where}.ptb_split': unknown rule '{self.ptb_split}'; valid: ['auto', 'wsj', 'sample']"
            )

    def check(self, where: str) -> None:
        if self.dataset not in DATASETS:
            raise ConfigError(f"'{where}.dataset': unknown dataset '{self.dataset}'; valid: {list(DATASETS)}")
        valid = DATASETS[self.dataset].tasks
        if valid is None:
            if self.table is None:
                raise ConfigError(f"'{where}.table' is required for dataset 'table'")
            valid = tuple(self.table.targets)
        bad = [t for t in self.tasks if t not in valid]
        if bad or not self.tasks:
            raise ConfigError(
                f"'{where}.tasks': unknown task(s) {bad} for '{self.dataset}'; valid: {list(valid)}"
            )
        bad = [k for k in self.limits if k not in ("train", "dev", "test")]
        if bad:
            raise ConfigError(f"'{where}.limits': unknown split(s) {bad}; valid: ['dev', 'test', 'train']")
        if self.sequence:
            self._check_sequence(where)


@dataclass
class ModelConfig:
    """The sequence tagger; defaults are Table 2 of the sparse-sharing paper."""

    word_dim: int = 100
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

    def check(self, where: str) -> None:
        from sparseshare.models.decoders import DECODERS

        if self.decoder not in DECODERS:
            raise ConfigError(
                f"'{where}.decoder': unknown decoder '{self.decoder}'; valid: {sorted(DECODERS)}"
            )
        for key in ("dropout", "word_dropout"):
            if not 0 <= getattr(self, key) < 1:
                raise ConfigError(f"'{where}.{key}' must be in [0, 1), got {getattr(self, key)}")
        if self.layers < 1:
            raise ConfigError(f"'{where}.layers' must be >= 1, got {self.layers}")
        bad = {t: v for t, v in self.hierarchy.items() if v < 1}
        if bad:
            raise ConfigError(f"'{where}.hierarchy': layers are numbered from 1, got {bad}")


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

    def check(self, where: str) -> None:
        if not 0 < self.end_fraction <= 1:
            raise ConfigError(f"'{where}.end_fraction' must be in (0, 1], got {self.end_fraction}")
        targets = (
            self.target_sparsity.values()
            if isinstance(self.target_sparsity, dict)
            else [self.target_sparsity]
        )
        if not all(0 <= self.initial_sparsity <= t < 1 for t in targets):
            raise ConfigError(f"'{where}': need 0 <= initial_sparsity <= target_sparsity < 1")


@dataclass
class PaperConfig:
    """The paper's reported numbers, printed beside ours: ``values[system][task][metric]`` (fractions)."""

    source: str = ""
    metrics: dict[str, list[str]] = field(default_factory=dict)  # task -> metrics to report
    values: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    # sweeps: point name ("axis=label,...") -> system -> task -> metric
    points: dict[str, dict[str, dict[str, dict[str, float]]]] = field(default_factory=dict)


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

    def check(self, where: str) -> None:
        valid = systems_for(self.data.kind)
        if not self.systems:
            self.systems = list(valid)
        bad = [s for s in self.systems if s not in valid]
        if bad:
            raise ConfigError(
                f"'systems': unknown system(s) {bad} for '{self.data.dataset}'; valid: {list(valid)}"
            )
        if isinstance(self.pbfs.target_sparsity, dict):
            missing = [t for t in self.data.tasks if t not in self.pbfs.target_sparsity]
            if missing:
                raise ConfigError(f"'pbfs.target_sparsity': no value for task(s) {missing}")
        bad = [t for t in self.search.force_density if t not in self.data.tasks]
        if bad:
            raise ConfigError(f"'search.force_density': unknown task(s) {bad}; tasks are {self.data.tasks}")


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
        raise ConfigError(f"{path}: {e}") from None
