"""``sparseshare run --log tensorboard|mlflow``: what the backends hold equals metrics.jsonl, once each,
across a resume; a missing package is one line before the run starts."""

import json
import math
import sys
from pathlib import Path

import pytest

from sparseshare import config_files, paths
from sparseshare.cli import main
from sparseshare.experiments.run.tracking import Tracker, scalars, tracked
from sparseshare.experiments.systems.checks import load_experiment
from sparseshare.run_dir import MetricsLog

FAST = [
    *(
        "--set",
        "systems=[single,sparse]",
        "--set",
        "data.tasks=[pos,chunk]",
        "--set",
        "search.min_density=0.6",
    ),
    *("--set", "data.limits.train=40", "--set", "data.limits.dev=20", "--set", "data.limits.test=20"),
    *("--set", "train.epochs=1"),
]


@pytest.fixture(autouse=True)
def _offline_mlflow(monkeypatch):
    """No tracking server of the machine's; reading a file store back needs MLflow 3's opt-in."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "smoke"
    with pytest.MonkeyPatch.context() as mp:  # the run opts in to MLflow's file store itself
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
        assert (
            main(["run", "smoke", "--out", str(out), *FAST, "--log", "tensorboard", "--log", "mlflow"]) == 0
        )
    return out


def expected(log: Path) -> dict[str, list[tuple[int, float]]]:
    """The scalars metrics.jsonl says there are, by tag, in order: spelled out here from the records'
    shapes (the trainer's epochs, the search's levels), not with the module's own conversion."""
    out: dict[str, list[tuple[int, float]]] = {}
    for line in log.read_text().splitlines():
        r = json.loads(line)
        if "epoch" in r:
            p, step = r["phase"], r["epoch"]
            found = {f"{p}/loss": r["loss"], f"{p}/dev_mean": r["dev_mean"]}
            found |= {f"{p}/dev/{t}/{m}": v for t, ms in r["dev"].items() for m, v in ms.items()}
        elif r["phase"] == "search":
            p, step = f"search/{r['task']}", r["level"]
            found = {f"{p}/{k}": r[k] for k in ("density", "dev", "epochs")}
            found |= {f"{p}/all/{m}": v for m, v in r["all"].items()}
        else:
            continue
        for tag, v in found.items():
            out.setdefault(tag, []).append((step, float(v)))
    return out


def tensorboard_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def mlflow_runs(run: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=(run / "mlruns").resolve().as_uri())
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client, client.search_runs(experiments)


def same(got: list[tuple[int, float]], want: list[tuple[int, float]], rel: float = 0.0) -> bool:
    """Equal steps and values (NaN equals NaN); ``rel``: TensorBoard keeps float32."""
    return len(got) == len(want) and all(
        s == t and (math.isclose(a, b, rel_tol=rel, abs_tol=1e-12) or math.isnan(a) and math.isnan(b))
        for (s, a), (t, b) in zip(got, want)
    )


@pytest.mark.integration  # a real run through the CLI (make test-fast leaves it out)
def test_tensorboard_holds_every_scalar_of_metrics_jsonl_once(run):
    want = expected(paths.metrics_log(run))
    got = tensorboard_scalars(run / "tensorboard")
    assert {"warmup/loss", "sparse/dev_mean", "single pos/dev/pos/accuracy", "search/chunk/dev"} <= set(want)
    assert set(got) == set(want)
    bad = [tag for tag in want if not same(sorted(got[tag]), sorted(want[tag]), rel=1e-6)]
    assert not bad, bad


@pytest.mark.integration  # a real run through the CLI (make test-fast leaves it out)
def test_mlflow_holds_every_scalar_in_one_finished_run_with_the_config(run):
    client, runs = mlflow_runs(run)
    assert len(runs) == 1
    info = runs[0]
    assert info.info.status == "FINISHED" and info.data.params["train.epochs"] == "1"
    assert info.data.params["data.tasks"] == "['pos', 'chunk']"
    want = expected(paths.metrics_log(run))
    assert set(info.data.metrics) == set(want)
    for tag, values in want.items():
        history = sorted((m.step, m.value) for m in client.get_metric_history(info.info.run_id, tag))
        assert same(history, sorted(values)), tag
    assert [a.path for a in client.list_artifacts(info.info.run_id)] == ["metrics.jsonl"]


@pytest.mark.integration  # a real run through the CLI (make test-fast leaves it out)
def test_running_a_finished_run_again_logs_nothing(run, capsys):
    state = (run / "tracking.json").read_text()
    events = sorted(p.name for p in (run / "tensorboard").iterdir())
    assert main(["run", "smoke", "--out", str(run), *FAST, "--log", "tensorboard", "--log", "mlflow"]) == 0
    assert "this run is finished" in capsys.readouterr().err
    assert (run / "tracking.json").read_text() == state
    assert sorted(p.name for p in (run / "tensorboard").iterdir()) == events
    client, runs = mlflow_runs(run)
    assert len(runs) == 1
    want = expected(paths.metrics_log(run))
    assert all(len(client.get_metric_history(runs[0].info.run_id, t)) == len(v) for t, v in want.items())


def _epoch(phase: str, epoch: int) -> dict:
    dev = {"pos": {"accuracy": 0.1 * epoch}}
    return {"phase": phase, "epoch": epoch, "loss": 1.0 / (epoch + 1), "dev": dev, "dev_mean": 0.1 * epoch}


def test_an_interrupted_run_resumed_logs_each_record_once_into_the_same_mlflow_run(tmp_path):
    cfg = load_experiment(config_files.resolve("smoke"), [])
    log = MetricsLog(tmp_path)
    log({"phase": "data", "task": "pos", "sentences": {"train": 3}})  # no step: text, not a scalar
    log(_epoch("single pos", 0))
    with pytest.raises(KeyboardInterrupt), tracked(cfg, tmp_path, ["mlflow", "tensorboard"], interval=3600):
        log(_epoch("single pos", 1))
        raise KeyboardInterrupt  # the end of the block logs what the thread had not read yet
    client, runs = mlflow_runs(tmp_path)
    assert [r.info.status for r in runs] == ["KILLED"]
    first = runs[0].info.run_id
    with tracked(cfg, tmp_path, ["tensorboard", "mlflow"], interval=3600):  # the resume
        log(_epoch("single pos", 2))
    client, runs = mlflow_runs(tmp_path)
    assert [(r.info.run_id, r.info.status) for r in runs] == [(first, "FINISHED")]
    history = sorted((m.step, m.value) for m in client.get_metric_history(first, "single pos/loss"))
    assert history == [(0, 1.0), (1, 0.5), (2, 1 / 3)]
    got = tensorboard_scalars(tmp_path / "tensorboard")
    assert set(got) == set(expected(paths.metrics_log(tmp_path)))
    assert sorted(s for s, _ in got["single pos/dev/pos/accuracy"]) == [0, 1, 2]


def test_a_line_still_being_written_waits_and_a_sweep_point_has_its_own_log_and_child_run(tmp_path):
    cfg = load_experiment(
        config_files.resolve("pbfs_synthetic"),
        ["paper.points={}", 'sweep.correlation={"0.2": {data.correlation: 0.2}}'],
    )
    point = paths.point_dir(tmp_path, "correlation=0.2")
    point.mkdir(parents=True)
    tracker = Tracker(tmp_path, {"": cfg, "correlation=0.2": cfg}, ["tensorboard", "mlflow"])
    whole, half = json.dumps(_epoch("pbfs", 0)) + "\n", json.dumps(_epoch("pbfs", 1)) + "\n"
    paths.metrics_log(point).write_text(whole + half[:20])
    tracker.drain()
    paths.metrics_log(point).write_text(whole + half)
    tracker.drain()
    tracker.drain()
    tracker.close("FINISHED")
    got = tensorboard_scalars(tmp_path / "tensorboard" / "correlation=0.2")
    assert got["pbfs/loss"] == [(0, 1.0), (1, 0.5)]
    assert not list((tmp_path / "tensorboard").glob("events.*"))  # the sweep's own log is empty
    client, runs = mlflow_runs(tmp_path)
    by_name = {r.info.run_name: r for r in runs}
    assert set(by_name) == {tmp_path.name, "correlation=0.2"}
    child = by_name["correlation=0.2"]
    assert child.data.tags["mlflow.parentRunId"] == by_name[tmp_path.name].info.run_id
    assert [(m.step, m.value) for m in client.get_metric_history(child.info.run_id, "pbfs/loss")] == [
        (0, 1.0),
        (1, 0.5),
    ]


def test_record_scalars_skip_labels_flags_and_stepless_records():
    level = {"phase": "search", "task": "ner", "level": 2, "density": 0.5, "dev": 0.7, "epochs": 3,
             "all": {"f1": 0.7}, "seed": 12345, "best": True}  # fmt: skip
    assert scalars(level) == (2, {"search/ner/density": 0.5, "search/ner/dev": 0.7, "search/ner/epochs": 3.0,
                                  "search/ner/all/f1": 0.7})  # fmt: skip
    assert scalars({"phase": "search_done", "seconds": 3.0, "epochs": {"ner": 4}}) is None


@pytest.mark.parametrize(("backend", "module"), [("tensorboard", "tensorboard"), ("mlflow", "mlflow")])
def test_a_missing_package_is_one_line_naming_the_extra_before_anything_runs(
    backend, module, tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if it were not installed
    out = tmp_path / "run"
    assert main(["run", "smoke", "--out", str(out), "--log", backend]) == 2
    need = f"--log {backend} needs the {module} package: pip install 'sparseshare[{backend}]'"
    assert capsys.readouterr().err.splitlines() == [f"sparseshare: error: {need}"]
    assert not out.exists()


def test_an_unknown_backend_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["run", "smoke", "--out", str(tmp_path), "--log", "wandb"])
    assert e.value.code == 2 and "invalid choice: 'wandb'" in capsys.readouterr().err


def test_a_damaged_tracking_state_is_one_line_and_repair_sends_everything_again(tmp_path, capsys):
    out = tmp_path / "r"
    out.mkdir()
    paths.tracking_state(out).write_text('{"tensorboard": {')  # cut short by a full disk, say
    assert main(["run", "smoke", "--out", str(out), *FAST, "--log", "tensorboard"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tracking.json" in err[0] and "--repair" in err[0], err
    assert main(["run", "smoke", "--out", str(out), *FAST, "--log", "tensorboard", "--repair"]) == 0
    state = json.loads(paths.tracking_state(out).read_text())
    assert state["tensorboard"]  # written afresh, with every record of metrics.jsonl sent
    got = tensorboard_scalars(out / "tensorboard")
    assert set(got) == set(expected(paths.metrics_log(out)))
