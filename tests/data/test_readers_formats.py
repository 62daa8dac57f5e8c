"""Column readers: real CoNLL-2000, hand-made column files, the position task, one-line errors."""

from pathlib import Path

import pytest

from sparseshare.data.columns import columns_tasks
from sparseshare.data.conll import read_columns
from sparseshare.data.corpora import corpus_tasks
from sparseshare.data.readers import (
    CONLL2000_DEV_SIZE,
    carve_dev,
    conll2000_tasks,
    position_task,
)
from sparseshare.data.sources import MARKER, cache_root, get_source, resolve
from sparseshare.errors import ConfigError, DataError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
CONLL2000 = SHARED / "conll2000"
needs_conll2000 = pytest.mark.skipif(not CONLL2000.is_dir(), reason="../shared/data/conll2000 absent")


def one_line_error(exc: pytest.ExceptionInfo, path: Path, line: int | None) -> str:
    """The error's message, checked to be one line that starts with the file (and line)."""
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}:{line}: " if line is not None else f"{path}: ")
    return msg


@pytest.fixture(scope="module")
def conll2000():
    return conll2000_tasks(CONLL2000)


@needs_conll2000
def test_real_conll2000_counts_and_dev_carve(conll2000):
    data = conll2000
    assert set(data) == {"pos", "chunk"}
    n = {s: len(data["chunk"][s]) for s in ("train", "dev", "test")}
    assert n == {"train": 8936 - CONLL2000_DEV_SIZE, "dev": CONLL2000_DEV_SIZE, "test": 2012}
    tokens = {s: sum(len(ws) for ws, _ in data["chunk"][s]) for s in n}
    assert tokens["train"] + tokens["dev"] == 211727 and tokens["test"] == 47377  # the README's counts
    assert data["pos"]["train"][0][0] == data["chunk"]["train"][0][0]  # tasks share sentences
    # the release is BIO2 already: 22 chunk tags in train (README), no E-/S- appear, none changed
    chunk = {t for s in ("train", "dev") for _, ts in data["chunk"][s] for t in ts}
    assert len(chunk) == 22 and "B-NP" in chunk and not any(t[0] in "ES" for t in chunk)
    assert len({t for s in ("train", "dev") for _, ts in data["pos"][s] for t in ts}) == 44
    # train + dev is the file (which repeats 55 boilerplate sentences), each part in file order
    raw = [[r[0] for r in s] for s in read_columns(CONLL2000 / "train.txt")]
    train, dev = ([ws for ws, _ in data["chunk"][s]] for s in ("train", "dev"))
    assert sorted(train + dev) == sorted(raw)
    for part in (train, dev):
        rest = iter(raw)
        assert all(any(ws == r for r in rest) for ws in part)  # a subsequence of the file


def test_carve_dev_keeps_tasks_aligned_and_rejects_bad_sizes():
    ex = [([f"w{i}"], ["X"]) for i in range(10)]
    tasks = {"a": {"train": ex, "test": ex[:2]}, "b": {"train": [(w, ["Y"]) for w, _ in ex], "test": []}}
    out = carve_dev(tasks, 3, seed=5)
    assert carve_dev(tasks, 3, seed=5) == out  # the seed alone decides
    assert any(carve_dev(tasks, 3, seed=s)["a"]["dev"] != out["a"]["dev"] for s in range(6, 9))
    assert [w for w, _ in out["a"]["dev"]] == [w for w, _ in out["b"]["dev"]]
    assert len(out["a"]["dev"]) == 3 and len(out["a"]["train"]) == 7 and out["a"]["test"] == ex[:2]
    assert sorted(out["a"]["train"] + out["a"]["dev"]) == sorted(ex)
    with pytest.raises(ConfigError, match=r"dev size must be in \[1, 9\]"):
        carve_dev(tasks, 10, seed=5)


# IOB1 NER in column 0, words in column 2 (holding spaces, so tab-separated), chunks in column 1
IOB1_TSV = (
    "-DOCSTART-\t-X-\t-X-\n\n"
    "I-ORG\tI-NP\tEuropean Union\nO\tI-VP\trejects\nI-MISC\tI-NP\tGerman\nO\tI-NP\tcall\n\n"
    "I-PER\tI-NP\tPeter\nI-PER\tI-NP\tBlackburn\nB-PER\tB-NP\tParis\n\n"
    "I-LOC\tI-NP\tNew York\n\n"
)


def _tsv(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_columns_reader_named_columns_separator_and_scheme(tmp_path):
    train = _tsv(tmp_path, "train.tsv", IOB1_TSV)
    test = _tsv(tmp_path, "test.tsv", "I-LOC\tI-NP\tLos Angeles\n")
    data = columns_tasks(
        {"train": train, "test": test},
        {"ner": 0, "chunk": 1},
        word=2,
        sep="\t",
        schemes={"ner": "iob1", "chunk": "IOB1"},
        dev_size=1,
        dev_seed=0,
    )
    everything = data["ner"]["train"] + data["ner"]["dev"]
    by_first = {ws[0]: (ws, ts) for ws, ts in everything}
    assert by_first["European Union"] == (
        ["European Union", "rejects", "German", "call"],
        ["S-ORG", "O", "S-MISC", "O"],
    )
    assert by_first["Peter"][1] == ["B-PER", "E-PER", "S-PER"]  # IOB1's B- splits adjacent spans
    assert by_first["New York"][1] == ["S-LOC"]
    assert len(data["ner"]["dev"]) == 1 and len(data["ner"]["train"]) == 2  # -DOCSTART- is no sentence
    chunks = {ws[0]: ts for ws, ts in data["chunk"]["train"] + data["chunk"]["dev"]}
    assert chunks["Peter"] == ["B-NP", "I-NP", "B-NP"]  # BIO2 for chunks
    assert data["ner"]["test"] == [(["Los Angeles"], ["S-LOC"])]
    # split at spaces too, the file's rows no longer have one width (European Union: 4 columns)
    with pytest.raises(DataError) as e:
        columns_tasks({"train": train, "test": test}, {"ner": 0}, word=2, dev_size=1)
    assert "expected 4 columns, found 3" in one_line_error(e, train, 4)


def test_columns_reader_auto_scheme_and_given_dev(tmp_path):
    bioes = "EU B-ORG\nUnion E-ORG\nsays O\nhi S-PER\n"
    train, dev, test = (_tsv(tmp_path, f"{s}.txt", bioes) for s in ("train", "dev", "test"))
    data = columns_tasks({"train": train, "dev": dev, "test": test}, {"ner": 1})
    assert data["ner"]["dev"] == [(["EU", "Union", "says", "hi"], ["B-ORG", "E-ORG", "O", "S-PER"])]
    with pytest.raises(ConfigError, match=r"need train and test, dev optional; missing \['test'\]"):
        columns_tasks({"train": train}, {"ner": 1})
    # any task name is read; one not named in spans (nor chunk/ner) is token tagging: tags kept as they are
    srl = columns_tasks({"train": train, "dev": dev, "test": test}, {"srl": 1})
    assert srl["srl"]["test"] == [(["EU", "Union", "says", "hi"], ["B-ORG", "E-ORG", "O", "S-PER"])]
    with pytest.raises(ConfigError, match=r"need train and test, dev optional; missing \['test'\]"):
        columns_tasks({"train": train}, {"srl": 1})


@pytest.mark.parametrize(
    "text,line,fault",
    [
        ("a B-X\nb E-X\n\nc E-X\n", 4, "ner tags are not valid bioes: E-X does not continue a X span"),
        (
            "a S-X\nb O\nc S-Y\nd B-Y\n",
            4,
            "ner tags are not valid bioes: B-Y ends the sentence inside a span",
        ),
        ("a S-X\nb B-Y\nc O\n", 2, "ner tags are not valid bioes: B-Y is not followed by I-Y or E-Y"),
        ("a B-X\nb PER\n", 2, "ner tag 'PER' is not O, B-<type> or I-<type>"),
        ("a B-X\nb\n", 2, "expected 2 columns, found 1"),
        ("a\n", 1, "tag column 2 missing: found 1 column(s)"),
        (b"a B-X\n\xff O\n", 2, "not valid UTF-8 text (byte 0xff)"),
    ],
)
def test_malformed_column_files_name_file_and_line(tmp_path, text, line, fault):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(text if isinstance(text, bytes) else text.encode())
    good = _tsv(tmp_path, "good.txt", "a O\n")
    with pytest.raises(DataError) as e:
        columns_tasks({"train": good, "dev": good, "test": bad}, {"ner": 1})
    assert one_line_error(e, bad, line).endswith(fault)


def test_named_scheme_is_checked(tmp_path):
    f = _tsv(tmp_path, "t.txt", "a O\nb I-X\n")
    with pytest.raises(DataError) as e:
        columns_tasks({"train": f, "dev": f, "test": f}, {"chunk": 1}, schemes={"chunk": "bio2"})
    assert one_line_error(e, f, 2).endswith("chunk tags are not valid bio2: I-X does not continue a X span")
    with pytest.raises(ConfigError, match="unknown tag scheme 'bilou'"):
        columns_tasks({"train": f, "dev": f, "test": f}, {"chunk": 1}, schemes={"chunk": "bilou"})
    empty = tmp_path / "e.tsv"
    empty.write_text("a\t\n")
    with pytest.raises(DataError) as e:
        columns_tasks({"train": empty, "dev": f, "test": f}, {"chunk": 1}, sep="\t")
    assert one_line_error(e, empty, 1).endswith("empty chunk tag in column 2")


def test_position_task_tags_are_token_indexes():
    splits = {"train": [(["a", "b", "c"], ["X", "Y", "Z"])], "test": [(["d"], ["X"])]}
    assert position_task(splits) == {"train": [(["a", "b", "c"], ["0", "1", "2"])], "test": [(["d"], ["0"])]}


@needs_conll2000
def test_position_from_a_corpus_alone_or_beside_other_tasks(conll2000):
    alone = corpus_tasks("conll2000", CONLL2000, ["position"], limits={"train": 5})
    both = {"chunk": conll2000["chunk"], "position": position_task(conll2000["chunk"])}
    assert list(alone) == ["position"] and len(alone["position"]["train"]) == 5
    for split in ("train", "dev", "test"):
        assert [ws for ws, _ in both["position"][split]] == [ws for ws, _ in both["chunk"][split]]
        assert all(ts == [str(i) for i in range(len(ws))] for ws, ts in both["position"][split])
    assert alone["position"]["train"] == both["position"]["train"][:5]
    with pytest.raises(ConfigError, match=r"unknown conll2000 task\(s\) \['ner'\]; valid"):
        corpus_tasks("conll2000", CONLL2000, ["ner"])
    with pytest.raises(ConfigError, match=r"unknown sequence corpus 'conll2012'; valid"):
        corpus_tasks("conll2012", CONLL2000, ["ner"])


@pytest.mark.skipif(not (cache_root() / "conll2003" / MARKER).exists(), reason="CoNLL-2003 not cached")
def test_position_on_real_conll2003():
    """Table 6's synthetic task: NER and Position Prediction on the same CoNLL-2003 sentences."""
    data = corpus_tasks("conll2003", resolve(get_source("conll2003")), ["ner", "position"])
    assert {s: len(data["position"][s]) for s in data["position"]} == {
        "train": 14041,
        "dev": 3250,
        "test": 3453,
    }
    longest = max(len(ws) for ws, _ in data["position"]["train"])
    tags = {t for _, ts in data["position"]["train"] for t in ts}
    assert tags == {str(i) for i in range(longest)}
    assert [ws for ws, _ in data["ner"]["test"]] == [ws for ws, _ in data["position"]["test"]]
    assert data["ner"]["train"][0][1] == ["S-ORG", "O", "S-MISC", "O", "O", "O", "S-MISC", "O", "O"]
