"""Hierarchical sharing (Søgaard and Goldberg 2016): supervision layers, gradient paths, # Params."""

import copy

import pytest
import torch

from sparseshare.experiments.systems.context import encoder_param_count
from sparseshare.models import build_tagger
from sparseshare.sharing import HierarchicalSharing, shared_parameter_names
from sparseshare.sharing.hierarchical import DEFAULT_LEVELS
from tests.helpers import toy_batch

TASKS = ("pos", "chunk", "ner")


def _base(layers=2, tasks=TASKS, dropout=0.0, decoder="linear"):
    torch.manual_seed(0)
    return build_tagger(
        30, 12, {t: 5 for t in tasks}, 6, 4, 3, hidden=8, layers=layers, dropout=dropout, decoder=decoder
    )


def _grads(mech, task):
    mech.zero_grad(set_to_none=True)
    mech.loss(toy_batch(0), task).backward()
    return {n: p.grad for n, p in mech.named_parameters()}


def _nonzero(g):
    return g is not None and g.abs().sum() > 0


def test_default_levels_follow_the_paper():
    mech = HierarchicalSharing(_base())
    assert mech.levels == {"pos": 1, "chunk": 2, "ner": 2}
    assert DEFAULT_LEVELS["position"] == 2
    assert len(mech.encoder.layers) == 2


def test_pos_loss_never_reaches_layer_2_chunk_and_ner_reach_both():
    mech = HierarchicalSharing(_base())
    g = _grads(mech, "pos")
    assert all(_nonzero(v) for n, v in g.items() if n.startswith("encoder.layers.0."))
    assert all(v is None for n, v in g.items() if n.startswith("encoder.layers.1."))
    assert _nonzero(g["encoder.char_cnn.conv.weight"]) and _nonzero(g["heads.pos.proj.weight"])
    for task in ("chunk", "ner"):
        g = _grads(mech, task)
        assert all(_nonzero(v) for n, v in g.items() if n.startswith("encoder.layers."))
        assert all(
            v is None for n, v in g.items() if n.startswith("heads.") and not n.startswith(f"heads.{task}")
        )


def test_with_every_task_on_top_it_is_the_base_network():
    base = _base()
    ref = copy.deepcopy(base).eval()
    mech = HierarchicalSharing(base, {"pos": 2}).eval()
    batch = toy_batch(1)
    for t in TASKS:
        assert torch.allclose(mech(batch, t), ref(batch, t), atol=1e-6)


def test_pos_reads_layer_1_of_the_same_weights():
    base = _base()
    one_layer = copy.deepcopy(base)
    mech = HierarchicalSharing(base).eval()
    with torch.no_grad():  # the 1-layer tagger made of layer 1 of the base
        lstm = torch.nn.LSTM(one_layer.encoder.lstm.input_size, 8, bidirectional=True, batch_first=True)
        for n, p in lstm.named_parameters():
            p.copy_(getattr(one_layer.encoder.lstm, n))
        one_layer.encoder.lstm = lstm
    batch = toy_batch(2)
    assert torch.allclose(mech(batch, "pos"), one_layer.eval()(batch, "pos"), atol=1e-6)


def test_mapping_unknown_tasks_unused_layers_and_bad_levels():
    mech = HierarchicalSharing(_base(3, tasks=("pos", "ner")))
    assert mech.levels == {"pos": 1, "ner": 2} and len(mech.encoder.layers) == 2  # layer 3: no loss
    mech = HierarchicalSharing(_base(3, tasks=("pos", "other")))
    assert mech.levels == {"pos": 1, "other": 3}
    mech = HierarchicalSharing(_base(2), {"ner": 1, "chunk": 1})
    assert mech.levels == {"pos": 1, "chunk": 1, "ner": 1} and len(mech.encoder.layers) == 1
    with pytest.raises(ValueError, match="outside the base network's 1..1"):
        HierarchicalSharing(_base(1))


def test_training_steps_reduce_every_task_loss():
    mech = HierarchicalSharing(_base(decoder="crf"))
    batch = toy_batch(3)
    batch.tags = (batch.words % 5) * batch.mask
    opt = torch.optim.SGD(mech.parameters(), lr=0.3)
    first = {t: mech.loss(batch, t).item() for t in TASKS}
    for step in range(90):
        t = TASKS[step % 3]
        opt.zero_grad(set_to_none=True)
        mech.loss(batch, t).backward()
        mech.step(opt, t)
    assert all(mech.loss(batch, t).item() < 0.3 * first[t] for t in TASKS)


def test_param_count_and_shared_names():
    base = _base()
    want = sum(p.numel() for p in base.encoder.lstm.parameters())
    want += sum(p.numel() for p in base.encoder.char_cnn.conv.parameters())
    mech = HierarchicalSharing(base)
    assert encoder_param_count(mech) == want
    names = shared_parameter_names(mech)
    assert any(n.startswith("encoder.layers.1.") for n in names)  # chunk and NER share layer 2
    mech = HierarchicalSharing(_base(tasks=("pos", "ner")))
    names = shared_parameter_names(mech)
    assert any(n.startswith("encoder.layers.0.") for n in names)
    assert not any(n.startswith("encoder.layers.1.") for n in names)  # NER's alone
    full = HierarchicalSharing(build_tagger(1000, 80, {"pos": 45, "chunk": 20, "ner": 17}, layers=2))
    assert round(encoder_param_count(full) / 1000) == 1497  # Table 3
