"""run --jobs N on a small machine (experiments/run/cluster.py: free_cores, local_workers): above the free
cores, no cluster and no GPU, as many units at once as free cores, with a one-line note; the config's
resources.cpus forces N. The core count is faked: nothing here depends on this machine's."""

import contextlib
import json
import logging
from pathlib import Path

import pytest

from sparseshare.cli import main
from sparseshare.experiments.run import cluster
from sparseshare.experiments.run.units import experiment_units
from sparseshare.experiments.systems.checks import load_experiment

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "configs" / "smoke.yaml"


def _note(jobs: int, free: int) -> str:
    return (
        f"--jobs {jobs} on {free} free core(s): {free} Ray worker(s) at once, one a core (the same "
        f"numbers; to run {jobs} at once anyway, set the units' CPUs: --set resources.cpus=1)"
    )


def _units(tmp_path, *sets: str):
    return experiment_units(load_experiment(SMOKE, list(sets)), tmp_path)


def _notes(caplog) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "sparseshare" and r.levelno == logging.WARNING
    ]


@pytest.mark.parametrize("free,jobs", [(2, 3), (2, 4), (4, 16), (16, 17), (1, 2)])
def test_jobs_above_the_free_cores_run_one_unit_a_core_with_one_line(
    free, jobs, tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr(cluster, "free_cores", lambda: free)
    caplog.set_level(logging.WARNING, "sparseshare")
    assert cluster.local_workers(_units(tmp_path), jobs, None) == free
    assert _notes(caplog) == [_note(jobs, free)]
    assert cluster.local_cpus_per_unit(jobs) == 1  # the threads of N units: the numbers of --jobs N


@pytest.mark.parametrize(
    "sets,address",
    [
        ((), "127.0.0.1:6379"),  # a cluster: its nodes, not this machine's cores
        (("resources.cpus=1",), None),  # the units sized by hand: the way to force N
        (("resources.units={search: {cpus: 1}}",), None),
        (("resources.gpus=0.5",), None),  # packed on a GPU on purpose
    ],
)
def test_a_cluster_units_sized_by_hand_or_on_a_gpu_run_n_at_once(
    sets, address, tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr(cluster, "free_cores", lambda: 2)
    caplog.set_level(logging.WARNING, "sparseshare")
    assert cluster.local_workers(_units(tmp_path, *sets), 4, address) == 4
    assert _notes(caplog) == []


def test_units_on_cuda_run_n_at_once(tmp_path, monkeypatch, caplog):
    """The config's device, not a Ray GPU share: units training on CUDA are the GPU's to pack."""
    monkeypatch.setattr(cluster, "free_cores", lambda: 2)
    caplog.set_level(logging.WARNING, "sparseshare")
    units = _units(tmp_path)
    for u in units:
        u.cfg.device = "cuda"  # as a config on a GPU machine says (this one may have none to validate it)
    assert cluster.local_workers(units, 4, None) == 4 and _notes(caplog) == []


@pytest.mark.parametrize("jobs", [2, 3, 4])
def test_jobs_up_to_the_free_cores_are_unchanged(jobs, tmp_path, monkeypatch, caplog):
    """--jobs 2 on 2 cores included: the driver's share of a core is small, a second unit's is not."""
    monkeypatch.setattr(cluster, "free_cores", lambda: 4)
    caplog.set_level(logging.WARNING, "sparseshare")
    assert cluster.local_workers(_units(tmp_path), jobs, None) == jobs and _notes(caplog) == []
    assert cluster.local_cpus_per_unit(jobs) == 4 // jobs


def test_free_cores_are_the_affinity_capped_by_a_cgroup_quota(monkeypatch, tmp_path):
    monkeypatch.setattr(cluster.os, "sched_getaffinity", lambda pid: {0, 1, 2, 5}, raising=False)
    monkeypatch.setattr(cluster.os, "cpu_count", lambda: 64)  # the whole machine: not ours to use
    monkeypatch.setattr(cluster, "_cgroup_quota", lambda: None)
    assert cluster.free_cores() == 4
    monkeypatch.setattr(cluster, "_cgroup_quota", lambda: 1.5)  # docker --cpus 1.5
    assert cluster.free_cores() == 2
    monkeypatch.setattr(cluster, "_cgroup_quota", lambda: 0.2)
    assert cluster.free_cores() == 1


@pytest.mark.parametrize(
    "files,quota",
    [
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2.0),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({"cpu.max": "garbage"}, None),
        ({}, None),
    ],
)
def test_cgroup_quota_v1_and_v2(files, quota, tmp_path):
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    assert cluster._cgroup_quota(tmp_path) == quota


def test_run_units_dispatches_the_capped_count_and_ray_is_sized_for_it(tmp_path, monkeypatch, caplog):
    """The wiring, without starting Ray: what run_units hands the session and the dispatch."""
    monkeypatch.setattr(cluster, "free_cores", lambda: 2)
    caplog.set_level(logging.WARNING, "sparseshare")
    got = {}

    @contextlib.contextmanager
    def session(jobs, address, cpus_per_unit):
        got["session"] = (jobs, cpus_per_unit)
        yield

    def dispatch(units, jobs, top, data, default_cpus, scratch):
        got["dispatch"] = (jobs, default_cpus)

    monkeypatch.setattr(cluster, "ray_session", session)
    monkeypatch.setattr(cluster, "_dispatch", dispatch)
    monkeypatch.setattr(cluster, "_Data", lambda units, loader: None)
    cluster.run_units(_units(tmp_path), 4, tmp_path)
    assert got == {"session": (2, 1), "dispatch": (2, 1)}
    assert _notes(caplog) == [_note(4, 2)]
    got.clear()
    cluster.run_units(_units(tmp_path, "resources.cpus=1"), 4, tmp_path)
    assert got == {"session": (4, 1), "dispatch": (4, 1)}


def _jobs(run: Path) -> list[dict]:
    records = [json.loads(x) for p in sorted(run.rglob("metrics.jsonl")) for x in p.read_text().splitlines()]
    return sorted((r for r in records if r["phase"] == "job"), key=lambda r: r["start"])


@pytest.mark.slow  # two local Rays: ~25 s; the wiring test above runs in make test
def test_jobs_3_on_1_free_core_runs_one_at_a_time_unless_forced(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cluster, "free_cores", lambda: 1)
    argv = ["run", str(ROOT / "configs" / "pbfs_synthetic.yaml"), "--jobs", "3"]
    argv += ["--set", "systems=[single, shared_bottom]", "--set", "data.sizes=[300, 100, 100]"]
    argv += ["--set", "train.epochs=2", "--set", "sweep.correlation={'0.2': {data.correlation: 0.2}}"]
    argv += ["--set", "paper.points={}"]
    assert main([*argv, "--out", str(tmp_path / "capped")]) == 0
    err = capsys.readouterr().err
    assert [x for x in err.splitlines() if "free core" in x] == [f"sparseshare: warning: {_note(3, 1)}"]
    jobs = _jobs(tmp_path / "capped")
    assert len(jobs) == 2 and jobs[1]["start"] >= jobs[0]["end"]  # one at a time
    assert main([*argv, "--set", "resources.cpus=1", "--out", str(tmp_path / "forced")]) == 0
    assert "free core" not in capsys.readouterr().err
    jobs = _jobs(tmp_path / "forced")
    assert len(jobs) == 2 and jobs[1]["start"] < jobs[0]["end"]  # side by side
    assert {r["threads"] for r in jobs} == {1}
