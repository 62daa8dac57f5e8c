"""The file a user names for ``predict -o`` or ``export -o``: checked before any work, so that a folder
there or an unwritable place is one line before anything is computed (path, cause, remedy:
sparseshare.fault_lines). A write that fails later names the file too: ``open`` names it, and an export's
atomic write names its target, not the temporary (sparseshare.atomic)."""

from __future__ import annotations

import errno
import os
from pathlib import Path


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
