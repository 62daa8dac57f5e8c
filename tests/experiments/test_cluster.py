"""run --jobs N on Ray (experiments/run/cluster.py): a cluster address, a worker killed mid-unit, the driver
killed and resumed, Ctrl-C, a unit's error, and the same numbers as --jobs 1 throughout."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from sparseshare.cli import main

pytestmark = pytest.mark.integration  # the CLI on real data, Ray clusters (make test-fast leaves them out)

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "configs" / "smoke.yaml")
# the hard-sharing system alone, long enough to be killed in the middle of its training
# how long a wait may last before the test calls it a hang (never a speed check: CI machines are busy)
HANG = 900
LONG_HARD = ["--set", "systems=[hard]", "--set", "train.epochs=12", "--set", "train.patience=0"]


def _argv(out: Path, *flags: str) -> list[str]:
    return ["run", SMOKE, "--out", str(out), *flags]


def _numbers(run: Path) -> dict:
    """results.json without what depends on the machine or the moment."""

    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in ("seconds", "meta")}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    return strip(json.loads((run / "results.json").read_text()))


def _records(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    """The smoke run and the long hard-sharing run, --jobs 1 (one torch thread, as each Ray unit here)."""
    root = tmp_path_factory.mktemp("seq")
    assert main(_argv(root / "smoke")) == 0
    assert main(_argv(root / "hard", *LONG_HARD)) == 0
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    ray = Path(sys.executable).with_name("ray")
    return subprocess.run([str(ray), *args], capture_output=True, text=True, timeout=HANG, env=env)


def _stop_cluster(temp: str) -> None:
    """Stop the cluster whose processes name ``temp`` in their command lines, and no other Ray on the
    machine (``ray stop`` would also end a Ray experiment running beside the tests)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = subprocess.run(["pgrep", "-f", temp], capture_output=True, text=True).stdout.split()
        for pid in map(int, pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        time.sleep(2 if sig == signal.SIGTERM and pids else 0)


@pytest.mark.slow  # starts a cluster of its own (`ray start`): ~80 s quiet, 10 min on a busy machine
def test_a_cluster_address_runs_the_units_there_with_the_same_numbers(sequential, tmp_path):
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # Ray's socket paths must stay short
    started = _ray("start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
                   f"--temp-dir={temp}", "--disable-usage-stats")  # fmt: skip
    assert started.returncode == 0, started.stderr[-2000:]
    try:
        out = tmp_path / "on_cluster"
        assert main(_argv(out, "--jobs", "2", "--address", f"127.0.0.1:{port}")) == 0
    finally:
        _stop_cluster(temp)
    assert _numbers(out) == _numbers(sequential / "smoke")
    jobs = [r for r in _records(out) if r["phase"] == "job"]
    searches = {"search:pos", "search:chunk", "search:ner"}
    assert {r["unit"] for r in jobs} == {"warmup", *searches, "single", "hard", "sparse"}
    assert os.getpid() not in {r["pid"] for r in jobs}


def test_an_address_that_does_not_answer_is_one_line(tmp_path, capsys):
    """Before any data is read: the one line is all stderr holds (no 'data:' lines), nothing is written."""
    assert main(_argv(tmp_path / "r", "--jobs", "2", "--address", f"127.0.0.1:{_free_port()}")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no Ray cluster answers there" in err[0], err
    assert not (tmp_path / "r" / "preprocess.json").exists()


@pytest.mark.slow  # ~60 s quiet; the killed-driver test keeps a Ray fault (and the watcher) in make test
def test_a_worker_killed_mid_unit_is_retried_from_its_last_commit(sequential, tmp_path):
    out = tmp_path / "killed_worker"
    last = out / "systems" / "hard" / "last.safetensors"
    killed = {}

    def kill_the_unit():
        deadline = time.time() + HANG
        while time.time() < deadline and not killed:
            if last.exists():  # the driver wrote a commit of the unit: it is mid-training
                starts = [r for r in _records(out) if r["phase"] == "job_start" and r["unit"] == "hard"]
                killed["pid"] = starts[0]["pid"]  # logs are written before the files they precede
                os.kill(killed["pid"], signal.SIGKILL)
            time.sleep(0.02)

    watcher = threading.Thread(target=kill_the_unit)
    watcher.start()
    try:
        assert main(_argv(out, "--jobs", "2", *LONG_HARD)) == 0
    finally:
        watcher.join()
    assert killed, "the unit finished before it could be killed"
    assert _numbers(out) == _numbers(sequential / "hard")
    records = _records(out)
    starts = [r for r in records if r["phase"] == "job_start"]
    assert [r["attempt"] for r in starts] == [1, 2] and starts[0]["pid"] == killed["pid"]
    assert starts[1]["committed_files"] > 0  # the retry began from the files the first attempt committed
    epochs = [r["epoch"] for r in records if r["phase"] == "hard"]
    assert epochs.count(0) == 1 and sorted(set(epochs)) == list(range(12))  # not rerun from scratch


def _cli(out: Path, *flags: str, env: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    argv = [sys.executable, "-m", "sparseshare.cli", *_argv(out, *flags)]
    # as from a terminal: SIGINT at its default even where this process ignores it (a background job)
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = HANG) -> None:
    deadline = time.time() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.02)


@pytest.mark.slow  # 80 s of Ray restarts: make test-slow
def test_a_killed_driver_resumes_and_ctrl_c_leaves_a_resumable_run(sequential, tmp_path):
    out = tmp_path / "killed_driver"
    proc = _cli(out, "--jobs", "2", *LONG_HARD)
    _wait_for(out / "systems" / "hard" / "last.safetensors", proc)
    proc.kill()  # SIGKILL: no cleanup of any kind
    proc.wait(timeout=HANG)

    # Ctrl-C in the middle of the resumed run: the cluster's tasks are cancelled, the run stays resumable
    def trained_again() -> bool:
        """The resumed unit has trained an epoch (its record follows its second job_start)."""
        phases = [r["phase"] for r in _records(out)]
        second = [i for i, p in enumerate(phases) if p == "job_start"][1:2]
        return bool(second) and "hard" in phases[second[0] :]

    assert sum(r["phase"] == "job_start" for r in _records(out)) == 1
    proc = _cli(out, "--jobs", "2", *LONG_HARD)
    deadline = time.time() + HANG
    while not trained_again():  # the unit is training again, its epochs (12) mostly ahead
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.time() < deadline, "the resumed unit never trained"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=HANG)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted; run the same command again to resume" in err
    assert not (out / "results.json").exists()
    assert main(_argv(out, "--jobs", "2", *LONG_HARD)) == 0
    assert _numbers(out) == _numbers(sequential / "hard")
    records = _records(out)
    starts = [r for r in records if r["phase"] == "job_start"]
    assert len(starts) == 3 and all(r["input_files"] > 0 for r in starts[1:])  # its commits went along
    epochs = [r["epoch"] for r in records if r["phase"] == "hard"]
    assert epochs.count(0) == 1 and sorted(set(epochs)) == list(range(12))  # never from scratch


@pytest.mark.slow  # ~50 s quiet
def test_sigterm_under_jobs_is_the_ctrl_c_line_and_leaves_no_unit_folders(sequential, tmp_path):
    """SIGTERM (a scheduler ending the job) during --jobs 2: the Ctrl-C line, not Ray's C++ stack; the
    units' private folders are gone; the same command resumes to the uninterrupted numbers."""
    out = tmp_path / "terminated"
    temp = Path(tempfile.mkdtemp(prefix="st", dir="/tmp"))  # short: Ray's sockets live under TMPDIR too
    proc = _cli(out, "--jobs", "2", *LONG_HARD, env={"TMPDIR": str(temp)})
    _wait_for(out / "systems" / "hard" / "last.safetensors", proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=HANG)
    assert proc.returncode == 130, err[-2000:]
    lines = [x for x in err.splitlines() if x.startswith("sparseshare: ") and "data:" not in x]
    assert lines == ["sparseshare: interrupted; run the same command again to resume"], err[-2000:]
    assert "Traceback" not in err and "SIGTERM" not in err, err[-2000:]
    assert not list(temp.glob("sparseshare-unit*")), list(temp.iterdir())
    _stop_cluster(temp.name)
    assert main(_argv(out, "--jobs", "2", *LONG_HARD)) == 0
    assert _numbers(out) == _numbers(sequential / "hard")


def test_a_units_error_stops_the_run_in_one_line_naming_the_unit(tmp_path, capsys):
    argv = ["run", str(ROOT / "configs" / "pbfs_synthetic.yaml"), "--set", "systems=[single, mmoe]",
            "--set", "data.sizes=[300, 100, 100]", "--set", "train.bucket=4"]  # fmt: skip

    def errors() -> list[str]:
        return [x for x in capsys.readouterr().err.splitlines() if x.startswith("sparseshare: error:")]

    assert main([*argv, "--out", str(tmp_path / "seq")]) == 2
    sequential = errors()
    assert main([*argv, "--out", str(tmp_path / "par"), "--jobs", "2"]) == 2
    err = errors()
    assert len(sequential) == 1 and "'train.bucket': the data of" in sequential[0]
    assert len(err) == 1 and err[0].startswith("sparseshare: error: unit '"), err
    assert err[0].split("': ", 1)[1] == sequential[0].removeprefix("sparseshare: error: ")


def test_a_local_rays_units_run_at_the_drivers_priority():
    """Ray starts workers 15 nice levels down; beside any busy process the units would starve."""
    import ray

    from sparseshare.experiments.run.cluster import ray_session

    with ray_session(1, None, 1):

        @ray.remote
        def niceness():
            return os.nice(0)

        assert ray.get(niceness.remote()) == os.nice(0)


@pytest.mark.slow  # 50 s: make test-slow (the killed driver, in make test, covers the watcher's resume)
def test_ray_failing_under_the_run_is_one_line_and_the_run_resumes(sequential, tmp_path):
    """The local Ray's raylet killed mid-unit (as `ray stop` elsewhere on the machine does): one line,
    exit 2, no traceback; the same command resumes to the uninterrupted numbers."""
    out, temp = tmp_path / "raylet_killed", tempfile.mkdtemp(prefix="rk", dir="/tmp")
    proc = _cli(out, "--jobs", "2", *LONG_HARD, env={"RAY_TMPDIR": temp})
    _wait_for(out / "systems" / "hard" / "last.safetensors", proc)
    subprocess.run(["pkill", "-9", "-f", f"raylet.*{temp}"], check=True)
    _, err = proc.communicate(timeout=HANG)
    lines = [x for x in err.splitlines() if x.startswith("sparseshare: error:")]
    assert proc.returncode == 2 and "Traceback" not in err, err[-2000:]
    assert len(lines) == 1 and "the Ray cluster failed under the run" in lines[0], err[-2000:]
    assert "run the same command again to resume" in lines[0]
    _stop_cluster(temp)
    assert main(_argv(out, "--jobs", "2", *LONG_HARD)) == 0
    assert _numbers(out) == _numbers(sequential / "hard")
