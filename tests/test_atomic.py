"""Atomic writes: the target is the old file or the new one, never a part; nothing temporary is left."""

import os

import pytest

from sparseshare import atomic


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
    with atomic.replacing(dst) as tmp:
        tmp.mkdir()
        (tmp / "pos.jsonl").write_text("{}\n")
    assert (dst / "pos.jsonl").read_text() == "{}\n"
    other = tmp_path / "other"
    with pytest.raises(KeyboardInterrupt), atomic.replacing(other) as tmp:
        tmp.mkdir()
        (tmp / "half").write_text("x")
        raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["search"]


def test_each_process_writes_through_its_own_temporary_name(tmp_path):
    tmp = atomic.temporary(tmp_path / "preprocess.json")
    assert tmp.parent == tmp_path and str(os.getpid()) in tmp.name and tmp.name.endswith(atomic.SUFFIX)
