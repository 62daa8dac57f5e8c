"""The tagger's options: CRF decoder through build_tagger, word dropout, stacked-layer splitting, # Params."""

import pytest
import torch

from sparseshare.errors import ConfigError
from sparseshare.experiments.config.schema import from_dict
from sparseshare.experiments.config.sections import ModelConfig
from sparseshare.experiments.systems.context import encoder_param_count
from sparseshare.models import CRFDecoder, LinearDecoder, build_tagger, drop_words
from sparseshare.models.tagger import UNK_ID, bilstm, split_layers
from sparseshare.sharing import HardSharing
from tests.helpers import toy_batch


def _tagger(decoder="linear", word_dropout=0.0, dropout=0.0, layers=1, seed=0):
    torch.manual_seed(seed)
    return build_tagger(
        n_words=30,
        n_chars=12,
        n_tags={"pos": 5, "ner": 4},
        word_dim=6,
        char_dim=4,
        char_filters=3,
        hidden=8,
        layers=layers,
        dropout=dropout,
        decoder=decoder,
        word_dropout=word_dropout,
    )


def _learnable(seed):
    b = toy_batch(seed, b=8)
    b.tags = (b.words % 4) * b.mask
    return b


def test_crf_decoder_trains_and_decodes_through_build_tagger():
    mech = HardSharing(_tagger("crf"))
    assert all(isinstance(h, CRFDecoder) for h in mech.model.heads.values())
    batch = _learnable(0)
    opt = torch.optim.SGD(mech.parameters(), lr=0.3)
    first = mech.loss(batch, "ner").item()
    for _ in range(100):
        opt.zero_grad(set_to_none=True)
        mech.loss(batch, "ner").backward()
        opt.step()
    assert mech.loss(batch, "ner").item() < 0.1 * first
    assert mech.model.heads["ner"].crf.transitions.grad.abs().sum() > 0
    mech.eval()
    pred = mech.predict(batch, "ner")
    lengths = batch.mask.sum(1).tolist()
    assert [len(p) for p in pred] == lengths
    gold = [batch.tags[i, :n].tolist() for i, n in enumerate(lengths)]
    correct = sum(a == b for p, g in zip(pred, gold) for a, b in zip(p, g))
    assert correct / sum(lengths) > 0.9


def test_crf_decode_is_viterbi_over_the_emissions():
    model = _tagger("crf").eval()
    batch = toy_batch(1)
    em = model(batch, "pos")
    assert model.task_predict(em, batch, "pos") == model.heads["pos"].crf.viterbi(em, batch.mask)


def test_linear_is_the_default_and_unknown_decoders_list_the_valid_ones():
    assert all(isinstance(h, LinearDecoder) for h in _tagger().heads.values())
    with pytest.raises(ConfigError, match=r"valid: \['crf', 'linear'\]"):
        _tagger("softmax")


def test_drop_words_replaces_only_real_words_by_unk_at_the_rate():
    torch.manual_seed(0)
    words = torch.randint(2, 100, (200, 50))
    words[:, 30:] = 0  # padding
    out = drop_words(words, 0.3)
    changed = out != words
    assert torch.all(out[changed] == UNK_ID)
    assert torch.all(out[:, 30:] == 0)
    assert changed[:, :30].float().mean().item() == pytest.approx(0.3, abs=0.02)
    assert torch.equal(drop_words(words, 0.0), words)


def test_word_dropout_acts_in_training_only_and_never_on_padding():
    model = _tagger(word_dropout=0.5)
    seen = []
    model.encoder.word_embed.register_forward_hook(lambda m, args, out: seen.append(args[0].clone()))
    batch = toy_batch(2, b=16, t=9)
    model.eval()
    model(batch, "pos")
    assert torch.equal(seen[-1], batch.words)
    model.train()
    model(batch, "pos")
    got = seen[-1]
    assert torch.all(got[~batch.mask] == 0)
    dropped = (got != batch.words) & batch.mask
    assert dropped.any() and torch.all(got[dropped] == UNK_ID)
    assert 0.3 < dropped.sum().item() / batch.mask.sum().item() < 0.7


def test_word_dropout_out_of_range_is_refused():
    with pytest.raises(ValueError, match="word_dropout"):
        _tagger(word_dropout=1.0)


def test_split_layers_gives_the_stacked_lstm_outputs():
    model = _tagger(layers=2).eval()
    lstm = model.encoder.lstm
    parts = split_layers(lstm)
    assert [p.num_layers for p in parts] == [1, 1]
    x = torch.randn(4, 7, lstm.input_size)
    batch = toy_batch(3)
    h = x
    for p in parts:
        h = bilstm(p, h, batch.mask)
    assert torch.allclose(h, bilstm(lstm, x, batch.mask), atol=1e-6)
    parts[0].weight_ih_l0.data.zero_()
    assert lstm.weight_ih_l0.abs().sum() > 0  # copies, not views


@pytest.mark.parametrize("decoder", ["linear", "crf"])
@pytest.mark.parametrize("layers", [1, 2])
def test_param_count_is_the_encoder_without_embeddings_or_heads(decoder, layers):
    model = _tagger(decoder, layers=layers)
    lstm = model.encoder.lstm
    conv = model.encoder.char_cnn.conv
    want = sum(p.numel() for p in lstm.parameters()) + sum(p.numel() for p in conv.parameters())
    assert encoder_param_count(model) == want
    # the paper's Table 2 sizes give Table 3's single-task count, 534k (1 layer) / 1497k (2 layers)
    full = build_tagger(1000, 80, {"pos": 45}, layers=layers, decoder=decoder)
    assert round(encoder_param_count(full) / 1000) == (534 if layers == 1 else 1497)


def load_config_text(text):
    import tempfile
    from pathlib import Path

    from sparseshare.experiments.systems.checks import load_experiment

    path = Path(tempfile.mkdtemp()) / "c.yaml"
    path.write_text(text)
    return load_experiment(path)


def test_model_config_defaults_are_table_2_and_new_keys_are_checked():
    m = from_dict(ModelConfig, {}, "model")
    assert (m.char_width, m.char_filters, m.hidden, m.dropout) == (3, 30, 200, 0.5)
    assert m.word_dim is None  # the embeddings' dimension; 100 (Table 2) without embeddings:
    assert load_config_text("name: x\ndata: {embeddings: null}\n").model.word_dim == 100
    assert (m.decoder, m.word_dropout, m.hierarchy) == ("linear", 0.0, {})
    assert from_dict(ModelConfig, {"decoder": "crf", "word_dropout": 0.1}, "model").decoder == "crf"
    with pytest.raises(ConfigError, match="'model.decoder'.*valid"):
        from_dict(ModelConfig, {"decoder": "hmm"}, "model")
    with pytest.raises(ConfigError, match="'model.word_dropout'"):
        from_dict(ModelConfig, {"word_dropout": 1.5}, "model")
    with pytest.raises(ConfigError, match="'model.hierarchy'"):
        from_dict(ModelConfig, {"hierarchy": {"pos": 0}}, "model")
