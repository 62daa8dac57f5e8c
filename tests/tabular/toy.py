"""Toy tabular batches and mechanisms shared by the tabular tests."""

from __future__ import annotations

import torch

from sparseshare.data.tabular import TabularBatch
from sparseshare.sharing.cross_stitch import cross_stitch
from sparseshare.sharing.mmoe import mmoe
from sparseshare.sharing.pbfs import pbfs
from sparseshare.sharing.ple import cgc, ple
from sparseshare.sharing.shared_bottom import shared_bottom

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


def build(name: str, seed: int = 0):
    """A small instance of every tabular mechanism: (module, task kinds)."""
    torch.manual_seed(seed)
    if name == "shared_bottom":
        return shared_bottom(F, KINDS, bottom=(8, 8), tower=(8,)), KINDS
    if name == "cross_stitch":
        return cross_stitch(F, KINDS3, bottom=(8, 8), tower=(8,)), KINDS3
    if name == "mmoe":
        return mmoe(F, KINDS, num_experts=3, expert_hidden=(8,), tower=(8,)), KINDS
    if name == "cgc":
        return cgc(F, KINDS, num_specific=2, num_shared=2, expert_hidden=(8,), tower=(8,)), KINDS
    if name == "ple":
        return ple(F, KINDS, num_specific=2, num_shared=2, expert_hidden=(8,), tower=(8,), levels=2), KINDS
    if name == "pbfs":
        return pbfs(
            F, KINDS3, pools=POOLS3, num_specific=1, num_shared=2, expert_hidden=(8, 8), tower=(8,)
        ), KINDS3
    raise KeyError(name)


def random_masks(mech, density: float, seed: int = 0):
    """Random per-task masks over each PBFS task's shared weights."""
    g = torch.Generator().manual_seed(seed)
    params = dict(mech.net.named_parameters())
    return {
        t: {n: torch.rand(params[n].shape, generator=g) < density for n in mech.net.shared_weight_names(t)}
        for t in mech.tasks
    }
