"""The experiment config: YAML validated into typed objects (see configs/ for examples)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sparseshare.errors import ConfigError
from sparseshare.experiments.schema import from_dict, set_key
from sparseshare.pruning.prunable import DEFAULT_EXCLUDE, DEFAULT_INCLUDE

SYSTEMS = ("single", "hard", "sparse")
DATASETS = ("conll2003",)
SEQ_TASKS = ("pos", "chunk", "ner")


@dataclass
class DataConfig:
    dataset: str = "conll2003"
    tasks: list[str] = field(default_factory=lambda: list(SEQ_TASKS))
    data_dir: str | None = None
    limits: dict[str, int] = field(default_factory=dict)  # max sentences per split: train/dev/test
    embeddings: str | None = "glove6b50d"  # a source name, a GloVe file/dir path, or null (random init)
    lower_words: bool = True

    def check(self, where: str) -> None:
        if self.dataset not in DATASETS:
            raise ConfigError(f"'{where}.dataset': unknown dataset '{self.dataset}'; valid: {list(DATASETS)}")
        bad = [t for t in self.tasks if t not in SEQ_TASKS]
        if bad or not self.tasks:
            raise ConfigError(f"'{where}.tasks': unknown task(s) {bad}; valid: {list(SEQ_TASKS)}")
        bad = [k for k in self.limits if k not in ("train", "dev", "test")]
        if bad:
            raise ConfigError(f"'{where}.limits': unknown split(s) {bad}; valid: ['dev', 'test', 'train']")


@dataclass
class ModelConfig:
    word_dim: int = 100
    char_dim: int = 30
    char_filters: int = 30
    char_width: int = 3
    hidden: int = 200
    layers: int = 1
    dropout: float = 0.5


@dataclass
class TrainConfig:
    epochs: int = 30
    patience: int = 5
    batch_size: int = 10
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.0
    weight_decay: float = 0.0
    lr_decay: float = 0.05
    clip: float | None = 5.0
    sampler: str = "proportional"
    joint: bool = False
    loss_weights: dict[str, float] | None = None
    eval_batch_size: int = 100

    def check(self, where: str) -> None:
        from sparseshare.training.samplers import SAMPLERS

        if self.sampler not in SAMPLERS:
            raise ConfigError(
                f"'{where}.sampler': unknown sampler '{self.sampler}'; valid: {sorted(SAMPLERS)}"
            )
        if self.optimizer not in ("sgd", "adam"):
            raise ConfigError(
                f"'{where}.optimizer': unknown optimizer '{self.optimizer}'; valid: ['adam', 'sgd']"
            )
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(f"'{where}': epochs and batch_size must be >= 1")


@dataclass
class SearchConfig:
    warmup_epochs: int = 20
    epochs_per_level: int = 3
    patience: int = 2
    alpha: float = 0.1
    min_density: float = 0.1
    strategy: str = "global"
    include: list[str] = field(default_factory=lambda: list(DEFAULT_INCLUDE))
    exclude: list[str] = field(default_factory=lambda: list(DEFAULT_EXCLUDE))
    force_density: dict[str, float] = field(default_factory=dict)

    def check(self, where: str) -> None:
        if not 0 < self.alpha < 1:
            raise ConfigError(f"'{where}.alpha' must be in (0, 1), got {self.alpha}")
        if not 0 < self.min_density <= 1:
            raise ConfigError(f"'{where}.min_density' must be in (0, 1], got {self.min_density}")
        if self.strategy not in ("global", "layerwise"):
            raise ConfigError(
                f"'{where}.strategy': unknown '{self.strategy}'; valid: ['global', 'layerwise']"
            )


@dataclass
class ExperimentConfig:
    name: str
    seed: int = 1
    device: str = "auto"
    systems: list[str] = field(default_factory=lambda: list(SYSTEMS))
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    search: SearchConfig = field(default_factory=SearchConfig)

    def check(self, where: str) -> None:
        bad = [s for s in self.systems if s not in SYSTEMS]
        if bad or not self.systems:
            raise ConfigError(f"'systems': unknown system(s) {bad}; valid: {list(SYSTEMS)}")
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
