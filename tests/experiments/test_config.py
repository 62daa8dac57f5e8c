from pathlib import Path

import pytest

from sparseshare.errors import ConfigError
from sparseshare.experiments.config import ExperimentConfig, load_config

CONFIGS = sorted(Path(__file__).resolve().parents[2].joinpath("src/sparseshare/configs").rglob("*.yaml"))


def test_configs_exist():
    names = {p.stem for p in CONFIGS}
    assert {"quickstart", "smoke"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_committed_config_validates(path):
    cfg = load_config(path)
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.name == path.stem


def _write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_unknown_key_is_named(tmp_path):
    p = _write(tmp_path, "name: x\ntrain:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError, match=r"c.yaml: unknown config key 'train.lrr'"):
        load_config(p)


def test_mistyped_value_is_named(tmp_path):
    p = _write(tmp_path, "name: x\ntrain:\n  epochs: ten\n")
    with pytest.raises(ConfigError, match=r"'train.epochs' must be int, got 'ten'"):
        load_config(p)
    p = _write(tmp_path, "name: x\ntrain:\n  epochs: true\n")
    with pytest.raises(ConfigError, match="train.epochs"):
        load_config(p)


def test_unknown_names_list_valid_ones(tmp_path):
    p = _write(tmp_path, "name: x\nsystems: [hard, magic]\n")
    with pytest.raises(ConfigError, match=r"unknown system\(s\) \['magic'\] for 'conll2003'; valid"):
        load_config(p)
    p = _write(tmp_path, "name: x\ntrain:\n  sampler: greedy\n")
    with pytest.raises(ConfigError, match="valid: .*proportional"):
        load_config(p)
    p = _write(tmp_path, "name: x\ndata:\n  tasks: [pos, srl]\n")
    with pytest.raises(ConfigError, match="srl"):
        load_config(p)


def test_tabular_datasets_validate_tasks_and_systems(tmp_path):
    cfg = load_config(_write(tmp_path, "name: x\ndata:\n  dataset: census\n  tasks: [income, marital]\n"))
    assert cfg.systems == ["single", "shared_bottom", "cross_stitch", "mmoe", "cgc", "ple", "pbfs", "sparse"]
    with pytest.raises(ConfigError, match=r"unknown task\(s\) \['ner'\] for 'census'"):
        load_config(_write(tmp_path, "name: x\ndata:\n  dataset: census\n  tasks: [ner]\n"))
    with pytest.raises(ConfigError, match=r"unknown system\(s\) \['mmoe'\] for 'conll2003'"):
        load_config(_write(tmp_path, "name: x\nsystems: [mmoe]\n"))
    with pytest.raises(ConfigError, match=r"pbfs.target_sparsity': no value for task\(s\) \['marital'\]"):
        text = "name: x\ndata: {dataset: census, tasks: [income, marital]}\n"
        text += "pbfs: {target_sparsity: {income: 0.5}}\n"
        load_config(_write(tmp_path, text))


def test_overrides_apply_and_validate(tmp_path):
    p = _write(tmp_path, "name: x\n")
    cfg = load_config(p, ["train.lr=0.05", "search.force_density={ner: 0.5}", "data.limits.train=10"])
    assert cfg.train.lr == 0.05
    assert cfg.search.force_density == {"ner": 0.5}
    assert cfg.data.limits == {"train": 10}
    with pytest.raises(ConfigError, match="train.nope"):
        load_config(p, ["train.nope=1"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(p, ["train.lr"])


def test_bad_yaml_names_line(tmp_path):
    p = _write(tmp_path, "name: x\ntrain: [unclosed\n")
    with pytest.raises(ConfigError, match=r"c.yaml:\d+: not valid YAML"):
        load_config(p)
