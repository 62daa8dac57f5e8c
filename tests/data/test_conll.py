import pytest

from sparseshare.data.conll import read_columns, write_columns
from sparseshare.errors import DataError


def _file(tmp_path, content, name="d.txt", binary=False):
    p = tmp_path / name
    p.write_bytes(content) if binary else p.write_text(content)
    return p


def test_reads_sentences_and_skips_docstart(tmp_path):
    p = _file(tmp_path, "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n\nPeter NNP B-NP B-PER\n")
    sents = read_columns(p, min_columns=4)
    assert [[r[0] for r in s] for s in sents] == [["EU", "rejects"], ["Peter"]]
    assert sents[0][0] == ["EU", "NNP", "B-NP", "B-ORG"]
    out = tmp_path / "o.txt"
    write_columns(out, sents)
    assert read_columns(out) == sents


@pytest.mark.parametrize(
    "content,line,fault",
    [
        ("a B C D\nb E F\n", 2, "expected 4 columns, found 3"),
        ("a B C D\n\nx Y Z W\ny Y Z W V\n", 4, "expected 4 columns, found 5"),
        ("a B\nb C\n", 1, "tag column 4 missing"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, content, line, fault):
    p = _file(tmp_path, content)
    with pytest.raises(DataError) as e:
        read_columns(p, min_columns=4)
    assert str(e.value).startswith(f"{p}:{line}: ") and fault in str(e.value)
    assert "\n" not in str(e.value)


def test_empty_file_and_bad_encoding(tmp_path):
    with pytest.raises(DataError, match="empty file"):
        read_columns(_file(tmp_path, "\n\n"))
    p = _file(tmp_path, b"a B C D\nb\xff\xfe C D E\n", name="bad.txt", binary=True)
    with pytest.raises(DataError, match=r"bad.txt:2: not valid UTF-8"):
        read_columns(p)
    with pytest.raises(DataError, match="no such file"):
        read_columns(tmp_path / "none.txt")
