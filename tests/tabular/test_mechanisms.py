"""One test over every tabular sharing mechanism: outputs, losses, and where gradients go."""

from __future__ import annotations

import pytest
import torch

from tests.tabular.toy import build, toy_batch

MECHANISMS = ["shared_bottom", "cross_stitch", "mmoe", "cgc", "ple", "pbfs"]

# task -> (parameter prefixes its loss must reach, prefixes it must not touch); together they cover
# every parameter, so a new parameter cannot go unchecked.
ROUTES = {
    "shared_bottom": {"a": (["bottom.", "towers.a."], ["towers.b."])},
    # every column reaches every task through the units; only the towers stay apart
    "cross_stitch": {
        "a": (["columns.a.", "columns.b.", "columns.c.", "stitch.", "towers.a."], ["towers.b.", "towers.c."])
    },  # fmt: skip
    "mmoe": {"a": (["experts.", "gates.a.", "towers.a."], ["gates.b.", "towers.b."])},
    "cgc": {
        "a": (
            ["levels.0.specific.a.", "levels.0.shared.", "levels.0.gates.a.", "towers.a."],
            ["levels.0.specific.b.", "levels.0.gates.b.", "towers.b."],
        )
    },
    "ple": {  # level-0 experts of b reach a through the shared gate; b's own gates and top experts do not
        "a": (
            [
                "levels.0.specific.",
                "levels.0.shared.",
                "levels.0.gates.a.",
                "levels.0.shared_gate.",
                "levels.1.specific.a.",
                "levels.1.shared.",
                "levels.1.gates.a.",
                "towers.a.",
            ],
            ["levels.0.gates.b.", "levels.1.specific.b.", "levels.1.gates.b.", "towers.b."],
        )
    },  # fmt: skip
    "pbfs": {  # pools [[a, b], [b, c]]
        "a": (
            ["net.specific.a.", "net.shared.0.", "net.gates.a.", "net.towers.a."],
            [
                "net.specific.b.",
                "net.specific.c.",
                "net.shared.1.",
                "net.gates.b.",
                "net.gates.c.",
                "net.towers.b.",
                "net.towers.c.",
            ],
        ),
        "b": (
            ["net.specific.b.", "net.shared.0.", "net.shared.1.", "net.gates.b.", "net.towers.b."],
            [
                "net.specific.a.",
                "net.specific.c.",
                "net.gates.a.",
                "net.gates.c.",
                "net.towers.a.",
                "net.towers.c.",
            ],
        ),
    },  # fmt: skip
}


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
def test_gradients_reach_exactly_the_parameters_of_the_task(name):
    mech, kinds = build(name)
    batch = toy_batch(1, kinds)
    params = dict(mech.named_parameters())
    for task, (reach, avoid) in ROUTES[name].items():
        for n in params:
            hits = [p for p in reach + avoid if n.startswith(p)]
            assert len(hits) == 1, f"{n} is covered by {hits}; fix ROUTES"
        mech.zero_grad(set_to_none=True)
        mech.loss(batch, task).backward()
        for prefix in reach:
            group = [p.grad for n, p in params.items() if n.startswith(prefix)]
            assert group and any(g is not None and g.abs().sum() > 0 for g in group), f"{task}: {prefix}"
        for n, p in params.items():
            if any(n.startswith(prefix) for prefix in avoid):
                assert p.grad is None or not p.grad.any(), f"{task}'s loss touched {n}"


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
    names = mech.shared_parameter_names()
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
