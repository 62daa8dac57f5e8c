"""Sweep configs (PBFS Figure 4, Tables 7-9, Figures 5-8): validation, smoke runs, resume, reports."""

import json
from pathlib import Path

import pytest

from sparseshare.cli import main
from sparseshare.errors import ConfigError
from sparseshare.experiments.run.sweep import sweep_points
from sparseshare.experiments.systems.checks import load_experiment

ROOT = Path(__file__).resolve().parents[2]
# the Student configs read ../shared/data/student (relative to the repository root, where tests run)
NEEDS_STUDENT = pytest.mark.skipif(
    not (ROOT.parent / "shared" / "data" / "student").is_dir(), reason="../shared/data absent"
)
SWEEPS = {
    "pbfs_synthetic": 4,
    "pbfs_units": 5,
    "pbfs_sparsity": 18,
    "pbfs_pools": 4,
    "pbfs_student": 2,
    "pbfs_sparsity_movielens": 9,
    "pbfs_sparsity_student": 9,
    "pbfs_sparsity_synthetic": 9,
}
FAST = ["--set", "train.epochs=2", "--set", "pbfs.frequency=5"]


@pytest.mark.parametrize("name,n", SWEEPS.items())
def test_every_sweep_config_validates_every_point(name, n):
    cfg = load_experiment(ROOT / "configs" / f"{name}.yaml")
    points = sweep_points(cfg)
    assert len(points) == n
    for p in points:  # each point is a whole, valid config; the paper's numbers land on real points
        assert p.cfg.sweep == {} and p.cfg.name == f"{name}[{p.name}]"
    if cfg.paper.points:
        assert set(cfg.paper.points) <= {p.name for p in points}


def test_sparsity_points_prune_from_s_minus_a_tenth_to_s():
    cfg = load_experiment(ROOT / "configs/pbfs_sparsity.yaml")
    for p in sweep_points(cfg):
        s = float(p.labels["sparsity"])
        assert p.cfg.pbfs.target_sparsity == pytest.approx(s)
        assert p.cfg.pbfs.initial_sparsity == pytest.approx(s - 0.1)
        assert p.cfg.tabular.pbfs_expert == [int(p.labels["units"])] * 2


@pytest.mark.parametrize(
    "override,needle",
    [
        ("sweep.units.8={tabular.nope: 3}", "sweep.units.8"),
        ("sweep.units.8={train.epochs: many}", "train.epochs"),
        ("sweep.units.8={paper.source: x}", "cannot set 'paper'"),
        ("paper.points={units=9: {pbfs: {}}}", "unknown point"),
    ],
)
def test_bad_sweeps_fail_naming_the_key(override, needle, tmp_path, capsys):
    argv = ["run", str(ROOT / "configs/pbfs_units.yaml"), "--out", str(tmp_path / "r"), "--set", override]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err
    assert not (tmp_path / "r").exists()  # validated before anything runs


@pytest.mark.parametrize("label", ["a=b", "../up", "/abs", "a/b", ".hidden"])
def test_load_rejects_a_point_label_that_could_leave_its_folder(label):
    with pytest.raises(
        ConfigError, match=f"'sweep.units': '{label}' may hold only letters, digits and _ . \\+ -"
    ):
        load_experiment(
            ROOT / "configs/pbfs_units.yaml", [f"sweep.units={{'{label}': {{tabular.tower: [4]}}}}"]
        )


@pytest.fixture(scope="module")
def synthetic_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "syn"
    argv = ["run", str(ROOT / "configs/pbfs_synthetic.yaml"), "--out", str(out), *FAST]
    argv += ["--set", "data.sizes=[1500, 400, 400]", "--set", "train.batch_size=128"]
    assert main(argv) == 0
    return out, argv


def test_synthetic_sweep_runs_every_point_and_system(synthetic_sweep):
    out, _ = synthetic_sweep
    res = json.loads((out / "results.json").read_text())
    pts = res["sweep"]["points"]
    assert [p["labels"]["correlation"] for p in pts] == ["0.2", "0.5", "0.8", "1.0"]
    for p in pts:
        assert set(p["systems"]) == {"single", "shared_bottom", "mmoe", "pbfs"}
        for t in ("t1", "t2"):
            mse = p["systems"]["pbfs"]["tasks"][t]["all"]["test"]["mse"]
            assert 0 < mse < 10
        assert p["paper"]["pbfs"]["t1"]["mse"] == pytest.approx(0.01009)
        assert (out / "points" / p["point"] / "results.json").exists()
    md = (out / "results.md").read_text()
    assert "| 0.5 | PBFS |" in md and "/ 0.0101" in md
    assert (out / "figures" / "sweep.png").stat().st_size > 1000


def test_a_sweep_resumes_from_its_finished_points(synthetic_sweep, capsys):
    out, argv = synthetic_sweep
    stamps = {p: p.stat().st_mtime_ns for p in (out / "points").rglob("results.json")}
    (out / "results.json").unlink()  # as if killed after the last point, before the summary
    assert main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "points").rglob("results.json")} == stamps
    assert "| 1.0 | PBFS |" in capsys.readouterr().out
    assert main(["report", str(out)]) == 0  # a sweep's report redraws from results.json


@NEEDS_STUDENT
def test_pbfs_pools_sweep_gives_one_and_three_pools_within_each_subject(tmp_path):
    out = tmp_path / "pools"
    assert main(["run", str(ROOT / "configs/pbfs_pools.yaml"), "--out", str(out), *FAST]) == 0
    res = json.loads((out / "results.json").read_text())
    pools = {}
    for p in res["sweep"]["points"]:  # as the paper: a 3-task model per subject (Table 9)
        detail = json.loads((out / "points" / p["point"] / "results.json").read_text())
        subject = p["labels"]["subject"]
        assert set(detail["systems"]["pbfs"]["tasks"]) == {f"{subject}_G{k}" for k in (1, 2, 3)}
        pools[subject, p["labels"]["pools"]] = detail["systems"]["pbfs"]["pbfs"]["pools"]
    for subject in ("por", "mat"):
        assert [len(p) for p in pools[subject, "1"]] == [3]
        assert len(pools[subject, "3"]) == 3 and all(len(p) == 2 for p in pools[subject, "3"])


@pytest.mark.slow  # census over PBFS sparsities; the census units sweep covers the path
def test_census_sparsity_sweep_on_a_slice(tmp_path):
    out = tmp_path / "sp"
    grid = (
        "sweep.sparsity={'0.2': {pbfs.initial_sparsity: 0.1, pbfs.target_sparsity: 0.2},"
        " '0.9': {pbfs.initial_sparsity: 0.8, pbfs.target_sparsity: 0.9}}"
    )
    argv = ["run", str(ROOT / "configs/pbfs_sparsity.yaml"), "--out", str(out), *FAST, "--set", grid]
    argv += ["--set", "data.limits={train: 1500, dev: 400, test: 400}", "--set", "train.batch_size=128"]
    argv += ["--set", "paper.points={}"]  # the paper's points name the whole grid
    assert main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    got = {p["point"]: p["systems"]["pbfs"]["sparsity"] for p in res["sweep"]["points"]}
    assert set(got) == {
        "units=32,sparsity=0.2",
        "units=32,sparsity=0.9",
        "units=64,sparsity=0.2",
        "units=64,sparsity=0.9",
    }
    for name, sparsity in got.items():
        target = float(name.split("sparsity=")[1])  # the best subnet lies on the schedule's path
        assert all(target - 0.1 - 1e-6 <= s <= target + 0.02 for s in sparsity.values()), sparsity


@NEEDS_STUDENT
def test_a_seed_axis_adds_mean_and_sd_over_seeds(tmp_path, capsys):
    out = tmp_path / "seeds"
    seeds = "sweep={seed: {'1': {seed: 1}, '2': {seed: 2}}}"
    argv = ["run", str(ROOT / "configs/pbfs_student.yaml"), "--out", str(out), *FAST, "--set", seeds]
    argv += ["--set", "systems=[shared_bottom, pbfs]", "--set", "data.subjects=[mat]"]
    argv += ["--set", "data.tasks=[mat_G1, mat_G2, mat_G3]", "--set", "paper.points={}"]
    argv += ["--set", "paper.values={pbfs: {mat_G3: {mse: 0.0019}}}"]
    assert main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    pts = res["sweep"]["points"]
    assert [p["point"] for p in pts] == ["seed=1", "seed=2"]
    assert pts[0]["paper"]["pbfs"]["mat_G3"]["mse"] == pytest.approx(0.0019)  # the config's own numbers
    a, b = (p["systems"]["pbfs"]["tasks"]["mat_G3"]["test"] for p in pts)
    assert a != b  # two seeds, two different runs
    md = (out / "results.md").read_text()
    assert "Over seeds:" in md
    row = next(line for line in md.split("Over seeds:")[1].splitlines() if line.startswith("| PBFS | 2 |"))
    mean = f"{(a + b) / 2:.4f}"
    assert mean in row and "/ 0.0019" in row


def test_census_units_sweep_on_a_slice(tmp_path):
    out = tmp_path / "units"
    argv = ["run", str(ROOT / "configs/pbfs_units.yaml"), "--out", str(out), *FAST]
    argv += [
        "--set",
        "sweep.units={'8': {tabular.pbfs_expert: [8, 8]}, '64': {tabular.pbfs_expert: [64, 64]}}",
    ]
    argv += ["--set", "data.limits={train: 1500, dev: 400, test: 400}", "--set", "train.batch_size=128"]
    argv += ["--set", "paper.points={units=8: {pbfs: {income: {f1_macro: 0.7179}}}}"]
    assert main(argv) == 0
    pts = json.loads((out / "results.json").read_text())["sweep"]["points"]
    params = {p["labels"]["units"]: p["systems"]["pbfs"]["params"] for p in pts}
    assert params["64"] > 4 * params["8"]  # wider experts: (at least) quadratically more weights
    assert pts[0]["paper"]["pbfs"]["income"]["f1_macro"] == pytest.approx(0.7179)
    assert "| 8 | PBFS |" in (out / "results.md").read_text()


def test_the_papers_point_may_leave_out_axes_such_as_the_seed():
    cfg = load_experiment(ROOT / "configs/pbfs_student.yaml", ['sweep.seed={"1": {seed: 1}, "2": {seed: 2}}'])
    got = {p.name: p.cfg.paper.values["pbfs"] for p in sweep_points(cfg)}
    assert list(got) == [
        "subject=por,seed=1",
        "subject=por,seed=2",
        "subject=mat,seed=1",
        "subject=mat,seed=2",
    ]
    assert got["subject=mat,seed=2"]["mat_G3"]["mse"] == pytest.approx(0.0019)
    assert "por_G1" in got["subject=por,seed=1"] and "mat_G1" not in got["subject=por,seed=1"]
    with pytest.raises(ConfigError, match=r"unknown point\(s\) \['subject=xx'\]"):
        sweep_points(load_experiment(ROOT / "configs/pbfs_student.yaml", ['paper.points={"subject=xx": {}}']))
