"""The ``sparseshare run --jobs N`` process, watched from outside.

Ray ends its driver from C++ when the driver's node dies (a raylet killed, ``ray stop`` elsewhere on the
machine, the node marked dead after missed heartbeats): ``_Exit(1)`` from one of its threads, with no
Python frame left to report it. Within the driver nothing can catch that, so the command line runs a Ray
run as a child process and reports such an end itself: one line, exit 2, the run resumable.

The child tells the watcher, through a small status file, that its own ``main`` returned (or raised a
Python exception, whose traceback it printed); a child that ended without that was ended from outside
Python. The child runs in its own process group, so a terminal's Ctrl-C reaches it once, forwarded, and
it dies with the watcher (Linux's parent-death signal) when the watcher is killed outright.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

STATUS_ENV = "SPARSESHARE_STATUS_FILE"
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_PR_SET_PDEATHSIG = 1


def supervised() -> bool:
    """This process is the watched child (it reports to a watcher)."""
    return STATUS_ENV in os.environ


def report_status(status: str) -> None:
    """The child's last word: its ``main`` ended in Python (``status`` is its exit code or 'exception')."""
    path = os.environ.get(STATUS_ENV)
    if path:  # the file the watcher made (mkstemp), written in place; never through a link
        with contextlib.suppress(OSError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(status)


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def watch(command: list[str]) -> int:
    """Run ``command`` (the same ``sparseshare`` command line) as a child and return its exit code; a
    child that Ray (or a signal) ended outside Python gets the one-line error here, exit 2."""
    fd, status = tempfile.mkstemp(prefix="sparseshare-status-")
    os.close(fd)
    try:
        proc = subprocess.Popen(
            command,
            env={**os.environ, STATUS_ENV: status},
            process_group=0,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        # a signal this process ignores (a job started with & or nohup ignores SIGINT) the child ignores
        # too, inherited: it is not forwarded either, so both agree
        kept = [s for s in FORWARDED if signal.getsignal(s) is not signal.SIG_IGN]
        previous = {s: signal.signal(s, lambda sig, _f: proc.send_signal(sig)) for s in kept}
        try:
            rc = proc.wait()  # the forwarding handlers return: the wait goes on (PEP 475)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        said = Path(status).read_text()
    finally:
        with contextlib.suppress(OSError):
            os.unlink(status)
    if said:
        return rc
    if rc < 0:
        why = f"the run's process was killed by {signal.Signals(-rc).name}"
    else:
        why = (
            f"the Ray cluster failed under the run (Ray ended its driver, exit {rc}: the driver's node or "
            f"its raylet died)"
        )
    print(
        f"sparseshare: error: {why}; what the units committed is kept: run the same command again to resume",
        file=sys.stderr,
        flush=True,
    )
    return 2
