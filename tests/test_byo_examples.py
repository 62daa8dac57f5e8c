"""The README's bring-your-own-data examples run as written: their configs, their files, their snippets."""

import json
from pathlib import Path

import pytest
import yaml

from sparseshare import paths
from sparseshare.cli import main
from sparseshare.experiments.systems.checks import load_experiment
from tests.helpers import readme_blocks

pytestmark = pytest.mark.integration  # the CLI on real data, Ray clusters (make test-fast leaves them out)

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["byo_sequence", "byo_table"])
def test_the_example_runs_from_the_repository_root(name, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    out = tmp_path / name
    assert main(["run", f"examples/{name}/config.yaml", "--out", str(out), "--set", "train.epochs=3"]) == 0
    res = json.loads((out / "results.json").read_text())
    err = capsys.readouterr().err
    if name == "byo_sequence":
        assert list(res["systems"]["sparse"]["tasks"]) == ["coarse_pos", "fine_pos", "places", "other_pos"]
        metrics = {t: r["metric"] for t, r in res["systems"]["hard"]["tasks"].items()}
        assert metrics == {
            "coarse_pos": "accuracy",
            "fine_pos": "accuracy",
            "places": "f1",
            "other_pos": "accuracy",
        }
        assert "data: other_pos: train 120 sentences / 790 tokens" in err  # counts per split are logged
        assert all(r["test"] > 0.8 for r in res["systems"]["hard"]["tasks"].values())
    else:
        assert set(res["systems"]["pbfs"]["tasks"]) == {"clicked_7d", "spend"}
        named = [p for p in out.rglob("*") if p != paths.lock(out)]  # the run's lock is its one dot-file
        assert not any("/" in p.name or p.name.startswith(".") for p in named)
        assert res["systems"]["single"]["tasks"]["clicked_7d"]["test"] > 0.8  # AUC


def test_the_readme_snippets_are_valid_configs(tmp_path, monkeypatch):
    blocks = readme_blocks("Bring your own data", "yaml")
    assert len(blocks) == 2
    monkeypatch.chdir(ROOT)
    for i, block in enumerate(blocks):
        raw = {"name": f"snippet{i}", **yaml.safe_load(block)}
        path = tmp_path / f"s{i}.yaml"
        path.write_text(yaml.safe_dump(raw))
        cfg = load_experiment(path)
        assert cfg.data.dataset in ("columns", "table")
