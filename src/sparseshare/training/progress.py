"""What a user of the Python API sees while training: progress by default, silenced by an argument.

The CLI configures the ``sparseshare`` logger (its lines on stderr); a script that calls ``warmup``,
``search_masks`` or ``train_jointly`` usually configures nothing, and Python's logging then shows only
warnings. With ``progress=True`` (the default) such a call shows what the CLI shows: on a terminal a bar
per training run and per IMP search; off one (a notebook's log, nohup, Slurm, CI) one line per epoch and
per IMP level on stderr, for the duration of the call. A program that configured logging itself (a
handler on ``sparseshare`` or on the root logger) keeps its own configuration. ``progress=False``
silences the bars and the lines; warnings still reach stderr.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
from collections.abc import Iterator

logger = logging.getLogger("sparseshare")


class _Lines(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        kind = "warning: " if record.levelno >= logging.WARNING else ""
        print(f"sparseshare: {kind}{self.format(record)}", file=sys.stderr, flush=True)


_STAGE = contextvars.ContextVar("sparseshare_stage", default="")


@contextlib.contextmanager
def staged(text: str) -> Iterator[None]:
    """Prefix every bar and progress line inside with ``text`` (where a multi-system run stands)."""
    token = _STAGE.set(text)
    try:
        yield
    finally:
        _STAGE.reset(token)


def label(desc: str) -> str:
    """``desc`` as a bar or a progress line shows it: after the stage, if any."""
    stage = _STAGE.get()
    return f"{stage} {desc}" if stage else desc


def duration(seconds: float) -> str:
    """Seconds as a person reads them: 42 s, 3.2 min, 1.4 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def bar_disabled(progress: bool) -> bool | None:
    """tqdm's ``disable``: None shows a bar on a terminal only; True never."""
    return None if progress else True


@contextlib.contextmanager
def shown(progress: bool) -> Iterator[None]:
    """One line per epoch and per level on stderr while the call runs, when ``progress`` and stderr is
    not a terminal and no one configured logging; ``progress=False``: no progress lines at all."""
    configured = logger.hasHandlers() or logger.level != logging.NOTSET
    if configured and progress:
        yield
        return
    handler, level = None, logger.level
    if not progress:
        logger.setLevel(max(logging.WARNING, logger.getEffectiveLevel()))
    elif not sys.stderr.isatty():
        handler = _Lines()
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        if handler is not None:
            logger.removeHandler(handler)
        logger.setLevel(level)
