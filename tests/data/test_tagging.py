import itertools

import pytest

from sparseshare.data.tagging import convert_tags, detect_iob1, invalid_tag

# hand-checked: a 2-token PER, a 1-token LOC directly followed by a 3-token LOC, a 1-token ORG
BIO2 = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "I-LOC", "O", "B-ORG"]
BIOES = ["B-PER", "E-PER", "O", "S-LOC", "B-LOC", "I-LOC", "E-LOC", "O", "S-ORG"]
IOB1 = ["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-LOC", "I-LOC", "O", "I-ORG"]


def test_hand_checked_conversions():
    assert convert_tags(BIO2, "bio2", "bioes") == BIOES
    assert convert_tags(BIOES, "bioes", "bio2") == BIO2
    assert convert_tags(IOB1, "iob1", "bio2") == BIO2
    assert convert_tags(BIO2, "bio2", "iob1") == IOB1
    assert convert_tags(IOB1, "iob1", "bioes") == BIOES
    assert convert_tags(BIOES, "BIOES", "iob1") == IOB1
    assert convert_tags(BIO2, "iob2", "bio2") == BIO2
    assert convert_tags(["I-PER", "I-LOC"], "iob1", "bioes") == ["S-PER", "S-LOC"]  # type change = new span


def _valid_bio2(n: int, types=("A", "B")):
    """Every valid BIO2 sequence of length n: I-X only right after B-X or I-X."""
    tokens = ["O"] + [f"{p}-{t}" for t in types for p in "BI"]
    for seq in itertools.product(tokens, repeat=n):
        prev = "O"
        ok = True
        for tag in seq:
            if tag.startswith("I-") and (prev == "O" or prev[2:] != tag[2:]):
                ok = False
                break
            prev = tag
        if ok:
            yield list(seq)


@pytest.mark.parametrize("n,expected", [(1, 3), (2, 11), (3, 41), (4, 153), (5, 571)])
def test_exhaustive_round_trips(n, expected):
    count = 0
    for bio2 in _valid_bio2(n):
        bioes, iob1 = convert_tags(bio2, "bio2", "bioes"), convert_tags(bio2, "bio2", "iob1")
        assert convert_tags(bioes, "bioes", "bio2") == bio2
        assert convert_tags(iob1, "iob1", "bio2") == bio2
        assert convert_tags(convert_tags(iob1, "iob1", "bio2"), "bio2", "iob1") == iob1
        assert convert_tags(convert_tags(bioes, "bioes", "iob1"), "iob1", "bioes") == bioes
        assert not detect_iob1(bio2)
        assert detect_iob1(iob1) == any(t != "O" for t in bio2)  # IOB1's first span starts with I-
        count += 1
    assert count == expected  # n=2 by hand: after O 3 choices, after B-A or B-B 4 each


def test_detect_and_reject():
    assert detect_iob1(IOB1) and not detect_iob1(BIO2)
    assert detect_iob1(["B-PER", "I-LOC"])  # I- after another type starts a span
    with pytest.raises(ValueError, match="unknown tag scheme 'bilou'"):
        convert_tags(BIO2, "bilou", "bio2")
    with pytest.raises(ValueError, match="tag 2 'E-PER' is not a valid bio2 tag"):
        convert_tags(["B-PER", "E-PER"], "bio2", "bioes")
    assert invalid_tag(["O", "B-X", "PER"], "bio2") == 2
    assert invalid_tag(["O", "B-", "I-X"], "iob1") == 1
    assert invalid_tag(["S-X", "E-X"], "bioes") is None
