"""Batched experts (models/experts.py) give the expert-by-expert numbers bit for bit: outputs, every
gradient and Adam steps, for MMoE, CGC/PLE and PBFS (masked, through sparseshare.sharing.PBFS), and
they fall back to one-by-one experts where batching could round differently."""

import copy

import pytest
import torch
from torch import nn

from sparseshare.data.tabular import TabularBatch
from sparseshare.models import experts as ex
from sparseshare.models.mlp import MLP, PBFSNet
from sparseshare.sharing.mmoe import MMoE, mmoe
from sparseshare.sharing.pbfs import PBFS, pbfs
from sparseshare.sharing.ple import PLE, cgc, ple
from tests.helpers import masked_step

KINDS = {"a": "binary", "b": "regression", "c": "binary"}
WEIGHTS = {"a": 1.0, "b": 0.5, "c": 2.0}


def _batch(rows: int, in_dim: int, seed: int = 0) -> TabularBatch:
    g = torch.Generator().manual_seed(seed)
    y = {t: torch.randn(rows, generator=g).gt(0).float() for t in KINDS}
    y["b"][::7] = float("nan")  # unlabelled rows
    return TabularBatch(torch.randn(rows, in_dim, generator=g), y, torch.arange(rows))


@pytest.fixture
def batched_calls(monkeypatch):
    """Shapes of the stacked weights of every batched layer call."""
    calls = []
    apply = ex._BatchedLinear.apply

    def counting(*args):
        calls.append(tuple(args[1].shape))
        return apply(*args)

    monkeypatch.setattr(ex._BatchedLinear, "apply", counting)
    return calls


def _loss(model, batch, task):
    """One task's loss, or the joint one for None (PBFSNet, bare, has only per-task outputs)."""
    if task is None and hasattr(model, "joint_loss"):
        return model.joint_loss(batch, WEIGHTS)
    if hasattr(model, "loss"):
        return model.loss(batch, task)
    tasks = [task] if task is not None else list(WEIGHTS)
    return sum(WEIGHTS[t] * model.task_loss(model(batch, t), batch, t) for t in tasks)


def _mode(batched: bool):
    """Batched (wide experts on a CPU too, which by default run one by one), or one by one."""
    return ex.batched() if batched else ex.one_by_one()


def _grads(model, batch, task):
    """The loss and every parameter's gradient."""
    model.zero_grad(set_to_none=True)
    loss = _loss(model, batch, task)
    loss.backward()
    return [loss.detach()] + [p.grad for p in model.parameters()]


def _equal(a, b) -> bool:
    return len(a) == len(b) and all(
        (x is None and y is None) or (x is not None and y is not None and torch.equal(x, y))
        for x, y in zip(a, b)
    )


def _both_ways(model, batch, task):
    with ex.batched():
        got = _grads(model, batch, task)
    with ex.one_by_one():
        want = _grads(model, batch, task)
    return got, want


NETS = {
    "mmoe": lambda d: mmoe(d, KINDS),  # the census setting: 8 experts of 4 units
    "mmoe_deep": lambda d: MMoE(d, KINDS, 5, (16, 8)),
    "cgc": lambda d: cgc(d, KINDS),
    "ple": lambda d: ple(d, KINDS),
    "ple_3_levels": lambda d: PLE(d, KINDS, 3, 2, (16, 8), (8,), 3),  # inputs with 3-5 readers
    "pbfs_net": lambda d: PBFSNet(d, KINDS, [["a", "b"], ["b", "c"]], 2, 2),
}


@pytest.mark.parametrize("name", list(NETS))
@pytest.mark.parametrize("rows,in_dim", [(512, 534), (137, 37), (4, 40)])
@pytest.mark.parametrize("task", ["b", None])
def test_outputs_and_gradients_are_the_expert_by_expert_ones(name, rows, in_dim, task, batched_calls):
    torch.manual_seed(1)
    model = NETS[name](in_dim)
    got, want = _both_ways(model, _batch(rows, in_dim), task)
    assert _equal(got, want)
    assert batched_calls  # the batched path ran (and one_by_one did not add to it)
    if name == "mmoe":
        assert batched_calls == [(8, 4, in_dim)]  # the experts once, for one task or all


def test_ple_readers_of_one_input_run_in_rounds(batched_calls):
    """Level 2 of PLE: 3 specific experts read each task's gate output, 2 the shared gate's; the j-th
    reader of each runs in call j, so each input's gradient sums in the one-by-one order."""
    torch.manual_seed(0)
    model = PLE(16, KINDS, 3, 2, (16,), (8,), 2)
    got, want = _both_ways(model, _batch(64, 16), None)
    assert _equal(got, want)
    assert batched_calls == [(11, 16, 16), (4, 16, 16), (4, 16, 16), (3, 16, 16)]


@pytest.mark.parametrize("name", ["mmoe", "ple", "pbfs_net"])
def test_adam_training_stays_bit_identical(name):
    torch.manual_seed(2)
    new = NETS[name](534)
    old = copy.deepcopy(new)
    opts = {m: torch.optim.Adam(m.parameters(), lr=1e-2) for m in (new, old)}
    for step in range(6):
        batch, task = _batch(256, 534, seed=step), [None, "a", "b", "c"][step % 4]
        for model, batched in ((new, True), (old, False)):
            with _mode(batched):
                _grads(model, batch, task)
            opts[model].step()
    assert all(torch.equal(p, q) for p, q in zip(new.parameters(), old.parameters()))


def _masked_pbfs(seed=3) -> PBFS:
    torch.manual_seed(seed)
    mech = pbfs(534, KINDS, pools=[["a", "b"], ["b", "c"]], num_specific=1, num_shared=2)
    g = torch.Generator().manual_seed(seed)
    for t in KINDS:
        mech.set_mask(t, {n: torch.rand(m.shape, generator=g) < 0.6 for n, m in mech.mask(t).items()})
    return mech


@pytest.mark.parametrize("task", ["b", None])
def test_pbfs_masks_reach_the_batched_experts(task, batched_calls):
    """functional_call substitutes M_t ⊙ θ by name; the batched forward reads it through the modules."""
    mech = _masked_pbfs()
    batch = _batch(512, 534)
    got, want = _both_ways(mech, batch, task)
    assert _equal(got, want)
    # task b: 1 specific + 2 pools x 2 shared experts; a and c: 1 + 2
    assert {c[0] for c in batched_calls} == ({5} if task else {3, 5})
    # the masks matter: the unmasked network computes another loss
    assert not torch.equal(got[0], _loss(mech.net, batch, task).detach())


def test_pbfs_in_place_masks_and_masked_steps_stay_bit_identical(batched_calls):
    new = _masked_pbfs()
    old = copy.deepcopy(new)
    opts = {id(m): torch.optim.Adam(m.parameters(), lr=1e-2) for m in (new, old)}
    for step in range(4):
        batch, task = _batch(256, 534, seed=step), ["a", "b", "c", "b"][step]
        for mech, batched in ((new, True), (old, False)):
            with _mode(batched):  # odd steps the trainer's path: M_t applied to the weights in place
                masked_step(mech, opts[id(mech)], batch, task, in_place=bool(step % 2))
    assert batched_calls
    assert all(torch.equal(p, q) for p, q in zip(new.parameters(), old.parameters()))


def test_on_a_cpu_only_narrow_experts_batch_by_default(batched_calls):
    """MMoE's 4-unit experts batch; 16-unit ones (CGC) run one by one, as fast alone on a CPU."""
    torch.manual_seed(0)
    narrow, wide = mmoe(40, KINDS), cgc(40, KINDS)
    batch = _batch(64, 40)
    with ex.one_by_one():
        want = _grads(narrow, batch, None)
    assert _equal(_grads(narrow, batch, None), want) and batched_calls == [(8, 4, 40)]
    _grads(wide, batch, None)
    assert batched_calls == [(8, 4, 40)]


def test_parameter_names_are_those_of_separate_experts():
    names = list(mmoe(10, KINDS, num_experts=2).state_dict())
    assert names[:4] == [
        "experts.0.layers.0.weight",
        "experts.0.layers.0.bias",
        "experts.1.layers.0.weight",
        "experts.1.layers.0.bias",
    ]


class _Scaled(nn.Module):
    """An expert of one's own (PBFSNet's make_expert): not an MLP, run as it is."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(12, 8)
        self.out_dim = 8

    def forward(self, x):
        return 2 * torch.relu(self.lin(x))


class _Doubled(MLP):
    def forward(self, x):
        return 2 * self.layers(x)


@pytest.mark.parametrize(
    "experts,rows",
    [
        ([_Scaled() for _ in range(3)], 64),  # not a SequentialExpert
        ([_Doubled(12, [8]) for _ in range(3)], 64),  # an MLP whose forward is its own
        ([MLP(12, [8], activation="sigmoid") for _ in range(3)], 64),  # not ReLU
        ([MLP(12, [8], dropout=0.5) for _ in range(3)], 64),  # active dropout
        ([MLP(12, [6]) for _ in range(3)], 64),  # 6 float32s: not 16 bytes
        ([MLP(12, [8]) for _ in range(3)], 2),  # 2 * 12 * 8 < 400: torch's own bmm loop
        ([MLP(12, [8]), MLP(12, [8]), MLP(12, [4])], 64),  # shapes differ
    ],
)
def test_what_cannot_be_batched_runs_one_by_one(experts, rows, batched_calls):
    x = torch.randn(rows, 12)
    torch.manual_seed(5)
    with ex.batched():
        got = ex.run_experts(experts, [x] * len(experts))
    torch.manual_seed(5)
    want = [e(x) for e in experts]
    assert batched_calls == []
    assert all(torch.equal(a, b) for a, b in zip(got, want))


def test_dropout_experts_batch_in_evaluation(batched_calls):
    experts = [MLP(12, [8], dropout=0.5).eval() for _ in range(3)]
    x = torch.randn(64, 12)
    with ex.batched():
        got = ex.run_experts(experts, [x] * 3)
    assert batched_calls == [(3, 8, 12)]
    assert all(torch.equal(a, e(x)) for a, e in zip(got, experts))


def test_pbfs_net_with_experts_of_ones_own_runs_them(batched_calls):
    torch.manual_seed(0)
    net = PBFSNet(12, KINDS, make_expert=_Scaled)
    batch = _batch(64, 12)
    got, want = _both_ways(net, batch, "a")
    assert _equal(got, want) and batched_calls == []


def test_one_input_per_expert():
    with pytest.raises(ValueError, match="2 experts but 1 inputs"):
        ex.run_experts([MLP(4, [4]), MLP(4, [4])], [torch.randn(3, 4)])
