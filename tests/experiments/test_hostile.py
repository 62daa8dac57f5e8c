"""Hostile input and damaged runs, through the CLI: one line per problem, exit 2, no traceback, before any
work; damaged files named with their remedy; nothing written outside the run directory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sparseshare.cli import main

TINY = [
    "--set", "data.limits={train: 30, dev: 10, test: 10}", "--set", "systems=[hard, sparse]",
    "--set", "train.epochs=2", "--set", "search.alpha=0.5", "--set", "search.min_density=0.3",
]  # fmt: skip


def _run(capsys, argv) -> tuple[int, list[str]]:
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, [line for line in err.splitlines() if line.startswith("sparseshare: error: ")]


def _tree(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def _same_results(a: Path, b: Path) -> bool:
    """results.json equal but for timings."""

    def strip(path):
        r = json.loads(path.read_text())
        r.pop("meta", None)
        for s in r.get("systems", {}).values():
            s.pop("seconds", None)
        return r

    return strip(a / "results.json") == strip(b / "results.json")


@pytest.fixture(scope="session")
def ref(tmp_path_factory):
    """A small finished run, made once for the session: the tests that use it (here, test_faults,
    test_hostile_links, test_crafted_reads) copy it before changing anything."""
    out = tmp_path_factory.mktemp("runs") / "ref"
    assert main(["run", "smoke", "--out", str(out), *TINY]) == 0
    return out


# --- validation before any work -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sets", "needle"),
    [
        (["train.lr=-0.1"], "'train.lr' must be > 0, got -0.1"),
        (["train.momentum=-0.5"], "'train.momentum' must be in [0, 1), got -0.5"),
        (["model.hidden=0"], "'model.hidden' must be >= 1, got 0"),
        (["data.limits.train=0"], "'data.limits.train' must be >= 1, got 0"),
        (["train.eval_batch_size=0"], "'train.eval_batch_size' must be >= 1, got 0"),
        (["pbfs.frequency=0"], "'pbfs.frequency' must be >= 1, got 0"),
        (["device=tpu9"], "'device': unknown device 'tpu9'"),
        (["search.force_density={pos: 0}"], "'search.force_density.pos' must be in (0, 1] (a fraction kept)"),
        (
            ["search.force_density={pos: 1.5}"],
            "'search.force_density.pos' must be in (0, 1] (a fraction kept)",
        ),
        (["train.loss_weights={srl: 1.0}"], "'train.loss_weights': unknown task(s) ['srl']"),
        (["model.hierarchy={srl: 2}"], "'model.hierarchy': unknown task(s) ['srl']"),
        (["data.embeddings=glove6b50d", "model.word_dim=100"], "'model.word_dim' is 100 but the embeddings"),
        (["search.include=[nothing*]"], "'search.include' ['nothing*'] (minus 'search.exclude') matches no"),
        (["name=../escape"], "'name': '../escape' may hold only"),
        (["name=/tmp/abs"], "'name': '/tmp/abs' may hold only"),
        (["sweep={../up: {a: {seed: 2}}}"], "'sweep': '../up' may hold only"),
        (["data.dataset=columns", "data.columns={}"], "'data.columns.tags' is required"),
        (["data.dataset=table", "data.table={train: x.csv}"], "'data.table.targets' is required"),
    ],
)
def test_bad_values_fail_before_any_work_naming_the_key(tmp_path, capsys, sets, needle):
    out = tmp_path / "run"
    rc, err = _run(capsys, ["run", "smoke", "--out", out, *(a for s in sets for a in ("--set", s))])
    assert rc == 2 and any(needle in line for line in err), err
    assert not out.exists() and _tree(tmp_path) == set()  # nothing written anywhere


def test_every_problem_is_reported_at_once_one_line_each(tmp_path, capsys):
    sets = ["train.lr=0", "model.hidden=0", "device=tpu9", "search.force_density={ner: 2}", "train.lrr=1"]
    rc, err = _run(
        capsys, ["run", "smoke", "--out", tmp_path / "r", *(a for s in sets for a in ("--set", s))]
    )
    assert rc == 2 and len(err) == 5
    keys = ("'train.lr'", "'model.hidden'", "'device'", "'search.force_density.ner'", "'train.lrr'")
    assert all(any(k in line for line in err) for k in keys)


def test_the_default_embeddings_are_checked_without_a_download(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SPARSESHARE_DATA", str(tmp_path / "cache"))
    sets = ["--set", "data.embeddings=glove6b50d", "--set", "model.word_dim=100"]
    rc, err = _run(capsys, ["run", "smoke", "--out", tmp_path / "r", *sets])
    assert rc == 2 and "set 'model.word_dim: 50'" in err[0]
    assert not (tmp_path / "cache").exists()


def test_an_out_that_cannot_be_created_is_one_line(tmp_path, capsys):
    (tmp_path / "a_file").write_text("x")
    rc, err = _run(capsys, ["run", "smoke", "--out", tmp_path / "a_file" / "run", *TINY])
    assert rc == 2 and len(err) == 1 and "cannot create the run directory" in err[0]


def test_predict_names_an_unknown_system_in_one_line(ref, tmp_path, capsys):
    f = tmp_path / "in.txt"
    f.write_text("EU NNP\n\n")
    rc, err = _run(capsys, ["predict", ref, f, "--system", "../../etc"])
    assert rc == 2 and len(err) == 1 and "system '../../etc' has not finished" in err[0]


# --- a config edit -------------------------------------------------------------------------------------


def _partial(ref: Path, tmp_path: Path) -> Path:
    """The run as if killed after 'hard': the search and sparse sharing not started."""
    run = tmp_path / "partial"
    shutil.copytree(ref, run)
    (run / "results.json").unlink()
    shutil.rmtree(run / "systems" / "sparse")
    shutil.rmtree(run / "search")
    (run / "masks.safetensors").unlink()
    return run


def test_a_config_edit_for_systems_not_started_continues_the_run(ref, tmp_path, capsys):
    run = _partial(ref, tmp_path)
    rc, err = _run(capsys, ["run", "smoke", "--out", run, *TINY, "--set", "train.lr=0.05"])
    assert rc == 2 and "train.lr (used by hard, already started)" in err[0]
    rc, err = _run(capsys, ["run", "smoke", "--out", run, *TINY, "--set", "search.alpha=0.6"])
    assert rc == 0, err
    assert "alpha: 0.6" in (run / "config.yaml").read_text()
    changed = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("phase") == "config_changed" and "search.alpha" in r["keys"] for r in changed)
    assert json.loads((run / "systems" / "hard" / "result.json").read_text()) == json.loads(
        (ref / "systems" / "hard" / "result.json").read_text()
    )  # hard was kept, not trained again


def test_weights_that_no_longer_fit_the_config_are_one_line(ref, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(ref, run)
    (run / "results.json").unlink()
    (run / "systems" / "sparse" / "result.json").unlink()
    cfg = run / "config.yaml"  # edited by hand: the weights were written with hidden 16
    cfg.write_text(cfg.read_text().replace("hidden: 16", "hidden: 12"))
    rc, err = _run(capsys, ["run", cfg, "--out", run])
    assert rc == 2 and len(err) == 1, err  # the warmup's fingerprint names the first parameter that differs
    assert (
        "holds a warmup made with parameters." in err[0]
        and "weight_ih_l0 = [64, 24], not this call's [48, 24]" in err[0]
    )


# --- damaged artifacts ---------------------------------------------------------------------------------


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


DAMAGE = [
    "masks.safetensors",
    "results.json",
    "preprocess.json",
    "search/warmup.safetensors",
    "search/pos/level_001.safetensors",
    "search/ner.jsonl",
    "systems/hard/result.json",
    "systems/hard/network.json",
    "systems/hard/last.safetensors",
    "systems/sparse/best.safetensors",
]


@pytest.mark.parametrize("finished", [True, False], ids=["finished", "half-finished"])
@pytest.mark.parametrize("name", DAMAGE)
def test_a_damaged_file_is_named_and_repaired_to_the_same_results(ref, tmp_path, capsys, name, finished):
    run = tmp_path / "run"
    shutil.copytree(ref, run)
    if not finished:  # killed during sparse sharing's training
        for f in ("results.json", "systems/sparse/result.json", "systems/sparse/last.safetensors"):
            (run / f).unlink()
        if name == "results.json":
            return
    _truncate(run / name)
    argv = ["run", "smoke", "--out", run, *TINY]
    rc, err = _run(capsys, argv)
    if finished and name != "results.json":
        assert rc == 0  # a finished run is only shown; what reads the file later names it
    else:
        assert rc == 2 and len(err) == 1, err
        assert err[0].startswith(f"sparseshare: error: {run / name}: damaged") and "--repair" in err[0]
    rc, err = _run(capsys, [*argv, "--repair"])
    assert rc == 0, err
    assert _same_results(ref, run)
    assert (run / "masks.safetensors").read_bytes() == (ref / "masks.safetensors").read_bytes()
    for level in (ref / "search").rglob("level_*.safetensors"):
        assert (run / level.relative_to(ref)).read_bytes() == level.read_bytes()


def test_commands_reading_a_damaged_finished_run_name_the_file(ref, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(ref, run)
    _truncate(run / "preprocess.json")
    _truncate(run / "masks.safetensors")
    f = tmp_path / "in.txt"
    f.write_text("EU NNP\n\n")
    rc, err = _run(capsys, ["predict", run, f])
    assert rc == 2 and len(err) == 1 and "preprocess.json: damaged preprocessing file" in err[0]
    assert f"--out {run} --repair" in err[0]
    rc, err = _run(capsys, ["masks", run])
    assert rc == 2 and len(err) == 1 and "masks.safetensors: damaged mask file" in err[0]


# --- identical runs, identical files ---------------------------------------------------------------------


def test_identical_runs_write_byte_identical_masks_and_checkpoints(ref, tmp_path):
    again = tmp_path / "again"
    assert main(["run", "smoke", "--out", str(again), *TINY]) == 0
    assert _same_results(ref, again)
    files = [p.relative_to(ref) for p in ref.rglob("*.safetensors")]
    assert len(files) >= 10
    for rel in files:
        assert (again / rel).read_bytes() == (ref / rel).read_bytes(), rel
    for rel in ("preprocess.json", "systems/sparse/network.json", "search/pos.jsonl"):
        assert (again / rel).read_bytes() == (ref / rel).read_bytes(), rel


# --- tables -------------------------------------------------------------------------------------------


def _table(tmp_path: Path, rows: list[str], name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(rows) + "\n")
    return path


def _table_run(capsys, tmp_path, train: Path, extra=(), dev=None, test=None) -> tuple[int, list[str], str]:
    table = f"{{train: {train}, targets: {{y/1: binary, z: regression}}"
    table += (f", dev: {dev}" if dev else "") + (f", test: {test}" if test else "") + "}"
    argv = ["run", "smoke", "--out", tmp_path / "run", "--set", "data.dataset=table", "--set",
            f"data.table={table}", "--set", "systems=[single, shared_bottom, sparse]", "--set",
            "train.batch_size=8", "--set", "data.limits={}", "--set", "data.tasks=null", *extra]  # fmt: skip
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, [x for x in err.splitlines() if x.startswith("sparseshare: error: ")], err


def _rows(n: int, seed: int, one_class: bool = False) -> list[str]:
    import random

    rng = random.Random(seed)
    out = ["a,b.c,y/1,z"]
    for _ in range(n):
        a, b = rng.random(), rng.random()
        y = 1 if one_class else int(a + b > 1)
        out.append(f"{a:.3f},{b:.3f},{y},{a - b:.3f}")
    return out


def test_a_dev_split_with_one_class_warns_and_the_run_completes(tmp_path, capsys):
    train = _table(tmp_path, _rows(60, 0))
    dev = _table(tmp_path, _rows(20, 1, one_class=True), "dev.csv")
    test = _table(tmp_path, _rows(20, 2), "test.csv")
    rc, err, text = _table_run(capsys, tmp_path, train, dev=dev, test=test)
    assert rc == 0, err
    assert "task 'y_1': dev has one class only" in text  # reported when the data are read
    assert "task 'y_1': dev auc is undefined (NaN)" in text  # and while selecting
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    for sys in res["systems"].values():
        assert sys["tasks"]["y_1"]["dev"] != sys["tasks"]["y_1"]["dev"]  # NaN, reported as such
        assert 0 <= sys["tasks"]["y_1"]["test"] <= 1 and sys["tasks"]["z"]["test"] >= 0
    assert not any("/" in p.name for p in (tmp_path / "run").rglob("*"))  # 'y/1' is the task 'y_1'


@pytest.mark.parametrize(
    ("rows", "needle"),
    [
        (
            ["a,b.c,y/1,z", "0.1,0.2,1,0.3", "0.2,n/a,0,0.1", "0.3,0.4,1,0.2"],
            ":3: column 'b.c' mixes numbers and text",
        ),
        (["a,b.c,y/1,z", "0.1,0.2,1,0.3", "0.2,0.1,0"], ":3: expected 4 fields (as the header), found 3"),
        (["a,b.c,y/1,z"], ": no data rows (only a header)"),
    ],
)
def test_a_bad_table_is_one_line_naming_file_and_line(tmp_path, capsys, rows, needle):
    train = _table(tmp_path, rows)
    rc, err, _ = _table_run(capsys, tmp_path, train)
    assert rc == 2 and len(err) == 1 and f"{train}{needle}" in err[0], err
    assert not (tmp_path / "run" / "systems").exists()  # before any training
