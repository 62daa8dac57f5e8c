"""Toy tabular batches and mechanisms shared by the tabular tests."""

from __future__ import annotations

import torch

from sparseshare.data.tabular import TabularBatch
from sparseshare.sharing.registry import MECHANISMS, build_mechanism

F = 6
KINDS = {"a": "binary", "b": "regression"}
KINDS3 = {"a": "binary", "b": "regression", "c": "regression"}
POOLS3 = [["a", "b"], ["b", "c"]]


def toy_batch(seed: int, kinds=KINDS, b: int = 32, f: int = F) -> TabularBatch:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, f, generator=g)
    y = {}
    for i, (t, k) in enumerate(kinds.items()):
        signal = x[:, i % f] - 0.5 * x[:, (i + 1) % f]
        y[t] = (signal > 0).float() if k == "binary" else signal + 0.1 * torch.randn(b, generator=g)
    return TabularBatch(x, y, torch.arange(b))


# small sizes for the tests' speed; a mechanism not named here is built at its builder's defaults
TOY_SIZES = {
    "shared_bottom": {"bottom": (8, 8), "tower": (8,)},
    "cross_stitch": {"bottom": (8, 8), "tower": (8,)},
    "mmoe": {"num_experts": 3, "expert_hidden": (8,), "tower": (8,)},
    "cgc": {"num_specific": 2, "num_shared": 2, "expert_hidden": (8,), "tower": (8,)},
    "ple": {"num_specific": 2, "num_shared": 2, "expert_hidden": (8,), "tower": (8,), "levels": 2},
    "pbfs": {"pools": POOLS3, "num_specific": 1, "num_shared": 2, "expert_hidden": (8, 8), "tower": (8,)},
}
THREE_TASKS = ("cross_stitch", "pbfs")  # built over KINDS3 (PBFS: two pools over three tasks)
TABULAR = [n for n, e in MECHANISMS.items() if e.family == "tabular"]


def build(name: str, seed: int = 0):
    """A small instance of a registered tabular mechanism: (module, task kinds)."""
    if name not in TABULAR:
        raise KeyError(name)
    torch.manual_seed(seed)
    kinds = KINDS3 if name in THREE_TASKS else KINDS
    return build_mechanism(name, F, kinds, **TOY_SIZES.get(name, {})), kinds


def random_masks(mech, density: float, seed: int = 0):
    """Random per-task masks over each PBFS task's shared weights."""
    g = torch.Generator().manual_seed(seed)
    params = dict(mech.net.named_parameters())
    return {
        t: {n: torch.rand(params[n].shape, generator=g) < density for n in mech.net.shared_weight_names(t)}
        for t in mech.tasks
    }
