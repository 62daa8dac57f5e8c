"""OS faults as one line: the path, the cause and what to do (the disk full, a read-only place, a folder
where a file goes). The command line prints these for an OSError, or safetensors' error wrapping one,
that reaches it (exit status 2); a run stopped by one resumes when the command is run again."""

from __future__ import annotations

import errno
import os
import re

# what to do about an OSError, by errno; the rest: fix what it names and run the command again
_REMEDY = {
    errno.ENOSPC: "free space and run the same command again (a run resumes where it stopped)",
    errno.EDQUOT: "free space (the disk quota is reached) and run the same command again (a run resumes "
    "where it stopped)",
    errno.EACCES: "make it writable or write elsewhere (--out, --output), and run the command again",
    errno.EPERM: "make it writable or write elsewhere (--out, --output), and run the command again",
    errno.EROFS: "the file system is read-only: write elsewhere (--out, --output, or a copy of the run)",
    errno.EISDIR: "a folder is where a file goes: name a file, or move the folder away",
    errno.ENOTDIR: "a folder on that path is a file: choose another path",
}


def os_line(e: OSError, place: str | None) -> str:
    """An OSError as one line: the path, the cause and what to do (``place`` when it names no path). A
    failed rename is named by its target (the file replaced; the source is a temporary)."""
    filename = e.filename2 if e.filename2 is not None else e.filename
    where = os.fsdecode(filename) if filename is not None else (f"{place} (a file in it)" if place else None)
    cause = (
        f"{e.strerror} (errno {e.errno})" if e.strerror else (" ".join(str(e).split()) or type(e).__name__)
    )
    remedy = _REMEDY.get(e.errno, "fix that and run the same command again")
    return f"{where}: {cause}; {remedy}" if where else f"{cause}; {remedy}"


def safetensors_line(e: Exception, place: str | None) -> str:
    """safetensors' error as one line: an OS error it wraps ('(os error 28)') as :func:`os_line` says it."""
    text = " ".join(str(e).split())
    found = re.search(r"\(os error (\d+)\)", text)
    if found is None:
        return f"{place + ': ' if place else ''}safetensors: {text}"
    code = int(found.group(1))
    return os_line(OSError(code, os.strerror(code)), place)
