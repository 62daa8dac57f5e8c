import pytest

from sparseshare.data.conll import read_columns, read_rows, write_columns
from sparseshare.errors import DataError

SAMPLE = (
    "-DOCSTART- -X- -X- O\n\n"
    "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n\n"
    "Peter\tNNP  B-NP B-PER\r\n\n"
    "-DOCSTART- -X- -X- O\n\n"
    "# NN B-NP O\n"
)


def _file(tmp_path, content, name="d.txt"):
    p = tmp_path / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return p


def test_reads_sentences_skips_docstart_and_round_trips(tmp_path):
    p = _file(tmp_path, SAMPLE)
    sents = read_columns(p, min_columns=4)
    assert [[r[0] for r in s] for s in sents] == [["EU", "rejects"], ["Peter"], ["#"]]
    assert sents[0][0] == ["EU", "NNP", "B-NP", "B-ORG"]
    assert sents[1][0] == ["Peter", "NNP", "B-NP", "B-PER"]  # tabs, double spaces and \r\n
    assert [[n for n, _ in s] for s in read_rows(p)] == [[3, 4], [7], [11]]
    out = tmp_path / "o.txt"
    write_columns(out, sents)
    assert read_columns(out) == sents


def test_comments_only_when_asked(tmp_path):
    p = _file(tmp_path, "# sent_id = 1\nThe DT\ncat NN\n")
    assert len(read_columns(p, comments=True)[0]) == 2
    with pytest.raises(DataError, match=r"d.txt:2: expected 4 columns, found 2"):
        read_columns(p)  # "# sent_id = 1" is a 4-column row


def test_unicode_tokens_are_kept_whole(tmp_path):
    p = _file(tmp_path, "São\u00a0Paulo NNP\nfoo\u2028bar NN\n")
    assert read_columns(p) == [[["São\u00a0Paulo", "NNP"], ["foo\u2028bar", "NN"]]]


@pytest.mark.parametrize(
    "content,line,fault",
    [
        ("a B C D\nb E F\n", 2, "expected 4 columns, found 3"),
        ("a B C D\n\nx Y Z W\ny Y Z W V\n", 4, "expected 4 columns, found 5"),
        ("-DOCSTART- -X- O\n\na B\nb C\n", 3, "tag column 4 missing"),
        ("a B C D\n" * 5000 + "b\xff C D E\n", 5001, "not valid UTF-8 text"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path, content, line, fault):
    p = _file(tmp_path, content.encode("latin-1") if "\xff" in content else content)
    with pytest.raises(DataError) as e:
        read_columns(p, min_columns=4)
    assert str(e.value).startswith(f"{p}:{line}: ") and fault in str(e.value)
    assert e.value.line == line and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "content,fault", [("", "empty file"), ("\n \n", "empty file"), ("-DOCSTART- -X- O\n\n", "no sentences")]
)
def test_files_without_sentences(tmp_path, content, fault):
    p = _file(tmp_path, content)
    with pytest.raises(DataError, match=fault) as e:
        read_columns(p)
    assert str(e.value).startswith(str(p))


def test_missing_file_and_unwritable_cells(tmp_path):
    with pytest.raises(DataError, match="none.txt: no such file"):
        read_columns(tmp_path / "none.txt")
    with pytest.raises(ValueError, match="whitespace"):
        write_columns(tmp_path / "o.txt", [[["New York", "NNP"]]])


def test_data_errors_survive_pickling():  # raised in a worker process of `run --jobs`
    import pickle

    from sparseshare.errors import DataError

    e = pickle.loads(pickle.dumps(DataError("train.txt", 4, "expected 4 columns, found 3")))
    assert str(e) == "train.txt:4: expected 4 columns, found 3" and e.line == 4
