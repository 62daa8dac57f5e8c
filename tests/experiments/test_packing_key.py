"""``model.packing`` (issue 23, the sequence loop): ``false`` runs every system's BiLSTM unpacked (one
dense kernel per direction), from the config through export; the default leaves recipes as they were."""

from __future__ import annotations

import json

from sparseshare.cli import main
from sparseshare.models.tagger import bilstm, bilstm_unpacked
from tests.helpers import export_reproduces_the_run

TINY = ["data.limits={train: 16, dev: 8, test: 8}", "train.epochs=1", "search.warmup_epochs=1"]


def _run(out, *sets) -> int:
    return main(["run", "smoke", "--out", str(out)] + [a for s in (*TINY, *sets) for a in ("--set", s)])


def _recipe(run, system: str) -> dict:
    return json.loads((run / "systems" / system / "network.json").read_text())


def test_unpacked_runs_every_tagger_system_and_exports(tmp_path):
    from sparseshare.experiments.results.predict import load_system

    run = tmp_path / "run"
    systems = "systems=[hard, hierarchical, cross_stitch]"
    assert _run(run, systems, "model.packing=false") == 0
    assert _recipe(run, "hard")["kwargs"]["packing"] is False
    for system in ("hard", "hierarchical", "cross_stitch"):
        module = load_system(run, system, "pos")
        runs = {getattr(m, "run_lstm", None) for m in module.modules()} - {None}
        assert runs == {bilstm_unpacked}, (system, runs)
    (tmp_path / "export").mkdir()
    export_reproduces_the_run(run, "hard", tmp_path / "export")


def test_the_default_recipe_does_not_name_packing(tmp_path):
    from sparseshare.experiments.results.predict import load_system

    run = tmp_path / "run"
    assert _run(run, "systems=[hard]") == 0
    assert "packing" not in _recipe(run, "hard")["kwargs"]
    module = load_system(run, "hard", "pos")
    assert {getattr(m, "run_lstm", None) for m in module.modules()} - {None} == {bilstm}
