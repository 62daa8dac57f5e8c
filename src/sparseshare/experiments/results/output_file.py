"""The file a user names for ``predict -o`` or ``export -o``: checked before any work, and a failed write
named by it, so that the command line says it in one line (path, cause, remedy: sparseshare.fault_lines).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def _fault(code: int, path: Path) -> OSError:
    return OSError(code, os.strerror(code), str(path))


def check_writable(path: Path, make_folders: bool = False) -> None:
    """The OSError writing ``path`` would meet, raised before the work that computes its content: a
    folder there, a file where a folder above should be, a folder that is missing (unless
    ``make_folders``) or not writable."""
    path = Path(path)
    if path.is_dir():
        raise _fault(errno.EISDIR, path)
    folder = path.parent
    while make_folders and not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the nearest folder there is: where the missing ones are made
    if not folder.exists():
        raise _fault(errno.ENOENT, folder)
    if not folder.is_dir():
        raise _fault(errno.ENOTDIR, path)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise _fault(errno.EACCES, path)


@contextlib.contextmanager
def named_by(path: Path) -> Iterator[None]:
    """An OSError in the block names ``path``, not the temporary file that was written in its place."""
    try:
        yield
    except OSError as e:
        if e.filename is None or e.filename == str(path) or e.errno is None:
            raise
        raise _fault(e.errno, Path(path)) from None


@contextlib.contextmanager
def writing(path: Path) -> Iterator[BinaryIO]:
    """``path`` opened to write (bytes); an OSError names it."""
    with named_by(path), open(path, "wb") as f:
        yield f
