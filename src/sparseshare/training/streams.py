"""Named random streams: every unit the analysis compares draws from its own stream.

A stream's seed is a hash of the run's seed and a stable name (a task's, a level's), never an offset of a
shared counter, so two tasks trained on the same sentences (CoNLL-2003's POS, chunking and NER) see other
batch orders and dropout masks, and a task's stream does not depend on which other tasks a config lists
or in what order. The Overlap Ratio of two tasks' masks measures relatedness only if their searches are
independent (DESIGN.md, "Randomness and trust").
"""

from __future__ import annotations

import hashlib

# below 2**31, so that the trainer's per-epoch seed (seed * 100_003 + epoch) stays inside torch's 64 bits
_MODULUS = 2**31 - 1


def stream_seed(seed: int, *names: str | int) -> int:
    """The seed of the stream ``names`` (e.g. ``("task", "ner")``, ``("search", "ner", 3)``) under the
    run's ``seed``: stable across runs, platforms and Python versions (blake2b, not ``hash``)."""
    key = "\x1f".join([str(int(seed)), *(str(n) for n in names)])
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % _MODULUS


def task_seed(seed: int, task: str) -> int:
    """The stream of a system that trains ``task`` alone (single task, on its subnet, from θ^(w)): one per
    task name, the same for every such system, so their comparisons share batches and dropout."""
    return stream_seed(seed, "task", task)


def level_seed(seed: int, task: str, level: int) -> int:
    """The stream of IMP level ``level`` of ``task``'s search (Algorithm 1, step 4)."""
    return stream_seed(seed, "search", task, level)
