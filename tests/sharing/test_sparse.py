import contextlib
import copy

import pytest
import torch

from sparseshare.errors import ContractError
from sparseshare.sharing import HardSharing, SparseSharing, build_mechanism
from tests.helpers import DEVICES, random_masks, toy_batch, toy_tagger

TASKS = ("pos", "ner")


def _optimizers():
    return {
        "sgd_plain": lambda p: torch.optim.SGD(p, lr=0.1),
        "sgd_momentum": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-3),
        "sgd_dampened": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.5, dampening=0.2),
        "sgd_nesterov": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
        "adam": lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=1e-3),
    }


def _train_step(mech, opt, batch, task, in_place, clip=None):
    """One step as the trainer takes it: with the mask applied in place, or substituted."""
    block = mech.applied(task) if in_place else contextlib.nullcontext()
    with block:
        loss = mech.loss(batch, task)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(mech.parameters(), clip)
        mech.step(opt, task)
    return loss


IN_PLACE = [pytest.param(False, id="substituted"), pytest.param(True, id="in_place")]


def test_forward_uses_masked_weights_and_leaves_model_untouched():
    model = toy_tagger()
    masks = random_masks(model, TASKS, 0.5)
    mech = SparseSharing(model, masks)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    batch = toy_batch(1)
    ref = copy.deepcopy(model)
    with torch.no_grad():
        for n, p in ref.named_parameters():
            if n in masks["pos"]:
                p.mul_(masks["pos"][n])
    assert torch.allclose(mech(batch, "pos"), ref(batch, "pos"), atol=1e-6)
    assert not torch.allclose(mech(batch, "ner"), ref(batch, "ner"), atol=1e-4)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


@pytest.mark.parametrize("in_place", IN_PLACE)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("opt_name", list(_optimizers()))
def test_masked_step_never_changes_weights_or_state_outside_the_mask(opt_name, device, in_place):
    model = toy_tagger()
    masks = random_masks(model, TASKS, 0.6)
    mech = SparseSharing(model, masks).to(device)
    masks = {t: {n: m.to(device) for n, m in mk.items()} for t, mk in masks.items()}
    opt = _optimizers()[opt_name](mech.parameters())
    params = dict(model.named_parameters())
    for step in range(8):
        task = TASKS[step % 2]
        before = {n: params[n].detach().clone() for n in masks[task]}
        state_before = {
            n: {
                k: v.clone()
                for k, v in opt.state.get(params[n], {}).items()
                if torch.is_tensor(v) and v.dim()
            }
            for n in masks[task]
        }
        opt.zero_grad(set_to_none=True)
        _train_step(mech, opt, toy_batch(step).to(device), task, in_place)
        moved_inside = 0
        for n, m in masks[task].items():
            p = params[n].detach()
            assert torch.equal(p[~m], before[n][~m]), f"step {step}: {n} moved outside the mask of {task}"
            moved_inside += int((p[m] != before[n][m]).sum())
            for k, v in opt.state[params[n]].items():
                if torch.is_tensor(v) and v.dim():
                    old = state_before[n].get(k, torch.zeros_like(v))
                    assert torch.equal(v[~m], old[~m]), f"{opt_name} state '{k}' of {n} changed outside mask"
        assert moved_inside > 0  # the subnet itself did learn


def test_unmasked_step_leaks_through_momentum_which_masked_step_prevents():
    """Guard that the test above is meaningful: a plain optimizer step does move masked-out weights."""
    model = toy_tagger()
    masks = random_masks(model, TASKS, 0.5)
    mech = SparseSharing(model, masks)
    opt = torch.optim.SGD(mech.parameters(), lr=0.1, momentum=0.9)
    params = dict(model.named_parameters())
    for step in range(2):
        opt.zero_grad(set_to_none=True)
        mech.loss(toy_batch(step), TASKS[step]).backward()
        before = {n: params[n].detach().clone() for n in masks["ner"]}
        opt.step()  # bypasses mech.step
    leaked = sum(int((params[n].detach()[~m] != before[n][~m]).sum()) for n, m in masks["ner"].items())
    assert leaked > 0


@pytest.mark.parametrize("in_place", IN_PLACE)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("opt_name", list(_optimizers()))
def test_all_ones_sparse_equals_hard_step_for_step(opt_name, device, in_place):
    torch.backends.cudnn.deterministic = True
    hard_model = toy_tagger(seed=3, dropout=0.3)
    sparse_model = copy.deepcopy(hard_model)
    ones = random_masks(sparse_model, TASKS, 1.01)
    assert all(m.all() for mk in ones.values() for m in mk.values())
    hard = HardSharing(hard_model).to(device)
    sparse = SparseSharing(sparse_model, ones).to(device)
    opts = [_optimizers()[opt_name](m.parameters()) for m in (hard, sparse)]
    for step in range(10):
        task = TASKS[(step * 7) % 3 % 2]
        losses = []
        for mech, opt in zip((hard, sparse), opts):
            torch.manual_seed(100 + step)  # same dropout draws
            opt.zero_grad(set_to_none=True)
            if mech is hard:
                loss = mech.loss(toy_batch(step).to(device), task)
                loss.backward()
                mech.step(opt, task)
            else:
                loss = _train_step(mech, opt, toy_batch(step).to(device), task, in_place)
            losses.append(loss.item())
        assert losses[0] == losses[1], f"step {step}: {losses}"
    for (n, a), (_, b) in zip(hard_model.named_parameters(), sparse_model.named_parameters()):
        assert torch.equal(a, b), n


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("opt_name", list(_optimizers()))
def test_the_in_place_step_equals_the_substituted_step_bit_for_bit(opt_name, device):
    torch.backends.cudnn.deterministic = True
    model = toy_tagger(seed=5, dropout=0.3)
    masks = random_masks(model, TASKS, 0.5)
    mechs = [SparseSharing(copy.deepcopy(model), masks).to(device) for _ in range(2)]
    opts = [_optimizers()[opt_name](m.parameters()) for m in mechs]
    for step in range(9):
        task = TASKS[(step * 5) % 3 % 2]
        losses = []
        for mech, opt, in_place in zip(mechs, opts, (False, True)):
            torch.manual_seed(7 + step)
            opt.zero_grad(set_to_none=True)
            losses.append(_train_step(mech, opt, toy_batch(step).to(device), task, in_place, clip=0.5).item())
        assert losses[0] == losses[1], f"step {step}: {losses}"
    (a, b) = (dict(m.named_parameters()) for m in mechs)
    for n in a:
        assert torch.equal(a[n], b[n]), n
        assert opts[0].state[a[n]].keys() == opts[1].state[b[n]].keys()
        for k, v in opts[0].state[a[n]].items():
            assert torch.equal(v, opts[1].state[b[n]][k]), f"{opt_name} state '{k}' of {n}"


def test_leaving_the_in_place_block_without_a_step_puts_every_weight_back():
    model = toy_tagger()
    masks = random_masks(model, TASKS, 0.4)
    mech = SparseSharing(model, masks)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with mech.applied("pos"):
        inside = {n: p.detach().clone() for n, p in model.named_parameters() if n in masks["pos"]}
        mech.loss(toy_batch(0), "pos").backward()
    assert any(not torch.equal(inside[n], before[n]) for n in inside)  # the mask was applied
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    with pytest.raises(RuntimeError, match="boom"), mech.applied("ner"):
        raise RuntimeError("boom")
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    with mech.applied("pos"):
        with pytest.raises(ContractError, match="while the mask of task 'pos' is applied"):
            mech(toy_batch(0), "ner")
        with pytest.raises(ContractError, match="do not nest"), mech.applied("ner"):
            pass
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_gradients_reach_only_the_subnet_and_the_task_head():
    model = toy_tagger()
    masks = random_masks(model, TASKS, 0.5)
    mech = SparseSharing(model, masks)
    mech.loss(toy_batch(0), "pos").backward()
    params = dict(model.named_parameters())
    for n, m in masks["pos"].items():
        assert params[n].grad is not None
        assert torch.all(params[n].grad[~m] == 0)
        assert params[n].grad[m].abs().sum() > 0
    assert all(p.grad is None for n, p in params.items() if n.startswith("heads.ner"))
    assert params["heads.pos.proj.weight"].grad.abs().sum() > 0


def test_registry_unknown_name_lists_valid_names():
    with pytest.raises(Exception, match="valid: .*hard.*sparse"):
        build_mechanism("soft-ish", toy_tagger())
    with pytest.raises(ContractError, match="no mask for task 'ner'"):
        SparseSharing(toy_tagger(), {"pos": {}})
