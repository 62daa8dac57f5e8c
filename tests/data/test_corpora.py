"""Sequence corpora in configs: data.dataset, data.sources, data.paths validated, then read by the runner."""

import re

import pytest

from sparseshare.data.sources import MARKER, cache_root
from sparseshare.errors import ConfigError
from sparseshare.experiments.config.datasets import read_sequence_tasks as read_tasks
from sparseshare.experiments.run.units import open_context
from sparseshare.experiments.systems.checks import load_experiment
from sparseshare.experiments.systems.registry import systems_for

from .test_readers_formats import CONLL2000, SHARED

PTB = SHARED / "ptb_sample"
needs_shared = pytest.mark.skipif(not (CONLL2000.is_dir() and PTB.is_dir()), reason="../shared/data absent")


def _load(tmp_path, data: str):
    p = tmp_path / "c.yaml"
    p.write_text("name: c\ndata:\n" + "".join(f"  {line}\n" for line in data.strip().split("\n")))
    return load_experiment(p)


def test_every_sequence_dataset_is_sequence(tmp_path):
    for dataset, extra in [
        ("conll2003", ""),
        ("conll2000", "data_dir: /x"),
        ("ptb", "data_dir: /x"),
        ("ontonotes", "data_dir: /x"),
        ("columns", "columns: {train: a, test: b, tags: {ner: 3}}"),
    ]:
        tasks = {"ptb": "[pos]", "conll2000": "[pos, chunk]", "columns": "[ner, position]"}.get(
            dataset, "[ner]"
        )
        cfg = _load(tmp_path, f"dataset: {dataset}\ntasks: {tasks}\n{extra}")
        assert cfg.data.sequence and cfg.systems == systems_for("sequence", default=True)
        assert "sparse_random" in systems_for("sequence") and "sparse_random" not in cfg.systems
    cfg = _load(
        tmp_path, "dataset: mixed\ntasks: [ner, position]\nsources: {ner: conll2003, position: conll2003}"
    )
    assert cfg.data.sequence and cfg.data.task_sources() == {"ner": "conll2003", "position": "conll2003"}
    assert not _load(tmp_path, "dataset: census\ntasks: [income]").data.sequence


@pytest.mark.parametrize(
    "data,message",
    [
        ("dataset: conll2012", r"'data.dataset': unknown dataset 'conll2012'; valid: \["),
        ("dataset: ptb\ntasks: [ner]\ndata_dir: /x", r"'data.tasks': unknown task\(s\) \['ner'\] for 'ptb'"),
        ("dataset: ptb\ntasks: [pos]", r"'data.data_dir' is required: corpus 'ptb' has no download source"),
        (
            "dataset: mixed\ntasks: [pos]",
            r"'data.sources': no corpus for task\(s\) \['pos'\]$",
        ),
        (
            "dataset: mixed\ntasks: [pos]\nsources: {pos: wsj}",
            r"'data.sources.pos': unknown corpus 'wsj'; valid: \['conll2003', 'conll2000', 'ptb'",
        ),
        (
            "dataset: mixed\ntasks: [ner]\nsources: {ner: ptb}\npaths: {ptb: /x}",
            r"'data.sources.ner': corpus 'ptb' has no task 'ner'; its tasks: \['pos', 'position'\]",
        ),
        (
            "dataset: mixed\ntasks: [pos]\nsources: {pos: ptb}",
            r"'data.paths.ptb' is required: corpus 'ptb' has no download source",
        ),
        (
            "dataset: mixed\ntasks: [pos]\nsources: {pos: ptb, ner: conll2003}\npaths: {ptb: /x}",
            r"'data.sources': task\(s\) \['ner'\] not in 'data.tasks'$",
        ),
        (
            "dataset: mixed\ntasks: [ner]\nsources: {ner: conll2003}\ndata_dir: /x",
            r"'data.data_dir' is ambiguous",
        ),
        ("dataset: conll2003\nsources: {ner: conll2003}", r"'data.sources' is only for dataset 'mixed'"),
        ("dataset: conll2003\npaths: {ptb: /x}", r"'data.paths': corpus\(es\) \['ptb'\] not used"),
        ("dataset: conll2003\nptb_split: collins", r"'data.ptb_split': unknown rule 'collins'"),
        (
            "dataset: conll2000\ntasks: [chunk]\ndata_dir: /x\ndev_size: 0",
            r"'data.dev_size' must be >= 1, got 0",
        ),
        ("dataset: columns\ntasks: [ner]", r"'data.columns' is required for the 'columns' corpus"),
        (
            "dataset: columns\ntasks: [pos]\ncolumns: {train: a, test: b, tags: {ner: 3}}",
            r"'data.columns.tags': no column for task\(s\) \['pos'\]; tagged: \['ner'\]",
        ),
        (
            "dataset: columns\ntasks: [a/b]\ncolumns: {train: a, test: b, tags: {a/b: 3}}",
            r"'data.columns.tags': 'a/b' may hold only letters, digits and _ -",
        ),
        (
            "dataset: columns\ntasks: [ner]\ncolumns: {train: a, test: b, tags: {ner: 3}, schemes: {ner: x}}",
            r"'data.columns.schemes.ner': unknown scheme 'x'",
        ),
        (
            "dataset: columns\ntasks: [ner]\ncolumns: {train: a, test: b, tags: {ner: 3}, colour: red}",
            r"unknown config key 'data.columns.colour'",
        ),
    ],
)
def test_unknown_or_missing_names_fail_with_one_line_naming_the_key(tmp_path, data, message):
    with pytest.raises(ConfigError, match=message) as e:
        _load(tmp_path, data)
    lines = str(e.value).splitlines()  # every problem at once, one line each, each naming a key
    assert all(re.match(r".*c.yaml: .*'[a-z_.]+[\w.\[\]/]*'", line) for line in lines), lines


@needs_shared
def test_mixed_config_reads_each_task_from_its_corpus(tmp_path):
    cfg = _load(
        tmp_path,
        f"""dataset: mixed
tasks: [pos, chunk, position]
sources: {{pos: ptb, chunk: conll2000, position: conll2000}}
paths: {{ptb: {PTB}, conll2000: {CONLL2000}}}
limits: {{train: 40, dev: 20, test: 10}}
embeddings: null""",
    )
    raw = read_tasks(cfg.data)
    assert list(raw) == ["pos", "chunk", "position"]
    assert raw["pos"]["train"][0][0][:2] == ["Pierre", "Vinken"]  # PTB
    assert raw["chunk"]["test"][0][0][0] == "Rockwell"  # CoNLL-2000's test.txt
    assert [ws for ws, _ in raw["position"]["dev"]] == [ws for ws, _ in raw["chunk"]["dev"]]
    assert {s: len(raw["chunk"][s]) for s in ("train", "dev", "test")} == {"train": 40, "dev": 20, "test": 10}
    ctx = open_context(cfg, tmp_path)
    specs = {t: (s.metric, s.scheme) for t, s in ctx.tasks.items()}
    assert specs == {"pos": ("accuracy", None), "chunk": ("f1", "bio2"), "position": ("accuracy", None)}
    assert ctx.tasks["position"].data.num_examples("test") == 10
    # one word vocabulary over every task's training words (PTB's and CoNLL-2000's)
    assert "pierre" in ctx.tasks["chunk"].data.word_vocab and "confidence" in ctx.tasks["pos"].data.word_vocab


@needs_shared
def test_one_corpus_dataset_and_columns_from_config(tmp_path):
    cfg = _load(
        tmp_path, f"dataset: conll2000\ntasks: [chunk]\ndata_dir: {CONLL2000}\ndev_size: 500\ndev_seed: 3"
    )
    raw = read_tasks(cfg.data)
    assert {s: len(raw["chunk"][s]) for s in ("train", "dev", "test")} == {
        "train": 8436,
        "dev": 500,
        "test": 2012,
    }
    cfg = _load(
        tmp_path,
        f"""dataset: columns
tasks: [chunk, position]
data_dir: {CONLL2000}
columns: {{train: train.txt, dev: test.txt, test: test.txt, tags: {{chunk: 2}}, schemes: {{chunk: bio2}}}}
limits: {{train: 3}}""",
    )
    raw = read_tasks(cfg.data)
    assert raw["chunk"]["dev"] == raw["chunk"]["test"] and len(raw["chunk"]["test"]) == 2012
    assert raw["chunk"]["train"][0][1][:2] == ["B-NP", "B-PP"] and len(raw["position"]["train"]) == 3


@pytest.mark.skipif(not (cache_root() / "conll2003" / MARKER).exists(), reason="CoNLL-2003 not cached")
@needs_shared
def test_exp3_sources(tmp_path):
    """The paper's Exp3: POS from PTB, chunking from CoNLL-2000, NER from CoNLL-2003 (from the cache)."""
    cfg = _load(
        tmp_path,
        f"""dataset: mixed
sources: {{pos: ptb, chunk: conll2000, ner: conll2003}}
paths: {{ptb: {PTB}, conll2000: {CONLL2000}}}
limits: {{train: 5, dev: 5, test: 5}}""",
    )
    assert cfg.data.tasks == ["pos", "chunk", "ner"]
    raw = read_tasks(cfg.data)
    assert raw["ner"]["train"][0][0][0] == "EU" and raw["ner"]["train"][0][1][0] == "S-ORG"
    assert raw["pos"]["train"][0][0][0] == "Pierre" and raw["chunk"]["test"][0][0][0] == "Rockwell"
