"""``data.pad_to`` (issue 23, fixed shapes): a sequence run's batches rounded up to a length bucket, from
the config; a value it cannot use is one line naming the key."""

from __future__ import annotations

import json

import pytest

from sparseshare import config_files
from sparseshare.cli import main
from sparseshare.experiments.config.experiment import load_config
from sparseshare.experiments.systems.context import prepare_data

TINY = ["data.limits={train: 16, dev: 8, test: 8}", "systems=[hard]", "train.epochs=1"]


def _sets(items):
    return [a for s in items for a in ("--set", s)]


@pytest.mark.parametrize(
    "pad_to, sizes", [(8, {8, 16, 24, 32, 40, 48, 56, 64}), ("pow2", {1, 2, 4, 8, 16, 32, 64, 128})]
)
def test_the_config_pads_every_batch_to_its_bucket(tmp_path, pad_to, sizes):
    sets = ["data.limits={train: 40, dev: 8, test: 8}", f"data.pad_to={pad_to}"]
    cfg = load_config(config_files.path("smoke"), sets)
    prepared = prepare_data(cfg.data, cfg.model, 0, tmp_path)
    seen = set()
    for task in prepared.tasks.values():
        for split in ("train", "dev"):
            for b in task.data.batches(split, 7):
                seen.add(b.words.shape[1])
                seen.add(b.chars.shape[2])
    assert seen and seen <= sizes, seen


def test_a_run_with_pad_to_finishes(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "smoke", "--out", str(out)] + _sets(TINY + ["data.pad_to=8"])) == 0
    res = json.loads((out / "results.json").read_text())
    assert all(0 <= r["test"] <= 1 for r in res["systems"]["hard"]["tasks"].values())


@pytest.mark.parametrize(
    "config, value, says",
    [
        ("smoke", "x", "'data.pad_to': want 0, a multiple from 1 to 1024 or 'pow2', got 'x'"),
        ("smoke", "-8", "'data.pad_to': want 0, a multiple from 1 to 1024 or 'pow2', got -8"),
        ("pbfs_census", "8", "'data.pad_to': only for sequence corpora, not dataset 'census'"),
    ],
)
def test_a_bad_pad_to_is_one_line(tmp_path, capsys, config, value, says):
    assert main(["run", config, "--out", str(tmp_path / "r"), "--set", f"data.pad_to={value}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and says in err, err
    assert not (tmp_path / "r").exists()
