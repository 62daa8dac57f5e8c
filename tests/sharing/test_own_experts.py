"""Experts of one's own (``expert=(in_dim, out_dim) -> module``) in MMoE, CGC/PLE and PBFS."""

import pytest
import torch
from torch import nn

from sparseshare.data.tabular import TabularBatch
from sparseshare.models.mlp import MLP, PBFSNet
from sparseshare.sharing.mmoe import MMoE
from sparseshare.sharing.pbfs import PBFS
from sparseshare.sharing.ple import PLE

KINDS = {"a": "binary", "b": "regression"}


class Own(nn.Module):
    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.lin = nn.Linear(in_dim, out_dim)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x):
        return torch.tanh(self.norm(self.lin(x)))


def _batch(n=32, d=6):
    g = torch.Generator().manual_seed(1)
    return TabularBatch(
        torch.randn(n, d, generator=g),
        {"a": torch.rand(n, generator=g).round(), "b": torch.randn(n, generator=g)},
        torch.arange(n),
    )


BUILD = {
    "mmoe": lambda **kw: MMoE(6, KINDS, num_experts=3, expert_hidden=(8,), **kw),
    "ple": lambda **kw: PLE(6, KINDS, num_specific=1, num_shared=2, expert_hidden=(8,), levels=2, **kw),
    "pbfs": lambda **kw: PBFSNet(6, KINDS, num_specific=1, num_shared=2, expert_hidden=(8,), **kw),
}
COUNT = {"mmoe": 3, "ple": 2 * (2 * 1 + 2), "pbfs": 2 * 1 + 2}


@pytest.mark.parametrize("name", list(BUILD))
def test_the_factory_builds_every_expert_and_outputs_have_their_shape(name):
    calls = []

    def expert(i, o):
        calls.append((i, o))
        return Own(i, o)

    net = BUILD[name](expert=expert, expert_dim=5)
    assert len(calls) == COUNT[name] and all(o == 5 for _, o in calls)
    for t in KINDS:
        assert net(_batch(), t).shape == (32,)


@pytest.mark.parametrize("name", list(BUILD))
def test_a_factory_of_the_same_mlp_gives_the_default_numbers(name):
    torch.manual_seed(0)
    plain = BUILD[name]()
    torch.manual_seed(0)
    own = BUILD[name](expert=lambda i, o: MLP(i, [o]))
    for t in KINDS:
        assert torch.equal(plain(_batch(), t), own(_batch(), t))


def test_pbfs_masks_stay_exact_over_ones_own_experts():
    torch.manual_seed(0)
    mech = PBFS(PBFSNet(6, KINDS, num_specific=1, num_shared=2, expert=Own, expert_dim=5))
    names = mech.net.shared_weight_names("a")
    assert names and all(mech.net.get_parameter(n).dim() >= 2 for n in names)  # LayerNorm is not pruned
    g = torch.Generator().manual_seed(2)
    mech.set_mask("a", {n: torch.rand(mech.net.get_parameter(n).shape, generator=g) < 0.5 for n in names})
    mask = mech.mask("a")
    batch = _batch()
    before = {n: mech.net.get_parameter(n).detach().clone() for n in names}
    out = mech(batch, "a").detach()
    with torch.no_grad():  # a pruned weight does not change the task's output
        for n in names:
            mech.net.get_parameter(n)[~mask[n]] += 10.0
    assert torch.allclose(mech(batch, "a"), out)
    with torch.no_grad():
        for n in names:
            mech.net.get_parameter(n).copy_(before[n])
    opt = torch.optim.SGD(mech.parameters(), lr=0.5)
    opt.zero_grad()
    mech.loss(batch, "a").backward()
    mech.step(opt, "a")
    for n in names:  # a step on task a moves nothing outside its mask, and something inside
        w = mech.net.get_parameter(n).detach()
        assert torch.equal(w[~mask[n]], before[n][~mask[n]])
    assert any(not torch.equal(mech.net.get_parameter(n)[mask[n]], before[n][mask[n]]) for n in names)
