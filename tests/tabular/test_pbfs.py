"""PBFS: masked views, masked Adam steps, the joint loss's gradients, pruning schedule, best subnets."""

from __future__ import annotations

import copy

import pytest
import torch

from sparseshare.pruning.magnitude import prune_to_sparsity
from sparseshare.pruning.schedules import polynomial_sparsity
from sparseshare.sharing.pbfs import PBFS, pbfs
from sparseshare.training.callbacks import PBFSPruner
from tests.tabular.toy import KINDS3, POOLS3, F, build, random_masks, toy_batch


def _masked(density=0.5, seed=0):
    mech, kinds = build("pbfs", seed)
    return PBFS(mech.net, random_masks(mech, density, seed)), kinds


def test_each_task_computes_with_its_own_masked_copy_and_the_weights_stay():
    mech, _ = _masked()
    params = dict(mech.net.named_parameters())
    before = {n: p.detach().clone() for n, p in params.items()}
    batch = toy_batch(0, KINDS3)
    for task in mech.tasks:
        ref = copy.deepcopy(mech.net)
        with torch.no_grad():
            for n, p in ref.named_parameters():
                if n in mech.mask(task):
                    p.mul_(mech.mask(task)[n])
        assert torch.allclose(mech(batch, task), ref(batch, task), atol=1e-6)
    assert all(torch.equal(p, before[n]) for n, p in params.items())
    dense = pbfs(F, KINDS3, pools=POOLS3, expert_hidden=(8, 8), tower=(8,))
    assert torch.equal(dense(batch, "b"), dense.net(batch, "b"))  # all-ones masks: the dense network (CGC)


def test_masks_cover_exactly_the_shared_weights_of_the_tasks_pools():
    mech, _ = build("pbfs")
    assert all(n.startswith("shared.0.") for n in mech.mask("a"))
    assert all(n.startswith("shared.1.") for n in mech.mask("c"))
    assert {n.split(".")[1] for n in mech.mask("b")} == {"0", "1"}
    assert all(n.endswith("weight") for n in mech.mask("b"))
    with pytest.raises(KeyError, match="outside its pools"):
        PBFS(mech.net, {"a": {"shared.1.0.layers.0.weight": torch.ones(8, F, dtype=torch.bool)}})


def test_pruned_weights_stay_out_of_the_task_through_adam_steps():
    mech, kinds = _masked(0.5, seed=1)
    opt = torch.optim.Adam(mech.parameters(), lr=0.05, weight_decay=1e-2)
    params = dict(mech.net.named_parameters())
    union = mech._union()
    for step in range(9):
        task = [*mech.tasks, None][step % 4]
        mask = mech.mask(task) if task else union
        before = {n: params[n].detach().clone() for n in mask}
        state = {n: {k: v.clone() for k, v in opt.state.get(params[n], {}).items() if v.dim()} for n in mask}
        opt.zero_grad(set_to_none=True)
        batch = toy_batch(step, kinds)
        loss = mech.loss(batch, task) if task else mech.joint_loss(batch, dict.fromkeys(kinds, 1.0))
        loss.backward()
        for n, m in mask.items():
            assert not params[n].grad[~m].any(), "gradient outside the subnet"
        mech.step(opt, task)
        moved = 0
        for n, m in mask.items():
            assert torch.equal(params[n][~m], before[n][~m]), f"step {step} ({task}) moved {n} outside"
            moved += int((params[n][m] != before[n][m]).sum())
            for k, v in opt.state[params[n]].items():
                if v.dim():
                    old = state[n].get(k, torch.zeros_like(v))
                    assert torch.equal(v[~m], old[~m]), f"Adam '{k}' of {n} changed outside the mask"
        assert moved > 0
    # a task's output does not depend on the weights it pruned, whatever they become
    batch = toy_batch(99, kinds)
    out = mech(batch, "b")
    with torch.no_grad():
        for n, m in mech.mask("b").items():
            params[n][~m] = torch.randn(int((~m).sum())) * 10
    assert torch.equal(mech(batch, "b"), out)


def test_joint_loss_gives_a_shared_weight_gradient_only_from_the_tasks_keeping_it():
    mech, kinds = _masked(0.5, seed=2)
    batch = toy_batch(5, kinds)
    params = dict(mech.net.named_parameters())
    names = list(mech.mask("a"))  # pool 0, shared by a and b
    grads = {}
    for t in ("a", "b"):
        mech.zero_grad(set_to_none=True)
        mech.loss(batch, t).backward()
        grads[t] = {n: params[n].grad.clone() for n in names}
    mech.zero_grad(set_to_none=True)
    mech.joint_loss(batch, {"a": 0.5, "b": 2.0, "c": 1.0}).backward()
    for n in names:
        ma, mb = mech.mask("a")[n], mech.mask("b")[n]
        g = params[n].grad
        assert torch.allclose(g, 0.5 * grads["a"][n] + 2.0 * grads["b"][n], atol=1e-6)
        assert torch.equal(g[ma & ~mb], 0.5 * grads["a"][n][ma & ~mb])
        assert not g[~ma & ~mb].any()


def test_masks_travel_with_the_state_dict():
    mech, _ = _masked(0.4, seed=3)
    fresh, _ = build("pbfs", seed=7)
    fresh.load_state_dict(mech.state_dict())
    for t in mech.tasks:
        assert all(torch.equal(fresh.mask(t)[n], m) for n, m in mech.mask(t).items())
    assert abs(fresh.sparsity("a") - mech.sparsity("a")) < 1e-12 and 0.5 < fresh.sparsity("a") < 0.7


@pytest.mark.parametrize("strategy", ["layerwise", "global"])
def test_prune_to_sparsity_reaches_the_target_by_magnitude_and_never_regrows(strategy):
    g = torch.Generator().manual_seed(0)
    w = {"x": torch.randn(10, 20, generator=g), "y": torch.randn(7, 9, generator=g) * 3}
    m0 = {n: torch.rand(v.shape, generator=g) < 0.9 for n, v in w.items()}
    m1 = prune_to_sparsity(w, m0, 0.6, strategy)
    total = sum(v.numel() for v in w.values())
    kept = {n: int(m.sum()) for n, m in m1.items()}
    if strategy == "layerwise":
        assert kept == {n: round(0.4 * v.numel()) for n, v in w.items()}
    else:
        assert sum(kept.values()) == round(0.4 * total)
    scope = list(w) if strategy == "layerwise" else [None]
    for n in scope:
        names = [n] if n else list(w)
        k = torch.cat([w[a].abs()[m1[a]] for a in names])
        p = torch.cat([w[a].abs()[m0[a] & ~m1[a]] for a in names])
        assert k.min() >= p.max()
    assert all(not (m1[n] & ~m0[n]).any() for n in w)  # new ⊆ old
    again = prune_to_sparsity(w, m1, 0.3, strategy)  # already sparser: unchanged
    assert all(torch.equal(again[n], m1[n]) for n in w)
    w2 = {n: torch.randn(v.shape) for n, v in w.items()}  # magnitudes change: still only shrinks
    m2 = prune_to_sparsity(w2, m1, 0.8, strategy)
    assert all(not (m2[n] & ~m1[n]).any() for n in w)


def test_pruner_follows_the_polynomial_schedule_per_task_and_pool():
    mech, _ = build("pbfs")
    targets = {"a": 0.8, "b": {0: 0.5, 1: 0.9}, "c": 0.0}
    pruner = PBFSPruner(mech, targets, initial_sparsity=0.0, begin_step=10, end_step=50, frequency=10)
    history = {}
    for step in range(0, 61):
        masks = {t: {n: m.clone() for n, m in mech.mask(t).items()} for t in mech.tasks}
        changed = pruner.on_step(step)
        if step < 10 or step > 50 or step % 10:
            assert not changed
        for t in mech.tasks:
            assert all(not (mech.mask(t)[n] & ~masks[t][n]).any() for n in masks[t])
        history[step] = (mech.sparsity("a"), mech.sparsity("b", 0), mech.sparsity("b", 1), mech.sparsity("c"))
    for step in (20, 30, 40, 50):
        want = (polynomial_sparsity(step, 10, 50, 0.0, 0.8), polynomial_sparsity(step, 10, 50, 0.0, 0.5),
                polynomial_sparsity(step, 10, 50, 0.0, 0.9), 0.0)  # fmt: skip
        assert all(abs(h - x) < 0.02 for h, x in zip(history[step], want)), (step, history[step], want)
    assert history[60] == history[50] and abs(history[60][0] - 0.8) < 0.02 and history[9][0] == 0.0


def test_pruner_keeps_the_best_subnet_and_restores_it():
    mech, _ = build("pbfs")
    pruner = PBFSPruner(mech, dict.fromkeys(mech.tasks, 0.9), 0.1, 0, 30, 10,
                        higher_is_better={"a": True, "b": False, "c": True})  # fmt: skip
    scores = {"a": [0.5, 0.7, 0.6, 0.7], "b": [0.3, 0.1, 0.2, 0.4], "c": [0.2, 0.2, 0.2, 0.2]}
    masks = []
    for i, step in enumerate((0, 10, 20, 30)):
        pruner.on_step(step)
        masks.append({t: {n: m.clone() for n, m in mech.mask(t).items()} for t in mech.tasks})
        for t in mech.tasks:
            pruner.record(t, None, scores[t][i])
    # a: 0.7 first at step 10 and again at 30 -> tie goes to the sparser (step 30); b: lowest at 10; c: tie
    assert (
        pruner.best["a"]["step"] == 30 and pruner.best["b"]["step"] == 10 and pruner.best["c"]["step"] == 30
    )
    assert abs(pruner.best["b"]["sparsity"] - mech.sparsity("b")) > 0.1
    pruner.restore_best()
    assert all(torch.equal(mech.mask("b")[n], m) for n, m in masks[1]["b"].items())
    assert all(torch.equal(mech.mask("a")[n], m) for n, m in masks[3]["a"].items())
    assert len(pruner.history) == 12 and pruner.history[0]["sparsity"] == pytest.approx(0.1, abs=0.02)
    with pytest.raises(ValueError, match="initial"):
        PBFSPruner(mech, dict.fromkeys(mech.tasks, 0.2), initial_sparsity=0.5)


def test_the_schedule_prunes_mu_first_and_keeps_each_tasks_best_by_its_own_direction():
    from sparseshare.data.task import Task
    from sparseshare.errors import ContractError
    from sparseshare.training.callbacks import PBFSSchedule
    from tests.helpers import ToyData

    mech, _ = build("pbfs")
    pruner = PBFSPruner(mech, dict.fromkeys(mech.tasks, 0.9), 0.3, 0, 30, 10)
    with pytest.raises(ContractError, match="give higher_is_better"):
        pruner.record("a", None, 0.5)  # an error metric would silently keep its worst subnet
    tasks = {t: Task(t, ToyData(0), "mse" if t == "b" else "accuracy") for t in mech.tasks}
    schedule = PBFSSchedule(pruner, tasks)
    assert all(mech.sparsity(t) == pytest.approx(0.3, abs=0.02) for t in mech.tasks)  # mu before training
    for step, mse in ((10, 0.5), (20, 0.2), (30, 0.4)):
        schedule.on_step(step)
        schedule.on_eval({"a": {"accuracy": 0.5}, "b": {"mse": mse}, "c": {"accuracy": 0.5}})
    assert pruner.best["b"]["step"] == 20  # lowest MSE, restored after the schedule ended (step 30)
    assert mech.sparsity("b") == pytest.approx(pruner.best["b"]["sparsity"])
