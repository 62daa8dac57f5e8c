"""Atomic writes: the target is the old file or the new one, never a part; nothing temporary is left."""

import errno

import numpy as np
import pytest

from sparseshare import atomic
from sparseshare.errors import RunError


def test_a_write_replaces_the_file_whole_and_leaves_nothing_else(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("old")
    atomic.write_text(path, "new")
    assert path.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_an_error_while_writing_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    path = tmp_path / "best.safetensors"
    path.write_bytes(b"old")
    with pytest.raises(OSError, match="disk full"), atomic.replacing(path) as tmp:
        tmp.write_bytes(b"half")
        raise OSError("disk full")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["best.safetensors"]


def test_a_folder_is_filled_beside_and_renamed_or_removed(tmp_path):
    dst = tmp_path / "search"
    with atomic.replacing(dst, folder=True) as tmp:
        (tmp / "pos.jsonl").write_text("{}\n")
    assert (dst / "pos.jsonl").read_text() == "{}\n"
    other = tmp_path / "other"
    with pytest.raises(KeyboardInterrupt), atomic.replacing(other, folder=True) as tmp:
        (tmp / "half").write_text("x")
        raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["search"]


def test_a_temporary_is_created_exclusively_never_through_a_planted_link(tmp_path, monkeypatch):
    outside = tmp_path / "outside"
    outside.write_text("keep")
    run = tmp_path / "run"
    run.mkdir()
    planted = run / "results.md.x.tmp"
    planted.symlink_to(outside)
    monkeypatch.setattr(atomic, "temporary", lambda path: planted)  # as if its name were guessed
    with pytest.raises(FileExistsError), atomic.replacing(run / "results.md") as tmp:
        tmp.write_text("attack")
    assert outside.read_text() == "keep"


def test_a_link_at_the_target_or_between_the_run_and_it_is_refused_in_one_line(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.sh").write_text("echo hi\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("name: t\n")
    (run / "results.md").symlink_to(outside / "x.sh")
    (run / "systems").symlink_to(outside)
    for path in (run / "results.md", run / "systems" / "hard" / "best.safetensors"):
        with pytest.raises(RunError, match=r"is a symbolic link .*put the file or folder itself") as e:
            atomic.write_text(path, "attack")  # the run directory found from its config.yaml
        assert len(str(e.value).splitlines()) == 1
    with pytest.raises(RunError, match=f"^{run / 'results.md'}: is a symbolic link"):
        atomic.append(run / "results.md", "attack", root=run)
    with pytest.raises(RunError, match=f"^{run / 'systems'}: is a symbolic link"):
        atomic.remove(run / "systems" / "x.sh", root=run)
    assert (
        sorted(p.name for p in outside.iterdir()) == ["x.sh"]
        and (outside / "x.sh").read_text() == "echo hi\n"
    )
    atomic.remove(run / "results.md", root=run)  # a link itself is removed, not what it points to
    atomic.remove(run / "systems", root=run)
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml"] and (outside / "x.sh").exists()


def test_a_linked_run_directory_is_the_users_choice(tmp_path):
    real = tmp_path / "big" / "run"
    real.mkdir(parents=True)
    (real / "config.yaml").write_text("name: t\n")
    link = tmp_path / "run"
    link.symlink_to(real)
    atomic.write_text(link / "systems" / "hard" / "result.json", "{}")
    atomic.append(link / "metrics.jsonl", "{}\n", root=link)
    assert (real / "systems" / "hard" / "result.json").read_text() == "{}"


def test_a_safetensors_disk_error_is_the_oserror_naming_the_target(tmp_path):
    class SafetensorError(Exception):  # what safetensors raises when its write fails
        pass

    path = tmp_path / "best.safetensors"
    with pytest.raises(OSError) as e, atomic.replacing(path):
        raise SafetensorError(
            'Error while serializing: I/O error: No space left on device (os error 28) at path "/x/.tmpAb"'
        )
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(path)
    assert str(e.value) == f"[Errno 28] No space left on device: '{path}'"
    assert list(tmp_path.iterdir()) == []


def test_a_real_safetensors_write_error_is_the_oserror_naming_the_target(tmp_path):
    from safetensors.numpy import save_file

    folder = tmp_path / "systems"
    path = folder / "best.safetensors"
    with pytest.raises(OSError) as e, atomic.replacing(path) as tmp:
        tmp.unlink()
        folder.rmdir()  # gone while safetensors writes: it fails with 'No such file ... (os error 2)'
        save_file({"w": np.zeros(3)}, str(tmp))
    assert type(e.value) is FileNotFoundError and e.value.filename == str(path)


def test_a_link_to_another_run_inside_a_run_is_refused(tmp_path):
    other = tmp_path / "other"  # someone's other run: it has a config.yaml of its own
    other.mkdir()
    (other / "config.yaml").write_text("name: o\n")
    run = tmp_path / "sweep"
    (run / "points").mkdir(parents=True)
    (run / "config.yaml").write_text("name: s\n")
    (run / "points" / "a=1").symlink_to(other, target_is_directory=True)
    with pytest.raises(RunError, match=f"^{run / 'points' / 'a=1'}: is a symbolic link"):
        atomic.write_text(run / "points" / "a=1" / "results.json", "{}")
    assert sorted(p.name for p in other.iterdir()) == ["config.yaml"]
