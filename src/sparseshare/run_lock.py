"""One writer per run directory: the process running into it holds an OS lock on its ``.lock`` file.

Two ``sparseshare run`` on one ``--out`` would each do all the work and overwrite each other's files; the
second is refused instead, in one line naming the holder (its pid, host, start and command, which the
holder writes into the file). The lock is ``flock``'s: the operating system frees it when the holder
ends, however it ends (``kill -9`` included), so a stale ``.lock`` never blocks a resume. The file stays,
emptied when the holder is done (deleting it could let a third process lock a file nobody else sees).

Within one process the lock is re-entrant (``sparseshare run`` takes it, then ``run_experiment`` again),
and a sweep's points are written under their root's lock. Ray workers take none: the driver holds it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from sparseshare import atomic, paths
from sparseshare.errors import RunError

_held: dict[str, int] = {}  # run directory (real path) -> how many times this process holds its lock


def _holder(fd: int) -> str:
    """What the holder wrote into the lock file, or a stand-in while it has not written yet."""
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 4096).decode("utf-8", "replace").strip()
    return " ".join(text.split()) or "another process"


@contextlib.contextmanager
def locked(run: str | Path, command: str | None = None) -> Iterator[Path]:
    """Hold ``run``'s lock (the folder made if need be) while the block runs; a RunError naming the
    holder when another process holds it. ``command``: what to name this process by (default its argv)."""
    run = Path(run)
    key = os.path.realpath(run)
    if key in _held:
        _held[key] += 1
        try:
            yield run
        finally:
            _held[key] -= 1
        return
    run.mkdir(parents=True, exist_ok=True)
    path = paths.lock(run)
    atomic.check_no_links(path, root=run)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    except OSError as e:
        if e.errno == errno.ELOOP:  # a link made since the check
            atomic.check_no_links(path, root=run)
        raise
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunError(
                f"{run}: is being written by {_holder(fd)}; wait for it to end or choose another --out"
            ) from None
        started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        what = command or " ".join(["sparseshare", *sys.argv[1:]])
        os.ftruncate(fd, 0)
        os.pwrite(
            fd, f"pid {os.getpid()} on {socket.gethostname()} (started {started}: {what})\n".encode(), 0
        )
        _held[key] = 1
        try:
            yield run
        finally:
            del _held[key]
            os.ftruncate(fd, 0)  # a finished run's files are the same bytes whoever ran it, and when
    finally:
        os.close(fd)  # frees the lock (as the process's end would)
