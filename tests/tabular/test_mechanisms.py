"""Every tabular mechanism: predictions in range, the joint loss (Eq. 10), shared parameters learn,
unlabelled rows (gradient routes: tests/sharing/test_contract.py)."""

from __future__ import annotations

import pytest
import torch

from sparseshare.sharing import MECHANISMS as REGISTRY
from sparseshare.sharing import shared_parameter_names
from tests.tabular.toy import build, toy_batch

MECHANISMS = [n for n, e in REGISTRY.items() if e.family == "tabular"]


@pytest.mark.parametrize("name", MECHANISMS)
def test_output_per_task_finite_and_predictions_in_range(name):
    mech, kinds = build(name)
    batch = toy_batch(0, kinds)
    assert mech.tasks == list(kinds)
    for task, kind in kinds.items():
        out = mech(batch, task)
        assert out.shape == (32,) and torch.isfinite(out).all()
        pred = mech.predict(batch, task)
        if kind == "binary":
            assert ((pred >= 0) & (pred <= 1)).all()
        else:
            assert torch.equal(pred, out)
        assert torch.isfinite(mech.loss(batch, task))
    # tasks differ: towers are separate, so two tasks never give the same output
    a, b = list(kinds)[:2]
    assert not torch.allclose(mech(batch, a), mech(batch, b))


@pytest.mark.parametrize("name", MECHANISMS)
def test_joint_loss_is_the_weighted_sum_of_task_losses(name):
    mech, kinds = build(name)
    batch = toy_batch(2, kinds)
    weights = {t: w for t, w in zip(kinds, (0.3, 2.0, 1.0))}
    joint = mech.joint_loss(batch, weights)
    expected = sum(w * mech.loss(batch, t) for t, w in weights.items())
    assert torch.allclose(joint, expected, atol=1e-6)
    only_first = mech.joint_loss(batch, {list(kinds)[0]: 1.0})
    assert torch.allclose(only_first, mech.loss(batch, list(kinds)[0]), atol=1e-6)


@pytest.mark.parametrize("name", MECHANISMS)
def test_shared_parameters_are_named_and_learn_from_the_joint_loss(name):
    mech, kinds = build(name)
    names = shared_parameter_names(mech)
    params = dict(mech.named_parameters())
    assert names and set(names) <= set(params)
    opt = torch.optim.Adam(mech.parameters(), lr=0.02)
    batch = toy_batch(3, kinds)
    weights = dict.fromkeys(kinds, 1.0)
    first = mech.joint_loss(batch, weights).item()
    before = {n: params[n].detach().clone() for n in names}
    for _ in range(30):
        opt.zero_grad(set_to_none=True)
        mech.joint_loss(batch, weights).backward()
        mech.step(opt, None)
    assert mech.joint_loss(batch, weights).item() < 0.8 * first
    assert any(not torch.equal(params[n], before[n]) for n in names)


@pytest.mark.parametrize("name", MECHANISMS)
def test_rows_without_a_label_are_left_out_of_the_loss(name):
    mech, kinds = build(name)
    batch = toy_batch(4, kinds)
    task = list(kinds)[1]
    full = mech.loss(batch, task)
    batch.y[task][:16] = float("nan")
    half = mech.loss(batch, task)
    assert torch.isfinite(half) and not torch.allclose(half, full)
    batch.y[task][:] = float("nan")
    assert mech.loss(batch, task).item() == 0.0
