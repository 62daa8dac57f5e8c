"""A run directory from someone else, with symbolic links in it to files outside: no command writes,
truncates or deletes through a link; each refuses in one line naming the link and what to do (exit 2),
and once the link is replaced by the file itself the run reports or resumes as before."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from sparseshare import atomic
from sparseshare.errors import RunError
from sparseshare.experiments.run.cluster import _put_files
from tests.experiments import test_hostile
from tests.experiments.test_hostile import TINY, _run, _same_results, _tree

SCRIPT = "#!/bin/sh\necho the user's own script\n"


ref = test_hostile.ref  # its small finished run, made once for the session (copied before any change)


@pytest.fixture
def outside(tmp_path) -> Path:
    """A folder outside the run, holding a file the user cares about."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "script.sh").write_text(SCRIPT)
    return folder


def _copy(ref: Path, tmp_path: Path, unfinished: bool = False) -> Path:
    """The reference run as someone hands it over; ``unfinished``: killed during sparse sharing."""
    run = tmp_path / "run"
    shutil.copytree(ref, run)
    if unfinished:
        for f in ("results.json", "systems/sparse/result.json", "systems/sparse/last.safetensors"):
            (run / f).unlink()
    return run


def _refused(capsys, argv, link: Path) -> None:
    rc, err = _run(capsys, argv)
    assert rc == 2 and len(err) == 1, err
    assert (
        err[0].startswith(f"sparseshare: error: {link}: is a symbolic link") and "run the command" in err[0]
    )


def _unlink_in_place(link: Path) -> None:
    """What the error says to do: put the file it points to in the link's place."""
    target = link.resolve()
    link.unlink()
    shutil.copy(target, link) if target.is_file() else shutil.copytree(target, link)


@pytest.mark.parametrize("name", ["results.md", "figures/search_dev_vs_density.png", "figures/overlap.png"])
def test_report_never_writes_through_a_linked_file(ref, tmp_path, capsys, outside, name):
    run = _copy(ref, tmp_path)
    link = run / name
    link.unlink()
    link.symlink_to(outside / "script.sh")
    _refused(capsys, ["report", run], link)
    assert (outside / "script.sh").read_text() == SCRIPT and _tree(outside) == {outside / "script.sh"}
    link.unlink()
    rc, err = _run(capsys, ["report", run])
    assert rc == 0, err
    assert not link.is_symlink() and (run / "results.md").read_text() == (ref / "results.md").read_text()


def test_report_never_writes_into_a_linked_figures_folder(ref, tmp_path, capsys, outside):
    run = _copy(ref, tmp_path)
    shutil.rmtree(run / "figures")
    (run / "figures").symlink_to(outside, target_is_directory=True)
    _refused(capsys, ["report", run], run / "figures")
    assert _tree(outside) == {outside / "script.sh"} and (outside / "script.sh").read_text() == SCRIPT
    (run / "figures").unlink()
    rc, err = _run(capsys, ["report", run])
    assert rc == 0, err
    assert {p.name for p in (run / "figures").iterdir()} == {p.name for p in (ref / "figures").iterdir()}


def test_repair_never_truncates_a_linked_level_log(ref, tmp_path, capsys, outside):
    run = _copy(ref, tmp_path, unfinished=True)
    log = run / "search" / "ner.jsonl"
    target = outside / "ner.jsonl"  # its level records, then a line of the attacker's
    target.write_text(log.read_text() + "rm -rf ~\n")
    log.unlink()
    log.symlink_to(target)
    argv = ["run", "smoke", "--out", run, *TINY, "--repair"]
    _refused(capsys, argv, log)
    assert target.read_text().endswith("rm -rf ~\n")  # not cut to its whole levels
    _unlink_in_place(log)
    rc, err = _run(capsys, argv)
    assert rc == 0, err
    assert _same_results(ref, run) and log.read_text() == (ref / "search" / "ner.jsonl").read_text()
    assert target.read_text().endswith("rm -rf ~\n")


def test_repair_never_deletes_through_a_linked_folder(ref, tmp_path, capsys, outside):
    run = _copy(ref, tmp_path, unfinished=True)
    hard = run / "systems" / "hard"
    theirs = outside / "hard"  # the user's own files, a damaged checkpoint among them
    shutil.move(hard, theirs)
    (theirs / "last.safetensors").write_bytes(b"garbage")
    hard.symlink_to(theirs, target_is_directory=True)
    argv = ["run", "smoke", "--out", run, *TINY, "--repair"]
    _refused(capsys, argv, hard)
    assert sorted(p.name for p in theirs.iterdir()) == sorted(
        p.name for p in (ref / "systems/hard").iterdir()
    )
    hard.unlink()
    shutil.copytree(theirs, hard)
    rc, err = _run(capsys, argv)
    assert rc == 0, err
    assert _same_results(ref, run) and (theirs / "last.safetensors").read_bytes() == b"garbage"


def test_a_resumed_run_never_appends_to_a_linked_event_log(ref, tmp_path, capsys, outside):
    run = _copy(ref, tmp_path, unfinished=True)
    log = run / "metrics.jsonl"
    log.unlink()
    log.symlink_to(outside / "script.sh")
    argv = ["run", "smoke", "--out", run, *TINY]
    _refused(capsys, argv, log)
    assert (outside / "script.sh").read_text() == SCRIPT
    _unlink_in_place(log)
    rc, err = _run(capsys, argv)
    assert rc == 0, err
    assert _same_results(ref, run) and (outside / "script.sh").read_text() == SCRIPT
    assert log.read_text().startswith(SCRIPT) and len(log.read_text().splitlines()) > 2  # logged in the run


def test_the_driver_never_writes_a_workers_files_through_a_link(tmp_path, outside):
    run = tmp_path / "run"
    run.mkdir()
    (run / "systems").symlink_to(outside, target_is_directory=True)
    with pytest.raises(RunError, match=f"^{run / 'systems'}: is a symbolic link"):
        _put_files(run, {"systems/script.sh": b"echo attack\n"})
    with pytest.raises(RunError, match=f"^{run / 'systems'}: is a symbolic link"):
        _put_files(run, {"systems/script.sh": None})  # a deletion, likewise
    assert (outside / "script.sh").read_text() == SCRIPT


def test_two_writes_of_one_path_at_once_never_share_a_temporary(tmp_path):
    path = tmp_path / "preprocess.json"
    with atomic.replacing(path) as a, atomic.replacing(path) as b:  # two threads, or a reused pid
        assert a != b and a.parent == b.parent == tmp_path and a.name.endswith(atomic.SUFFIX)
        a.write_text("a")
        b.write_text("b")
    assert path.read_text() == "a" and [p.name for p in tmp_path.iterdir()] == ["preprocess.json"]
    assert str(os.getpid()) not in atomic.temporary(path).name  # unguessable, not the pid
