"""A transformer encoder from a config (``model.transformer``; models/hf_tagger.py,
experiments/systems/transformer.py): a BERT with random weights over the run's words, or a pretrained
model's weights and tokenizer (a tiny one written here with ``save_pretrained``: no hub). Sub-words
line up with a fast tokenizer's own ``is_split_into_words`` encoding, IMP masks only attention and
feed-forward matrices, the run's subnets export and reload to its numbers, and bad keys are one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sparseshare import config_files
from sparseshare.cli import main
from sparseshare.errors import ConfigError
from sparseshare.experiments.systems.checks import load_experiment
from sparseshare.experiments.systems.transformer import TRANSFORMER_SYSTEMS, piece_table, transformer_base
from sparseshare.models.hf_tagger import transformer_tagger
from tests.helpers import export_reproduces_the_run

transformers = pytest.importorskip("transformers")
SMOKE = config_files.resolve("smoke")

ATTENTION_FFN = ("attention.self.query", "attention.self.key", "attention.self.value",
                 "attention.output.dense", "intermediate.dense", "output.dense")  # fmt: skip
SLICE = ["data.limits={train: 60, dev: 20, test: 20}", "train.epochs=1", "model.dropout=0.1",
         "search.epochs_per_level=1", "search.alpha=0.5", "search.min_density=0.4",
         "search.warmup_epochs=1"]  # fmt: skip


def _sets(sets: list[str]) -> list[str]:
    return [a for s in sets for a in ("--set", s)]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    """A tiny cased BERT and its WordPiece tokenizer, saved as a downloaded model is."""
    out = tmp_path_factory.mktemp("tiny-bert")
    chars = [chr(c) for c in range(33, 127)]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "EU", "Peter", "##s", *chars,
             *(f"##{c}" for c in chars)]  # fmt: skip
    vocab = list(dict.fromkeys(vocab))
    tok = transformers.BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=False)
    tok.save_pretrained(out)
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32,
                                     max_position_embeddings=512)  # fmt: skip
    transformers.BertModel(config).save_pretrained(out)
    return out


def test_sub_words_line_up_with_the_tokenizers_own_encoding(pretrained):
    tok = transformers.AutoTokenizer.from_pretrained(pretrained)
    words = ["<pad>", "<unk>", "EU", "rejects", "German", "call", "Peter", "Peters", "."]
    pieces, lengths = piece_table(tok, words, max_pieces=16)
    config = transformers.AutoConfig.from_pretrained(pretrained).to_dict()
    specials = {"cls": tok.cls_token_id, "sep": tok.sep_token_id, "pad": tok.pad_token_id}
    net = transformer_tagger(len(words), {"ner": 3}, config, 16, specials, pieces=(pieces, lengths))
    sentences = [["EU", "rejects", "German", "call", "."], ["Peter", "Peters"]]
    ids = torch.tensor([[words.index(w) for w in s] + [0] * (5 - len(s)) for s in sentences])
    got, attention, first = net.encoder.input_ids(ids, ids != 0)
    for i, s in enumerate(sentences):
        enc = tok(s, is_split_into_words=True)
        n = len(enc["input_ids"])
        assert got[i, :n].tolist() == enc["input_ids"] and attention[i].sum() == n
        assert (got[i, n:] == tok.pad_token_id).all()
        word_ids = enc.word_ids()
        assert first[i, : len(s)].tolist() == [word_ids.index(w) for w in range(len(s))]
    assert lengths[words.index("rejects")] == len(tok("rejects", add_special_tokens=False)["input_ids"]) > 1
    few, few_lengths = piece_table(tok, words, max_pieces=2)  # a long word keeps its first pieces
    assert few_lengths.max() == 2 and few[words.index("rejects")].tolist() == pieces[3, :2].tolist()


def test_a_sentence_longer_than_the_positions_is_one_line():
    config = transformers.BertConfig(vocab_size=5, hidden_size=4, num_hidden_layers=1, num_attention_heads=1,
                                     intermediate_size=8, max_position_embeddings=3).to_dict()  # fmt: skip
    net = transformer_tagger(5, {"t": 2}, config)
    words = torch.tensor([[1, 2, 3, 4]])
    with pytest.raises(ValueError, match=r"a sentence of 4 tokens .* exceeds the encoder's 3 positions"):
        net.encoder(words, None, words != 0)


@pytest.mark.integration
def test_the_pretrained_models_weights_and_tokenizer_build_the_runs_network(pretrained, tmp_path):
    from sparseshare.sharing.registry import build_recipe

    sets = [*SLICE, f"model.transformer={{pretrained: '{pretrained}', max_pieces: 3}}",
            "data.lower_words=false", "systems=[sparse]"]  # fmt: skip
    t = load_experiment(SMOKE, sets).model.transformer
    base, inputs = transformer_base(t, ["<pad>", "<unk>", "EU", "rejects"], 0.1, "linear")
    net = build_recipe({"network": "transformer_tagger", "kwargs": {**base, **inputs, "n_tags": {"ner": 3}}})
    want = transformers.AutoModel.from_pretrained(pretrained).state_dict()
    got = net.encoder.model.state_dict()
    assert "pooler.dense.weight" not in got  # no tagging loss reaches it
    for name, value in got.items():
        assert torch.equal(value, want[name]), name
    assert net.encoder.cls == 2 and net.encoder.sep == 3 and int(net.encoder.piece_lengths.max()) == 3
    out = tmp_path / "run"
    assert main(["run", "smoke", "--out", str(out), *_sets(sets)]) == 0
    recipe = json.loads((out / "systems/sparse/network.json").read_text())
    assert recipe["network"] == "transformer_tagger" and "weights" not in recipe["kwargs"]
    assert recipe["kwargs"]["specials"] == {"cls": 2, "sep": 3, "pad": 0}
    (tmp_path / "export").mkdir()
    export_reproduces_the_run(out, "sparse", tmp_path / "export")  # the sub-word table travels in the state


@pytest.mark.integration
def test_a_random_bert_from_the_config_runs_the_sparse_sharing_systems(tmp_path):
    out = tmp_path / "run"
    sets = [*SLICE, "model.transformer={hidden: 16, heads: 2, layers: 2}", "systems=[single, sparse]"]
    assert main(["run", "smoke", "--out", str(out), *_sets(sets)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert list(res["systems"]) == ["single", "sparse"]
    from sparseshare.masks import load_masks

    masks = load_masks(out / "masks.safetensors")
    for task, names in masks.items():
        assert len(names) == 2 * len(ATTENTION_FFN), task  # every layer's six matrices, nothing else
        assert all(n.endswith(".weight") and any(k in n for k in ATTENTION_FFN) for n in names)
    (tmp_path / "export").mkdir()
    sizes = export_reproduces_the_run(out, "sparse", tmp_path / "export")
    assert sorted(sizes) == ["chunk", "ner", "pos"] and all(s["masked"] > 0 for s in sizes.values())


@pytest.mark.parametrize(
    ("sets", "match"),
    [
        (["model.transformer={layers: 1}", "systems=[hard, cross_stitch, mmoe]"],
         r"'systems': \['cross_stitch', 'mmoe'\] need the char-CNN \+ BiLSTM tagger"),
        (["model.transformer={hidden: 10, heads: 3}"],
         r"'model.transformer.heads': 3 does not divide hidden 10"),
        (["model.transformer={pretrained: somewhere, layers: 2}"], r"\['layers'\] size a random BERT"),
        (["model.transformer={max_pieces: 0}"], r"'model.transformer.max_pieces'"),
        (["model.transformer={layers: 1}", "data.embeddings=glove6b50d", "model.word_dim=50"],
         r"'data.embeddings': a transformer encoder has word embeddings of its own"),
    ],
)  # fmt: skip
def test_bad_transformer_keys_are_one_line_naming_the_key(sets, match):
    with pytest.raises(ConfigError, match=match) as e:
        load_experiment(SMOKE, sets)
    assert "\n" not in str(e.value)


def test_a_config_without_systems_runs_those_a_transformer_takes():
    cfg = load_experiment(SMOKE, ["model.transformer={layers: 1}"])
    assert cfg.systems and set(cfg.systems) <= set(TRANSFORMER_SYSTEMS)


@pytest.mark.integration
def test_a_pretrained_model_that_cannot_load_is_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    argv = [
        "run",
        "smoke",
        "--out",
        str(out),
        *_sets([*SLICE, f"model.transformer={{pretrained: '{tmp_path}'}}"]),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err  # the data's lines, then one line naming the key
    assert f"'model.transformer.pretrained': cannot load '{tmp_path}'" in err.strip().splitlines()[-1]


def test_the_skeleton_check_names_the_transformers_matrices():
    with pytest.raises(ConfigError, match=r"matches no weight matrix .*attention\.self\.query\.weight"):
        load_experiment(SMOKE, ["model.transformer={layers: 1}", "search.include=[nothing*]"])
    base, inputs = transformer_base(load_experiment(SMOKE, ["model.transformer={}"]).model.transformer,
                                    ["<pad>", "<unk>", "a"], 0.0, "crf")  # fmt: skip
    assert inputs == {} and base["hf_config"]["num_hidden_layers"] == 2 and base["decoder"] == "crf"
