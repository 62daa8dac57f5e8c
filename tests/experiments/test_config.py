from pathlib import Path

import pytest

from sparseshare.errors import ConfigError
from sparseshare.experiments.config.experiment import ExperimentConfig
from sparseshare.experiments.systems.checks import load_experiment

ROOT = Path(__file__).resolve().parents[2]

CONFIGS = sorted(Path(__file__).resolve().parents[2].joinpath("src/sparseshare/configs").rglob("*.yaml"))


def test_configs_exist():
    names = {p.stem for p in CONFIGS}
    assert {"quickstart", "smoke"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_committed_config_validates(path):
    cfg = load_experiment(path)
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.name == path.stem


def _write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_unknown_key_is_named(tmp_path):
    p = _write(tmp_path, "name: x\ntrain:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError, match=r"c.yaml: unknown config key 'train.lrr'"):
        load_experiment(p)


def test_mistyped_value_is_named(tmp_path):
    p = _write(tmp_path, "name: x\ntrain:\n  epochs: ten\n")
    with pytest.raises(ConfigError, match=r"'train.epochs' must be int, got 'ten'"):
        load_experiment(p)
    p = _write(tmp_path, "name: x\ntrain:\n  epochs: true\n")
    with pytest.raises(ConfigError, match="train.epochs"):
        load_experiment(p)


def test_unknown_names_list_valid_ones(tmp_path):
    p = _write(tmp_path, "name: x\nsystems: [hard, magic]\n")
    with pytest.raises(ConfigError, match=r"unknown system\(s\) \['magic'\] for 'conll2003'; valid"):
        load_experiment(p)
    p = _write(tmp_path, "name: x\ntrain:\n  sampler: greedy\n")
    with pytest.raises(ConfigError, match="valid: .*proportional"):
        load_experiment(p)
    p = _write(tmp_path, "name: x\ndata:\n  tasks: [pos, srl]\n")
    with pytest.raises(ConfigError, match="srl"):
        load_experiment(p)


def test_tabular_datasets_validate_tasks_and_systems(tmp_path):
    cfg = load_experiment(_write(tmp_path, "name: x\ndata:\n  dataset: census\n  tasks: [income, marital]\n"))
    assert cfg.systems == ["single", "shared_bottom", "cross_stitch", "mmoe", "cgc", "ple", "pbfs", "sparse"]
    with pytest.raises(ConfigError, match=r"unknown task\(s\) \['ner'\] for 'census'"):
        load_experiment(_write(tmp_path, "name: x\ndata:\n  dataset: census\n  tasks: [ner]\n"))
    table = "name: x\nsystems: [single_subnet]\ndata: {dataset: census, tasks: [income, marital]}\n"
    only = r"'single_subnet' runs on sequence data only, not on 'census'; valid"
    with pytest.raises(ConfigError, match=only):
        load_experiment(_write(tmp_path, table))
    assert load_experiment(_write(tmp_path, "name: x\nsystems: [mmoe, pbfs]\n")).systems == ["mmoe", "pbfs"]


def test_the_names_a_user_tries_say_which_name_means_it(tmp_path):
    """Hard sharing is 'shared_bottom' on tables and 'hard' on sequences; a near miss is named."""
    table = "name: x\ndata: {dataset: census, tasks: [income, marital]}\n"
    with pytest.raises(ConfigError) as err:
        load_experiment(_write(tmp_path, table + "systems: [hard, hard_matched, hierarchical, pbfss]\n"))
    lines = str(err.value).splitlines()
    assert "c.yaml: 'systems': unknown system(s) ['pbfss'] for 'census'" in lines[0]
    assert lines[0].endswith("('pbfss': did you mean 'pbfs'?)")
    assert "'hard' is named 'shared_bottom' on tabular data such as 'census'" in lines[1]
    assert "'hard_matched' is named 'shared_bottom_matched'" in lines[2]
    assert "'hierarchical' runs on sequence data only, not on 'census'" in lines[3]
    with pytest.raises(
        ConfigError, match=r"'shared_bottom' is named 'hard' on sequence data such as 'conll2003'"
    ):
        load_experiment(_write(tmp_path, "name: x\nsystems: [shared_bottom]\n"))
    with pytest.raises(ConfigError, match=r"pbfs.target_sparsity': no value for task\(s\) \['marital'\]"):
        text = "name: x\ndata: {dataset: census, tasks: [income, marital]}\n"
        text += "pbfs: {target_sparsity: {income: 0.5}}\n"
        load_experiment(_write(tmp_path, text))


def test_overrides_apply_and_validate(tmp_path):
    p = _write(tmp_path, "name: x\n")
    cfg = load_experiment(p, ["train.lr=0.05", "search.force_density={ner: 0.5}", "data.limits.train=10"])
    assert cfg.train.lr == 0.05
    assert cfg.search.force_density == {"ner": 0.5}
    assert cfg.data.limits == {"train": 10}
    with pytest.raises(ConfigError, match="train.nope"):
        load_experiment(p, ["train.nope=1"])
    with pytest.raises(ConfigError, match="key=value"):
        load_experiment(p, ["train.lr"])


def test_bad_yaml_names_line(tmp_path):
    p = _write(tmp_path, "name: x\ntrain: [unclosed\n")
    with pytest.raises(ConfigError, match=r"c.yaml:\d+: not valid YAML"):
        load_experiment(p)


def test_a_search_preset_fills_the_keys_a_config_leaves_unset(tmp_path):
    """search.preset: paper is the protocol of Sun et al. and their scripts (20 warmup epochs, Table 4's
    densities 10^(-n/20) down to 10%, 100 epochs per level without early stopping, and the systems'
    SGD with momentum for 100 epochs); fast is the CPU budget."""
    cfg = load_experiment(_write(tmp_path, "name: x\nsearch: {preset: paper, patience: 3}\n"))
    s = cfg.search
    assert (s.warmup_epochs, s.epochs_per_level, s.min_density, s.patience) == (20, 100, 0.1, 3)
    assert (s.strategy, s.lr_decay) == ("global", 0.05)
    t = cfg.train  # the preset is the whole protocol: the systems' training too
    assert (t.optimizer, t.lr, t.momentum, t.lr_decay, t.epochs, t.patience, t.batch_size, t.clip) == (
        "sgd",
        0.1,
        0.9,
        0.0,
        100,
        0,
        10,
        5.0,
    )
    assert (1 - s.alpha) ** 20 <= 0.1 < (1 - s.alpha) ** 19  # level 20 is the first at <= 10%
    assert abs((1 - s.alpha) ** 10 - 10**-0.5) < 1e-3  # level n keeps 10^(-n/20) (Table 4)
    fast = load_experiment(_write(tmp_path, "name: x\nsearch: {preset: fast}\n")).search
    assert (fast.warmup_epochs, fast.epochs_per_level, fast.alpha, fast.min_density) == (4, 2, 0.2, 0.3)
    # named on the command line, a preset replaces the file's values; other overrides still win
    p = _write(tmp_path, "name: x\nsearch: {alpha: 0.25, warmup_epochs: 2, strategy: layerwise}\n")
    s = load_experiment(p, ["search.warmup_epochs=7", "search.preset=paper"]).search
    assert (s.alpha, s.warmup_epochs, s.epochs_per_level, s.strategy) == (0.1088, 7, 100, "global")
    valid = r"'search.preset': unknown preset 'papr'; valid: \['fast', 'paper'\]"
    with pytest.raises(ConfigError, match=valid):
        load_experiment(p, ["search.preset=papr"])


def test_a_sweep_point_can_name_a_preset(tmp_path):
    from sparseshare.experiments.run.sweep import sweep_points

    text = "name: x\nsearch: {alpha: 0.25}\nsweep:\n  budget:\n    cpu: {search.preset: fast}\n"
    text += "    paper: {search.preset: paper}\n"
    pts = {p.name: p.cfg.search for p in sweep_points(load_experiment(_write(tmp_path, text)))}
    assert (pts["budget=cpu"].alpha, pts["budget=cpu"].epochs_per_level) == (0.2, 2)
    assert (pts["budget=paper"].alpha, pts["budget=paper"].epochs_per_level) == (0.1088, 100)


def test_every_departure_from_a_preset_is_recorded(tmp_path):
    """A key a preset sets that the run changes (a file value under --set, a sweep point) is a departure:
    listed, never silent (mtw_ablation's points pin the warmup under the paper preset)."""
    from sparseshare.experiments.config.experiment import preset_departures
    from sparseshare.experiments.run.sweep import sweep_points

    cfg = load_experiment(ROOT / "configs/mtw_ablation.yaml", ["search.preset=paper", "train.epochs=8"])
    assert preset_departures(cfg) == {"train.epochs": {"value": 8, "preset": 100}}
    got = {p.name: preset_departures(p.cfg) for p in sweep_points(cfg)}
    assert got["warmup=mtw"] == {"search.warmup_epochs": {"value": 4, "preset": 20},
                                 "train.epochs": {"value": 8, "preset": 100}}  # fmt: skip
    assert got["warmup=none"]["search.warmup_epochs"] == {"value": 0, "preset": 20}
    assert preset_departures(load_experiment(ROOT / "configs/mtw_ablation.yaml")) == {}  # no preset named
    plain = load_experiment(_write(tmp_path, "name: x\nsearch: {preset: paper}\n"))
    assert preset_departures(plain) == {}
