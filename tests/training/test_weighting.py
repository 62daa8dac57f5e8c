import pytest
import torch

from sparseshare.errors import ConfigError
from sparseshare.training.weighting import (
    DWA,
    PCGrad,
    UncertaintyWeighting,
    make_weighting,
    project_conflicts,
)


def test_pcgrad_removes_the_conflicting_component():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    assert torch.dot(a, b) < 0
    total = project_conflicts([a, b], torch.Generator().manual_seed(0))
    pa = a - torch.dot(a, b) / b.dot(b) * b
    pb = b - torch.dot(b, a) / a.dot(a) * a
    assert torch.dot(pa, b) >= -1e-6 and torch.dot(pb, a) >= -1e-6
    assert torch.allclose(total, pa + pb)
    assert not torch.allclose(total, a + b)
    same = project_conflicts([a, 2 * a])  # no conflict: the plain sum
    assert torch.allclose(same, 3 * a)


def test_pcgrad_backward_sets_projected_grads():
    w = torch.nn.Parameter(torch.tensor([0.0, 0.0]))
    losses = {"x": -(w * torch.tensor([1.0, 0.0])).sum(), "y": -(w * torch.tensor([-1.0, 1.0])).sum()}
    PCGrad(["x", "y"]).backward(losses, [w], torch.Generator().manual_seed(0))
    ga, gb = torch.tensor([-1.0, 0.0]), torch.tensor([1.0, -1.0])
    expect = (ga - ga.dot(gb) / gb.dot(gb) * gb) + (gb - gb.dot(ga) / ga.dot(ga) * ga)
    assert torch.allclose(w.grad, expect)


def test_uw_log_variances_get_gradients_and_move():
    uw = UncertaintyWeighting(["a", "b"])
    opt = torch.optim.SGD(uw.parameters(), lr=0.1)
    loss = uw.combine({"a": torch.tensor(3.0), "b": torch.tensor(0.1)})
    loss.backward()
    assert all(p.grad is not None and p.grad != 0 for p in uw.parameters())
    opt.step()
    s = uw.state_dict()["log_vars"]
    assert s["a"] > 0 > s["b"]  # the larger loss gets the larger variance (a smaller weight)
    other = UncertaintyWeighting(["a", "b"])
    other.load_state_dict(uw.state_dict())
    assert other.state_dict() == uw.state_dict()


def test_dwa_weights_follow_loss_ratios():
    dwa = DWA(["a", "b"])
    assert dwa.current() == {"a": 1.0, "b": 1.0}
    dwa.end_epoch({"a": 1.0, "b": 1.0})
    dwa.end_epoch({"a": 0.5, "b": 1.0})  # a falls fast, b stalls: b gets the larger weight
    w = dwa.current()
    assert w["b"] > 1.0 > w["a"] and sum(w.values()) == pytest.approx(2.0)
    r = torch.tensor([0.5, 1.0]) / 2
    assert w["a"] == pytest.approx(float(2 * torch.softmax(r, 0)[0]))
    again = DWA(["a", "b"])
    again.load_state_dict(dwa.state_dict())
    assert again.current() == w


def test_unknown_weighting_lists_valid_names():
    with pytest.raises(ConfigError, match="valid: .*'dwa'.*'equal'.*'pcgrad'.*'uw'"):
        make_weighting("nope", ["a"])


def test_gradnorm_moves_weight_from_the_task_with_the_larger_gradient_norm():
    """Chen et al. 2018: at equal training rates (r_t = 1) the target norm is the mean G; the task whose
    w_t ‖∇_W L_t‖ is above it loses weight, the other gains; Σ_t w_t stays T."""
    from sparseshare.training.weighting import GradNorm

    p = torch.nn.Parameter(torch.ones(3))
    gn = GradNorm(["a", "b"])
    opt = torch.optim.SGD([p, *gn.parameters()], lr=0.01)
    losses = {"a": (10 * p).sum(), "b": p.sum()}  # ‖∇‖: 10√3 against √3
    gn.backward(losses, [p])
    assert gn.w.grad[0] > 0 > gn.w.grad[1]
    assert torch.allclose(p.grad, torch.full((3,), 11.0))  # Σ_t w_t ∇L_t with w = 1
    opt.step()
    gn.after_step()
    w = gn.current()
    assert w["a"] < 1.0 < w["b"] and sum(w.values()) == pytest.approx(2.0)
    again = GradNorm(["a", "b"])
    again.load_state_dict(gn.state_dict())
    assert again.current() == w and again.initial == gn.initial == {"a": 30.0, "b": 3.0}


def test_torchjd_upgrad_gives_a_step_that_conflicts_with_no_task():
    """UPGrad (torchjd): the aggregated step has a non-negative inner product with every task's gradient."""
    from sparseshare.training.weighting import make_weighting

    w = torch.nn.Parameter(torch.zeros(2))
    ga, gb = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    losses = {"a": (w * ga).sum(), "b": (w * gb).sum()}
    make_weighting("torchjd.UPGrad", ["a", "b"]).backward(losses, [w])
    assert float(w.grad @ ga) >= -1e-6 and float(w.grad @ gb) >= -1e-6
    assert not torch.allclose(w.grad, ga + gb)


def test_gradnorm_alpha_is_a_setting_that_changes_the_target():
    """α = 0 makes the target the mean norm whatever the training rates; a larger α pulls harder toward the
    task whose loss fell least. train.gradnorm_alpha reaches the object; a negative one is refused."""
    from sparseshare.training.settings import TrainSettings
    from sparseshare.training.weighting import make_weighting

    assert make_weighting("gradnorm", ["a", "b"], alpha=0.0).alpha == 0.0
    assert TrainSettings(gradnorm_alpha=2.0).gradnorm_alpha == 2.0
    assert any(
        "'train.gradnorm_alpha' must be >= 0" in p for p in TrainSettings(gradnorm_alpha=-1.0).problems()
    )
    grads = {}
    for alpha in (0.0, 3.0):
        p = torch.nn.Parameter(torch.ones(3))
        gn = make_weighting("gradnorm", ["a", "b"], alpha=alpha)
        gn.initial = {"a": 6.0, "b": 3.0}  # a's loss is now at half its start, b's at its start
        gn.backward({"a": (1 * p).sum(), "b": (1 * p).sum()}, [p])  # equal gradient norms
        grads[alpha] = gn.w.grad.clone()
    assert torch.allclose(grads[0.0], torch.zeros(2))  # equal norms meet the α = 0 target: nothing moves
    assert grads[3.0][1] < 0 < grads[3.0][0]  # b trains slower: its weight is pushed up, a's down
