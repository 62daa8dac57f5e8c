"""Real-world faults through the CLI (issue 22): the disk full mid-run, read-only or wrong output places,
two runs on one --out, a binary config.yaml. Each is one line naming the path and what to do, exit 2,
and a run stopped by one resumes to the results of a run never stopped."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors import SafetensorError

from tests.experiments import test_hostile
from tests.experiments.test_hostile import TINY, _run, _same_results

ref = test_hostile.ref  # its finished tiny run (a session fixture), shared rather than made again

AS_ROOT = os.geteuid() == 0  # root writes into a read-only (0o500) folder: chmod shows nothing then


def _one_error(capsys, argv) -> str:
    rc, err = _run(capsys, argv)
    assert rc == 2 and len(err) == 1, (rc, err)
    return err[0]


def _copy(ref: Path, tmp_path: Path, finished: bool = True) -> Path:
    run = tmp_path / "run"
    shutil.copytree(ref, run)
    if not finished:  # as if killed while training sparse sharing
        for f in ("results.json", "systems/sparse/result.json", "systems/sparse/last.safetensors"):
            (run / f).unlink()
    return run


# --- the disk full ---------------------------------------------------------------------------------------


def _full_after(monkeypatch, target: str, calls: int) -> None:
    """The ``calls``-th write through ``target`` finds the disk full, as safetensors (a SafetensorError
    with the OS error inside, as safetensors words it) or as Python (an OSError without a file name,
    from flushing the data) report it."""
    import sparseshare.training.checkpoint as checkpoint

    module, name = (checkpoint, "save_file") if target == "safetensors" else (os, "fsync")
    real, seen = getattr(module, name), []

    def full(*args, **kwargs):
        seen.append(1)
        if len(seen) == calls:
            if target == "safetensors":
                raise SafetensorError(
                    "Error while serializing: I/O error: No space left on device (os error 28)"
                )
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, full)


@pytest.mark.parametrize("target", ["safetensors", pytest.param("fsync", marks=pytest.mark.slow)])
def test_a_full_disk_mid_run_is_one_line_and_the_run_resumes_to_the_same_results(
    ref, tmp_path, capsys, monkeypatch, target
):
    run = tmp_path / "run"
    argv = ["run", "smoke", "--out", run, *TINY]
    with monkeypatch.context() as m:
        _full_after(m, target, calls=6)
        err = _one_error(capsys, argv)
    assert "No space left on device (errno 28); free space and run the same command again" in err
    assert str(run) in err  # the file, or where the run writes when the OS did not say which file
    assert not (run / "results.json").exists() and not list(run.rglob("*.tmp"))
    rc, err = _run(capsys, argv)  # space is back
    assert rc == 0, err
    assert _same_results(ref, run)
    assert (run / "masks.safetensors").read_bytes() == (ref / "masks.safetensors").read_bytes()


# --- read-only places, a folder where a file goes ----------------------------------------------------------


def _input(tmp_path: Path) -> Path:
    f = tmp_path / "in.txt"
    f.write_text("EU NNP\nrejects VBZ\n\n")
    return f


def _place(tmp_path: Path, kind: str) -> tuple[Path, str]:
    """An output path that cannot be written, and the cause the line must give."""
    if kind == "a folder":
        (tmp_path / "out").mkdir()
        return tmp_path / "out", "Is a directory (errno 21)"
    if kind == "under a file":
        (tmp_path / "a_file").write_text("x")
        return tmp_path / "a_file" / "out", "Not a directory (errno 20)"
    if AS_ROOT:
        pytest.skip("root writes into a read-only folder")
    ro = tmp_path / "read_only"
    ro.mkdir(mode=0o500)
    return ro / "out", "Permission denied (errno 13)"


@pytest.mark.parametrize("kind", ["a folder", "under a file", "read-only"])
@pytest.mark.parametrize("command", ["predict", "export"])
def test_an_output_that_cannot_be_written_is_one_line_naming_it(ref, tmp_path, capsys, command, kind):
    out, cause = _place(tmp_path, kind)
    before = {p: p.stat().st_mtime_ns for p in ref.rglob("*")}
    argv = ["predict", ref, _input(tmp_path)] if command == "predict" else ["export", ref, "--task", "pos"]
    err = _one_error(capsys, [*argv, "-o", out])
    assert err.startswith(f"sparseshare: error: {out}: {cause}; "), err
    assert {p: p.stat().st_mtime_ns for p in ref.rglob("*")} == before  # the run is untouched
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.name.startswith("out")]


@pytest.mark.parametrize("kind", ["results.md a folder", "read-only"])
def test_report_on_a_run_it_cannot_write_is_one_line(ref, tmp_path, capsys, kind):
    run = _copy(ref, tmp_path)
    if kind == "read-only":
        if AS_ROOT:
            pytest.skip("root writes into a read-only folder")
        run.chmod(0o500)
        cause = "Permission denied (errno 13)"
    else:
        (run / "results.md").unlink()
        (run / "results.md").mkdir()
        cause = "Is a directory (errno 21)"
    try:
        err = _one_error(capsys, ["report", run])
    finally:
        run.chmod(0o700)
    where = run / "results.md" if kind == "results.md a folder" else run  # the file, not its temporary
    assert err.startswith(f"sparseshare: error: {where}") and cause in err and ".tmp" not in err, err
    assert not list(run.rglob("*.tmp"))


# --- two runs on one --out ---------------------------------------------------------------------------------

HOLD = """
import sys
from sparseshare.run_lock import locked
with locked(sys.argv[1], "sparseshare run smoke"):
    print("held", flush=True)
    sys.stdin.read()  # until the test kills this process
"""


def test_a_second_run_on_a_held_out_names_the_holder_and_a_killed_holder_frees_it(ref, tmp_path, capsys):
    from sparseshare.errors import RunError
    from sparseshare.experiments.results.report import write_report
    from sparseshare.experiments.run.runner import run_experiment
    from sparseshare.experiments.systems.checks import load_experiment

    run = _copy(ref, tmp_path, finished=False)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "held\n"
        err = _one_error(capsys, ["run", "smoke", "--out", run, *TINY])
        assert f"{run}: is being written by pid {holder.pid} on " in err
        assert "sparseshare run smoke" in err and "wait for it to end or choose another --out" in err
        with pytest.raises(RunError, match=f"pid {holder.pid}"):  # the Python API takes the lock too
            run_experiment(load_experiment(run / "config.yaml"), run, report=write_report)
    finally:
        holder.kill()  # SIGKILL: no clean-up runs; the OS frees the lock
        holder.wait()
    assert not (run / "results.json").exists()  # nothing was done while it was held
    rc, err = _run(capsys, ["run", "smoke", "--out", run, *TINY])
    assert rc == 0, err  # the run resumes
    assert _same_results(ref, run)


# --- a binary config.yaml ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "how", ["unfinished", "unfinished --repair", "finished", "finished --repair", "as the config"]
)
def test_a_binary_config_yaml_in_a_run_is_one_line(ref, tmp_path, capsys, how):
    run = _copy(ref, tmp_path, finished=how.startswith("finished"))
    (run / "config.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    cfg = run / "config.yaml" if how == "as the config" else "smoke"
    argv = ["run", cfg, "--out", run, *TINY, *(["--repair"] if how.endswith("--repair") else [])]
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.name != ".lock"}
    err = _one_error(capsys, argv)
    assert err.startswith(f"sparseshare: error: {run / 'config.yaml'}: ") and "UTF-8" in err, err
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.name != ".lock"} == before
