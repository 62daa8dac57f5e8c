"""One contract test over every registered sharing mechanism (sharing/registry.py), built by its family:
an output per task, no NaN, gradients reach exactly the parameters the mechanism names for the task,
a step moves nothing outside them (nor, for masked mechanisms, outside the task's mask, optimizer state
included), and a state_dict round trip restores every output."""

from __future__ import annotations

import pytest
import torch

from sparseshare.contracts import check_mechanism
from sparseshare.models import build_tagger
from sparseshare.sharing import MECHANISMS, build_mechanism
from sparseshare.sharing.shared_bottom import shared_bottom
from tests.helpers import toy_batch as tagger_batch
from tests.tabular.toy import KINDS3, F
from tests.tabular.toy import toy_batch as tabular_batch

TAGGER_TASKS = {"pos": 5, "ner": 4}


def _tagger(seed: int):
    torch.manual_seed(seed)
    return build_tagger(30, 12, TAGGER_TASKS, 6, 4, 3, hidden=8, layers=2, dropout=0.0, decoder="crf")


def _instances(name: str, seed: int = 0):
    """(label, mechanism, batch) for every toy base the mechanism's family takes."""
    entry = MECHANISMS[name]
    tagger_b, tab_b = tagger_batch(0, n_tags=4), tabular_batch(0, KINDS3)
    if entry.family == "wrapper":
        torch.manual_seed(seed)
        tab = shared_bottom(F, KINDS3, bottom=(8, 8), tower=(8,))
        return [
            ("tagger", build_mechanism(name, _tagger(seed)), tagger_b),
            ("tabular", build_mechanism(name, tab), tab_b),
        ]
    if entry.family == "tagger":
        return [("tagger", build_mechanism(name, _tagger(seed)), tagger_b)]
    torch.manual_seed(seed)
    return [("tabular", build_mechanism(name, F, KINDS3), tab_b)]


def _random_masks(mech, density: float, seed: int = 0) -> None:
    """Masked mechanisms (a ``set_mask``): every task gets its own random mask."""
    g = torch.Generator().manual_seed(seed)
    for t in mech.tasks:
        mech.set_mask(t, {n: torch.rand(m.shape, generator=g) < density for n, m in mech.mask(t).items()})


CASES = [(name, label) for name in MECHANISMS for label, _, _ in _instances(name)]


def _case(name, label, seed=0):
    return next((m, b) for lab, m, b in _instances(name, seed) if lab == label)


def test_every_family_is_known_and_every_mechanism_is_covered():
    assert {e.family for e in MECHANISMS.values()} <= {"wrapper", "tagger", "tabular"}
    assert {n for n, _ in CASES} == set(MECHANISMS)


def test_every_tabular_mechanisms_sizes_are_its_builders_keywords_and_config_keys():
    """A config sizes a tabular mechanism through its entry alone (experiments/systems/tabular.py)."""
    import dataclasses
    import inspect

    from sparseshare.experiments.config.sections import TabularModelConfig

    keys = {f.name for f in dataclasses.fields(TabularModelConfig)}
    for name, entry in MECHANISMS.items():
        if entry.family != "tabular":
            assert not entry.sizes, name
            continue
        params = inspect.signature(entry.build).parameters
        assert entry.sizes, name
        assert set(entry.sizes) <= set(params), (name, set(entry.sizes) - set(params))
        assert set(entry.sizes.values()) <= keys, (name, set(entry.sizes.values()) - keys)


@pytest.mark.parametrize(("name", "label"), CASES)
def test_an_output_and_a_finite_loss_per_task(name, label):
    mech, batch = _case(name, label)
    check_mechanism(mech)
    assert len(mech.tasks) >= 2
    outs = {}
    for t in mech.tasks:
        out = mech(batch, t)
        assert torch.isfinite(out).all()
        loss = mech.loss(batch, t)
        assert loss.dim() == 0 and torch.isfinite(loss)
        assert mech.predict(batch, t) is not None
        outs[t] = out
    a, b = list(outs)[:2]
    assert outs[a].shape != outs[b].shape or not torch.allclose(outs[a], outs[b])  # heads differ


@pytest.mark.parametrize(("name", "label"), CASES)
def test_gradients_reach_exactly_the_tasks_parameters(name, label):
    mech, batch = _case(name, label)
    if hasattr(mech, "set_mask"):
        _random_masks(mech, 0.5)
    params = {n: p for n, p in mech.named_parameters() if p.requires_grad}
    for t in mech.tasks:
        mine = set(mech.task_parameter_names(t))
        assert mine and mine <= set(params), f"{t}: names parameters the mechanism lacks"
        assert mine != set(params), "every mechanism has parts of its own per task (heads, towers)"
        mech.zero_grad(set_to_none=True)
        mech.loss(batch, t).backward()
        reached = 0.0
        for n, p in params.items():
            if n in mine:
                assert p.grad is not None, f"{t}'s loss does not reach {n}"
                reached += float(p.grad.abs().sum())
            else:
                assert p.grad is None or not p.grad.any(), f"{t}'s loss touched {n}, not among its parameters"
        assert reached > 0
        if hasattr(mech, "set_mask"):
            for n, m in mech.mask(t).items():
                g = dict(mech.named_parameters())[f"model.{n}"].grad
                assert g is None or not g[~m].any(), f"{t}: gradient outside its mask in {n}"


@pytest.mark.parametrize(("name", "label"), CASES)
def test_steps_move_nothing_outside_the_task_nor_outside_its_mask(name, label):
    mech, batch = _case(name, label)
    masked = hasattr(mech, "set_mask")
    if masked:
        _random_masks(mech, 0.6, seed=1)
    params = dict(mech.named_parameters())
    opt = torch.optim.SGD(mech.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    for step in range(6):
        t = mech.tasks[step % len(mech.tasks)]
        mine = set(mech.task_parameter_names(t))
        before = {n: p.detach().clone() for n, p in params.items()}
        states = {
            n: {k: v.clone() for k, v in opt.state.get(p, {}).items() if torch.is_tensor(v)}
            for n, p in params.items()
        }
        opt.zero_grad(set_to_none=True)
        mech.loss(batch, t).backward()
        mech.step(opt, t)
        for n, p in params.items():
            if n not in mine:
                assert torch.equal(p, before[n]), f"step {step} on {t} moved {n}"
        if masked:
            for n, m in mech.mask(t).items():
                p = params[f"model.{n}"]
                assert torch.equal(p.detach()[~m], before[f"model.{n}"][~m]), (
                    f"{t}: {n} moved outside the mask"
                )
                old = states[f"model.{n}"].get("momentum_buffer")
                new = opt.state[p].get("momentum_buffer")
                if new is not None:
                    ref = old if old is not None else torch.zeros_like(new)
                    assert torch.equal(new[~m], ref[~m]), f"{t}: momentum of {n} changed outside the mask"
        assert any(not torch.equal(params[n], before[n]) for n in mine), f"step {step} on {t} learned nothing"
    assert all(torch.isfinite(mech.loss(batch, t)) for t in mech.tasks)


@pytest.mark.parametrize(("name", "label"), CASES)
def test_state_dict_round_trip_restores_every_output(name, label):
    a, batch = _case(name, label, seed=0)
    b, _ = _case(name, label, seed=1)
    a.eval(), b.eval()
    t = a.tasks[-1]
    assert not torch.allclose(a(batch, t), b(batch, t))
    b.load_state_dict(a.state_dict())
    for t in a.tasks:
        assert torch.equal(a(batch, t), b(batch, t))
