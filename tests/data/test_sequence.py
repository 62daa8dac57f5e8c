import numpy as np
import pytest
import torch

from sparseshare.data.embeddings import embedding_matrix, load_glove
from sparseshare.data.sequence import SequenceData, Vocab, build_shared_vocabs
from sparseshare.errors import DataError

SENTS = {
    "train": [(["The", "cat", "sat"], ["DT", "NN", "VBD"]), (["A", "dog"], ["DT", "NN"])],
    "dev": [(["The", "bird"], ["DT", "NN"])],
    "test": [(["Cats"], ["NNS"])],
}


def test_vocab_and_batches_pad_and_mask():
    wv, cv = build_shared_vocabs([SENTS["train"]], lower=True)
    assert wv.itos[:2] == ["<pad>", "<unk>"] and "the" in wv.stoi and "The" not in wv.stoi
    data = SequenceData("pos", SENTS, wv, cv)
    assert data.tag_vocab.itos == ["DT", "NN", "NNS", "VBD"]  # closed set over all splits
    (b,) = list(data.batches("train", 8))
    assert b.words.shape == (2, 3) and b.chars.shape == (2, 3, 3)
    assert b.mask.tolist() == [[True, True, True], [True, True, False]]
    assert b.words[1, 2] == 0 and b.tags[1, 2] == 0 and b.chars[1, 2].sum() == 0
    assert b.words[0, 0] == wv.stoi["the"]
    (d,) = list(data.batches("dev", 8))
    assert d.words[0, 1] == wv.unk  # "bird" unseen in train
    g = torch.Generator().manual_seed(0)
    idx = torch.cat([b.index for b in data.batches("train", 1, shuffle=True, generator=g)])
    assert sorted(idx.tolist()) == [0, 1]


def test_extra_words_enter_the_vocabulary():
    wv, _ = build_shared_vocabs([SENTS["train"]], extra_words={"bird"})
    assert "bird" in wv.stoi


def test_embedding_matrix_lowercase_lookup_oov_range_and_pad(tmp_path):
    words, vectors = ["the", "cat"], np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32)
    vocab = ["<pad>", "<unk>", "The", "cat", "zebra"]
    mat, found = embedding_matrix(vocab, words, vectors, 3, np.random.default_rng(0))
    assert found == 2
    assert np.allclose(mat[2], [1, 2, 3]) and np.allclose(mat[3], [4, 5, 6])
    assert np.all(mat[0] == 0)
    assert np.all(np.abs(mat[4]) <= np.sqrt(3 / 3))


def test_glove_text_reader_and_errors(tmp_path):
    p = tmp_path / "g.txt"
    p.write_text("the 0.1 0.2\ncat 0.3 0.4\n")
    words, vec = load_glove(p)
    assert words == ["the", "cat"] and vec.shape == (2, 2)
    p.write_text("the 0.1 0.2\ncat 0.3\n")
    with pytest.raises(DataError, match=r"g.txt:2: vector has 1 dimensions"):
        load_glove(p)
    p.write_text("the 0.1 zero\n")
    with pytest.raises(DataError, match=r"g.txt:1: .*not a number"):
        load_glove(p)


def test_vocab_tags_unknown_tag_is_an_error():
    v = Vocab.tags(["A", "B"])
    with pytest.raises(KeyError):
        v.encode(["C"])
