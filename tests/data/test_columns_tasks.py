"""Column files with any task names: several tasks of one kind, per-task files, chosen span schemes."""

from pathlib import Path

import pytest

from sparseshare.data import readers
from sparseshare.data.columns import columns_tasks, task_kind
from sparseshare.data.corpora import corpus_accepts, corpus_tasks
from sparseshare.data.readers import carve_dev
from sparseshare.errors import ConfigError, DataError

# Brown-style POS (word TAG): its own tag set, no dev file
BROWN_TRAIN = "The AT\njury NN\nsaid VBD\n\nIt PPS\nwas BEDZ\n\nFulton NP-TL\nCounty NN-TL\n\nOK UH\n\n"
BROWN_TEST = "He PPS\nran VBD\n"
# WSJ-style (word POS chunk), IOB1 chunks: every span starts with I-, B- only between adjacent same-type spans
WSJ_TRAIN = "Pierre I-NNP I-NP\nVinken NNP I-NP\nsaid VBD I-VP\n\nhe PRP I-NP\nit PRP B-NP\n"
WSJ_DEV = "Mr. NNP I-NP\nran VBD I-VP\n"
WSJ_TEST = "They PRP I-NP\nwon VBD I-VP\n"


def _write(folder: Path, texts: dict[str, str]) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, text in texts.items():
        out[split] = folder / f"{split}.txt"
        out[split].write_text(text)
    return out


@pytest.fixture
def brown(tmp_path):
    return _write(tmp_path / "brown", {"train": BROWN_TRAIN, "test": BROWN_TEST})


@pytest.fixture
def wsj(tmp_path):
    return _write(tmp_path / "wsj", {"train": WSJ_TRAIN, "dev": WSJ_DEV, "test": WSJ_TEST})


def _tags(splits, split="train"):
    return [ts for _, ts in splits[split]]


def test_two_pos_tasks_from_two_files_keep_their_own_tag_sets(brown, wsj):
    data = columns_tasks(
        wsj, {"wsj_pos": 1, "brown_pos": 1}, task_files={"brown_pos": brown}, dev_size=1, dev_seed=0
    )
    assert list(data) == ["wsj_pos", "brown_pos"]
    assert data["wsj_pos"]["test"] == [(["They", "won"], ["PRP", "VBD"])]
    assert data["brown_pos"]["test"] == [(["He", "ran"], ["PPS", "VBD"])]
    # token tagging: tags kept exactly as written, even one that looks like a span tag (I-NNP)
    assert _tags(data["wsj_pos"])[0] == ["I-NNP", "NNP", "VBD"]
    brown_tags = {t for s in ("train", "dev") for ts in _tags(data["brown_pos"], s) for t in ts}
    wsj_tags = {t for s in ("train", "dev") for ts in _tags(data["wsj_pos"], s) for t in ts}
    assert brown_tags == {"AT", "NN", "VBD", "PPS", "BEDZ", "NP-TL", "NN-TL", "UH"}
    assert wsj_tags == {"I-NNP", "NNP", "VBD", "PRP"}
    assert task_kind("brown_pos") == task_kind("wsj_pos") == ("accuracy", None)


def test_span_task_with_any_name_is_converted_from_iob1(wsj):
    genes = columns_tasks(wsj, {"genes": 2}, spans={"genes": "bioes"})
    assert _tags(genes["genes"]) == [["B-NP", "E-NP", "S-VP"], ["S-NP", "S-NP"]]
    assert genes["genes"]["test"] == [(["They", "won"], ["S-NP", "S-VP"])]
    assert task_kind("genes", {"genes": "bioes"}) == ("f1", "bioes")
    bio2 = columns_tasks(wsj, {"genes": 2}, spans={"genes": "BIO2"}, schemes={"genes": "iob1"})
    assert _tags(bio2["genes"]) == [["B-NP", "I-NP", "B-VP"], ["B-NP", "B-NP"]]
    assert task_kind("genes", {"genes": "iob2"}) == ("f1", "bio2")


def test_broken_span_in_a_named_task_names_file_and_line(tmp_path, wsj):
    bad = tmp_path / "bad.txt"
    bad.write_text("a X O\nb X B-GENE\n\nc X O\nd X I-GENE\n")
    with pytest.raises(DataError) as e:
        columns_tasks(
            dict.fromkeys(wsj, bad), {"genes": 2}, spans={"genes": "bioes"}, schemes={"genes": "bio2"}
        )
    assert str(e.value) == f"{bad}:5: genes tags are not valid bio2: I-GENE does not continue a GENE span"
    bad.write_text("a X O\nb X GENE\n")
    with pytest.raises(DataError, match=r"bad\.txt:2: genes tag 'GENE' is not O, B-<type> or I-<type>$"):
        columns_tasks({**wsj, "test": bad}, {"genes": 2}, spans={"genes": "bioes"})
    # the same file as token tagging is read as it is
    assert columns_tasks({**wsj, "test": bad}, {"genes": 2})["genes"]["test"] == [(["a", "b"], ["O", "GENE"])]


def test_defaults_chunk_bio2_ner_bioes_unless_spans_says_otherwise(wsj):
    data = columns_tasks(wsj, {"chunk": 2, "ner": 2})
    assert _tags(data["chunk"]) == [["B-NP", "I-NP", "B-VP"], ["B-NP", "B-NP"]]
    assert _tags(data["ner"]) == [["B-NP", "E-NP", "S-VP"], ["S-NP", "S-NP"]]
    assert [task_kind(t) for t in ("chunk", "ner", "pos", "position")] == [
        ("f1", "bio2"),
        ("f1", "bioes"),
        ("accuracy", None),
        ("accuracy", None),
    ]
    swapped = columns_tasks(wsj, {"chunk": 2, "ner": 2}, spans={"chunk": "bioes", "ner": None})
    assert _tags(swapped["chunk"]) == _tags(data["ner"])
    assert _tags(swapped["ner"]) == [["I-NP", "I-NP", "I-VP"], ["I-NP", "B-NP"]]  # as in the file
    assert task_kind("ner", {"ner": None}) == ("accuracy", None)
    assert task_kind("chunk", {"chunk": "bioes"}) == ("f1", "bioes")
    with pytest.raises(ConfigError, match=r"span task 'genes': unknown target scheme 'iob1'; valid"):
        columns_tasks(wsj, {"genes": 2}, spans={"genes": "iob1"})


@pytest.mark.parametrize("name", ["a/b", "x.y", "", "two words", "position"])
def test_bad_task_names_are_config_errors(wsj, name):
    with pytest.raises(ConfigError) as e:
        columns_tasks(wsj, {"pos": 1, name: 1})
    msg = str(e.value)
    assert f"'{name}'" in msg and "\n" not in msg
    assert ("reserved" if name == "position" else "letters, digits, '_' and '-'") in msg


@pytest.mark.parametrize(
    "options,message",
    [
        ({"task_files": {"wsj_pos": {"train": "x"}}}, r"of task 'wsj_pos' need train and test, .*\['test'\]"),
        ({"task_files": {"wsj_pos": {"train": "x", "test": "y", "valid": "z"}}}, r"unknown \['valid'\]"),
        ({"task_files": {"wsj_pos": "x"}}, r"of task 'wsj_pos' must map split"),
        ({"task_files": {"other": {"train": "x", "test": "y"}}}, r"task_files names task\(s\) \['other'\]"),
        ({"spans": {"other": "bio2"}}, r"spans names task\(s\) \['other'\] without a tag column"),
        ({"schemes": {"wsj_pos": "iob1"}}, r"schemes names token tagging task\(s\) \['wsj_pos'\]"),
    ],
)
def test_bad_per_task_options_are_config_errors_naming_the_task(wsj, options, message):
    with pytest.raises(ConfigError, match=message):
        columns_tasks(wsj, {"wsj_pos": 1}, **options)


def test_default_files_lacking_test_name_the_tasks_that_use_them(brown, wsj):
    with pytest.raises(ConfigError, match=r"of task\(s\) \['wsj_pos'\] need train and test"):
        columns_tasks(
            {"train": wsj["train"]}, {"wsj_pos": 1, "brown_pos": 1}, task_files={"brown_pos": brown}
        )
    # no task reads the default files: they may be empty
    only = columns_tasks({}, {"brown_pos": 1}, task_files={"brown_pos": brown}, dev_size=1)
    assert only["brown_pos"]["test"] == [(["He", "ran"], ["PPS", "VBD"])]


def test_dev_is_carved_per_task_from_its_own_train(brown, wsj, tmp_path):
    wsj_no_dev = {"train": wsj["train"], "test": wsj["test"]}
    data = columns_tasks(
        wsj_no_dev,
        {"wsj_pos": 1, "chunk": 2, "brown_pos": 1},
        task_files={"brown_pos": brown},
        dev_size=1,
        dev_seed=3,
    )
    alone = columns_tasks({}, {"brown_pos": 1}, task_files={"brown_pos": brown}, dev_size=1, dev_seed=3)
    assert data["brown_pos"] == alone["brown_pos"]  # the same seed rule, whatever else is read
    brown_sents = [ws for ws, _ in data["brown_pos"]["train"] + data["brown_pos"]["dev"]]
    assert sorted(brown_sents) == sorted(
        [["The", "jury", "said"], ["It", "was"], ["Fulton", "County"], ["OK"]]
    )
    assert len(data["brown_pos"]["dev"]) == 1 and len(data["brown_pos"]["train"]) == 3
    assert len(data["wsj_pos"]["dev"]) == 1 and len(data["wsj_pos"]["train"]) == 1
    # tasks reading one train file share their dev sentences
    assert [ws for ws, _ in data["wsj_pos"]["dev"]] == [ws for ws, _ in data["chunk"]["dev"]]
    whole = {"train": columns_tasks(wsj, {"wsj_pos": 1})["wsj_pos"]["train"], "test": []}
    assert data["wsj_pos"]["dev"] == carve_dev({"t": whole}, 1, 3)["t"]["dev"]
    # a task with its own dev file keeps it
    given = columns_tasks(wsj_no_dev, {"chunk": 2}, task_files={"chunk": wsj}, dev_size=1)
    assert given["chunk"]["dev"] == [(["Mr.", "ran"], ["B-NP", "B-VP"])] and len(given["chunk"]["train"]) == 2
    with pytest.raises(
        ConfigError, match=r"dev size must be in \[1, 1\] for the 2 training sentences of .*wsj"
    ):
        columns_tasks(wsj_no_dev, {"wsj_pos": 1, "brown_pos": 1}, task_files={"brown_pos": brown}, dev_size=2)


def test_each_file_is_read_once(monkeypatch, brown, wsj):
    calls = []
    real = readers.read_rows

    def counting(path, *args, **kwargs):
        calls.append(Path(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(readers, "read_rows", counting)
    brown_on_wsj_test = {**brown, "test": wsj["test"]}
    data = columns_tasks(
        wsj,
        {"pos": 1, "chunk": 2, "ner": 2, "brown_pos": 1},
        task_files={"brown_pos": brown_on_wsj_test},
        dev_size=1,
    )
    assert sorted(calls) == sorted([wsj["train"], wsj["dev"], wsj["test"], brown["train"]])
    assert data["brown_pos"]["test"] == data["pos"]["test"]


def test_position_and_task_files_through_corpus_tasks(brown, wsj, tmp_path):
    options = {
        "files": {"train": "wsj/train.txt", "dev": "wsj/dev.txt", "test": "wsj/test.txt"},
        "tags": {"wsj_pos": 1, "brown_pos": 1, "genes": 2},
        "task_files": {"brown_pos": {"train": "brown/train.txt", "test": "brown/test.txt"}},
        "spans": {"genes": "bioes"},
        "dev_size": 1,
    }
    data = corpus_tasks("columns", tmp_path, ["brown_pos", "genes", "position"], {"train": 2}, **options)
    assert list(data) == ["brown_pos", "genes", "position"]
    assert data["brown_pos"]["test"] == [(["He", "ran"], ["PPS", "VBD"])]
    assert data["genes"]["dev"] == [(["Mr.", "ran"], ["S-NP", "S-VP"])]
    for split in ("train", "dev", "test"):  # position is built on the first task's sentences
        assert [ws for ws, _ in data["position"][split]] == [ws for ws, _ in data["brown_pos"][split]]
        assert all(ts == [str(i) for i in range(len(ws))] for ws, ts in data["position"][split])
    assert len(data["position"]["train"]) == 2
    alone = corpus_tasks("columns", tmp_path, ["position"], **options)
    assert alone["position"]["test"] == [(["They", "won"], ["0", "1"])]  # the first tags task: wsj_pos
    with pytest.raises(ConfigError, match=r"no task asked \(tags is empty\)"):
        corpus_tasks("columns", tmp_path, ["position"], files=options["files"])
    with pytest.raises(
        ConfigError, match=r"unknown columns task\(s\) \['pos'\]; valid: \['wsj_pos', .*'position'\]"
    ):
        corpus_tasks("columns", tmp_path, ["pos"], **options)


def test_corpus_accepts_columns_tasks_by_their_tags():
    tags = {"tags": {"brown_pos": 1, "genes": 2}}
    assert corpus_accepts("columns", "brown_pos", tags) and corpus_accepts("columns", "position", tags)
    assert not corpus_accepts("columns", "pos", tags) and not corpus_accepts("columns", "pos")
    assert corpus_accepts("conll2000", "chunk") and not corpus_accepts("ptb", "ner")
    assert not corpus_accepts("conll2012", "pos")
