"""Batch shapes and the tagger: an unpadded batch skips packing with the packed numbers bit for bit, and
batches padded to fixed shapes (SequenceData's ``pad_to``) give the same predictions and loss."""

import copy

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from sparseshare.data.sequence import SequenceData, build_shared_vocabs, padded_size
from sparseshare.errors import ConfigError
from sparseshare.models import tagger as tagger_module
from sparseshare.models.tagger import bilstm, build_tagger
from sparseshare.models.tagger import bilstm_unpacked as unpacked
from sparseshare.sharing import HardSharing

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")),
]


def _packed(lstm, x, mask, lengths=None):
    """The packed run, always (what ``bilstm`` did for every batch before it skipped unpadded ones)."""
    lengths = lengths if lengths is not None else mask.sum(1).cpu()
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, _ = lstm(packed)
    return pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]


def _refuse_packing(*args, **kwargs):
    raise AssertionError("packed an unpadded batch")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("layers", "b", "t"), [(1, 10, 24), (1, 1, 1), (2, 3, 7), (1, 4, 40)])
def test_an_unpadded_batch_runs_unpacked_with_the_packed_numbers_bit_for_bit(
    monkeypatch, device, layers, b, t
):
    torch.manual_seed(layers * 100 + t)
    lstm = torch.nn.LSTM(13, 9, num_layers=layers, bidirectional=True, batch_first=True).to(device)
    x = torch.randn(b, t, 13, device=device, requires_grad=True)
    mask = torch.ones(b, t, dtype=torch.bool, device=device)
    lengths = torch.full((b,), t)
    ref = _packed(lstm, x, mask, lengths)
    ref_grads = torch.autograd.grad((ref * ref.detach()).sum(), [x, *lstm.parameters()])
    monkeypatch.setattr(tagger_module, "pack_padded_sequence", _refuse_packing)
    out = bilstm(lstm, x, mask, lengths)
    grads = torch.autograd.grad((out * out.detach()).sum(), [x, *lstm.parameters()])
    assert torch.equal(out, ref) and out.stride() == ref.stride()  # the same layout: dropout fills by it
    assert all(torch.equal(g, r) for g, r in zip(grads, ref_grads))
    assert torch.equal(bilstm(lstm, x, mask), ref)  # lengths read from the mask alike


def test_a_padded_batch_is_still_packed(monkeypatch):
    lstm = torch.nn.LSTM(5, 4, bidirectional=True, batch_first=True)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    monkeypatch.setattr(tagger_module, "pack_padded_sequence", _refuse_packing)
    with pytest.raises(AssertionError, match="packed an unpadded batch"):
        bilstm(lstm, torch.randn(2, 3, 5), mask, torch.tensor([3, 2]))


def _sentences(n: int, g: torch.Generator, lo: int = 1, hi: int = 40):
    out = []
    for _ in range(n):
        k = int(torch.randint(lo, hi + 1, (1,), generator=g))
        ws = [f"w{int(i)}" * int(1 + i % 4) for i in torch.randint(0, 50, (k,), generator=g)]
        out.append((ws, [f"T{len(w) % 5}" for w in ws]))
    return out


def _data(pad_to=0, lo=1, hi=40, n=60):
    g = torch.Generator().manual_seed(0)
    sents = {"train": _sentences(n, g, lo, hi), "dev": _sentences(20, g, lo, hi)}
    wv, cv = build_shared_vocabs([sents["train"]])
    return SequenceData("pos", sents, wv, cv, pad_to=pad_to)


def _model(data, decoder="linear", dropout=0.5, seed=0):
    torch.manual_seed(seed)
    return build_tagger(
        len(data.word_vocab), len(data.char_vocab), {"pos": len(data.tag_vocab)}, word_dim=8, char_dim=4,
        char_filters=5, hidden=6, dropout=dropout, decoder=decoder,
    )  # fmt: skip


def test_training_steps_on_unpadded_batches_are_those_of_the_packed_run_bit_for_bit(monkeypatch):
    """Equal-length batches (every sentence 6 tokens), dropout on, SGD with momentum and clipping: the
    weights after a few steps equal those of the always-packed run exactly."""
    data = _data(lo=6, hi=6)
    runs = []
    for packing in (False, True):
        if packing:
            monkeypatch.setattr(tagger_module, "bilstm", _packed)
        mech = HardSharing(_model(data))
        opt = torch.optim.SGD(mech.parameters(), lr=0.1, momentum=0.9)
        torch.manual_seed(7)
        for batch in data.batches("train", 10, shuffle=True, generator=torch.Generator().manual_seed(1)):
            opt.zero_grad(set_to_none=True)
            mech.loss(batch, "pos").backward()
            torch.nn.utils.clip_grad_norm_(mech.parameters(), 5.0)
            opt.step()
        runs.append(mech.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


SIZES = [(1, 8, 8), (8, 8, 8), (9, 8, 16), (5, 0, 5), (1, "pow2", 1), (5, "pow2", 8), (17, "pow2", 32)]


@pytest.mark.parametrize(("n", "pad_to", "want"), SIZES)
def test_padded_size_rounds_up_to_a_multiple_or_a_power_of_two(n, pad_to, want):
    assert padded_size(n, pad_to) == want


@pytest.mark.parametrize(("pad_to", "lengths", "widths"), [(8, 5, 2), ("pow2", 7, 5)])
def test_fixed_shapes_bound_the_distinct_batch_shapes_and_keep_every_real_token(pad_to, lengths, widths):
    """Sentences of 1-40 tokens, words of 2-12 chars: batch lengths round to at most 5 multiples of 8
    (7 powers of two), word widths to 2 (5); every real token, the mask, lengths and index unchanged."""
    plain, fixed = _data(), _data(pad_to)
    shapes, unpadded = set(), set()
    gen_a, gen_b = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    pairs = zip(plain.batches("train", 7, True, gen_a), fixed.batches("train", 7, True, gen_b))
    for a, b in pairs:
        t, c = a.words.shape[1], a.chars.shape[2]
        assert b.words.shape[1] == padded_size(t, pad_to) and b.chars.shape[2] == padded_size(c, pad_to)
        assert torch.equal(b.words[:, :t], a.words) and torch.equal(b.tags[:, :t], a.tags)
        assert torch.equal(b.chars[:, :t, :c], a.chars) and torch.equal(b.mask[:, :t], a.mask)
        assert not b.mask[:, t:].any() and not b.words[:, t:].any() and not b.chars[:, :, c:].any()
        assert torch.equal(b.index, a.index) and torch.equal(b.lengths, a.lengths)
        shapes.add(tuple(b.chars.shape[1:]))
        unpadded.add(tuple(a.chars.shape[1:]))
    assert len({t for t, _ in shapes}) <= lengths and len({c for _, c in shapes}) <= widths
    assert len(shapes) < len(unpadded)


@pytest.mark.parametrize("decoder", ["linear", "crf"])
def test_fixed_shapes_give_the_same_predictions_and_loss(decoder):
    """In evaluation (no dropout) the padded batches score as the plain ones: packing leaves the padding
    out of the BiLSTM and the CRF ignores it, so the predictions are equal and the loss equal up to the
    order of the token sum."""
    plain, fixed = _data(), _data(8)
    model = _model(plain, decoder).eval()
    with torch.no_grad():
        for a, b in zip(plain.batches("dev", 6), fixed.batches("dev", 6, pad_to="pow2")):
            assert b.words.shape[1] & (b.words.shape[1] - 1) == 0  # the call's pad_to wins
            assert model.predict(b, "pos") == model.predict(a, "pos")
            torch.testing.assert_close(model.loss(b, "pos"), model.loss(a, "pos"), rtol=1e-6, atol=0)
            emissions_a, emissions_b = model(a, "pos"), model(b, "pos")
            t = a.words.shape[1]
            torch.testing.assert_close(emissions_b[:, :t], emissions_a, rtol=1e-6, atol=1e-7)


def test_fixed_shapes_train_a_copy_of_the_model_to_the_same_place():
    """With dropout off, training steps on padded batches move the weights as the plain batches do (up
    to float rounding): the padding carries no gradient."""
    plain, fixed = _data(), _data("pow2")
    base = _model(plain, dropout=0.0)
    out = []
    for data in (plain, fixed):
        mech = HardSharing(copy.deepcopy(base))
        opt = torch.optim.SGD(mech.parameters(), lr=0.1, momentum=0.9)
        for batch in data.batches("train", 10, shuffle=True, generator=torch.Generator().manual_seed(5)):
            opt.zero_grad(set_to_none=True)
            mech.loss(batch, "pos").backward()
            opt.step()
        out.append(dict(mech.named_parameters()))
    for name, p in out[0].items():
        torch.testing.assert_close(out[1][name], p, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("bad", [-1, "8", 2.5, True, "pow3"])
def test_a_bad_pad_to_is_one_config_error_naming_it(bad):
    with pytest.raises(ConfigError, match=r"^'pad_to': want 0, a positive multiple or 'pow2'"):
        _data(bad)
    with pytest.raises(ConfigError, match=r"'pad_to'"):
        next(_data().batches("train", 4, pad_to=bad))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layers", [1, 2])
def test_the_unpacked_bilstm_is_the_packed_function_of_each_sentence(device, layers):
    """Variable lengths: outputs and every gradient as the packed run's up to float rounding, padding
    positions exactly zero, and no sentence's states reached by another's padding."""
    torch.manual_seed(layers)
    lstm = torch.nn.LSTM(11, 7, num_layers=layers, bidirectional=True, batch_first=True).to(device)
    lengths = torch.tensor([9, 1, 5, 9, 3])
    mask = (torch.arange(9) < lengths.unsqueeze(1)).to(device)
    x = torch.randn(5, 9, 11, device=device, requires_grad=True)
    ref, out = _packed(lstm, x, mask, lengths), unpacked(lstm, x, mask, lengths)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    assert not out[~mask].any()
    weights = (torch.rand_like(ref) + 0.5) * mask.unsqueeze(2)
    g_ref = torch.autograd.grad((ref * weights).sum(), [x, *lstm.parameters()])
    g_out = torch.autograd.grad((out * weights).sum(), [x, *lstm.parameters()])
    for a, b in zip(g_out, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    alone = unpacked(lstm, x[1:2, :1], mask[1:2, :1], lengths[1:2])  # sentence 1 by itself, unpadded
    torch.testing.assert_close(out[1:2, :1], alone, rtol=1e-5, atol=1e-6)


def test_a_tagger_without_packing_trains_and_predicts_as_the_packed_one():
    data = _data()
    packed_model = _model(data, dropout=0.0)
    torch.manual_seed(0)
    model = build_tagger(
        len(data.word_vocab), len(data.char_vocab), {"pos": len(data.tag_vocab)}, word_dim=8, char_dim=4,
        char_filters=5, hidden=6, dropout=0.0, packing=False,
    )  # fmt: skip
    model.load_state_dict(packed_model.state_dict())
    batch = next(data.batches("train", 12))
    torch.testing.assert_close(model.loss(batch, "pos"), packed_model.loss(batch, "pos"), rtol=1e-5, atol=0)
    model.eval()
    packed_model.eval()
    assert model.predict(batch, "pos") == packed_model.predict(batch, "pos")
    mech = HardSharing(model.train())
    opt = torch.optim.SGD(mech.parameters(), lr=0.3)
    first = mech.loss(batch, "pos").item()
    for _ in range(30):
        opt.zero_grad(set_to_none=True)
        mech.loss(batch, "pos").backward()
        opt.step()
    assert mech.loss(batch, "pos").item() < 0.5 * first


def test_the_unpacked_bilstm_refuses_an_lstm_it_cannot_run():
    one_way = torch.nn.LSTM(3, 2, batch_first=True)
    with pytest.raises(ValueError, match="bidirectional, batch-first"):
        unpacked(one_way, torch.randn(1, 2, 3), torch.ones(1, 2, dtype=torch.bool))
