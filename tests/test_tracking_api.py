"""``ss.tracker`` (sparseshare/tracking.py): the Python API's ``log=`` sends every epoch's and IMP
level's numbers to TensorBoard or MLflow, each scalar once, equal to the records the calls give; the
config's ``log`` key does what ``--log`` does; an unknown or missing backend is one line."""

from __future__ import annotations

import json

import pytest

import sparseshare as ss
from sparseshare import config_files
from sparseshare.cli import main
from sparseshare.errors import ConfigError
from sparseshare.experiments.systems.checks import load_experiment
from tests.experiments.test_tracking import FAST, expected, mlflow_runs, same, tensorboard_scalars
from tests.training.test_pipeline import SETTINGS, TwoTaskMLP, _tasks


@pytest.fixture(autouse=True)
def _offline_mlflow(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")


def _calls(log) -> list[dict]:
    """warmup, an IMP search and joint training of a toy model, every record also kept here."""
    records = []

    def both(record: dict) -> None:
        records.append(json.loads(json.dumps(record)))  # as metrics.jsonl would hold it
        log(record)

    model, tasks = TwoTaskMLP(), _tasks()
    state = ss.warmup(model, tasks, SETTINGS.replace(epochs=2), log=both, progress=False)
    search = ss.SearchSettings(epochs_per_level=1, alpha=0.5, min_density=0.4)
    found = ss.search_masks(model, tasks, state, search=search, settings=SETTINGS, log=both, progress=False)
    model.load_state_dict(state)
    sparse = ss.SparseSharing(model, ss.select_subnets(found))
    ss.train_jointly(sparse, tasks, SETTINGS.replace(epochs=2), log=both, progress=False)
    return records


def _want(records: list[dict], tmp_path) -> dict:
    log = tmp_path / "records.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    return expected(log)


def test_tensorboard_gets_every_scalar_of_the_api_calls_once(tmp_path):
    with ss.tracker("tensorboard", tmp_path / "tb") as log:
        records = _calls(log)
    want = _want(records, tmp_path)
    assert any(t.startswith("search/") for t in want) and any(t.endswith("/loss") for t in want)
    got = tensorboard_scalars(tmp_path / "tb")
    assert set(got) == set(want)
    bad = [tag for tag in want if not same(sorted(got[tag]), sorted(want[tag]), rel=1e-6)]
    assert not bad, bad
    with pytest.raises(ConfigError, match=r"tracker\('tensorboard'\) is closed"):
        log({"phase": "x", "epoch": 1, "loss": 1.0})


def test_mlflow_gets_one_run_with_the_params_and_every_scalar(tmp_path):
    with ss.tracker(
        "mlflow", tmp_path / "mlruns", experiment="toy", run_name="api", params={"lr": 0.2}
    ) as log:
        records = _calls(log)
    client, runs = mlflow_runs(tmp_path)
    assert len(runs) == 1 and runs[0].info.run_id == log.run
    info = runs[0]
    assert (
        info.info.status == "FINISHED" and info.info.run_name == "api" and info.data.params == {"lr": "0.2"}
    )
    want = _want(records, tmp_path)
    assert set(info.data.metrics) == set(want)
    for tag, values in want.items():
        history = sorted((m.step, m.value) for m in client.get_metric_history(info.info.run_id, tag))
        assert same(history, sorted(values)), tag


def test_an_interrupted_block_ends_the_mlflow_run_killed(tmp_path):
    with pytest.raises(KeyboardInterrupt), ss.tracker("mlflow", tmp_path / "mlruns") as log:
        log({"phase": "joint", "epoch": 1, "loss": 0.5})
        raise KeyboardInterrupt
    assert mlflow_runs(tmp_path)[1][0].info.status == "KILLED"


def test_an_unknown_or_missing_backend_is_one_line(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"tracker: unknown tracking backend 'wandb'; valid"):
        ss.tracker("wandb", tmp_path)
    import importlib

    real = importlib.import_module

    def no_mlflow(name, *a, **k):
        if name == "mlflow" or name.startswith("mlflow."):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr("sparseshare.tracking.importlib.import_module", no_mlflow)
    with pytest.raises(
        ConfigError, match=r"tracker mlflow needs the mlflow package: pip install 'sparseshare\[mlflow\]'"
    ):
        ss.tracker("mlflow", tmp_path)


def test_the_configs_log_key_is_checked_and_adds_to_the_flag(tmp_path):
    smoke = config_files.resolve("smoke")
    with pytest.raises(
        ConfigError, match=r"'log': unknown tracker 'wandb'; valid: \['mlflow', 'tensorboard'\]"
    ):
        load_experiment(smoke, ["log=[wandb]"])
    assert load_experiment(smoke, ["log=[tensorboard]"]).log == ["tensorboard"]


@pytest.mark.integration  # a real run through the CLI
def test_a_run_whose_config_names_tensorboard_logs_without_the_flag(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "smoke", "--out", str(out), *FAST, "--set", "log=[tensorboard]"]) == 0
    want = expected(out / "metrics.jsonl")
    assert set(tensorboard_scalars(out / "tensorboard")) == set(want)
