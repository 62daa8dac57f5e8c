import itertools

import pytest

from sparseshare.data.tagging import broken_span, convert_tags, detect_iob1, detect_scheme, invalid_tag

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


def _all_sequences(n: int, prefixes: str, types=("A", "B")):
    tokens = ["O"] + [f"{p}-{t}" for t in types for p in prefixes]
    return (list(seq) for seq in itertools.product(tokens, repeat=n))


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_broken_span_is_exactly_what_fails_to_round_trip(n):
    """A sequence passes broken_span iff it survives the trip through the other schemes unchanged."""
    valid = {"bio2": 0, "bioes": 0}
    for scheme, prefixes in (("bio2", "BI"), ("bioes", "BIES")):
        for tags in _all_sequences(n, prefixes):
            round_trip = convert_tags(convert_tags(tags, scheme, "iob1"), "iob1", scheme)
            assert (broken_span(tags, scheme) is None) == (round_trip == tags), tags
            valid[scheme] += broken_span(tags, scheme) is None
    # valid BIO2 and valid BIOES sequences are the same spans written twice: equal counts
    assert valid["bio2"] == valid["bioes"] == {1: 3, 2: 11, 3: 41, 4: 153}[n]


def test_broken_span_positions_and_reasons():
    assert broken_span(["O", "I-A"], "bio2") == (1, "I-A does not continue a A span")
    assert broken_span(["B-A", "I-B"], "bio2") == (1, "I-B does not continue a B span")
    assert broken_span(["B-A", "O"], "bioes") == (0, "B-A is not followed by I-A or E-A")
    assert broken_span(["B-A", "I-A"], "bioes") == (1, "I-A ends the sentence inside a span")
    assert broken_span(["S-A", "E-A"], "bioes") == (1, "E-A does not continue a A span")
    assert broken_span(["I-A", "B-A", "O"], "iob1") is None  # IOB1 has no span rule


def test_detect_scheme_over_a_whole_file():
    for n in (1, 2, 3):
        for bio2 in _valid_bio2(n):
            has_span = any(t != "O" for t in bio2)
            assert detect_scheme([bio2]) == "bio2"
            assert detect_scheme([["O"], convert_tags(bio2, "bio2", "iob1")]) == (
                "iob1" if has_span else "bio2"
            )
            # BIOES marks every span's end (E- or S-), so any span gives it away
            assert detect_scheme([convert_tags(bio2, "bio2", "bioes")]) == ("bioes" if has_span else "bio2")
    # one IOB1 sentence decides for the file, even after BIO2-looking ones
    assert detect_scheme([["B-A", "I-A"], ["O", "I-A"]]) == "iob1"
    assert detect_scheme([]) == "bio2"
