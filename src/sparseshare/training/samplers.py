"""Which task trains at each step of joint training (separate objects handed to the trainer)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from sparseshare.errors import ConfigError


def proportional(sizes: Mapping[str, int], steps: int, generator: torch.Generator) -> list[str]:
    """P(task) proportional to its dataset size (Sanh et al. 2019), as the sparse-sharing paper."""
    tasks = list(sizes)
    w = torch.tensor([float(sizes[t]) for t in tasks])
    idx = torch.multinomial(w / w.sum(), steps, replacement=True, generator=generator)
    return [tasks[i] for i in idx.tolist()]


def uniform(sizes: Mapping[str, int], steps: int, generator: torch.Generator) -> list[str]:
    """Every task equally likely at every step."""
    tasks = list(sizes)
    idx = torch.randint(len(tasks), (steps,), generator=generator)
    return [tasks[i] for i in idx.tolist()]


def round_robin(sizes: Mapping[str, int], steps: int, generator: torch.Generator) -> list[str]:
    """Tasks in turn: t1, t2, ..., tT, t1, ..."""
    tasks = list(sizes)
    return [tasks[i % len(tasks)] for i in range(steps)]


SAMPLERS = {"proportional": proportional, "uniform": uniform, "round_robin": round_robin}


def get_sampler(name: str):
    try:
        return SAMPLERS[name]
    except KeyError:
        raise ConfigError(f"unknown task sampler '{name}'; valid: {sorted(SAMPLERS)}") from None
