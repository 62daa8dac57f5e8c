"""Writes in a run directory: a file (or folder) appears whole under its name, or not at all, and no
write follows a symbolic link.

Every writer of a run directory goes through :func:`replacing`: it creates, exclusively, a temporary
path beside the target named ``<name>.<random>.tmp`` (unguessable and never shared: two threads, two
``run --jobs`` workers or a reused pid each get their own), which is flushed to disk and renamed over the
target on success and removed on any error. A reader sees the old file or the new one; a crash leaves at
most a ``*.tmp``. :func:`append` (the event log) and :func:`remove` (``--repair``) are the other writes.

A run directory may come from someone else, so a symbolic link in it could point anywhere (a results.md
linked to a shell script). Each write first refuses, in one line naming it, a link at the target or at
any folder between the run directory and it; the run directory itself may be a link. The run directory
is ``root`` where the caller knows it, else the nearest folder above holding a ``config.yaml``.

The process remembers the order of its replacements (:func:`write_order`): a Ray worker sends a commit's
files to the driver in that order, and the driver renames them in it, so a driver killed half-way leaves a
state the worker itself passed through (the trainer's best state before the checkpoint naming it).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from sparseshare import paths
from sparseshare.errors import RunError

SUFFIX = ".tmp"

_sequence = itertools.count()
_written: dict[str, int] = {}  # absolute path -> when this process last replaced it


def write_order(path: str | Path) -> int:
    """When this process last replaced ``path`` through :func:`replacing` (larger is later; -1: never)."""
    return _written.get(os.path.abspath(path), -1)


def temporary(path: Path) -> Path:
    """A fresh temporary name beside ``path`` (64 random bits: no two writers share one, none is guessed)."""
    return path.with_name(f"{path.name}.{secrets.token_hex(8)}{SUFFIX}")


def _linked(path: Path) -> RunError:
    return RunError(
        f"{path}: is a symbolic link (to {os.readlink(path)!r}); sparseshare does not write through links "
        f"in a run directory: put the file or folder itself in its place (or delete the link) and run the "
        f"command again"
    )


def _run_root(path: Path) -> Path:
    """The run directory holding ``path``: the nearest folder above it with a config.yaml (else its
    folder). A linked one inside another run (``systems`` -> elsewhere, a sweep's point) is refused."""
    above = list(path.parents)
    for i, folder in enumerate(above):
        if paths.config(folder).is_file():
            if folder.is_symlink() and any(paths.config(f).is_file() for f in above[i + 1 : i + 3]):
                raise _linked(folder)
            return folder
    return path.parent


def check_no_links(path: str | Path, root: str | Path | None = None, target: bool = True) -> None:
    """A RunError when a folder between the run directory ``root`` and ``path`` (or, with ``target``,
    ``path`` itself) is a symbolic link; nothing is changed."""
    path = Path(os.path.abspath(path))
    base = _run_root(path) if root is None else Path(os.path.abspath(root))
    try:
        parts = path.relative_to(base).parts
    except ValueError:  # not inside root: only its own folder's entry is the caller's
        base, parts = path.parent, (path.name,)
    for i, part in enumerate(parts):
        base = base / part
        if (target or i < len(parts) - 1) and base.is_symlink():
            raise _linked(base)


def _create(tmp: Path, folder: bool) -> None:
    """Make ``tmp`` exclusively: an error if anything (a file, a link) has that name already."""
    if folder:
        tmp.mkdir()
    else:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666))


def _os_error(e: BaseException, path: Path) -> OSError | None:
    """safetensors reports a failed write (the disk full, say) as a SafetensorError whose text ends in
    '(os error N)': the OSError it is, naming the target, so that the command line says it in one line.
    An OSError that names no file (a flush, an fsync) or names the temporary names the target too."""
    if isinstance(e, OSError) and e.errno is not None and (e.filename is None or SUFFIX in str(e.filename)):
        return OSError(e.errno, e.strerror, str(path))
    found = re.search(r"\(os error (\d+)\)", str(e)) if type(e).__name__ == "SafetensorError" else None
    if found is None:
        return None
    code = int(found.group(1))
    return OSError(code, os.strerror(code), str(path))


@contextlib.contextmanager
def replacing(path: str | Path, root: str | Path | None = None, folder: bool = False) -> Iterator[Path]:
    """Yield a new, empty temporary file (or, with ``folder``, folder to fill) in ``path``'s folder, made
    if need be; on success it replaces ``path`` (a file is fsync'd first), on an error it is removed and
    the error goes on. A link at ``path`` or between ``root`` and it is refused first (RunError)."""
    path = Path(path)
    check_no_links(path, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary(path)
    _create(tmp, folder)
    try:
        yield tmp
        if not tmp.is_symlink() and tmp.is_file():
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
        _written[os.path.abspath(path)] = next(_sequence)
    except BaseException as e:
        _remove(tmp)
        error = _os_error(e, path)
        if error is not None:
            raise error from None
        raise


def write_bytes(path: str | Path, data: bytes, root: str | Path | None = None) -> None:
    with replacing(path, root) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str, root: str | Path | None = None) -> None:
    with replacing(path, root) as tmp:
        tmp.write_text(text)


def append(path: str | Path, text: str, root: str | Path | None = None) -> None:
    """Add ``text`` at the end of ``path`` (made if need be), never through a link (O_NOFOLLOW)."""
    path = Path(path)
    check_no_links(path, root)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o666)
    except OSError:
        if path.is_symlink():  # made a link since the check
            raise _linked(path) from None
        raise
    with os.fdopen(fd, "a") as f:
        f.write(text)


def _remove(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path)  # removes the links inside, never what they point to


def remove(path: str | Path, root: str | Path | None = None) -> None:
    """Delete ``path`` (a file, a folder and all in it, or a link itself: never what a link points to);
    a link among the folders between ``root`` and it is refused (RunError)."""
    path = Path(path)
    check_no_links(path, root, target=False)
    _remove(path)
