"""Checks shared by the config sections: ranges, names that may become paths, tasks named anywhere."""

from __future__ import annotations

import re

from sparseshare.data.readers import TASK_NAME

TAG_SCHEMES = ("auto", "iob1", "bio2", "iob2", "bioes")


NAME = TASK_NAME  # task names: they become file, folder and module names
RUN_NAME = re.compile(r"[A-Za-z0-9_.+=,\[\]-]+")  # experiment names (a point's: "name[a=1,b=2]")
LABEL = re.compile(r"[A-Za-z0-9_.+-]+")  # sweep axes and point labels (a point's folder is "a=1,b=2")
DEVICES = "auto, cpu, cuda, cuda:N, mps"
# past these a value is a slip, not a model: refused by the schema before any data is read (a model that is
# merely too big for this machine is refused when its size is known, experiments/systems/checks.py)
MAX_WIDTH = 2**20  # units of a layer, dimensions of an embedding, width of a convolution
MAX_COUNT = 1024  # BiLSTM layers, experts, PLE levels


def out_of_range(where: str, value, lo=None, hi=None, lo_open=False, hi_open=False) -> list[str]:
    """A problem line when ``value`` is outside [lo, hi] (open ends as asked), else none."""
    if value is None:
        return []
    bad = (lo is not None and (value <= lo if lo_open else value < lo)) or (
        hi is not None and (value >= hi if hi_open else value > hi)
    )
    if not bad:
        return []
    if hi is None:
        span = f"{'>' if lo_open else '>='} {lo}"
    else:
        span = f"in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    return [f"'{where}' must be {span}, got {value}"]


def above(where: str, value, hi) -> list[str]:
    """A problem line when ``value`` is above the bound ``hi`` past which it cannot be meant, else none."""
    return [f"'{where}' must be <= {hi:_}, got {value:_}"] if value is not None and value > hi else []


def bounded(where: str, value, lo, hi) -> list[str]:
    """``value`` >= ``lo`` (a range) and <= ``hi`` (past which it cannot be meant), each said apart."""
    return out_of_range(where, value, lo) + above(where, value, hi)


def bad_names(where: str, names, pattern: re.Pattern = NAME) -> list[str]:
    marks = {NAME: "_ -", RUN_NAME: "_ . + = , [ ] -", LABEL: "_ . + -"}[pattern]
    return [
        f"'{where}': '{n}' may hold only letters, digits and {marks}, and cannot start with '.'"
        for n in names
        if not isinstance(n, str) or not pattern.fullmatch(n) or n.startswith(".")
    ]


def unknown_tasks(where: str, given, known) -> list[str]:
    bad = [t for t in given if t not in known]
    return [f"'{where}': unknown task(s) {bad}; tasks are {list(known)}"] if bad else []


def device_problems(device: str) -> list[str]:
    """'auto', 'cpu', or an accelerator torch has here; anything else is a problem line."""
    import torch

    if device in ("auto", "cpu"):
        return []
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        return [f"'device': unknown device '{device}'; valid: {DEVICES}"]
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return [f"'device': '{device}' asked, but CUDA is not available here; use auto or cpu"]
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            return [
                f"'device': '{device}' asked, but this machine has {torch.cuda.device_count()} CUDA device(s)"
            ]
        return []
    if dev.type == "mps" and torch.backends.mps.is_available():
        return []
    return [f"'device': '{device}' is not available here; valid: {DEVICES}"]
