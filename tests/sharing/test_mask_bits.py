"""Masks held in bits (sharing/sparse.py, masks/io.py): every task's mask at 1 bit a weight, only the
stepped or evaluated mask unpacked; the state dict and checkpoints as they always were (bool tensors
under ``mask:<task>:<param>``); steps, evaluations and predictions bit for bit what they were."""

from __future__ import annotations

import copy
import io
import types
from collections import OrderedDict

import numpy as np
import pytest
import torch
from safetensors.torch import save

from sparseshare.masks.io import pack, pack_bits, unpack
from sparseshare.sharing import SparseSharing
from sparseshare.sharing.hard import task_predict
from sparseshare.sharing.sparse import mask_key
from tests.helpers import masked_step, random_masks, toy_batch, toy_tagger

TASKS = tuple(f"t{i}" for i in range(16))


def _held_extra(mech, opt) -> int:
    """Bytes of every tensor storage reachable from the mechanism's attributes, less the parameters,
    their gradients, the optimizer state and the model's buffers."""
    known = [*mech.parameters(), *mech.model.buffers()]
    known += [p.grad for p in mech.parameters() if p.grad is not None]
    known += [v for s in opt.state.values() for v in s.values() if torch.is_tensor(v)]
    skip = {t.untyped_storage().data_ptr() for t in known}
    found, seen, stack = {}, set(), [mech]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if torch.is_tensor(obj):
            st = obj.untyped_storage()
            if st.data_ptr() not in skip:
                found[st.data_ptr()] = st.nbytes()
        elif isinstance(obj, dict):
            stack += list(obj.values())
        elif isinstance(obj, (list, tuple, set)):
            stack += list(obj)
        elif hasattr(obj, "__dict__") and not isinstance(obj, (type, types.FunctionType, types.MethodType)):
            stack += list(vars(obj).values())
    return sum(found.values())


def _step(mech, opt, task, seed, in_place=True):
    masked_step(mech, opt, toy_batch(seed), task, in_place)


def test_every_task_mask_is_held_in_one_bit_a_weight_and_only_the_stepped_one_unpacked():
    model = toy_tagger(tasks=TASKS, hidden=16)
    mech = SparseSharing(model, random_masks(model, TASKS, 0.5))
    weights = sum(p.numel() for n, p in model.named_parameters() if n in mech.names)
    packed = sum(-(-p.numel() // 8) for n, p in model.named_parameters() if n in mech.names)
    assert sum(b.numel() * b.element_size() for b in mech.buffers()) == len(TASKS) * packed
    opt = torch.optim.SGD(mech.parameters(), lr=0.1, momentum=0.9)
    for i, t in enumerate(TASKS * 2):
        _step(mech, opt, t, i)
    with torch.no_grad():
        for t in TASKS:
            mech.predict(toy_batch(0), t)
    extra = _held_extra(mech, opt) / weights
    # 16 tasks at 1 bit (2 B), the stepped task's select (1 B), the weight and momentum snapshots (8 B)
    assert extra <= 12, f"{extra:.2f} bytes held per masked weight"


def test_the_state_dict_holds_bool_masks_under_the_old_keys_and_writes_the_old_bytes():
    model = toy_tagger(tasks=("pos", "ner", "chunk"))
    masks = random_masks(model, ("pos", "ner", "chunk"), 0.5)
    mech = SparseSharing(model, masks)
    state = mech.state_dict()
    # the layout of the bool buffers: every task's masks first (registration order), then the model
    old = {mask_key(t, n): m.clone() for t in mech.tasks for n, m in masks[t].items()}
    old |= {f"model.{k}": v for k, v in model.state_dict().items()}
    assert list(state) == list(old)
    for k, v in old.items():
        assert state[k].dtype == v.dtype and torch.equal(state[k], v), k
        assert state[k].untyped_storage().nbytes() == v.numel() * v.element_size(), k
    assert save(dict(state)) == save(old)  # a checkpoint's bytes (safetensors) as before
    old = OrderedDict(old)
    old._metadata = state._metadata  # the modules' versions, as any state dict has them
    buf_new, buf_old = io.BytesIO(), io.BytesIO()
    torch.save(state, buf_new)
    torch.save(old, buf_old)
    assert buf_new.getvalue() == buf_old.getvalue()  # and torch.save's
    fresh = SparseSharing(toy_tagger(seed=9, tasks=("pos", "ner", "chunk")))
    fresh.load_state_dict(torch.load(io.BytesIO(buf_new.getvalue()), weights_only=True))
    assert all(torch.equal(fresh.mask(t)[n], m) for t in masks for n, m in masks[t].items())
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), state.values()))


def test_an_old_checkpoint_of_bool_buffers_loads_and_bad_ones_are_refused_by_key():
    model = toy_tagger()
    mech = SparseSharing(model)  # all-ones masks
    masks = random_masks(model, ("pos", "ner"), 0.3, seed=4)
    old = {mask_key(t, n): m.clone() for t in ("pos", "ner") for n, m in masks[t].items()}
    old |= {f"model.{k}": v.clone() for k, v in model.state_dict().items()}
    mech.load_state_dict(old)
    assert all(torch.equal(mech.mask(t)[n], masks[t][n]) for t in masks for n in masks[t])
    as_bytes = {k: v.to(torch.uint8) if v.dtype == torch.bool else v for k, v in old.items()}
    SparseSharing(toy_tagger()).load_state_dict(as_bytes)  # copy_ into a bool buffer took any dtype
    name = next(iter(masks["pos"]))
    with pytest.raises(RuntimeError, match=r"Missing key\(s\).*mask:ner:"):
        mech.load_state_dict({k: v for k, v in old.items() if not k.startswith("mask:ner:")})
    with pytest.raises(RuntimeError, match=r"Unexpected key\(s\).*mask:pos:nothing"):
        mech.load_state_dict({**old, "mask:pos:nothing": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(RuntimeError, match=f"size mismatch for {mask_key('pos', name)}"):
        mech.load_state_dict({**old, mask_key("pos", name): torch.ones(2, dtype=torch.bool)})
    mech.load_state_dict({k: v for k, v in old.items() if not k.startswith("mask:ner:")}, strict=False)
    assert all(torch.equal(mech.mask("pos")[n], masks["pos"][n]) for n in masks["pos"])


def test_set_mask_then_mask_gives_it_back_as_copies_of_its_own():
    model = toy_tagger()
    mech = SparseSharing(model, random_masks(model, ("pos", "ner"), 0.5))
    new = random_masks(model, ("pos",), 0.2, seed=7)["pos"]
    part = dict(list(new.items())[:2])
    before = mech.mask("ner")
    mech.set_mask("pos", part)
    got = mech.mask("pos")
    assert all(torch.equal(got[n], m) for n, m in part.items())
    assert all(torch.equal(a, b) for a, b in zip(mech.mask("ner").values(), before.values()))
    name = next(iter(part))
    got[name].fill_(True)  # a copy: changing it changes nothing held
    assert torch.equal(mech.mask("pos")[name], part[name])
    assert torch.equal(mech.masks["pos"][name], part[name])


@pytest.mark.parametrize("shape", [(5,), (8,), (3, 7), (30, 30, 3), ()])
def test_pack_writes_the_bytes_of_the_mask_files(shape):
    m = torch.rand(shape, generator=torch.Generator().manual_seed(1)) < 0.5
    assert np.array_equal(pack(m).numpy(), pack_bits(m))
    back = unpack(pack(m), shape)
    assert torch.equal(back, m) and back.untyped_storage().nbytes() == m.numel()


def _optimizers():
    return {
        "sgd": lambda p: torch.optim.SGD(p, lr=0.1),
        "momentum": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-2),
        "adam": lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=1e-2),
    }


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().view(torch.int32)


@pytest.mark.parametrize("in_place", [False, True], ids=["substituted", "in_place"])
@pytest.mark.parametrize("opt_name", list(_optimizers()))
def test_steps_equal_a_reference_that_selects_with_where_bit_for_bit(opt_name, in_place):
    """The reference: a dense copy, forward on M_t ⊙ θ, ``optimizer.step()``, then ``torch.where``
    puts back every weight and state entry outside M_t."""
    tasks = ("pos", "ner", "chunk")
    model = toy_tagger(seed=2, tasks=tasks)
    masks = random_masks(model, tasks, 0.5, seed=3)
    ref = copy.deepcopy(model)
    mech = SparseSharing(model, masks)
    opt, ref_opt = _optimizers()[opt_name](mech.parameters()), _optimizers()[opt_name](ref.parameters())
    rp, mp = dict(ref.named_parameters()), dict(model.named_parameters())
    for i in range(7):
        task = tasks[i * 2 % 3]
        m = masks[task]
        _step(mech, opt, task, i, in_place)
        ref_opt.zero_grad(set_to_none=True)
        sub = {n: rp[n] * m[n].float() for n in m}
        out = torch.func.functional_call(ref, sub, (toy_batch(i), task), strict=False)
        ref.task_loss(out, toy_batch(i), task).backward()
        old = {
            n: (rp[n].detach().clone(), {k: v.clone() for k, v in ref_opt.state[rp[n]].items()}) for n in m
        }
        ref_opt.step()
        with torch.no_grad():
            for n, (w, st) in old.items():
                rp[n].copy_(torch.where(m[n], rp[n], w))
                for k, v in ref_opt.state[rp[n]].items():
                    if v.shape == w.shape:
                        v.copy_(torch.where(m[n], v, st.get(k, torch.zeros_like(v))))
        for n in rp:
            assert torch.equal(_bits(rp[n]), _bits(mp[n])), f"step {i}: {n}"
            for k, v in ref_opt.state[rp[n]].items():
                if v.dim():
                    assert torch.equal(_bits(v), _bits(opt.state[mp[n]][k])), f"step {i}: {k} of {n}"


def test_evaluation_applies_the_mask_in_place_and_puts_every_weight_back():
    tasks = ("pos", "ner", "chunk")
    model = toy_tagger(seed=4, tasks=tasks, dropout=0.3)
    mech = SparseSharing(model, random_masks(model, tasks, 0.5, seed=5))
    opt = torch.optim.Adam(mech.parameters(), lr=0.01)
    for i in range(3):
        _step(mech, opt, tasks[i], i)
    mech.eval()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    name = mech.names[0]
    seen = []
    module, attr = model, name
    while "." in attr:
        head, attr = attr.split(".", 1)
        module = getattr(module, head)
    hook = module.register_forward_pre_hook(
        lambda mod, args: seen.append(
            (isinstance(getattr(mod, attr), torch.nn.Parameter), getattr(mod, attr).detach().clone())
        )
    )
    for i, t in enumerate(tasks):
        substituted = mech(toy_batch(i), t)  # with autograd: M_t ⊙ θ substituted
        seen.clear()
        with torch.no_grad():
            in_place = mech(toy_batch(i), t)
            pred = mech.predict(toy_batch(i), t)
        assert torch.equal(_bits(in_place), _bits(substituted.detach())), t
        with torch.no_grad():
            assert pred == task_predict(model, substituted, toy_batch(i), t)
        # the model ran its own parameter, holding M_t ⊙ θ while it ran
        assert seen[0][0], "the model ran a substituted tensor"
        assert torch.equal(seen[0][1], before[name] * mech.mask(t)[name])
    hook.remove()
    for n, p in model.named_parameters():
        assert torch.equal(_bits(p), _bits(before[n])), n
