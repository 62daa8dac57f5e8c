"""train.weighting wired into the trainer: each weighting trains, none moves a weight outside the masks,
'equal' is the trainer's own step, the learned weights resume, and the names and refusals are one line."""

from __future__ import annotations

import json

import pytest
import torch

from sparseshare.data.task import Task
from sparseshare.errors import ConfigError
from sparseshare.sharing.mmoe import mmoe
from sparseshare.sharing.shared_bottom import shared_bottom
from sparseshare.sharing.sparse import SparseSharing
from sparseshare.training.checkpoint import load_training_state
from sparseshare.training.trainer import TrainSettings, train
from tests.training.test_joint import KINDS, _data

GRADIENT = ["pcgrad", "gradnorm", "torchjd.UPGrad", "torchjd.MGDA"]
ALL = ["uw", "dwa", *GRADIENT]


def _tasks(data):
    return {"a": Task("a", data, "auc"), "b": Task("b", data, "mse")}


def _settings(**kw) -> TrainSettings:
    base = dict(epochs=3, patience=0, batch_size=50, optimizer="adam", lr=0.01, clip=1.0, joint=True,
                eval_batch_size=500)  # fmt: skip
    return TrainSettings(**{**base, **kw})


def _masked(seed: int = 0):
    torch.manual_seed(seed)
    model = shared_bottom(5, KINDS, (16, 8), (8,))
    g = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    names = [n for n in params if n.startswith("bottom") and params[n].dim() == 2]
    masks = {t: {n: torch.rand(params[n].shape, generator=g) < 0.5 for n in names} for t in KINDS}
    return SparseSharing(model, masks), masks


@pytest.mark.parametrize("weighting", ALL)
def test_a_weighting_trains_and_moves_no_weight_outside_the_masks(weighting):
    """Joint steps (∪_t M_t) and, for uw and dwa, sampled steps (M_t): outside, weights stay as they were."""
    data = _data()
    joints = [True] if weighting in GRADIENT else [True, False]
    for joint in joints:
        mech, masks = _masked()
        before = {n: p.detach().clone() for n, p in mech.named_parameters()}
        res = train(mech, _tasks(data), _settings(weighting=weighting, joint=joint), seed=0, device="cpu",
                    joint_data=data if joint else None, progress=False)  # fmt: skip
        after = dict(mech.named_parameters())
        moved = 0
        for name in masks["a"]:
            key = next(k for k in after if k.endswith(name))
            outside = ~(masks["a"][name] | masks["b"][name])
            assert outside.any()
            assert torch.equal(after[key].detach()[outside], before[key][outside]), (weighting, joint, name)
            moved += int((after[key].detach() != before[key]).sum())
        assert moved > 0  # it trained
        assert res.best_dev["a"]["auc"] > 0.75, (weighting, joint, res.best_dev)


def test_equal_is_the_trainers_own_step_and_uw_at_zero_log_variance_starts_as_it():
    """exp(-0) L + 0 = L: uw's first step is equal's (plain SGD, one step), so the wiring adds nothing."""
    data = _data()
    out = {}
    for weighting in ("equal", "uw"):
        torch.manual_seed(0)
        mech = mmoe(5, KINDS, num_experts=2, expert_hidden=(8,), tower=(8,))
        s = _settings(weighting=weighting, optimizer="sgd", lr=0.1, clip=None, epochs=1, batch_size=400)
        train(mech, _tasks(data), s, seed=0, device="cpu", joint_data=data, progress=False)
        out[weighting] = {n: p.detach().clone() for n, p in mech.named_parameters()}
    assert out["equal"].keys() == out["uw"].keys()
    assert all(torch.allclose(out["equal"][n], out["uw"][n], atol=1e-7) for n in out["equal"])


def test_pcgrads_step_is_the_projected_sum_of_the_tasks_conflicting_gradients():
    """One full-batch SGD step: the shared experts move by -lr (p_a + p_b), each task's gradient projected
    off the other's (they conflict at this seed's initial weights), not by -lr (g_a + g_b)."""
    from sparseshare.training.weighting import project_conflicts

    data = _data()
    torch.manual_seed(1)
    mech = mmoe(5, KINDS, num_experts=2, expert_hidden=(8,), tower=(8,))
    shared = [n for n, _ in mech.named_parameters() if n.startswith("experts")]
    params = dict(mech.named_parameters())
    before = torch.cat([params[n].detach().reshape(-1) for n in shared])
    losses = mech.joint_losses(next(data.batches("train", 400)), ["a", "b"])
    ga, gb = (
        torch.cat([g.reshape(-1) for g in torch.autograd.grad(losses[t], [params[n] for n in shared],
                                                               retain_graph=True)])
        for t in ("a", "b")
    )  # fmt: skip
    assert float(ga @ gb) < 0  # the premise: they conflict
    s = _settings(weighting="pcgrad", optimizer="sgd", lr=0.1, clip=None, epochs=1, batch_size=400)
    train(mech, _tasks(data), s, seed=0, device="cpu", joint_data=data, progress=False)
    step = (before - torch.cat([params[n].detach().reshape(-1) for n in shared])) / 0.1
    expect = project_conflicts([ga, gb])
    assert torch.allclose(step, expect, rtol=1e-3, atol=1e-7)
    assert not torch.allclose(step, ga + gb, rtol=1e-3, atol=1e-7)
    assert float(step @ ga) >= 0 and float(step @ gb) >= 0  # the step conflicts with neither task


def test_learned_weights_are_recorded_checkpointed_and_resumed(tmp_path):
    """uw's log-variances and gradnorm's weights are in every epoch's record and in the checkpoint; a run
    stopped after 2 epochs and continued to 4 ends where an uninterrupted 4-epoch run does."""
    data = _data()
    for weighting in ("uw", "gradnorm", "dwa"):
        ends = {}
        for name, caps in (("straight", [4]), ("resumed", [2, 4])):
            torch.manual_seed(0)
            mech = mmoe(5, KINDS, num_experts=2, expert_hidden=(8,), tower=(8,))
            for cap in caps:
                res = train(mech, _tasks(data), _settings(weighting=weighting, epochs=cap), seed=1,
                            device="cpu", joint_data=data, directory=tmp_path / weighting / name,
                            progress=False)  # fmt: skip
            ends[name] = (res.history[-1]["weights"], res.history[-1]["dev_mean"])
            ck = load_training_state(tmp_path / weighting / name / "last.safetensors", "cpu")[2]
            assert ck["weighting"], weighting
        assert ends["straight"] == ends["resumed"], weighting
        w = ends["straight"][0]
        assert set(w) == {"a", "b"} and w != {"a": 1.0, "b": 1.0}, (weighting, w)
        if weighting == "gradnorm":
            assert sum(w.values()) == pytest.approx(2.0)  # Σ w_t = T after every step


def test_dwa_weights_in_training_follow_the_epochs_loss_ratios():
    data = _data()
    torch.manual_seed(0)
    mech = mmoe(5, KINDS, num_experts=2, expert_hidden=(8,), tower=(8,))
    res = train(mech, _tasks(data), _settings(weighting="dwa", epochs=4), seed=0, device="cpu",
                joint_data=data, progress=False)  # fmt: skip
    assert res.history[0]["weights"] == {"a": 1.0, "b": 1.0} == res.history[1]["weights"]
    w = res.history[2]["weights"]  # epoch 3's: K softmax(r / 2), r_t = L_t(2) / L_t(1)
    r = torch.tensor([res.history[1]["loss_by_task"][t] / res.history[0]["loss_by_task"][t] for t in "ab"])
    expect = (2 * torch.softmax(r.double() / 2, 0)).tolist()
    assert [w["a"], w["b"]] == pytest.approx(expect) and sum(w.values()) == pytest.approx(2.0)
    assert json.loads(json.dumps(res.history))  # the record stays JSON


@pytest.mark.parametrize(
    "kw, message, in_config",
    [
        (dict(weighting="pcgrad", joint=False), "'train.weighting': pcgrad compares the tasks' gradients", 0),
        (dict(weighting="torchjd.UPGrad", joint=False), "needs joint steps", 0),
        (dict(weighting="nope"), "'train.weighting': unknown weighting 'nope'; valid: .*'gradnorm'", 1),
        (dict(weighting="torchjd.Nope"), "unknown weighting 'torchjd.Nope'", 1),
        (dict(weighting="gradnorm", precision="fp16"), "fp16's gradient scaler", 1),
    ],
)
def test_a_weighting_that_cannot_apply_is_one_line_naming_the_key(kw, message, in_config):
    """Refused before any step; the names and fp16 already by the settings' own check (a config's)."""
    data = _data()
    mech = mmoe(5, KINDS, num_experts=2, expert_hidden=(8,), tower=(8,))
    with pytest.raises(ConfigError, match=message) as e:
        train(mech, _tasks(data), _settings(**kw), seed=0, device="cpu",
              joint_data=data if kw.get("joint", True) else None, progress=False)  # fmt: skip
    assert len(str(e.value).splitlines()) == 1
    assert any(p.startswith("'train.weighting'") for p in _settings(**kw).problems()) == bool(in_config)


def test_torchjd_missing_is_one_line_naming_the_extra(monkeypatch):
    import sys

    from sparseshare.training.weighting import make_weighting

    monkeypatch.setitem(sys.modules, "torchjd", None)
    monkeypatch.setitem(sys.modules, "torchjd.aggregation", None)
    with pytest.raises(
        ConfigError, match=r"torchjd.UPGrad needs the torchjd package: pip install 'sparseshare\[jd\]'"
    ):
        make_weighting("torchjd.UPGrad", ["a", "b"])


def test_a_weighting_object_of_the_users_is_handed_to_the_trainer(tmp_path):
    """``ss.train_jointly(..., weighting=obj)``: a user's subclass (here: all weight on task a) is what
    trains; it is in the fingerprint, so a directory trained with it refuses another."""
    import sparseshare as ss

    class OnlyA(ss.Weighting):
        name = "only_a"

        def combine(self, losses):
            return losses["a"] if "a" in losses else 0.0 * sum(losses.values())

    data = _data()
    torch.manual_seed(0)
    mech = mmoe(5, KINDS, num_experts=2, expert_hidden=(8,), tower=(8,))
    tb = [p.detach().clone() for n, p in mech.named_parameters() if n.startswith("towers.b")]
    ss.train_jointly(mech, _tasks(data), _settings(), joint_data=data, weighting=OnlyA(["a", "b"]),
                     directory=tmp_path / "r", progress=False)  # fmt: skip
    after = [p.detach() for n, p in mech.named_parameters() if n.startswith("towers.b")]
    assert all(torch.equal(x, y) for x, y in zip(tb, after))  # task b's tower took no gradient
    with pytest.raises(ss.RunError, match="weighting"):
        ss.train_jointly(mech, _tasks(data), _settings(epochs=4), joint_data=data, directory=tmp_path / "r",
                         progress=False)  # fmt: skip
    with pytest.raises(ConfigError, match="set one of them"):
        ss.train_jointly(mech, _tasks(data), _settings(weighting="uw"), joint_data=data,
                         weighting=OnlyA(["a", "b"]), progress=False)  # fmt: skip
