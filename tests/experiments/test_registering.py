"""The one-file recipes of docs/extending.md, proven: a toy mechanism, system, dataset and corpus are
registered (one entry each, beside the code that defines them) and run from a config, end to end, with
no other edit anywhere. The registries are iterated, never counted."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from torch import nn

from sparseshare.data import corpora
from sparseshare.data.synthetic import synthetic_data
from sparseshare.experiments.config import datasets
from sparseshare.experiments.config.datasets import Dataset
from sparseshare.experiments.config.experiment import ExperimentConfig
from sparseshare.experiments.config.schema import flatten, to_dict
from sparseshare.experiments.results.report import write_report
from sparseshare.experiments.run.resume import AFFECTS
from sparseshare.experiments.run.runner import run_experiment
from sparseshare.experiments.systems import registry, tabular
from sparseshare.experiments.systems.checks import experiment
from sparseshare.experiments.systems.registry import SYSTEMS, System
from sparseshare.models.mlp import MLP, TaskTowers, check_tasks, towers
from sparseshare.sharing import registry as mechanisms
from sparseshare.sharing.registry import MECHANISMS, NETWORKS, MechanismEntry


class Funnel(TaskTowers, nn.Module):
    """The toy mechanism: a bottom that halves the width at each layer, a tower per task."""

    def __init__(self, in_dim: int, kinds, tower=(8,)):
        super().__init__()
        self._tasks = check_tasks(kinds)
        self.kinds = dict(kinds)
        self.bottom = MLP(in_dim, [max(2, in_dim // 2), max(2, in_dim // 4)], 0.0, "relu")
        self.towers = towers(self.bottom.out_dim, kinds, tower, 0.0, "relu")

    def forward_all(self, batch, tasks=None):
        h = self.bottom(batch.x)
        return {t: self.towers[t](h) for t in (tasks or self._tasks)}

    def task_parameter_names(self, task: str) -> list[str]:
        return self._names("bottom.", f"towers.{task}.")


def _toy_rows(d, seed: int):
    """The toy dataset: the MMoE synthetic tasks, small."""
    return synthetic_data(0.8, sizes=(300, 100, 100), seed=seed, dim=12)


def _toy_corpus(root, tasks, dev_size=None):
    """The toy corpus's reader: ``<split>.txt`` in ``root``, a "word tag" line per token, a blank line
    between sentences; an option, ``dev_size``, keeps the first so many dev sentences."""
    out = {}
    for split in ("train", "dev", "test"):
        sentences = [
            block.split("\n") for block in (Path(root) / f"{split}.txt").read_text().strip().split("\n\n")
        ]
        rows = [[line.split() for line in sent] for sent in sentences]
        out[split] = [([w for w, _ in r], [t for _, t in r]) for r in rows]
    out["dev"] = out["dev"][:dev_size]
    return {t: out for t in tasks}


def _write_toy_corpus(folder):
    """Sentences drawn from a fixed vocabulary, each word tagged with its class."""
    rng = random.Random(0)
    vocab = {"the": "DT", "a": "DT", "cat": "NN", "dog": "NN", "runs": "VB", "sees": "VB", "red": "JJ"}
    folder.mkdir()
    for split, n in (("train", 60), ("dev", 20), ("test", 20)):
        sents = [[rng.choice(sorted(vocab)) for _ in range(rng.randint(3, 8))] for _ in range(n)]
        text = "\n\n".join("\n".join(f"{w} {vocab[w]}" for w in s) for s in sents)
        (folder / f"{split}.txt").write_text(text + "\n")
    return folder


@pytest.fixture
def toys(monkeypatch):
    """Each toy registered as its recipe says: one entry in its registry."""
    monkeypatch.setitem(
        MECHANISMS, "funnel", MechanismEntry("funnel", "tabular", Funnel, "a toy", {"tower": "tower"})
    )
    monkeypatch.setitem(NETWORKS, "funnel", Funnel)
    monkeypatch.setitem(
        SYSTEMS, "funnel", System("funnel", "Funnel (toy)", {"tabular": tabular.run_baseline("funnel")})
    )
    monkeypatch.setitem(
        datasets.DATASETS, "toy_rows", Dataset("toy_rows", "tabular", ("t1", "t2"), _toy_rows)
    )
    monkeypatch.setitem(corpora.CORPUS_TASKS, "toy_corpus", ("pos",))
    monkeypatch.setitem(corpora._READERS, "toy_corpus", _toy_corpus)
    monkeypatch.setitem(datasets.CORPUS_OPTIONS, "toy_corpus", lambda d: {"dev_size": d.dev_size})
    monkeypatch.setitem(datasets.DATASETS, "toy_corpus", Dataset("toy_corpus", "sequence", ("pos",)))


def _run(raw: dict, out) -> dict:
    cfg = experiment(raw)
    run_experiment(cfg, out, report=write_report)
    return json.loads((out / "results.json").read_text())


def test_a_toy_mechanism_system_and_dataset_run_from_a_config(toys, tmp_path):
    raw = {"name": "toys", "systems": ["funnel", "shared_bottom"], "data": {"dataset": "toy_rows"},
           "train": {"epochs": 2, "batch_size": 32}}  # fmt: skip
    results = _run(raw, tmp_path / "run")
    funnel = results["systems"]["funnel"]
    assert set(funnel["tasks"]) == {"t1", "t2"}
    assert funnel["params"] > 0 and funnel["params"] != results["systems"]["shared_bottom"]["params"]
    assert "Funnel (toy)" in (tmp_path / "run" / "results.md").read_text()


def test_a_toy_corpus_runs_the_tagging_systems(toys, tmp_path):
    corpus = str(_write_toy_corpus(tmp_path / "corpus"))
    raw = {"name": "toy_tags", "systems": ["single", "hard"],
           "data": {"dataset": "toy_corpus", "embeddings": None, "data_dir": corpus, "dev_size": 15},
           "model": {"word_dim": 8, "char_dim": 4, "char_filters": 4, "hidden": 8},
           "train": {"epochs": 2, "batch_size": 8}}  # fmt: skip
    results = _run(raw, tmp_path / "run")
    assert results["systems"]["hard"]["tasks"]["pos"]["test"] > 0.5  # chance: 0.29 (the tags are the words')
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    read = next(r for r in records if r["phase"] == "data")
    assert read["sentences"] == {"train": 60, "dev": 15, "test": 20}  # the reader's option, from the config


def test_an_unregistered_name_is_one_line_naming_the_key(tmp_path):
    from sparseshare.errors import ConfigError

    with pytest.raises(ConfigError, match=r"'systems': unknown system\(s\) \['funnel'\]"):
        experiment({"name": "x", "systems": ["funnel"], "data": {"dataset": "synthetic"}})


def test_every_key_a_system_reads_is_a_config_key():
    keys = flatten(to_dict(ExperimentConfig("x")))
    for name, system in SYSTEMS.items():
        for key in system.reads:
            assert key in keys or any(k.startswith(key + ".") for k in keys), (name, key)
    claimed = {key for key, systems, _ in AFFECTS if systems}
    assert all(key in claimed for s in SYSTEMS.values() for key in s.reads)


def test_every_tabular_mechanism_is_sized_by_tabular_keys():
    keys = flatten(to_dict(ExperimentConfig("x")))
    for name, entry in MECHANISMS.items():
        for keyword, key in entry.sizes.items():
            assert f"tabular.{key}" in keys, (name, keyword, key)
    assert registry.SYSTEMS is SYSTEMS and mechanisms.MECHANISMS is MECHANISMS


def test_a_config_not_checked_against_the_registries_is_refused_by_the_runner(tmp_path):
    from sparseshare.errors import ConfigError
    from sparseshare.experiments.config.schema import from_dict

    cfg = from_dict(ExperimentConfig, {"name": "x", "data": {"dataset": "synthetic"}})
    with pytest.raises(ConfigError, match="no systems to run; load the config with load_experiment"):
        run_experiment(cfg, tmp_path / "run", report=write_report)
    assert not (tmp_path / "run").exists()
