"""The experiment config: YAML validated into typed objects (see configs/ for examples).

Sections: ``data`` (data.py), ``model``, ``tabular``, ``pbfs``, ``paper`` (sections.py), ``train``
and ``search`` (the training settings, training/trainer.py and training/search.py). This module holds the
top level, its checks across sections, and loading with ``--set`` overrides.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sparseshare import nesting
from sparseshare.data.sources import SOURCES
from sparseshare.errors import ConfigError
from sparseshare.experiments.config.checks import (
    LABEL,
    RUN_NAME,
    bad_names,
    device_problems,
    out_of_range,
    unknown_tasks,
)
from sparseshare.experiments.config.data import DataConfig
from sparseshare.experiments.config.datasets import DATASETS
from sparseshare.experiments.config.schema import from_dict, set_key
from sparseshare.experiments.config.sections import (
    ModelConfig,
    PaperConfig,
    PBFSConfig,
    ResourcesConfig,
    TabularModelConfig,
)
from sparseshare.tracking import BACKENDS
from sparseshare.training.settings import SearchSettings, TrainSettings


@dataclass
class ExperimentConfig:
    # the run's name, its folder runs/<name> unless --out (a config file's own name by default); letters,
    # digits and _ . + = , [ ] -
    name: str
    # seeds initialisation, dropout, batch order and task sampling, and the splits tabular data draws
    # (synthetic: the data itself); not the dev sentences data.dev_seed draws
    seed: int = 1
    device: str = "auto"  # 'auto' (CUDA when available, else CPU), 'cpu', 'cuda', 'cuda:N' or 'mps'
    systems: list[str] = field(default_factory=list)  # empty: every system for the dataset
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainSettings = field(default_factory=TrainSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    tabular: TabularModelConfig = field(default_factory=TabularModelConfig)
    pbfs: PBFSConfig = field(default_factory=PBFSConfig)
    paper: PaperConfig = field(default_factory=PaperConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)  # per unit, on Ray (--jobs)
    # trackers that get every epoch's and IMP level's numbers as metrics.jsonl does: tensorboard, mlflow
    # (as --log, which adds to them; each needs its extra, sparseshare[tensorboard] or [mlflow])
    log: list[str] = field(default_factory=list)
    # a grid of runs of this config: axis -> point label -> {dotted key: value}; the axes' product is run
    sweep: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    @staticmethod
    def prepare(data: dict, prefix: str, errors: list[str]) -> dict:
        """``search.preset`` names a protocol (``SearchSettings.PRESETS``): its values stand in for the
        ``search`` and ``train`` keys the config does not set; an unknown name is a problem."""
        search = data.get("search")
        name = search.get("preset") if isinstance(search, dict) else None
        if name is None:
            return data
        presets = SearchSettings.PRESETS
        if not isinstance(name, str) or name not in presets:
            errors.append(f"'search.preset': unknown preset {name!r}; valid: {sorted(presets)}")
            return data
        out = dict(data)
        for section, values in presets[name].items():
            given = out.get(section) or {}
            if isinstance(given, dict):
                out[section] = {**values, **given}
        return out

    def problems(self, where: str) -> list[str]:
        """Checks across sections: names, tasks named anywhere, the vectors' size. The checks against the
        registries (systems, units, prunable globs) run with them: experiments/systems/checks.py."""
        out = bad_names("name", [self.name], RUN_NAME)
        out += out_of_range("seed", self.seed, 0)
        out += device_problems(self.device)

        out += [
            f"'log': unknown tracker '{b}'; valid: {sorted(BACKENDS)}" for b in self.log if b not in BACKENDS
        ]
        for axis, points in self.sweep.items():
            out += bad_names("sweep", [axis], LABEL)
            if not points:
                out.append(f"'sweep.{axis}': an axis needs at least one point")
            out += bad_names(f"sweep.{axis}", [str(p) for p in points], LABEL)
        if self.data.dataset not in DATASETS:
            return out
        tasks = self.data.tasks or []
        if not self.data.sequence:
            self.model.word_dim = self.model.word_dim or 100  # unused by tabular models
        if isinstance(self.pbfs.target_sparsity, dict):
            missing = [t for t in tasks if t not in self.pbfs.target_sparsity]
            if missing:
                out.append(f"'pbfs.target_sparsity': no value for task(s) {missing}")
            out += unknown_tasks("pbfs.target_sparsity", self.pbfs.target_sparsity, tasks)
        for i, pool in enumerate(self.pbfs.pools or []):
            out += unknown_tasks(f"pbfs.pools[{i}]", pool, tasks)
        out += unknown_tasks("search.force_density", self.search.force_density, tasks)
        out += unknown_tasks("train.loss_weights", self.train.loss_weights or {}, tasks)
        out += unknown_tasks("model.hierarchy", self.model.hierarchy, tasks)
        if self.data.sequence:
            out += self._embedding_problems()
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


def parse_overrides(items: list[str]) -> list[tuple[str, object]]:
    out = []
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set '{item}': expected key=value")
        key, raw = item.split("=", 1)
        try:
            out.append((key.strip(), nesting.yaml_load(raw)))
        except ValueError as e:  # nested deeper than any config
            raise ConfigError(f"--set '{key.strip()}': {e}") from None
    return out


def presets_first(raw: dict, overrides: list[tuple[str, object]]) -> list[tuple[str, object]]:
    """A preset named on the command line or by a sweep point (``--set search.preset=paper``) replaces
    the values the config file gives for the preset's keys, in every section it sets; the other
    overrides, applied after it, still win (and show as departures from the preset)."""
    first = [(k, v) for k, v in overrides if k == "search.preset"]
    for _, value in first:
        for section, values in (
            SearchSettings.PRESETS.get(value, {}).items() if isinstance(value, str) else ()
        ):
            if isinstance(raw.get(section), dict):
                for k in values:
                    raw[section].pop(k, None)
    return first + [(k, v) for k, v in overrides if (k, v) not in first]


def preset_departures(cfg: ExperimentConfig) -> dict[str, dict]:
    """Every key the run's preset sets whose value the run changed: ``{"search.warmup_epochs":
    {"value": 4, "preset": 20}}`` (empty without a preset). A departure is a choice, not an error, but
    results.md lists each one, so that "the paper's protocol" is never claimed for a run it does not
    describe."""
    name = cfg.search.preset
    out = {}
    for section, values in SearchSettings.PRESETS.get(name, {}).items() if name else ():
        for key, want in values.items():
            got = getattr(getattr(cfg, section), key)
            if got != want:
                out[f"{section}.{key}"] = {"value": got, "preset": want}
    return out


def load_config(
    path: str | Path, overrides: list[str] = (), checks: Sequence[Callable[[Any], list[str]]] = ()
) -> ExperimentConfig:
    """Read a YAML config, apply ``--set`` overrides, and validate it (with ``checks`` too: a layer
    above's, from_dict). experiments/systems/checks.py's ``load_experiment`` adds the registries'."""
    path = Path(path)
    try:
        raw = nesting.yaml_load(path.read_text())
    except UnicodeDecodeError as e:  # a binary file, say (a ValueError: first)
        raise ConfigError(
            f"{path}: not a text file (byte {e.start} is not UTF-8); give a YAML config"
        ) from None
    except ValueError as e:  # nested deeper than any config
        raise ConfigError(f"{path}: {e}; not a config") from None
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{line}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config must be a mapping of keys")
    raw.setdefault("name", path.stem)
    for key, value in presets_first(raw, parse_overrides(list(overrides))):
        set_key(raw, key, value)
    try:
        return from_dict(ExperimentConfig, raw, checks=checks)
    except ConfigError as e:
        raise ConfigError("\n".join(f"{path}: {line}" for line in str(e).splitlines())) from None
