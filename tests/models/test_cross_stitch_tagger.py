"""Cross-stitch soft sharing for taggers (Misra et al. 2016): units, columns, gradient paths, # Params."""

import copy

import pytest
import torch

from sparseshare.experiments.systems.context import encoder_param_count
from sparseshare.models import build_tagger
from sparseshare.sharing import CrossStitchSharing, shared_parameter_names
from tests.helpers import toy_batch

TASKS = ("pos", "chunk", "ner")


def _base(layers=1, dropout=0.0, decoder="linear"):
    torch.manual_seed(0)
    return build_tagger(
        30, 12, {t: 5 for t in TASKS}, 6, 4, 3, hidden=8, layers=layers, dropout=dropout, decoder=decoder
    )


def _identity_units(mech):
    with torch.no_grad():
        for alpha in mech.encoder.stitch:
            alpha.copy_(torch.eye(len(TASKS)))


def test_units_start_near_identity_one_per_layer():
    for layers in (1, 2):
        mech = CrossStitchSharing(_base(layers))
        assert len(mech.encoder.stitch) == layers
        for alpha in mech.encoder.stitch:
            assert torch.allclose(alpha.diagonal(), torch.full((3,), 0.9))
            assert torch.allclose(alpha[~torch.eye(3, dtype=torch.bool)], torch.full((6,), 0.05))
            assert torch.allclose(alpha.sum(1), torch.ones(3))


@pytest.mark.parametrize("layers", [1, 2])
def test_with_identity_units_each_task_runs_the_single_task_network(layers):
    base = _base(layers)
    ref = copy.deepcopy(base).eval()
    mech = CrossStitchSharing(base).eval()
    batch = toy_batch(0)
    for t in TASKS:
        stitched = mech(batch, t)
        assert torch.allclose(stitched, ref(batch, t), atol=1e-6)  # 0.9/0.05 units on equal columns
    _identity_units(mech)
    with torch.no_grad():  # make the columns differ: identity units must keep them apart
        for t in TASKS[1:]:
            for p in mech.encoder.columns[t].parameters():
                p.add_(0.3 * torch.randn_like(p))
    assert torch.allclose(mech(batch, "pos"), ref(batch, "pos"), atol=1e-6)
    assert not torch.allclose(mech(batch, "ner"), ref(batch, "ner"), atol=1e-3)


def test_a_task_loss_reaches_other_columns_only_through_the_units():
    mech = CrossStitchSharing(_base(layers=2))
    mech.loss(toy_batch(1), "pos").backward()
    params = dict(mech.named_parameters())
    for t in TASKS:
        grads = [p.grad for n, p in params.items() if n.startswith(f"encoder.columns.{t}.")]
        assert all(g is not None and g.abs().sum() > 0 for g in grads), t
    assert all(params[f"encoder.stitch.{i}"].grad.abs().sum() > 0 for i in (0, 1))
    assert params["encoder.char_cnn.conv.weight"].grad.abs().sum() > 0
    assert all(p.grad is None for n, p in params.items() if n.startswith(("heads.chunk", "heads.ner")))

    _identity_units(mech)
    mech.zero_grad(set_to_none=True)
    mech.loss(toy_batch(1), "pos").backward()
    for n, p in params.items():
        if n.startswith(("encoder.columns.chunk.", "encoder.columns.ner.")):
            assert p.grad is None or not p.grad.any(), n
    # ... but the units still learn to let the other columns in
    off = ~torch.eye(3, dtype=torch.bool)
    assert params["encoder.stitch.1"].grad[0][off[0]].abs().sum() > 0


def test_training_steps_reduce_every_task_loss_and_move_the_units():
    mech = CrossStitchSharing(_base(decoder="crf"))
    batch = toy_batch(2)
    batch.tags = (batch.words % 5) * batch.mask
    opt = torch.optim.SGD(mech.parameters(), lr=0.2)
    first = {t: mech.loss(batch, t).item() for t in TASKS}
    before = mech.encoder.stitch[0].detach().clone()
    for step in range(60):
        t = TASKS[step % 3]
        opt.zero_grad(set_to_none=True)
        mech.loss(batch, t).backward()
        mech.step(opt, t)
    assert all(mech.loss(batch, t).item() < 0.5 * first[t] for t in TASKS)
    assert not torch.equal(mech.encoder.stitch[0], before)


@pytest.mark.parametrize("layers", [1, 2])
def test_param_count_is_columns_char_cnn_and_units(layers):
    base = _base(layers)
    per_column = sum(p.numel() for p in base.encoder.lstm.parameters())
    conv = sum(p.numel() for p in base.encoder.char_cnn.conv.parameters())
    mech = CrossStitchSharing(base)
    assert encoder_param_count(mech) == 3 * per_column + conv + layers * 3 * 3
    names = set(shared_parameter_names(mech))
    assert {f"encoder.stitch.{i}" for i in range(layers)} <= names
    assert "encoder.char_cnn.conv.weight" in names and "encoder.word_embed.weight" in names
    assert any(".columns.ner." in n for n in names)  # every column reaches every task through the units
    assert not any(n.startswith("heads.") for n in names)


def test_table_3_soft_sharing_count():
    full = CrossStitchSharing(build_tagger(1000, 80, {"pos": 45, "chunk": 20, "ner": 17}))
    assert round(encoder_param_count(full) / 1000) == 1596


def test_one_task_is_the_single_task_model():
    torch.manual_seed(0)
    base = build_tagger(30, 12, {"ner": 4}, 6, 4, 3, hidden=8, dropout=0.0).eval()
    ref = copy.deepcopy(base)
    mech = CrossStitchSharing(base).eval()
    assert mech.encoder.stitch[0].tolist() == [[1.0]]
    assert torch.allclose(mech(toy_batch(3), "ner"), ref(toy_batch(3), "ner"), atol=1e-6)
