"""A worker's commit reaches the driver's disk in the order the worker wrote it (experiments/run/cluster.py),
so a driver killed in the middle of writing one leaves a state the worker itself passed through: never a
trainer checkpoint without the best state it names (the CI failure of stop 25)."""

import random
import string

import pytest

from sparseshare import atomic
from sparseshare.experiments.run.cluster import Mailbox, _put_files, _Sync


def _names(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"{''.join(rng.choices(string.ascii_lowercase, k=8))}.bin" for _ in range(n)]


def test_a_commit_lists_its_files_in_the_order_they_were_written(tmp_path):
    (tmp_path / "old.bin").write_bytes(b"old")
    sync = _Sync(tmp_path, mailbox=None, uid="u")
    names = _names(30, seed=0)  # a directory's listing order is not the order of creation
    for i, name in enumerate(names):
        atomic.write_bytes(tmp_path / "systems" / name, str(i).encode())
    (tmp_path / "old.bin").unlink()
    changes = sync.changes()
    assert list(changes) == ["old.bin", *(f"systems/{n}" for n in names)]  # deletions first
    assert changes["old.bin"] is None
    # written again: it moves to the end
    atomic.write_bytes(tmp_path / "systems" / names[0], b"again")
    atomic.write_bytes(tmp_path / "systems" / names[1], b"again")
    assert list(sync.changes()) == [f"systems/{names[0]}", f"systems/{names[1]}"]


def test_the_trainer_s_best_state_comes_before_the_checkpoint_naming_it(tmp_path):
    sync = _Sync(tmp_path, mailbox=None, uid="u")
    for epoch in range(3):  # the trainer: best.safetensors on an improving epoch, then last.safetensors
        atomic.write_bytes(tmp_path / "hard" / "best.safetensors", b"best %d" % epoch)
        atomic.write_bytes(tmp_path / "hard" / "last.safetensors", b"last %d" % epoch)
        assert list(sync.changes()) == ["hard/best.safetensors", "hard/last.safetensors"]


def test_the_mailbox_keeps_the_write_order_across_pushes():
    box = Mailbox()
    box.push("u", {"last": b"1"})  # an epoch that did not improve
    box.push("u", {"best": b"2", "last": b"2"})  # one that did
    dirty, _ = box.drain()
    assert list(dirty) == ["best", "last"]
    assert list(box.start("u")[1]) == ["best", "last"]


def test_a_driver_killed_within_a_commit_leaves_a_prefix_of_it(tmp_path, monkeypatch):
    files = {f"f{i}": b"x" for i in range(5)}
    written = []
    real = atomic.write_bytes

    def dying(path, data):
        if len(written) == 3:
            raise KeyboardInterrupt
        real(path, data)
        written.append(path.name)

    monkeypatch.setattr(atomic, "write_bytes", dying)
    with pytest.raises(KeyboardInterrupt):
        _put_files(tmp_path, files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f0", "f1", "f2"]
