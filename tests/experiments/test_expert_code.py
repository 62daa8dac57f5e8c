"""Experts of the user's own named in a config (``tabular.expert: package.module:factory``;
sharing/expert_code.py): MMoE and PBFS train with them on real census and CoNLL slices, the run's
recipe names the factory, and predict, export and ``load_subnet`` build it only when told how
(``--trust-code``, ``experts=``); every bad reference is one line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

import sparseshare as ss
from sparseshare.cli import main
from sparseshare.errors import ConfigError, RunError
from sparseshare.experiments.results.predict import load_system
from sparseshare.experiments.systems.checks import load_experiment
from sparseshare.sharing.expert_code import import_expert
from sparseshare.sharing.registry import RecipeError, check_recipe
from tests.experiments.expert_factories import GatedExpert, gated

ROOT = Path(__file__).resolve().parents[2]
REF = "tests.experiments.expert_factories:gated"
CENSUS = ["data.limits={train: 1000, dev: 300, test: 300}", "train.epochs=2", "train.batch_size=256",
          "pbfs.frequency=2", "systems=[mmoe, pbfs]", f"tabular.expert={REF}",
          "tabular.expert_dim=6"]  # fmt: skip


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def _sets(sets: list[str]) -> list[str]:
    return [a for s in sets for a in ("--set", s)]


@pytest.fixture(scope="module")
def census(tmp_path_factory):
    out = tmp_path_factory.mktemp("own") / "run"
    assert main(["run", str(ROOT / "configs/pbfs_census.yaml"), "--out", str(out), *_sets(CENSUS)]) == 0
    return out


@pytest.mark.parametrize(
    ("tabular", "systems", "match"),
    [
        ("{expert: 'no reference'}", "[mmoe]", r"'tabular.expert': 'no reference' is not a reference"),
        ("{expert: 'tests.experiments.expert_factories:missing'}", "[mmoe]", r"has no 'missing'"),
        ("{expert: 'tests.experiments.expert_factories:NOT_CALLABLE'}", "[mmoe]", r"is a int, not a call"),
        ("{expert: 'no_such_module_here:f'}", "[mmoe]", r"cannot import 'no_such_module_here'"),
        ("{expert_dim: 4}", "[mmoe]", r"'tabular.expert_dim': sizes experts of your own; set"),
        (f"{{expert: '{REF}', expert_dim: 0}}", "[mmoe]", r"'tabular.expert_dim'"),
        (f"{{expert: '{REF}'}}", "[single, shared_bottom]", r"systems lists none of them"),
    ],
)
def test_a_bad_expert_factory_is_one_line_naming_the_key(tmp_path, tabular, systems, match):
    data = "data: {dataset: census, tasks: [income, marital]}"
    text = f"name: x\nsystems: {systems}\n{data}\ntabular: {tabular}\n"
    with pytest.raises(ConfigError, match=match) as e:
        load_experiment(_write(tmp_path, text))
    assert "\n" not in str(e.value)


def test_a_module_whose_own_code_fails_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "broken_experts.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match=r"cannot import 'broken_experts' \(RuntimeError: boom at import\)"):
        import_expert("broken_experts:f")


def test_a_module_in_the_working_directory_is_found_as_python_m_finds_it(tmp_path, monkeypatch):
    (tmp_path / "here_experts.py").write_text("def f(i, o):\n    return None\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert import_expert("here_experts:f").__module__ == "here_experts"
    assert sys.path[-1] == str(tmp_path)  # after the installed packages: nothing here shadows one


@pytest.mark.integration
def test_mmoe_and_pbfs_train_with_the_configs_experts_and_the_recipe_names_them(census):
    res = json.loads((census / "results.json").read_text())
    for name in ("mmoe", "pbfs"):
        for t in ("income", "marital"):
            assert 0 <= res["systems"][name]["tasks"][t]["test"] <= 1
        recipe = json.loads((census / "systems" / name / "network.json").read_text())
        assert recipe["kwargs"]["expert"] == REF and recipe["kwargs"]["expert_dim"] == 6
    module = load_system(census, "mmoe", "income", experts=import_expert)
    assert all(isinstance(e, GatedExpert) for e in module.experts)  # the factory's, not MLPs
    pbfs = load_system(census, "pbfs", "income", experts={REF: gated})
    assert any(isinstance(m, GatedExpert) for m in pbfs.modules())
    # the PBFS pruner still reached its target over the factory's weights
    assert res["systems"]["pbfs"]["pbfs"]["tested"]["income"]["sparsity"] > 0.05


@pytest.mark.integration
def test_predict_refuses_the_runs_code_in_one_line_unless_trusted(census, tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from sparseshare.data.sources import get_source, resolve
    from sparseshare.data.table_files import read_csv
    from sparseshare.data.tabular_readers import CENSUS_COLUMNS

    raw = read_csv(resolve(get_source("census_income")) / "census_income_1994_1995_test.csv", header=False,
                   names=CENSUS_COLUMNS).take(list(range(20)))  # fmt: skip
    table = tmp_path / "rows.csv"
    pacsv.write_csv(pa.table({n: raw.columns[n] for n in CENSUS_COLUMNS if n != "income"}), table)
    assert main(["predict", str(census), str(table), "--system", "mmoe", "-o", str(tmp_path / "p.csv")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"built by '{REF}'" in err[0] and "--trust-code" in err[0]
    argv = ["predict", str(census), str(table), "--system", "mmoe", "-o", str(tmp_path / "p.csv")]
    assert main([*argv, "--trust-code"]) == 0
    assert "pred_income" in (tmp_path / "p.csv").read_text().splitlines()[0]


@pytest.mark.integration
def test_an_exported_subnet_with_its_own_experts_reloads_only_with_them(census, tmp_path, capsys):
    out = tmp_path / "pbfs-income.safetensors"
    argv = ["export", str(census), "--task", "income", "--system", "pbfs", "-o", str(out)]
    assert main(argv) != 0 and "--trust-code" in capsys.readouterr().err
    assert main([*argv, "--trust-code"]) == 0
    with pytest.raises(RunError, match=rf"{out.name}: its experts are built by '{REF}'") as e:
        ss.load_subnet(out)
    assert "\n" not in str(e.value)
    with pytest.raises(RunError, match=r"which experts= does not give"):
        ss.load_subnet(out, experts={"other.module:f": gated})
    by_name = ss.load_subnet(out, experts={REF: gated})
    imported = ss.load_subnet(out, experts=import_expert)
    for a, b in zip(by_name.state_dict().values(), imported.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)  # NaN: what the file lacks
    assert any(isinstance(m, GatedExpert) for m in by_name.modules())


def test_check_recipe_takes_a_reference_only_where_the_network_has_experts():
    kw = {"n_words": 5, "n_chars": 5, "n_tags": {"pos": 3}, "expert": REF}
    with pytest.raises(RecipeError, match=r"recipe.kwargs.expert: network 'tagger' takes no experts"):
        check_recipe({"network": "tagger", "kwargs": kw})
    mmoe = {"network": "mmoe", "kwargs": {"in_dim": 4, "kinds": {"a": "binary"}, "expert": "os:system()"}}
    with pytest.raises(RecipeError, match=r"is not a reference"):
        check_recipe(mmoe)
    mmoe["kwargs"]["expert"] = REF
    check_recipe(mmoe)  # a name is checked as a name; nothing imported without shapes
    with pytest.raises(RecipeError, match=r"its experts are built by"):
        check_recipe(mmoe, shapes={})


@pytest.mark.integration
def test_mmoe_per_token_trains_with_the_configs_experts_on_conll(tmp_path):
    out = tmp_path / "tok"
    sets = ["data.limits={train: 40, dev: 20, test: 20}", "train.epochs=1", "model.word_dim=12",
            "model.char_dim=6", "model.char_filters=6", "systems=[mmoe, ple]", "tabular.num_experts=2",
            f"tabular.expert={REF}", "tabular.expert_dim=5"]  # fmt: skip
    assert main(["run", "smoke", "--out", str(out), *_sets(sets)]) == 0
    module = load_system(out, "mmoe", "pos", experts={REF: gated})
    assert len(module.experts) == 2 and all(isinstance(e, GatedExpert) for e in module.experts)
    assert isinstance(load_system(out, "ple", "ner", experts={REF: gated}), ss.TokenPLE)


@pytest.mark.integration
def test_the_readmes_config_route_runs_the_examples_expert_from_the_repository_root(tmp_path, monkeypatch):
    """README: ``--set tabular.expert=examples.own_encoder_experts:ResidualExpert`` from the root."""
    monkeypatch.chdir(ROOT)
    ref = "examples.own_encoder_experts:ResidualExpert"
    assert f"tabular.expert={ref}" in (ROOT / "README.md").read_text()
    out = tmp_path / "res"
    sets = ["data.limits={train: 30, dev: 10, test: 10}", "train.epochs=1", "model.word_dim=8",
            "model.char_dim=4", "model.char_filters=4", "systems=[pbfs]",
            f"tabular.expert={ref}"]  # fmt: skip
    assert main(["run", "smoke", "--out", str(out), *_sets(sets)]) == 0
    module = load_system(out, "pbfs", "ner", experts=import_expert)
    assert any(type(m).__name__ == "ResidualExpert" for m in module.modules())
