import pytest

from sparseshare.data.tagging import convert_tags, detect_iob1

BIO2 = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "I-LOC", "O", "B-ORG"]
BIOES = ["B-PER", "E-PER", "O", "S-LOC", "B-LOC", "I-LOC", "E-LOC", "O", "S-ORG"]
IOB1 = ["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-LOC", "I-LOC", "O", "I-ORG"]


def test_hand_checked_conversions():
    assert convert_tags(BIO2, "bio2", "bioes") == BIOES
    assert convert_tags(BIOES, "bioes", "bio2") == BIO2
    assert convert_tags(IOB1, "iob1", "bio2") == BIO2
    assert convert_tags(BIO2, "bio2", "iob1") == IOB1
    assert convert_tags(IOB1, "iob1", "bioes") == BIOES
    assert convert_tags(BIO2, "iob2", "bio2") == BIO2


@pytest.mark.parametrize("src,seq", [("bio2", BIO2), ("bioes", BIOES), ("iob1", IOB1)])
@pytest.mark.parametrize("via", ["bio2", "bioes", "iob1"])
def test_round_trips(src, seq, via):
    assert convert_tags(convert_tags(seq, src, via), via, src) == seq


def test_detect_and_reject():
    assert detect_iob1(IOB1) and not detect_iob1(BIO2)
    with pytest.raises(ValueError, match="unknown tag scheme"):
        convert_tags(BIO2, "bilou", "bio2")
