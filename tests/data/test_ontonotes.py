"""OntoNotes 5.0 CoNLL-2012 files: a hand-made sample of the real layout (the corpus is licensed)."""

from pathlib import Path

import pytest

from sparseshare.data.ontonotes import ontonotes_tasks, parse_chunks, read_conll2012
from sparseshare.errors import ConfigError, DataError

from .test_readers_formats import one_line_error

# wsj_0001's two sentences: words, POS and the trees of the Penn Treebank (function tags dropped, as the
# CoNLL-2012 files have them), NER as OntoNotes annotates them; the first sentence has one predicate
# column (join), the second none, so the column count differs per sentence as in the release.
WSJ_0001 = """\
#begin document (nw/wsj/00/wsj_0001); part 000
nw/wsj/00/wsj_0001 0  0       Pierre NNP (TOP(S(NP(NP*    -  - - - (PERSON*      (ARG0*   -
nw/wsj/00/wsj_0001 0  1       Vinken NNP *)               -  - - -       *)           * (0)
nw/wsj/00/wsj_0001 0  2            ,   , *                -  - - -        *           *   -
nw/wsj/00/wsj_0001 0  3           61  CD (ADJP(NP*        -  - - -   (DATE*           *   -
nw/wsj/00/wsj_0001 0  4        years NNS *)               -  - - -        *           *   -
nw/wsj/00/wsj_0001 0  5          old  JJ *)               -  - - -       *)           *   -
nw/wsj/00/wsj_0001 0  6            ,   , *)               -  - - -        *          *)   -
nw/wsj/00/wsj_0001 0  7         will  MD (VP*             -  - - -        * (ARGM-MOD*)   -
nw/wsj/00/wsj_0001 0  8         join  VB (VP*          join 01 1 -        *        (V*)   -
nw/wsj/00/wsj_0001 0  9          the  DT (NP*             -  - - -        *      (ARG1*   -
nw/wsj/00/wsj_0001 0 10        board  NN *)               -  - - -        *          *)   -
nw/wsj/00/wsj_0001 0 11           as  IN (PP*             -  - - -        *  (ARGM-PRD*   -
nw/wsj/00/wsj_0001 0 12            a  DT (NP*             -  - - -        *           *   -
nw/wsj/00/wsj_0001 0 13 nonexecutive  JJ *                -  - - -        *           *   -
nw/wsj/00/wsj_0001 0 14     director  NN *))              -  - - -        *          *)   -
nw/wsj/00/wsj_0001 0 15         Nov. NNP (NP*             -  - - -   (DATE*  (ARGM-TMP*   -
nw/wsj/00/wsj_0001 0 16           29  CD *)))             -  - - -       *)          *)   -
nw/wsj/00/wsj_0001 0 17            .   . *))              -  - - -        *           *   -

nw/wsj/00/wsj_0001 0  0          Mr. NNP (TOP(S(NP*       -  - - -        *          (0
nw/wsj/00/wsj_0001 0  1       Vinken NNP *)               -  - - - (PERSON)          0)
nw/wsj/00/wsj_0001 0  2           is VBZ (VP*             -  - - -        *           -
nw/wsj/00/wsj_0001 0  3     chairman  NN (NP(NP*)         -  - - -        *           -
nw/wsj/00/wsj_0001 0  4           of  IN (PP*             -  - - -        *           -
nw/wsj/00/wsj_0001 0  5     Elsevier NNP (NP(NP*          -  - - -    (ORG*           -
nw/wsj/00/wsj_0001 0  6         N.V. NNP *)               -  - - -       *)           -
nw/wsj/00/wsj_0001 0  7            ,   , *                -  - - -        *           -
nw/wsj/00/wsj_0001 0  8          the  DT (NP*             -  - - -        *           -
nw/wsj/00/wsj_0001 0  9        Dutch NNP *                -  - - -   (NORP)           -
nw/wsj/00/wsj_0001 0 10   publishing VBG *                -  - - -        *           -
nw/wsj/00/wsj_0001 0 11        group  NN *)))))           -  - - -        *           -
nw/wsj/00/wsj_0001 0 12            .   . *))              -  - - -        *           -

#end document
"""


def _tags(text: str) -> list[str]:
    return text.split()


CHUNKS_1 = _tags("B-NP I-NP O B-NP I-NP B-ADJP O B-VP I-VP B-NP I-NP B-PP B-NP I-NP I-NP B-NP I-NP O")
CHUNKS_2 = _tags("B-NP I-NP B-VP B-NP B-PP B-NP I-NP O B-NP I-NP I-NP I-NP O")
NER_1 = _tags("B-PERSON E-PERSON O B-DATE I-DATE E-DATE O O O O O O O O O B-DATE E-DATE O")
NER_2 = _tags("O S-PERSON O O O B-ORG E-ORG O O S-NORP O O O")


def _doc(doc_id: str, words: list[str], ner: str = "*") -> str:
    """A one-sentence document: each word a one-token NP of a flat S (its NER bit ``ner`` or *)."""
    rows = []
    for i, w in enumerate(words):
        bit = ("(TOP(S" if i == 0 else "") + "(NP*)" + ("))" if i == len(words) - 1 else "")
        rows.append(f"{doc_id}  0  {i}  {w}  NN  {bit}  -  -  -  -  {ner if i == 0 else '*'}  -")
    return f"#begin document ({doc_id}); part 000\n" + "\n".join(rows) + "\n\n#end document\n"


def _corpus(tmp_path):
    ann = "data/english/annotations"
    files = {
        f"train/{ann}/nw/wsj/00/wsj_0001.v4_gold_conll": WSJ_0001,
        # the predicted layers beside the gold ones, other languages, the pt genre: all left out
        f"train/{ann}/nw/wsj/00/wsj_0001.v4_auto_conll": _doc("nw/wsj/00/wsj_0001", ["auto"]),
        "train/data/chinese/annotations/nw/xinhua/00/chtb_0001.v4_gold_conll": _doc("nw/xinhua/00/x", ["zh"]),
        f"train/{ann}/pt/nt/40/nt_4001.v4_gold_conll": _doc("pt/nt/40/nt_4001", ["Bible"]),
        # a pt document in a file outside a pt folder: left out by its document id
        f"train/{ann}/bc/cnn/00/cnn_0001.v4_gold_conll": _doc("pt/ot/01/ot_0101", ["Genesis"])
        + _doc("bc/cnn/00/cnn_0001", ["Hello", "there"], "(PERSON)"),
        f"development/{ann}/bn/abc/00/abc_0001.v4_gold_conll": _doc("bn/abc/00/abc_0001", ["dev", "words"]),
        f"test/{ann}/mz/sinorama/00/ectb_1001.v4_gold_conll": _doc("mz/sinorama/00/ectb_1001", ["test"]),
    }
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return tmp_path


def test_ontonotes_layout_pos_chunk_ner(tmp_path):
    data = ontonotes_tasks(_corpus(tmp_path))
    train = {t: data[t]["train"] for t in ("pos", "chunk", "ner")}
    assert [ws for ws, _ in train["ner"]] == [
        ["Hello", "there"],  # bc/cnn sorts before nw/wsj; the pt documents are gone
        _tags("Pierre Vinken , 61 years old , will join the board as a nonexecutive director Nov. 29 ."),
        _tags("Mr. Vinken is chairman of Elsevier N.V. , the Dutch publishing group ."),
    ]
    assert train["pos"][2][1] == _tags("NNP NNP VBZ NN IN NNP NNP , DT NNP VBG NN .")
    assert [ts for _, ts in train["chunk"][1:]] == [CHUNKS_1, CHUNKS_2]  # CoNLL-2000's chunks of wsj_0001
    assert [ts for _, ts in train["ner"]] == [["S-PERSON", "O"], NER_1, NER_2]
    assert data["ner"]["dev"] == [(["dev", "words"], ["O", "O"])]
    assert data["chunk"]["test"] == [(["test"], ["B-NP"])]
    assert list(ontonotes_tasks(tmp_path, ["ner"])) == ["ner"]
    with pytest.raises(ConfigError, match=r"unknown ontonotes task\(s\) \['srl'\]"):
        ontonotes_tasks(tmp_path, ["srl"])


@pytest.mark.parametrize(
    "bits,pos,chunks",
    [
        # a verb chain is one VP chunk, a PP's preposition a PP chunk; function tags and WH- dropped
        (
            "(TOP(SBAR(WHNP*) (S(NP-SBJ*) (VP* (VP* (VP* (PP-LOC* (NP*))))))))",
            "WDT PRP VBZ VBN VBN IN NNS",
            "B-NP B-NP B-VP I-VP I-VP B-PP B-NP",
        ),
        # a QP inside a noun phrase joins it; an adverb between verbs splits the chain
        (
            "(TOP(S(NP(QP* * *) *) (VP* (ADVP*) (VP*))))",
            "RB CD CD NNS VBP RB VBN",
            "B-NP I-NP I-NP I-NP B-VP B-ADVP B-VP",
        ),
        # punctuation at a chunk's edge is O, inside it stays; a clause's own tokens are O
        ("(TOP(S* (NP* * * * *) (VP*) *))", "CC DT `` NN '' NN VBD .", "O B-NP I-NP I-NP I-NP I-NP B-VP O"),
    ],
)
def test_chunk_rule(bits, pos, chunks):
    bits = bits.split()  # one parse bit per token
    assert len(bits) == len(pos.split()) == len(chunks.split())
    assert (
        parse_chunks(Path("s.v4_gold_conll"), list(range(1, len(bits) + 1)), bits, pos.split())
        == chunks.split()
    )


@pytest.mark.parametrize(
    "row_bits,line,fault",
    [
        (("(TOP(S(NP*)", "(VP*))))"), 3, "parse bit '(VP*))))' closes 4 phrases, 3 open"),
        (("(TOP(S(NP*)", "(VP*)"), 3, "parse tree not closed at the sentence end (2 open)"),
        (("(TOP(S(NP*)", "VP*))"), 3, "parse bit 'VP*))' is not (LABEL...*)..."),
        (("*", "*"), 2, "parse bit '*': token outside any phrase"),
    ],
)
def test_malformed_parse_bits(tmp_path, row_bits, line, fault):
    rows = [f"bc/x/00/x_0001 0 {i} w{i} NN {b} - - - - * -" for i, b in enumerate(row_bits)]
    p = tmp_path / "x.v4_gold_conll"
    p.write_text("#begin document (bc/x/00/x_0001); part 000\n" + "\n".join(rows) + "\n\n#end document\n")
    with pytest.raises(DataError) as e:
        read_conll2012(p, ("chunk",))
    assert one_line_error(e, p, line).endswith(fault)


@pytest.mark.parametrize(
    "ner_bits,line,fault",
    [
        (("(PERSON*", "(ORG*)"), 3, "entity 'ORG' opens inside entity 'PERSON'"),
        (("*", "*)"), 3, "named-entity bit '*)' closes no entity"),
        (("(GPE*", "*"), 3, "entity 'GPE' not closed at the sentence end"),
        (("(GPE", "*"), 2, "named-entity bit '(GPE' is not *, (TYPE*, *) or (TYPE)"),
        (("-", "*"), 2, "named-entity bit '-' is not *, (TYPE*, *) or (TYPE)"),
    ],
)
def test_malformed_ner_bits(tmp_path, ner_bits, line, fault):
    rows = [
        f"bc/x/00/x_0001 0 {i} w{i} NN (TOP(NP*{'))' if i else ''} - - - - {b} -"
        for i, b in enumerate(ner_bits)
    ]
    p = tmp_path / "x.v4_gold_conll"
    p.write_text("#begin document (bc/x/00/x_0001); part 000\n" + "\n".join(rows) + "\n\n#end document\n")
    with pytest.raises(DataError) as e:
        read_conll2012(p, ("ner",))
    assert one_line_error(e, p, line).endswith(fault)


def test_malformed_rows_and_folders(tmp_path):
    p = tmp_path / "x.v4_gold_conll"
    p.write_text("a/b/00/c 0 0 w NN (TOP*) - - -\n")
    with pytest.raises(DataError) as e:
        read_conll2012(p)
    assert one_line_error(e, p, 1).endswith("tag column 11 missing: found 9 column(s)")
    p.write_text("a/b/00/c 0 0 w NN (TOP(NP* - - - - * -\na/b/00/c 0 2 x NN *)) - - - - * -\n")
    with pytest.raises(DataError) as e:
        read_conll2012(p)
    assert one_line_error(e, p, 2).endswith("word number '2', expected 1")
    p.write_text("a/b/00/c 0 0 w NN (TOP(NP* - - - - * -\na/b/00/d 0 1 x NN *)) - - - - * -\n")
    with pytest.raises(DataError) as e:
        read_conll2012(p)
    assert one_line_error(e, p, 1).endswith("one sentence spans documents ['a/b/00/c', 'a/b/00/d']")
    with pytest.raises(DataError) as e:
        ontonotes_tasks(tmp_path)
    assert one_line_error(e, tmp_path, None).endswith("no train folder for the train split")
