import pytest

from sparseshare.data.readers import conll2003_tasks as conll03_tasks
from sparseshare.data.sources import MARKER, cache_root, get_source, resolve
from sparseshare.errors import ConfigError, DataError

# IOB1, as in the original release: spans start with I-, B- only between adjacent same-type spans
IOB1 = """-DOCSTART- -X- -X- O

EU NNP I-NP I-ORG
rejects VBZ I-VP O
German JJ I-NP I-MISC
call NN I-NP O

Peter NNP I-NP I-PER
Blackburn NNP I-NP I-PER
Paris NNP B-NP B-PER
"""
BIO2 = "Only RB B-ADVP O\nFrance NNP B-NP B-LOC\nand CC O O\nBritain NNP B-NP B-LOC\n"


def _dir(tmp_path, train=IOB1, dev=BIO2, test=BIO2):
    for name, text in (("train.txt", train), ("valid.txt", dev), ("test.txt", test)):
        (tmp_path / name).write_text(text)
    return tmp_path


def test_schemes_detected_and_converted(tmp_path):
    data = conll03_tasks(_dir(tmp_path))
    assert set(data) == {"pos", "chunk", "ner"} and set(data["ner"]) == {"train", "dev", "test"}
    assert data["ner"]["train"][0] == (["EU", "rejects", "German", "call"], ["S-ORG", "O", "S-MISC", "O"])
    assert data["ner"]["train"][1][1] == ["B-PER", "E-PER", "S-PER"]  # IOB1 B- splits adjacent PER spans
    assert data["chunk"]["train"][0][1] == ["B-NP", "B-VP", "B-NP", "I-NP"]
    assert data["chunk"]["train"][1][1] == ["B-NP", "I-NP", "B-NP"]
    assert data["pos"]["dev"][0] == (["Only", "France", "and", "Britain"], ["RB", "NNP", "CC", "NNP"])
    assert data["ner"]["dev"][0][1] == ["O", "S-LOC", "O", "S-LOC"]


def test_limits_take_the_first_sentences(tmp_path):
    data = conll03_tasks(_dir(tmp_path), tasks=["ner"], limits={"train": 1, "test": 0})
    assert list(data) == ["ner"]
    assert [len(data["ner"][s]) for s in ("train", "dev", "test")] == [1, 1, 0]
    assert data["ner"]["train"][0][0][0] == "EU"
    with pytest.raises(ConfigError, match=r"unknown split\(s\) \['valid'\] in sentence limits"):
        conll03_tasks(tmp_path, limits={"valid": 10})
    with pytest.raises(ConfigError, match=r"\['srl'\]"):
        conll03_tasks(tmp_path, tasks=["srl"])


def test_bad_files_name_file_and_line(tmp_path):
    root = _dir(tmp_path, dev=BIO2 + "\nLondon NNP B-NP LOC\n")
    with pytest.raises(DataError, match=r"valid.txt:6: ner tag 'LOC' is not O, B-<type> or I-<type>"):
        conll03_tasks(root)
    root = _dir(tmp_path, dev="a b\n")
    with pytest.raises(DataError, match=r"valid.txt:1: tag column 4 missing"):
        conll03_tasks(root)
    root = _dir(tmp_path, dev="a b c d e\n")
    with pytest.raises(DataError, match=r"valid.txt:1: expected 4 columns \(word POS chunk NER\), found 5"):
        conll03_tasks(root)
    (_dir(tmp_path) / "test.txt").unlink()
    with pytest.raises(DataError, match=r"test.txt: no such file"):
        conll03_tasks(tmp_path)


@pytest.mark.skipif(
    not (cache_root() / "conll2003" / MARKER).exists(), reason="CoNLL-2003 not in the local cache"
)
def test_real_conll2003_from_cache():
    data = conll03_tasks(resolve(get_source("conll2003")))
    counts = {s: len(data["ner"][s]) for s in ("train", "dev", "test")}
    assert counts == {"train": 14041, "dev": 3250, "test": 3453}
    assert sum(len(ws) for ws, _ in data["pos"]["train"]) == 203621
    ner = {t for _, ts in data["ner"]["train"] for t in ts}
    assert ner == {"O"} | {f"{p}-{t}" for p in "BIES" for t in ("PER", "LOC", "ORG", "MISC")}
    spans = sum(t[0] in "BS" for _, ts in data["ner"]["train"] for t in ts)
    assert spans == 23499  # PER 6600, LOC 7140, ORG 6321, MISC 3438 in the official train set
    chunk = {t for _, ts in data["chunk"]["dev"] for t in ts}
    assert "B-NP" in chunk and not any(t[0] in "ES" for t in chunk)
