"""Penn Treebank word/TAG files: NLTK's real 199-file sample and hand-made files of the same layout."""

import pytest

from sparseshare.data.ptb import PTB_SPLITS, ptb_tasks, read_pos_file
from sparseshare.errors import ConfigError, DataError

from .test_readers_formats import SHARED, one_line_error

SAMPLE = SHARED / "ptb_sample"


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="../shared/data/ptb_sample absent")
def test_real_ptb_sample_counts_and_split():
    pos = ptb_tasks(SAMPLE)["pos"]  # finds tagged/*.pos under the folder; 'auto' picks the sample rule
    counts = {s: (len(pos[s]), sum(len(ws) for ws, _ in pos[s])) for s in ("train", "dev", "test")}
    assert counts == {"train": (3314, 81902), "dev": (273, 6328), "test": (244, 5970)}
    assert sum(t for _, t in counts.values()) == 94200  # every word/TAG token of the README, none lost
    tags = {t for s in pos.values() for _, ts in s for t in ts}
    assert len(tags) == 45 and "VBG|NN" not in tags  # the README's 46 count the one double tag
    words, tags0 = pos["train"][0]
    assert words[:3] == ["Pierre", "Vinken", ","] and tags0[-3:] == ["NNP", "CD", "."] and len(words) == 18
    flat = {(w, t) for s in pos.values() for ws, ts in s for w, t in zip(ws, ts)}
    assert ("targeting", "VBG") in flat  # targeting/VBG|NN: the first tag
    assert ("Macmillan\\/McGraw-Hill", "NNP") in flat and ("7\\/8", "CD") in flat  # escapes kept


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="../shared/data/ptb_sample absent")
def test_real_ptb_sentence_ends():
    sents = [ws for ws, _ in read_pos_file(SAMPLE / "tagged" / "wsj_0003.pos")]
    # the closing quote, after a blank line in the file, stays with its sentence
    quoted = next(ws for ws in sents if "products" in ws)
    assert quoted[-3:] == ["now", ".", "''"]
    # a blank line inside a sentence (after "symptoms") does not end it
    fiber = next(ws for ws in sents if ws[:3] == ["The", "asbestos", "fiber"])
    assert "symptoms" in fiber and fiber[-2:] == ["said", "."]
    assert all(ws[-1] in (".", "''", "?", "!") or ws[-2:] == [".", "''"] for ws in sents[:-1])


_RAW = """

[ Pierre/NNP Vinken/NNP ]
,/,
[ 61/CD years/NNS ]
old/JJ ,/, will/MD join/VB
[ the/DT board/NN ]

as/IN
[ 1\\/2/CD ]
./.

''/''

[ Mr./NNP Vinken/NNP ]
is/VBZ targeting/VBG|NN ?/.

======================================

Headline/NN without/IN period/NN
======================================
Last/JJ ./.
"""
# as the release: lines of words end with a space, bracket and separator lines do not
POS_FILE = "\n".join(ln + " " if ln and ln[-1] not in "]=" else ln for ln in _RAW.split("\n"))


def test_hand_made_layout(tmp_path):
    p = tmp_path / "wsj_0001.pos"
    p.write_text(POS_FILE)
    sents = read_pos_file(p)
    assert [len(ws) for ws, _ in sents] == [15, 5, 3, 2]
    words, tags = sents[0]
    assert words[-5:] == ["board", "as", "1\\/2", ".", "''"] and tags[-5:] == ["NN", "IN", "CD", ".", "''"]
    assert sents[1] == (["Mr.", "Vinken", "is", "targeting", "?"], ["NNP", "NNP", "VBZ", "VBG", "."])
    assert sents[2][0] == ["Headline", "without", "period"]  # a separator line ends it


@pytest.mark.parametrize(
    "text,line,fault",
    [
        ("a/DT\nb/NN c ./.\n", 2, "token 'c' is not word/TAG"),
        ("a/DT /NN\n", 1, "token '/NN' is not word/TAG"),
        ("a/DT b/\n", 1, "token 'b/' is not word/TAG"),
        ("x/NN\n[ a/DT [ b/NN ]\n", 2, "unbalanced base-NP bracket '['"),
        ("a/DT ]\n", 1, "unbalanced base-NP bracket ']'"),
        ("[ a/DT b/NN\n", 1, "base-NP bracket '[' not closed on its line"),
        ("\n\n=====\n", None, "no word/TAG tokens"),
    ],
)
def test_malformed_pos_files(tmp_path, text, line, fault):
    p = tmp_path / "wsj_0001.pos"
    p.write_text(text)
    with pytest.raises(DataError) as e:
        read_pos_file(p)
    assert one_line_error(e, p, line).endswith(fault)


def test_split_rules_by_file_number(tmp_path):
    for n in (5, 1899, 1900, 2199, 2200, 2499, 2300):
        folder = tmp_path / f"{n // 100:02d}"
        folder.mkdir(exist_ok=True)
        (folder / f"wsj_{n:04d}.pos").write_text(f"w{n}/NN ./.\n")
    (tmp_path / "notes.pos").write_text("not/a ptb/file\n")
    pos = ptb_tasks(tmp_path)["pos"]  # a file past 0199: the WSJ sections rule
    assert {s: [ws[0] for ws, _ in ex] for s, ex in pos.items()} == {
        "train": ["w5", "w1899"],
        "dev": ["w1900", "w2199"],
        "test": ["w2200", "w2300", "w2499"],
    }
    assert PTB_SPLITS["wsj"]["train"] == (0, 1899)  # sections 00-18
    with pytest.raises(DataError, match="no .pos files numbered 0160-0179 for the dev split"):
        ptb_tasks(tmp_path, split="sample")
    with pytest.raises(ConfigError, match=r"unknown PTB split rule 'collins'"):
        ptb_tasks(tmp_path, split="collins")
    with pytest.raises(ConfigError, match=r"unknown ptb task\(s\) \['ner'\]"):
        ptb_tasks(tmp_path, tasks=("pos", "ner"))
    with pytest.raises(DataError, match="no wsj_SSNN.pos files"):
        ptb_tasks(tmp_path / "00" / "missing")
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "wsj_0005.pos").write_text("x/NN\n")
    with pytest.raises(DataError, match=r"second copy of wsj_0005.pos"):
        ptb_tasks(tmp_path)
