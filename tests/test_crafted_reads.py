"""A run from someone else may link a file to /dev/zero or a pipe, or nest a line of a level log or a
fingerprint 200,000 deep: every read of a run checks that the file is a regular one of bounded size, and
every JSON line is depth-bounded, so each is one line naming the file (before: a read without end, or a
RecursionError traceback)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import sparseshare as ss
from sparseshare import run_dir
from tests.experiments import test_hostile
from tests.experiments.test_hostile import TINY, _run
from tests.training.test_pipeline import SETTINGS, TwoTaskMLP, _tasks

DEEP = "[" * 200_000 + "]" * 200_000


ref = test_hostile.ref  # its small finished run, made once for the session (copied before any change)


def _copy(ref: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(ref, run)
    return run


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_a_results_file_linked_to_a_device_or_a_pipe_is_one_line(ref, tmp_path, capsys, special):
    run = _copy(ref, tmp_path)
    target = run / "results.json"
    target.unlink()
    if special == "fifo":
        os.mkfifo(target)  # opened for reading, it would wait for a writer for ever
    else:
        target.symlink_to(special)
    rc, err = _run(capsys, ["report", str(run)])
    assert rc == 2 and len(err) == 1, err
    assert f"{target}: not a regular file" in err[0], err


def test_a_file_larger_than_a_run_file_may_be_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("{}")
    with pytest.raises(ss.RunError, match=r"results.json: 2 bytes, more than the 1 a results file may hold"):
        run_dir.read_bytes(path, "results file", limit=1)


def test_a_level_log_line_nested_deep_is_one_line_in_run_and_repaired(ref, tmp_path, capsys):
    run = _copy(ref, tmp_path)
    for f in ("results.json", "systems/sparse/result.json", "systems/sparse/last.safetensors"):
        (run / f).unlink()  # killed during sparse sharing: the next run reads the levels back
    log = next((run / "search").glob("*.jsonl"))
    log.write_text(log.read_text() + DEEP + "\n")
    rc, err = _run(capsys, ["run", "smoke", "--out", str(run), *TINY])
    assert rc == 2 and len(err) == 1 and str(log) in err[0], err
    rc, err = _run(capsys, ["run", "smoke", "--out", str(run), *TINY, "--repair"])
    assert rc == 0, err


def test_a_fingerprint_nested_deep_is_one_line(tmp_path):
    directory = tmp_path / "joint"
    ss.train_jointly(TwoTaskMLP(), _tasks(), SETTINGS.replace(epochs=1), directory=directory, progress=False)
    (directory / "fingerprint.json").write_text(DEEP)
    with pytest.raises(ss.RunError) as e:
        ss.train_jointly(
            TwoTaskMLP(), _tasks(), SETTINGS.replace(epochs=2), directory=directory, progress=False
        )
    assert "\n" not in str(e.value) and "fingerprint.json: damaged fingerprint" in str(e.value), e.value


def test_a_checkpoint_that_is_a_pipe_is_one_line(tmp_path):
    from sparseshare.training.checkpoint import load_tensors

    os.mkfifo(tmp_path / "best.safetensors")  # opened for reading, it would wait for a writer for ever
    with pytest.raises(ss.RunError, match="best.safetensors: not a regular file"):
        load_tensors(tmp_path / "best.safetensors")
