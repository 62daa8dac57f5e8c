import pytest
import torch

from sparseshare.data.sequence import SequenceData, Vocab, build_shared_vocabs
from sparseshare.errors import DataError

SENTS = {
    "train": [(["The", "cat", "sat"], ["DT", "NN", "VBD"]), (["A", "dog"], ["DT", "NN"])],
    "dev": [(["The", "bird"], ["DT", "NN"])],
    "test": [(["Cats"], ["NNS"])],
}


def _data(sents=SENTS, **kw):
    wv, cv = build_shared_vocabs([sents["train"]])
    return SequenceData("pos", sents, wv, cv, **kw)


def test_vocabs_lowercase_words_keep_char_case_and_reserve_pad_unk():
    wv, cv = build_shared_vocabs([SENTS["train"], [["Zebra", "cat"]]])  # (words, tags) pairs or word lists
    assert wv.itos == ["<pad>", "<unk>", "a", "cat", "dog", "sat", "the", "zebra"]
    assert "T" in cv and "Z" in cv and cv.itos[:2] == ["<pad>", "<unk>"]
    assert wv.encode(["the", "unseen"]) == [6, 1]
    cased, _ = build_shared_vocabs([SENTS["train"]], lower=False, extra_words={"bird"})
    assert "The" in cased and "the" not in cased and "bird" in cased
    assert Vocab.build(["x", "x", "y"], min_count=2).itos == ["<pad>", "<unk>", "x"]


def test_tag_vocab_is_closed_over_all_splits_and_starts_at_zero():
    data = _data()
    assert data.tag_vocab.itos == ["DT", "NN", "NNS", "VBD"]  # NNS only occurs in test
    assert data.tag_vocab.unk is None
    with pytest.raises(KeyError):
        data.tag_vocab.encode(["JJ"])


def test_batch_shapes_padding_mask_and_values():
    data = _data()
    (b,) = list(data.batches("train", 8))
    assert b.size == 2 and b.n_tokens == 5
    assert b.words.shape == (2, 3) and b.chars.shape == (2, 3, 3) and b.tags.shape == (2, 3)
    assert b.words.dtype == b.chars.dtype == b.tags.dtype == torch.long and b.mask.dtype == torch.bool
    assert b.mask.tolist() == [[True, True, True], [True, True, False]]
    assert b.words[1, 2] == 0 and b.tags[1, 2] == 0 and b.chars[1, 2].sum() == 0
    assert b.words[0].tolist() == data.word_vocab.encode(["the", "cat", "sat"])
    assert b.chars[0, 0].tolist() == data.char_vocab.encode("The")  # chars keep the case
    assert b.chars[1, 0].tolist() == data.char_vocab.encode("A") + [0, 0]
    assert b.tags[0].tolist() == [0, 1, 3] and b.index.tolist() == [0, 1]
    (d,) = list(data.batches("dev", 8))
    assert d.words[0, 1] == data.word_vocab.unk  # "bird" unseen in train
    assert b.to("cpu").words.equal(b.words)


def test_long_words_are_truncated_and_chars_pad_to_the_batch_longest():
    sents = {"train": [(["a" * 50, "bb"], ["X", "Y"]), (["ccc"], ["X"])]}
    data = _data(sents, max_word_len=30)
    (b,) = list(data.batches("train", 2))
    assert b.chars.shape == (2, 2, 30) and (b.chars[0, 0] > 0).all()
    (b1,) = list(data.batches("train", 1))[1:]
    assert b1.chars.shape == (1, 1, 3)


def test_shuffle_is_reproducible_and_index_maps_back():
    sents = {"train": [([f"w{i}"] * (i % 4 + 1), ["T"] * (i % 4 + 1)) for i in range(23)]}
    data = _data(sents)
    assert len(data) == 23 and data.num_examples("train") == 23 and data.num_tokens("train") == 56

    def order(seed):
        g = torch.Generator().manual_seed(seed)
        return torch.cat([b.index for b in data.batches("train", 5, shuffle=True, generator=g)]).tolist()

    assert order(3) == order(3) and order(3) != list(range(23)) and sorted(order(3)) == list(range(23))
    for b in data.batches("train", 5, shuffle=True, generator=torch.Generator().manual_seed(1)):
        for row, i in enumerate(b.index.tolist()):
            assert b.mask[row].sum() == len(sents["train"][i][0])


def test_length_buckets_cover_every_sentence_once_with_less_padding():
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 40, (203,), generator=g).tolist()
    sents = {"train": [([f"w{i % 7}"] * n, ["T"] * n) for i, n in enumerate(lengths)]}
    data = _data(sents)

    def passes(bucket, seed=5):
        gen = torch.Generator().manual_seed(seed)
        return list(data.batches("train", 10, shuffle=True, generator=gen, bucket=bucket))

    plain, bucketed = passes(0), passes(8)
    for batches in (plain, bucketed):
        assert sorted(torch.cat([b.index for b in batches]).tolist()) == list(range(203))
        for b in batches:  # each row is the sentence its index names
            assert b.mask.sum(1).tolist() == [lengths[i] for i in b.index.tolist()]
    padding = [sum(b.mask.numel() - int(b.mask.sum()) for b in batches) for batches in (plain, bucketed)]
    assert padding[1] < padding[0] / 3, padding
    same = [b.index.tolist() for b in passes(8)]
    assert same == [b.index.tolist() for b in bucketed]  # reproducible from the generator
    assert same != [b.index.tolist() for b in passes(8, seed=6)]
    # bucket 0 is the plain shuffle, batch for batch
    gen = torch.Generator().manual_seed(5)
    plain_default = list(data.batches("train", 10, shuffle=True, generator=gen))
    assert [b.index.tolist() for b in plain_default] == [b.index.tolist() for b in plain]


@pytest.mark.parametrize(
    "sentence,fault",
    [
        (([], []), "sentence 1: empty sentence"),
        ((["a", "b"], ["DT"]), "sentence 1: 2 words but 1 tags"),
        ((["a", ""], ["DT", "NN"]), "sentence 1: empty word"),
        ((["a"], ["JJ"]), "sentence 1: tag 'JJ' not in the tag vocabulary"),
    ],
)
def test_bad_sentences_are_errors(sentence, fault):
    wv, cv = build_shared_vocabs([SENTS["train"]])
    tags = Vocab.tags(["DT", "NN"])
    with pytest.raises(DataError, match=f"pos/dev: {fault}"):
        SequenceData("pos", {"dev": [(["a"], ["DT"]), sentence]}, wv, cv, tag_vocab=tags)
