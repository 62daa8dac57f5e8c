"""MMoE, CGC, PLE and PBFS per token on sequence data from a config (experiments/systems/
token_experts.py): the CLI on a slice of real CoNLL data, predict and export from the run alone, a
killed PBFS run resumed to the numbers of a straight one, and sequence configs without a systems list
running what they always ran."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import sparseshare as ss
from sparseshare import config_files
from sparseshare.cli import main
from sparseshare.experiments.systems.checks import load_experiment
from sparseshare.experiments.systems.registry import systems_for
from sparseshare.training.callbacks import PBFSSchedule

pytestmark = pytest.mark.integration  # the CLI on real data

SLICE = ["data.limits={train: 40, dev: 20, test: 20}", "train.epochs=3", "train.patience=0",
         "model.word_dim=12", "model.char_dim=6", "model.char_filters=6", "tabular.num_experts=3",
         "tabular.mmoe_expert=[8]", "tabular.ple_expert=[8]", "tabular.pbfs_expert=[8, 8]"]  # fmt: skip
SYSTEMS = ["mmoe", "cgc", "ple", "pbfs"]


def _run(out: Path, *sets: str, status: int = 0) -> dict | None:
    argv = ["run", "smoke", "--out", str(out)]
    for s in [*SLICE, f"systems=[{', '.join(SYSTEMS)}]", *sets]:
        argv += ["--set", s]
    assert main(argv) == status
    return json.loads((out / "results.json").read_text()) if status == 0 else None


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tok") / "run"
    return out, _run(out)


def test_each_gated_system_runs_on_sequence_data_with_the_tables_metrics(run):
    out, res = run
    systems = res["systems"]
    assert list(systems) == SYSTEMS
    tasks = ["pos", "chunk", "ner"]
    for name in SYSTEMS:
        assert sorted(systems[name]["tasks"]) == sorted(tasks)
        assert systems[name]["params"] > 0  # experts and gates (no embeddings, no decoders)
        for t in tasks:
            assert 0 <= systems[name]["tasks"][t]["test"] <= 1
    assert systems["ple"]["params"] > systems["cgc"]["params"]  # two levels against one
    table = (out / "results.md").read_text()
    for label in ("| MMoE |", "| CGC |", "| PLE |", "| PBFS |"):
        assert label in table
    pbfs = systems["pbfs"]["pbfs"]
    assert pbfs["pools"] == [tasks]
    for t in tasks:  # each task tested on its own best subnet, at a sparsity the schedule passed
        assert pbfs["tested"][t]["sparsity"] == pytest.approx(pbfs["best"][t]["sparsity"])
        assert 0.1 <= pbfs["tested"][t]["sparsity"] <= 0.7 + 0.01  # whole weights per matrix


def test_predict_and_export_read_the_run_alone(run, tmp_path):
    out, res = run
    conll = tmp_path / "new.conll"
    conll.write_text("EU NNP\nrejects VBZ\nGerman JJ\n\nPeter NNP\nBlackburn NNP\n")
    for system in SYSTEMS:
        pred = tmp_path / f"{system}.conll"
        assert main(["predict", str(out), str(conll), "--system", system, "-o", str(pred)]) == 0
        rows = [line.split() for line in pred.read_text().splitlines() if line.strip()]
        assert len(rows) == 5 and all(len(r) == 2 + 3 for r in rows)
        sub = tmp_path / f"{system}.safetensors"
        assert main(["export", str(out), "--task", "pos", "--system", system, "-o", str(sub)]) == 0
        assert ss.load_subnet(sub).tasks == ["pos"]


def test_a_killed_pbfs_run_resumes_to_the_numbers_of_a_straight_one(tmp_path, monkeypatch):
    straight = _run(tmp_path / "straight", "systems=[pbfs]")["systems"]["pbfs"]
    calls, real = [], PBFSSchedule.on_eval

    def dies_at_epoch_two(self, dev):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, dev)

    monkeypatch.setattr(PBFSSchedule, "on_eval", dies_at_epoch_two)
    _run(tmp_path / "killed", "systems=[pbfs]", status=130)  # Ctrl-C: the CLI's exit status
    assert len(calls) == 2 and not (tmp_path / "killed" / "results.json").exists()
    monkeypatch.setattr(PBFSSchedule, "on_eval", real)
    resumed = _run(tmp_path / "killed", "systems=[pbfs]")["systems"]["pbfs"]
    assert resumed["tasks"] == straight["tasks"] and resumed["pbfs"] == straight["pbfs"]


def test_sequence_configs_without_a_systems_list_run_what_they_always_did():
    assert systems_for("sequence", default=True) == [
        "single", "single_subnet", "hard", "cross_stitch", "hierarchical", "sparse"
    ]  # fmt: skip
    assert {"mmoe", "cgc", "ple", "pbfs"} <= set(systems_for("sequence"))
    cfg = load_experiment(config_files.resolve("smoke"), ["systems=[]"])
    assert cfg.systems == systems_for("sequence", default=True)


def test_a_gradient_weighting_with_sampled_token_systems_is_refused_in_one_line(capsys):
    argv = ["run", "smoke", "--out", "/nonexistent/never", "--set", "systems=[mmoe]",
            "--set", "train.weighting=pcgrad"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "['mmoe']" in err[0] and "sampled" in err[0]
